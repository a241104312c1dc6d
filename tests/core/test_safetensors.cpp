// Safetensors I/O: round trips, hand-built files as other writers make them, dtype conversion,
// every malformed-file check, atomic replacement, and a seeded corruption fuzz.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "core/safetensors.h"
#include "lowbit.h"

using namespace lowbit;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

const char* const kMemName = "mem.safetensors";

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("lowbit_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// An 8-byte little-endian header length, the header as given (no padding), then the data.
std::string st_file(const std::string& header, const std::string& data = {}) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

template <class T>
std::string le_bytes(const std::vector<T>& values) {
  static_assert(std::endian::native == std::endian::little, "the tests build little-endian bytes by memcpy");
  std::string out(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

SafetensorsFile load_bytes(const std::string& bytes) {
  return load_safetensors_from_memory(bytes.data(), bytes.size(), kMemName);
}

// The message of the lowbit::Error that loading throws, or a marker that makes the checks fail.
std::string load_error(const std::string& bytes) {
  try {
    load_bytes(bytes);
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not a lowbit::Error: ") + e.what() + ">";
  }
  return "<no error>";
}

#define CHECK_LOAD_ERROR(bytes, ...)                                           \
  do {                                                                         \
    const std::string msg_ = load_error(bytes);                                \
    CHECK_THAT(msg_, Contains(kMemName));                                      \
    for (const char* part_ : {__VA_ARGS__}) CHECK_THAT(msg_, Contains(part_)); \
  } while (0)

// One F32 [2] tensor "a" at [0, 8): the smallest valid file, varied by the malformed cases.
const std::string kTwoFloats = le_bytes<float>({1.5f, -2.0f});

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// IEEE half by the textbook formula, in double, as an independent reference for the loader.
float half_reference(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double mag;
  if (exp == 0x1f)
    mag = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (exp == 0)
    mag = std::ldexp(static_cast<double>(mant), -24);
  else
    mag = std::ldexp(1.0 + mant / 1024.0, exp - 15);
  return static_cast<float>(sign ? -mag : mag);
}

}  // namespace

TEST_CASE("safetensors: every dtype, scalars, empty tensors and metadata round-trip") {
  TempDir tmp;
  Tensor f =
      Tensor::from_vector<float>({1.5f, -0.0f, 3.25e-39f, std::numeric_limits<float>::infinity(), 7, -8}, {2, 3});
  Tensor i64 = Tensor::from_vector<int64_t>(
      {std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()}, {4});
  Tensor i32 = Tensor::from_vector<int32_t>({std::numeric_limits<int32_t>::min(), 42}, {1, 2, 1});
  Tensor u8 = Tensor::from_vector<uint8_t>({0, 255, 128}, {3});
  Tensor i8 = Tensor::from_vector<int8_t>({-128, 127, 0, -1}, {2, 2});
  Tensor scalar = Tensor::scalar(-3.5);
  Tensor scalar_i64 = Tensor::scalar(12345, DType::i64);
  Tensor empty = Tensor::empty({0}, DType::u8);
  Tensor empty2 = Tensor::empty({2, 0, 3}, DType::i32);
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"features.0.weight", f}, {"z_empty", empty},   {"counts", i64},     {"idx", i32}, {"img", u8}, {"codes", i8},
      {"scalar", scalar},       {"step", scalar_i64}, {"empty.2d", empty2}};
  std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"config", "{\"lr\": 0.1,\n \"name\": \"caf\xc3\xa9 \\\\ \\\"q\\\"\"}"}, {"empty", ""}};
  const std::string path = tmp.file("model.safetensors");
  save_safetensors(path, ts, meta);

  SafetensorsFile r = load_safetensors(path);
  REQUIRE(r.path == path);
  REQUIRE(r.metadata == meta);
  REQUIRE(r.tensors.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    INFO(ts[i].first);
    const Tensor& want = ts[i].second;
    const Tensor& got = r.tensors[i].second;
    REQUIRE(r.tensors[i].first == ts[i].first);  // file order is save order, zero-size tensors included
    REQUIRE(got.shape() == want.shape());
    REQUIRE(got.dtype() == want.dtype());
    REQUIRE(got.nbytes() == want.nbytes());
    if (want.nbytes()) REQUIRE(std::memcmp(got.raw_data(), want.raw_data(), want.nbytes()) == 0);
  }
  REQUIRE(r.at("scalar").dim() == 0);
  REQUIRE(r.at("scalar").item() == -3.5);
  REQUIRE(r.contains("img"));
  REQUIRE_FALSE(r.contains("missing"));
  REQUIRE(r.find("missing") == nullptr);
  REQUIRE(r.names().front() == "features.0.weight");
  REQUIRE_THROWS_WITH(r.at("missing"), Contains("missing") && Contains(path));

  // The layout on disk: the length prefix, a header padded with spaces to 8 bytes, then the data.
  std::string bytes = read_bytes(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  REQUIRE(header_len % 8 == 0);
  size_t data_bytes = 0;
  for (auto& [name, t] : ts) data_bytes += t.nbytes();
  REQUIRE(bytes.size() == 8 + header_len + data_bytes);
  std::string header = bytes.substr(8, header_len);
  REQUIRE(header.front() == '{');
  REQUIRE(header.find("\"dtype\":\"I64\"") != std::string::npos);
  REQUIRE(header.find("\"__metadata__\"") != std::string::npos);
  REQUIRE(header.find("\"shape\":[]") != std::string::npos);  // scalars are shape []
  REQUIRE(std::memcmp(bytes.data() + 8 + header_len, f.raw_data(), f.nbytes()) == 0);

  // No metadata: no "__metadata__" key; no tensors: a valid file with an empty header object.
  save_safetensors(path, {{"a", u8}});
  REQUIRE(read_bytes(path).find("__metadata__") == std::string::npos);
  REQUIRE(load_safetensors(path).metadata.empty());
  save_safetensors(path, {});
  REQUIRE(read_bytes(path).size() == 16);  // "{}" padded to 8
  REQUIRE(load_safetensors(path).tensors.empty());
  REQUIRE(tmp.entries() == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("safetensors: files as other writers make them") {
  // No padding, header keys in a different order than the data, extra spaces, unknown entry keys.
  std::string header = R"({"b": {"dtype": "I64", "shape": [1], "data_offsets": [8, 16], "note": 1},)"
                       R"( "__metadata__": {"format": "pt"},)"
                       R"( "a": {"data_offsets": [0, 8], "shape": [2], "dtype": "F32"}})";
  SafetensorsFile r = load_bytes(st_file(header, kTwoFloats + le_bytes<int64_t>({-7})));
  REQUIRE(r.names() == std::vector<std::string>{"a", "b"});  // ordered by where their data lies
  REQUIRE(r.at("a").to_vector<float>() == std::vector<float>{1.5f, -2.0f});
  REQUIRE(r.at("b").to_vector<int64_t>() == std::vector<int64_t>{-7});
  REQUIRE(r.metadata.at("format") == "pt");
  REQUIRE(r.path == kMemName);

  // Zero-size tensors at one offset keep their header order; "__metadata__": null is an empty map.
  header = R"({"__metadata__": null, "e2": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]},)"
           R"( "e1": {"dtype": "U8", "shape": [3, 0], "data_offsets": [0, 0]}})";
  r = load_bytes(st_file(header));
  REQUIRE(r.names() == std::vector<std::string>{"e2", "e1"});
  REQUIRE(r.at("e1").shape() == Shape{3, 0});
  REQUIRE(r.metadata.empty());

  // A shape whose zero dimension makes the tensor empty while the other dimensions are large.
  header = R"({"big": {"dtype": "F32", "shape": [3037000499, 0, 3037000499], "data_offsets": [0, 0]}})";
  REQUIRE(load_bytes(st_file(header)).at("big").numel() == 0);
}

TEST_CASE("safetensors: F16 and BF16 convert exactly, F64 rounds to nearest") {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::string header = R"({"h": {"dtype": "F16", "shape": [256, 256], "data_offsets": [0, 131072]},)"
                       R"( "b": {"dtype": "BF16", "shape": [65536], "data_offsets": [131072, 262144]}})";
  SafetensorsFile r = load_bytes(st_file(header, le_bytes(all) + le_bytes(all)));
  const Tensor& h = r.at("h");
  const Tensor& b = r.at("b");
  REQUIRE(h.dtype() == DType::f32);
  REQUIRE(b.dtype() == DType::f32);
  const float* hp = h.data<float>();
  const float* bp = b.data<float>();
  for (uint32_t i = 0; i < 65536; ++i) {
    uint16_t p = static_cast<uint16_t>(i);
    float want = half_reference(p);
    if (std::isnan(want)) {
      // NaN keeps its sign and payload: sign | all-ones exponent | mantissa << 13.
      REQUIRE(bits(hp[i]) == (((i & 0x8000u) << 16) | 0x7f800000u | ((i & 0x3ffu) << 13)));
    } else {
      if (bits(hp[i]) != bits(want)) FAIL("F16 pattern " << i << " gave " << hp[i] << ", want " << want);
    }
    if (bits(bp[i]) != i << 16) FAIL("BF16 pattern " << i);
  }
  // Landmarks, written out: smallest subnormal, largest subnormal, smallest normal, max, inf, -0, 1/3.
  CHECK(hp[0x0001] == 5.9604644775390625e-08f);
  CHECK(hp[0x03ff] == 6.0975551605224609375e-05f);
  CHECK(hp[0x0400] == 6.103515625e-05f);
  CHECK(hp[0x7bff] == 65504.0f);
  CHECK(std::isinf(hp[0x7c00]));
  CHECK(hp[0xfc00] == -std::numeric_limits<float>::infinity());
  CHECK(bits(hp[0x8000]) == 0x80000000u);
  CHECK(hp[0x3555] == 0.333251953125f);
  CHECK(hp[0xc000] == -2.0f);
  CHECK(bp[0x3f80] == 1.0f);

  std::vector<double> d = {1.0 / 3, 1e300, -0.0, std::numeric_limits<double>::quiet_NaN(), 1e-320, -2.5};
  r = load_bytes(st_file(R"({"d": {"dtype": "F64", "shape": [6], "data_offsets": [0, 48]}})", le_bytes(d)));
  std::vector<float> got = r.at("d").to_vector<float>();
  CHECK(got[0] == static_cast<float>(1.0 / 3));
  CHECK(std::isinf(got[1]));
  CHECK(bits(got[2]) == 0x80000000u);
  CHECK(std::isnan(got[3]));
  CHECK(got[4] == 0.0f);
  CHECK(got[5] == -2.5f);
}

TEST_CASE("safetensors: too short, oversized or unparsable headers are refused") {
  CHECK_LOAD_ERROR(std::string(), "0 bytes", "8-byte header length");
  CHECK_LOAD_ERROR(std::string(7, '\0'), "7 bytes");
  // A header length past the file, and one past the 100 MB cap, each refused before allocating.
  std::string huge(8, '\xff');
  CHECK_LOAD_ERROR(huge + "{}", "exceeds the 100 MB limit");
  std::string past = st_file("{}");
  past[0] = 50;
  CHECK_LOAD_ERROR(past, "header length 50 runs past the end", "10-byte file");
  CHECK_LOAD_ERROR(st_file("{\"a\": "), "not valid JSON");
  CHECK_LOAD_ERROR(st_file("{\"a\": {}} trailing"), "not valid JSON");
  CHECK_LOAD_ERROR(st_file("{\"a\": \"\xff\"}"), "not valid JSON");  // invalid UTF-8
  CHECK_LOAD_ERROR(st_file("[1, 2]"), "must be a JSON object", "array");
  CHECK_LOAD_ERROR(st_file("42"), "must be a JSON object");
  CHECK_LOAD_ERROR(
      st_file(R"({"a": {"dtype": "F32", "dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", kTwoFloats),
      "repeats the key 'dtype'");
  CHECK_LOAD_ERROR(st_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                           R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                           kTwoFloats),
                   "repeats the key 'a'");
  REQUIRE_THROWS_AS(load_bytes(std::string(3, 'x')), Error);
}

TEST_CASE("safetensors: malformed entries name the tensor and what was expected") {
  auto one = [](const std::string& entry, const std::string& data = kTwoFloats) {
    return st_file("{\"a\": " + entry + "}", data);
  };
  CHECK_LOAD_ERROR(one("[1]"), "tensor 'a'", "must be a JSON object");
  CHECK_LOAD_ERROR(one(R"({"shape": [2], "data_offsets": [0, 8]})"), "tensor 'a'", "no \"dtype\"");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "data_offsets": [0, 8]})"), "tensor 'a'", "no \"shape\"");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2]})"), "tensor 'a'", "no \"data_offsets\"");
  CHECK_LOAD_ERROR(one(R"({"dtype": 3, "shape": [2], "data_offsets": [0, 8]})"), "\"dtype\" must be a string");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": 2, "data_offsets": [0, 8]})"), "\"shape\" must be an array");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]})"), "non-negative integer");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]})"), "non-negative integer");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]})"), "non-negative integer");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [9223372036854775808], "data_offsets": [0, 8]})"),
                   "non-negative integer");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]})"),
                   "more elements than int64");
  // numel * 4 overflows uint64 without overflowing int64 itself.
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2305843009213693952, 2], "data_offsets": [0, 8]})"), "tensor 'a'",
                   "needs");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]})"), "tensor 'a'",
                   "shape [3] of F32 needs 3 x 4 bytes", "hold 8");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2], "data_offsets": [0]})"), "[begin, end]");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, -8]})"), "[begin, end]");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2], "data_offsets": {"b": 0}})"), "[begin, end]");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]})"), "end before they begin");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]})"),
                   "run past the data section, which is 8 bytes");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]})"),
                   "run past the data section");
  CHECK_LOAD_ERROR(one(R"({"dtype": "BOOL", "shape": [8], "data_offsets": [0, 8]})"), "tensor 'a'",
                   "unsupported dtype \"BOOL\"", "F16");
  CHECK_LOAD_ERROR(one(R"({"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]})"), "unsupported dtype");
  CHECK_LOAD_ERROR(one(R"({"dtype": "Q4", "shape": [8], "data_offsets": [0, 8]})"), "tensor 'a'",
                   "unknown dtype \"Q4\"");
  CHECK_LOAD_ERROR(one(R"({"dtype": "f32", "shape": [2], "data_offsets": [0, 8]})"), "unknown dtype \"f32\"");
}

