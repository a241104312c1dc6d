// Safetensors reader: header validation, layout checks and dtype conversion on load.
#include "safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "private/json_fields.h"

namespace lowbit {
namespace {

// Plain (std::map) json: ordered_json looks keys up linearly, which a crafted header with a
// million keys would turn into hours. Header order is taken from the parser callback instead.
using Json = nlohmann::json;

// A header beyond this is corruption, not a checkpoint; refusing it bounds what a bad file can allocate.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr const char* kReadable = "F32, F16, BF16, F64, I64, I32, U8, I8";

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// ---- dtypes on disk ----

enum class Conv { copy, f16, bf16, f64 };
struct DiskType {
  const char* name;
  size_t size;  // bytes per element on disk
  DType dtype;  // what it becomes in memory
  Conv conv;
};
constexpr DiskType kDiskTypes[] = {
    {"F32", 4, DType::f32, Conv::copy},  {"I64", 8, DType::i64, Conv::copy}, {"I32", 4, DType::i32, Conv::copy},
    {"U8", 1, DType::u8, Conv::copy},    {"I8", 1, DType::i8, Conv::copy},   {"F16", 2, DType::f32, Conv::f16},
    {"BF16", 2, DType::f32, Conv::bf16}, {"F64", 8, DType::f32, Conv::f64},
};
// Spec dtypes we know but do not read: an error that says so, rather than "unknown".
constexpr const char* kKnownUnread[] = {"BOOL",    "I16",     "U16",     "U32",     "U64", "F8_E4M3",
                                        "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",  "C64"};

template <class U>
U load_le(const unsigned char* p) {
  U v;
  std::memcpy(&v, p, sizeof(U));
  if constexpr (std::endian::native == std::endian::big) {
    U r = 0;
    for (size_t i = 0; i < sizeof(U); ++i) r = static_cast<U>((r << 8) | ((v >> (8 * i)) & 0xff));
    v = r;
  }
  return v;
}

void swap_bytes_if_big_endian([[maybe_unused]] void* p, [[maybe_unused]] size_t count, [[maybe_unused]] size_t width) {
  if constexpr (std::endian::native == std::endian::big) {
    auto* b = static_cast<unsigned char*>(p);
    for (size_t i = 0; i < count; ++i) std::reverse(b + i * width, b + (i + 1) * width);
  }
}

// IEEE binary16 -> binary32 is exact; NaN payloads are kept in the high mantissa bits.
float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal mant * 2^-24: shift the leading one into the implicit bit
    uint32_t e = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

// ---- where bytes come from: a caller's buffer or a file read with pread ----

class Source {
 public:
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // [offset, offset + n) lies inside size(); the caller has checked.
  virtual void read(uint64_t offset, size_t n, void* dst) const = 0;
};

class MemorySource final : public Source {
 public:
  MemorySource(const void* p, size_t n) : p_(static_cast<const unsigned char*>(p)), n_(n) {}
  uint64_t size() const override { return n_; }
  void read(uint64_t offset, size_t n, void* dst) const override {
    if (n) std::memcpy(dst, p_ + offset, n);
  }

 private:
  const unsigned char* p_;
  size_t n_;
};

class FileSource final : public Source {
 public:
  FileSource(const std::string& path, const std::string& where) : where_(where) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error("cannot open the file: " + errno_text(errno), where_);
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw Error("not a regular file", where_);
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~FileSource() override { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, size_t n, void* dst) const override {
    auto* out = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw Error("read failed: " + errno_text(errno), where_);
      if (got == 0) throw Error("the file became shorter while it was being read", where_);
      out += got;
      n -= static_cast<size_t>(got);
      offset += static_cast<uint64_t>(got);
    }
  }

