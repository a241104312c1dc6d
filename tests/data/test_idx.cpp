// IDX reading: valid plain and gzipped files written here, malformed headers and data, real Fashion-MNIST.
#include <catch2/catch.hpp>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "data/idx.h"
#include "support/test_util.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

struct TempDir : test::TempDir {
  explicit TempDir(const std::string& tag) : test::TempDir("idx_" + tag) {}
};

void put_be(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

std::vector<uint8_t> idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> v;
  put_be(v, magic);
  for (uint32_t d : dims) put_be(v, d);
  v.insert(v.end(), data.begin(), data.end());
  return v;
}

void write(const std::string& path, const std::vector<uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
}

// n images of rows x cols with pixel (k, j) = (k * 7 + j) % 256 and label k % 10.
void write_set(const TempDir& d, const std::string& prefix, uint32_t n, uint32_t rows, uint32_t cols, bool gz) {
  std::vector<uint8_t> px(n * rows * cols), lab(n);
  for (uint32_t k = 0; k < n; ++k) {
    lab[k] = static_cast<uint8_t>(k % 10);
    for (uint32_t j = 0; j < rows * cols; ++j) px[k * rows * cols + j] = static_cast<uint8_t>((k * 7 + j) % 256);
  }
  const std::string ext = gz ? ".gz" : "";
  write(d.file(prefix + "-images-idx3-ubyte" + ext), idx_bytes(2051, {n, rows, cols}, px), gz);
  write(d.file(prefix + "-labels-idx1-ubyte" + ext), idx_bytes(2049, {n}, lab), gz);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("IdxDataset reads plain and gzipped files", "[data][idx]") {
  for (bool gz : {false, true}) {
    TempDir d(gz ? "gz" : "plain");
    write_set(d, "train", 13, 4, 5, gz);
    write_set(d, "t10k", 3, 4, 5, gz);
    IdxDataset train(d.path.string(), true), test(d.path.string(), false);
    REQUIRE(train.size() == 13);
    REQUIRE(test.size() == 3);
    REQUIRE(train.sample_shape() == Shape{1, 4, 5});
    REQUIRE(train.num_classes() == 10);
    Example ex = train.get(12);
    REQUIRE(ex.label == 2);
    REQUIRE(ex.image.shape() == Shape{1, 4, 5});
    for (int j = 0; j < 20; ++j) REQUIRE(ex.image.data<float>()[j] == Approx(((12 * 7 + j) % 256) / 255.0f));
    Tensor images, labels;
    train.get_batch({12, 0, 5}, images, labels);
    REQUIRE(images.shape() == Shape{3, 1, 4, 5});
    REQUIRE(labels.to_vector<int64_t>() == std::vector<int64_t>{2, 0, 5});
    REQUIRE(images.data<float>()[0] == ex.image.data<float>()[0]);
    REQUIRE_THROWS_AS(train.get(13), Error);
  }
}

TEST_CASE("IDX errors name the file and the fault", "[data][idx]") {
  TempDir d("bad");
  const std::string img = d.file("train-images-idx3-ubyte"), lab = d.file("train-labels-idx1-ubyte");
  std::vector<uint8_t> px(2 * 3 * 3, 1);

  SECTION("missing files give the install hint") {
    std::string msg = error_of([&] { IdxDataset ds(d.path.string(), true); });
    REQUIRE(msg.find("train-images-idx3-ubyte") != std::string::npos);
    REQUIRE(msg.find("apt-get install dataset-fashion-mnist") != std::string::npos);
  }
  SECTION("wrong magic") {
    write(img, idx_bytes(2049, {2, 3, 3}, px), false);
    std::string msg = error_of([&] { read_idx(img, 2051); });
    REQUIRE(msg.find("magic") != std::string::npos);
    REQUIRE(msg.find(img) != std::string::npos);
  }
  SECTION("truncated data, plain and gzipped") {
    for (bool gz : {false, true}) {
      write(img, idx_bytes(2051, {2, 3, 3}, std::vector<uint8_t>(17, 1)), gz);
      std::string msg = error_of([&] { read_idx(img, 2051); });
      REQUIRE(msg.find("truncated") != std::string::npos);
    }
  }
  SECTION("a large claim backed by few bytes fails without reading it all") {
    write(img, idx_bytes(2051, {60000, 28, 28}, std::vector<uint8_t>(100, 1)), false);
    REQUIRE(error_of([&] { read_idx(img, 2051); }).find("truncated") != std::string::npos);
  }
  SECTION("absurd dimensions are refused before any allocation") {
    write(img, idx_bytes(2051, {1u << 31, 1u << 31, 1}, px), false);
    std::string msg = error_of([&] { read_idx(img, 2051); });
    REQUIRE(msg.find("corrupt") != std::string::npos);
    write(img, idx_bytes(2051, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, px), false);
    REQUIRE_THROWS_AS(read_idx(img, 2051), Error);
  }
  SECTION("header cut inside the dimensions") {
    write(img, {0, 0, 8, 3, 0, 0, 0, 2, 0}, false);
    REQUIRE(error_of([&] { read_idx(img, 2051); }).find("header") != std::string::npos);
  }
  SECTION("trailing bytes") {
    write(img, idx_bytes(2051, {2, 3, 3}, std::vector<uint8_t>(19, 1)), false);
    REQUIRE(error_of([&] { read_idx(img, 2051); }).find("trailing") != std::string::npos);
  }
  SECTION("count mismatch between images and labels") {
    write(img, idx_bytes(2051, {2, 3, 3}, px), false);
    write(lab, idx_bytes(2049, {3}, {0, 1, 2}), false);
    std::string msg = error_of([&] { IdxDataset ds(d.path.string(), true); });
    REQUIRE(msg.find("2 images but 3 labels") != std::string::npos);
  }
  SECTION("label out of range") {
    write(img, idx_bytes(2051, {2, 3, 3}, px), false);
    write(lab, idx_bytes(2049, {2}, {0, 10}), false);
    std::string msg = error_of([&] { IdxDataset ds(d.path.string(), true, 10); });
    REQUIRE(msg.find("label 10") != std::string::npos);
    REQUIRE(msg.find(lab) != std::string::npos);
  }
  SECTION("wrong rank") {
    write(img, idx_bytes(0x0802, {6, 3}, px), false);
    write(lab, idx_bytes(2049, {6}, {0, 1, 2, 3, 4, 5}), false);
    REQUIRE_THROWS_AS(IdxDataset(d.path.string(), true), Error);
  }
}

TEST_CASE("IdxDataset takes its classes from the labels unless told (EMNIST's 47 load)", "[data][idx]") {
  TempDir d("classes");
  std::vector<uint8_t> px(3 * 2 * 2, 9);
  write(d.file("train-images-idx3-ubyte"), idx_bytes(2051, {3, 2, 2}, px), false);
  write(d.file("train-labels-idx1-ubyte"), idx_bytes(2049, {3}, {46, 0, 12}), false);
  IdxDataset inferred(d.path.string(), true);
  REQUIRE(inferred.num_classes() == 47);
  REQUIRE(inferred.get(0).label == 46);
  REQUIRE(IdxDataset(d.path.string(), true, 50).num_classes() == 50);
  REQUIRE(error_of([&] { IdxDataset ds(d.path.string(), true, 10); }).find("label 46 of sample 0 is not below 10") !=
          std::string::npos);
}

TEST_CASE("Fashion-MNIST from /usr/share/datasets when installed", "[data][idx]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) {
    WARN("skipped: " << dir << " not found (apt-get install dataset-fashion-mnist)");
    return;
  }
  IdxDataset train(dir, true), test(dir, false);
  REQUIRE(train.size() == 60000);
  REQUIRE(test.size() == 10000);
  REQUIRE(train.sample_shape() == Shape{1, 28, 28});
  REQUIRE(train.label(0) == 9);  // the first training image is an ankle boot
  REQUIRE(test.label(0) == 9);
}