TEST_CASE("safetensors: overlaps, holes and trailing bytes are refused") {
  std::string data = le_bytes<float>({1, 2, 3, 4});
  auto two = [&](const std::string& a, const std::string& b, const std::string& d) {
    return st_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": )" + a +
                       R"(}, "b": {"dtype": "F32", "shape": [2], "data_offsets": )" + b + "}}",
                   d);
  };
  REQUIRE(load_bytes(two("[8, 16]", "[0, 8]", data)).names() == std::vector<std::string>{"b", "a"});
  CHECK_LOAD_ERROR(two("[0, 8]", "[4, 12]", data), "tensor 'b' overlaps tensor 'a'");
  CHECK_LOAD_ERROR(two("[0, 8]", "[0, 8]", data), "overlaps");
  CHECK_LOAD_ERROR(two("[0, 8]", "[12, 20]", data + "pad!"), "bytes [8, 12) between tensor 'a' and tensor 'b'",
                   "no holes");
  CHECK_LOAD_ERROR(two("[4, 12]", "[12, 20]", data + "pad!"), "bytes [0, 4) between the start of the data section");
  CHECK_LOAD_ERROR(two("[0, 8]", "[8, 16]", data + "xy"), "data section is 18 bytes but the tensors cover only 16");
  CHECK_LOAD_ERROR(st_file("{}", "x"), "cover only 0");
}