 private:
  std::string where_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// ---- header parsing ----

struct Entry {
  std::string name;
  const DiskType* type = nullptr;
  Shape shape;
  int64_t numel = 0;
  uint64_t begin = 0, end = 0;
};

// A JSON value for an error message, cut short: a corrupt header can hold megabytes in one value.
std::string tensor_ref(const std::string& name) { return "tensor '" + name + "'"; }

const DiskType& parse_dtype(const Json& j, const std::string& name, const std::string& where) {
  if (!j.is_string()) throw Error(tensor_ref(name) + ": \"dtype\" must be a string, got " + json_brief(j), where);
  std::string s = j.get<std::string>();
  for (const DiskType& d : kDiskTypes)
    if (s == d.name) return d;
  bool known = std::find(std::begin(kKnownUnread), std::end(kKnownUnread), s) != std::end(kKnownUnread);
  throw Error(tensor_ref(name) + ": " + (known ? "unsupported" : "unknown") + " dtype \"" + s + "\"", where,
              std::string("lowbit reads ") + kReadable);
}

// A JSON integer >= 0 (floats such as 2.0 are refused, as the Rust reader does).
bool as_unsigned(const Json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

Entry parse_entry(const std::string& name, const Json& j, uint64_t data_len, const std::string& where) {
  const std::string what = tensor_ref(name);
  if (!j.is_object())
    throw Error(what + ": entry must be a JSON object with \"dtype\", \"shape\" and \"data_offsets\", got " +
                    std::string(j.type_name()),
                where);
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!j.contains(key)) throw Error(what + ": entry has no \"" + key + "\"", where);
  Entry e;
  e.name = name;
  e.type = &parse_dtype(j["dtype"], name, where);

  const Json& shape = j["shape"];
  if (!shape.is_array()) throw Error(what + ": \"shape\" must be an array of integers, got " + json_brief(shape), where);
  int64_t nonzero_product = 1;
  bool has_zero = false;
  for (const Json& d : shape) {
    uint64_t v = 0;
    if (!as_unsigned(d, v) || v > static_cast<uint64_t>(INT64_MAX))
      throw Error(what + ": shape " + json_brief(shape) + " has a dimension that is not a non-negative integer", where);
    int64_t dim = static_cast<int64_t>(v);
    e.shape.push_back(dim);
    if (dim == 0) has_zero = true;
    // Even with a zero dimension the other dims must multiply within int64, so shape code never overflows.
    else if (__builtin_mul_overflow(nonzero_product, dim, &nonzero_product))
      throw Error(what + ": shape " + json_brief(shape) + " has more elements than int64 can count", where);
  }
  e.numel = has_zero ? 0 : nonzero_product;

  const Json& offs = j["data_offsets"];
  if (!offs.is_array() || offs.size() != 2 || !as_unsigned(offs[0], e.begin) || !as_unsigned(offs[1], e.end))
    throw Error(what + ": \"data_offsets\" must be [begin, end] with non-negative integers, got " + json_brief(offs), where);
  if (e.end < e.begin) throw Error(what + ": data_offsets " + json_brief(offs) + " end before they begin", where);
  if (e.end > data_len)
    throw Error(what + ": data_offsets " + json_brief(offs) + " run past the data section, which is " +
                    std::to_string(data_len) + " bytes",
                where);
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(e.numel), e.type->size, &nbytes) || nbytes != e.end - e.begin)
    throw Error(what + ": shape " + shape_str(e.shape) + " of " + e.type->name + " needs " +
                    std::to_string(static_cast<uint64_t>(e.numel)) + " x " + std::to_string(e.type->size) +
                    " bytes, but data_offsets " + json_brief(offs) + " hold " + std::to_string(e.end - e.begin),
                where);
  return e;
}

std::map<std::string, std::string> parse_metadata(const Json& j, const std::string& where) {
  std::map<std::string, std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object())
    throw Error("\"__metadata__\" must be an object of strings, got " + std::string(j.type_name()), where);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string())
      throw Error("\"__metadata__\" value of key '" + it.key() + "' must be a string, got " + json_brief(it.value()), where);
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

// nlohmann keeps the last of repeated keys; the parse callback sees every key, so repeats are
// caught, and the top-level keys are recorded in header order into `top_keys`.
Json parse_header(const std::string& text, const std::string& where, std::vector<std::string>& top_keys) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto on_event = [&](int, Json::parse_event_t ev, Json& parsed) {
    if (ev == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (ev == Json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == Json::parse_event_t::key && !open_objects.empty() && parsed.is_string()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
      if (open_objects.size() == 1) top_keys.push_back(key);
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, on_event);
  } catch (const Json::exception& e) {
    throw Error(std::string("the header is not valid JSON: ") + e.what(), where);
  }
  if (!duplicate.empty()) throw Error("the header repeats the key '" + duplicate + "'", where);
  if (!header.is_object())
    throw Error("the header must be a JSON object, got " + std::string(header.type_name()), where);
  return header;
}

