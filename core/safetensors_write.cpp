// Safetensors writer: header layout and atomic replacement of the destination file.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "safetensors.h"

namespace lowbit {
namespace {

using Json = nlohmann::json;

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }
std::string tensor_ref(const std::string& name) { return "tensor '" + name + "'"; }

const char* disk_name(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::i64:
      return "I64";
    case DType::i32:
      return "I32";
    case DType::u8:
      return "U8";
    case DType::i8:
      return "I8";
  }
  return "?";
}

void swap_bytes_if_big_endian([[maybe_unused]] void* p, [[maybe_unused]] size_t count, [[maybe_unused]] size_t width) {
  if constexpr (std::endian::native == std::endian::big) {
    auto* b = static_cast<unsigned char*>(p);
    for (size_t i = 0; i < count; ++i) std::reverse(b + i * width, b + (i + 1) * width);
  }
}

std::string dump_or_throw(const Json& j, const std::string& where) {
  try {
    return j.dump();
  } catch (const Json::exception&) {
    throw Error("a tensor name or metadata string is not valid UTF-8", where);
  }
}

void write_all(int fd, const void* p, size_t n, const std::string& where) {
  const char* b = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t put = ::write(fd, b, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) throw Error("write failed: " + errno_text(errno), where);
    b += put;
    n -= static_cast<size_t>(put);
  }
}

// A temp file beside the destination; removed on destruction unless it was renamed into place.
class TempFile {
 public:
  TempFile(const std::string& dest, const std::string& where) {
    static std::atomic<uint64_t> counter{0};
    path_ = dest + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0)
      throw Error("cannot create the temp file '" + path_ + "': " + errno_text(errno), where,
                  "does the directory exist and is it writable?");
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  int fd() const { return fd_; }
  void commit(const std::string& dest, const std::string& where) {
    if (::fsync(fd_) != 0) throw Error("fsync of the temp file failed: " + errno_text(errno), where);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw Error("closing the temp file failed: " + errno_text(errno), where);
    if (::rename(path_.c_str(), dest.c_str()) != 0)
      throw Error("cannot rename the temp file over the destination: " + errno_text(errno), where);
    renamed_ = true;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool renamed_ = false;
};

// Makes the rename durable. Filesystems that cannot sync a directory (EINVAL) are let be.
void sync_parent_dir(const std::string& path, const std::string& where) {
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL)
    throw Error("the file was written but fsync of its directory failed: " + errno_text(err), where);
}

}  // namespace

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = "save_safetensors '" + path + "'";
  // Everything is checked before the temp file exists, so a refused save touches nothing.
  // The header is joined by hand to keep the given order in linear time.
  std::string text = "{";
  if (!metadata.empty()) {  // first, as the reference writer places it
    text += "\"__metadata__\":";
    text += dump_or_throw(Json(metadata), where);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw Error("the tensor name \"__metadata__\" is reserved by the format", where);
    if (!seen.insert(name).second) throw Error(tensor_ref(name) + " appears twice", where);
    if (!t.defined()) throw Error(tensor_ref(name) + " is undefined", where);
    if (!t.device().is_cpu())
      throw Error(tensor_ref(name) + " is on " + t.device().str() + "; save CPU tensors", where,
                  "move it with .to(Device::cpu())");
    uint64_t end = offset + t.nbytes();
    Json entry = {{"dtype", disk_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, end}}};
    offset = end;
    if (text.size() > 1) text += ',';
    text += dump_or_throw(Json(name), where);
    text += ':';
    text += entry.dump();
  }
  text += '}';
  // Padding to 8 bytes keeps the data section aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');

  TempFile tmp(path, where);
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  write_all(tmp.fd(), len_bytes, 8, where);
  write_all(tmp.fd(), text.data(), text.size(), where);
  for (const auto& [name, t] : tensors) {
    if constexpr (std::endian::native == std::endian::little) {
      write_all(tmp.fd(), t.raw_data(), t.nbytes(), where);
    } else {
      std::vector<unsigned char> le(static_cast<const unsigned char*>(t.raw_data()),
                                    static_cast<const unsigned char*>(t.raw_data()) + t.nbytes());
      swap_bytes_if_big_endian(le.data(), static_cast<size_t>(t.numel()), dtype_size(t.dtype()));
      write_all(tmp.fd(), le.data(), le.size(), where);
    }
  }
  tmp.commit(path, where);
  sync_parent_dir(path, where);
}

}  // namespace lowbit