TEST_CASE("safetensors: __metadata__ must map strings to strings") {
  const std::string a = R"("a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  CHECK_LOAD_ERROR(st_file(R"({"__metadata__": ["x"], )" + a + "}", kTwoFloats), "\"__metadata__\" must be an object");
  CHECK_LOAD_ERROR(st_file(R"({"__metadata__": "x", )" + a + "}", kTwoFloats), "must be an object");
  CHECK_LOAD_ERROR(st_file(R"({"__metadata__": {"epoch": 3}, )" + a + "}", kTwoFloats), "key 'epoch'",
                   "must be a string");
  CHECK_LOAD_ERROR(st_file(R"({"__metadata__": {"k": {"x": "y"}}, )" + a + "}", kTwoFloats), "must be a string");
}

TEST_CASE("safetensors: files on disk: missing, a directory, or loaded back after save") {
  TempDir tmp;
  REQUIRE_THROWS_WITH(load_safetensors(tmp.file("nope.safetensors")),
                      Contains("nope.safetensors") && Contains("cannot open"));
  REQUIRE_THROWS_WITH(load_safetensors(tmp.dir.string()), Contains("not a regular file"));
  std::string bytes = st_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", kTwoFloats);
  std::ofstream(tmp.file("hand.safetensors"), std::ios::binary) << bytes;
  REQUIRE(load_safetensors(tmp.file("hand.safetensors")).at("a").to_vector<float>() == std::vector<float>{1.5f, -2.0f});
  std::ofstream(tmp.file("short.safetensors"), std::ios::binary) << bytes.substr(0, bytes.size() - 1);
  REQUIRE_THROWS_WITH(load_safetensors(tmp.file("short.safetensors")),
                      Contains("short.safetensors") && Contains("tensor 'a'") && Contains("run past"));
}