// Fills `dst` (numel elements of the entry's in-memory dtype) from the entry's bytes at `offset`.
void read_tensor(const Source& src, uint64_t offset, const Entry& e, void* dst) {
  const size_t width = e.type->size, n = static_cast<size_t>(e.numel);
  if (e.type->conv == Conv::copy) {
    src.read(offset, n * width, dst);
    swap_bytes_if_big_endian(dst, n, width);
    return;
  }
  // Converted dtypes go through a bounded buffer, so loading never holds two copies of a tensor.
  constexpr size_t kChunk = 1 << 16;
  std::vector<unsigned char> buf(std::min(n, kChunk) * width);
  float* out = static_cast<float*>(dst);
  for (size_t i = 0; i < n; i += kChunk) {
    size_t m = std::min(kChunk, n - i);
    src.read(offset + i * width, m * width, buf.data());
    const unsigned char* b = buf.data();
    switch (e.type->conv) {
      case Conv::f16:
        for (size_t k = 0; k < m; ++k) out[i + k] = half_to_float(load_le<uint16_t>(b + 2 * k));
        break;
      case Conv::bf16:
        for (size_t k = 0; k < m; ++k)
          out[i + k] = std::bit_cast<float>(static_cast<uint32_t>(load_le<uint16_t>(b + 2 * k)) << 16);
        break;
      case Conv::f64:
        for (size_t k = 0; k < m; ++k)
          out[i + k] = static_cast<float>(std::bit_cast<double>(load_le<uint64_t>(b + 8 * k)));
        break;
      case Conv::copy:
        break;
    }
  }
}

SafetensorsFile load_from(const Source& src, const std::string& name) {
  const std::string where = "load_safetensors '" + name + "'";
  const uint64_t size = src.size();
  if (size < 8)
    throw Error("the file is " + std::to_string(size) + " bytes, too short for the 8-byte header length", where,
                "is this a safetensors file?");
  unsigned char len_bytes[8];
  src.read(0, 8, len_bytes);
  const uint64_t header_len = load_le<uint64_t>(len_bytes);
  if (header_len > kMaxHeaderBytes)
    throw Error("header length " + std::to_string(header_len) + " exceeds the 100 MB limit", where,
                "the file is corrupt or not a safetensors file");
  if (header_len > size - 8)
    throw Error("header length " + std::to_string(header_len) + " runs past the end of the " + std::to_string(size) +
                    "-byte file",
                where, "the file is truncated or not a safetensors file");
  std::string text(static_cast<size_t>(header_len), '\0');
  src.read(8, text.size(), text.data());
  std::vector<std::string> keys;
  const Json header = parse_header(text, where, keys);

  const uint64_t data_start = 8 + header_len, data_len = size - data_start;
  SafetensorsFile out;
  out.path = name;
  std::vector<Entry> entries;
  for (const std::string& key : keys) {  // header order; keys are unique by now
    if (key == "__metadata__")
      out.metadata = parse_metadata(header[key], where);
    else
      entries.push_back(parse_entry(key, header[key], data_len, where));
  }

  // The tensors must tile the data section exactly: no overlaps, no holes, nothing after the last.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    const std::string prev = i ? tensor_ref(entries[i - 1].name) : std::string("the start of the data section");
    if (e.begin < covered)
      throw Error(tensor_ref(e.name) + " overlaps " + prev + " (its data begins at " + std::to_string(e.begin) +
                      ", before " + std::to_string(covered) + ")",
                  where);
    if (e.begin > covered)
      throw Error("bytes [" + std::to_string(covered) + ", " + std::to_string(e.begin) + ") between " + prev + " and " +
                      tensor_ref(e.name) + " belong to no tensor; the format allows no holes",
                  where);
    covered = e.end;
  }
  if (covered != data_len)
    throw Error("the data section is " + std::to_string(data_len) + " bytes but the tensors cover only " +
                    std::to_string(covered),
                where, "trailing bytes after the last tensor; the format allows no holes");

  // Every size is now bounded by the file, so allocating is safe.
  out.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.type->dtype);
    read_tensor(src, data_start + e.begin, e, t.raw_data());
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace

// ---- public API ----

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return &t;
  return nullptr;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t)
    throw Error("no tensor named '" + name + "' among its " + std::to_string(tensors.size()),
                "safetensors '" + path + "'");
  return *t;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors.size());
  for (const auto& entry : tensors) out.push_back(entry.first);
  return out;
}

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string where = "load_safetensors '" + path + "'";
  FileSource src(path, where);
  return load_from(src, path);
}

SafetensorsFile load_safetensors_from_memory(const void* data, size_t size, const std::string& name_for_errors) {
  MemorySource src(data, size);
  return load_from(src, name_for_errors);
}

}  // namespace lowbit