TEST_CASE("safetensors: a refused or failed save leaves the old file and no temp file") {
  TempDir tmp;
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3});
  Tensor b = Tensor::from_vector<int32_t>({4, 5}, {2});

  // A directory that does not exist: an Error, and nothing created anywhere under tmp.
  const std::string lost = tmp.file("no_such_dir/model.safetensors");
  REQUIRE_THROWS_WITH(save_safetensors(lost, {{"a", a}}), Contains(lost) && Contains("temp file"));
  REQUIRE(tmp.entries().empty());

  const std::string path = tmp.file("model.safetensors");
  save_safetensors(path, {{"a", a}, {"b", b}}, {{"epoch", "3"}});
  const std::string before = read_bytes(path);

  REQUIRE_THROWS_WITH(save_safetensors(path, {{"a", a}, {"a", b}}), Contains("tensor 'a' appears twice"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"__metadata__", a}}), Contains("reserved"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"u", Tensor()}}), Contains("tensor 'u' is undefined"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"bad\xff", a}}), Contains("UTF-8"));
  REQUIRE_THROWS_WITH(save_safetensors(path, {{"a", a}}, {{"k", "\xc3"}}), Contains("UTF-8"));
  REQUIRE(read_bytes(path) == before);
  REQUIRE(tmp.entries() == std::vector<std::string>{"model.safetensors"});

  // A failure after the data is written (rename onto a non-empty directory) still cleans up.
  fs::create_directories(tmp.dir / "occupied" / "child");
  REQUIRE_THROWS_WITH(save_safetensors(tmp.file("occupied"), {{"a", a}}), Contains("rename"));
  REQUIRE(tmp.entries() == std::vector<std::string>{"model.safetensors", "occupied"});
  REQUIRE(fs::is_directory(tmp.dir / "occupied" / "child"));

  // A good save replaces the file whole.
  save_safetensors(path, {{"b", b}});
  SafetensorsFile r = load_safetensors(path);
  REQUIRE(r.names() == std::vector<std::string>{"b"});
  REQUIRE(r.metadata.empty());
  REQUIRE(tmp.entries() == std::vector<std::string>{"model.safetensors", "occupied"});
}

TEST_CASE("safetensors: seeded corruption never crashes the loader") {
  TempDir tmp;
  const std::string path = tmp.file("ok.safetensors");
  save_safetensors(path,
                   {{"w", Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3})},
                    {"s", Tensor::scalar(2.0)},
                    {"n", Tensor::from_vector<int64_t>({7}, {1})},
                    {"e", Tensor::empty({0, 2}, DType::i8)},
                    {"c", Tensor::from_vector<uint8_t>({1, 2, 3}, {3})}},
                   {{"epoch", "1"}});
  const std::string good = read_bytes(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, good.data(), 8);
  REQUIRE(load_bytes(good).tensors.size() == 5);

  std::mt19937 rng(1234);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 500; ++iter) {
    std::string bad = good;
    int edits = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < edits && !bad.empty(); ++k) {
      // Most edits land in the length prefix and header, where the parsing is.
      size_t span = rng() % 4 ? std::min<size_t>(bad.size(), 8 + header_len) : bad.size();
      size_t pos = rng() % span;
      switch (rng() % 5) {
        case 0:
          bad[pos] = static_cast<char>(bad[pos] ^ (1 << (rng() % 8)));
          break;
        case 1:
          bad[pos] = static_cast<char>(rng());
          break;
        case 2:
          bad.resize(pos);
          break;
        case 3:
          bad.erase(pos, 1);
          break;
        case 4:
          bad.insert(pos, 1, "{}[]\",:0-9e "[rng() % 12]);
          break;
      }
    }
    try {
      SafetensorsFile r = load_bytes(bad);
      ++loaded;
      for (auto& [name, t] : r.tensors) REQUIRE(t.nbytes() <= 2 * bad.size());
    } catch (const Error& e) {
      ++refused;
      REQUIRE_THAT(std::string(e.what()), Contains(kMemName));
    }
  }
  REQUIRE(loaded + refused == 500);
  REQUIRE(refused > 250);
}
