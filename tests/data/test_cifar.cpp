// CIFAR-10/100 binary batches written here: layout discovery, pixels, labels and malformed files.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include "data/cifar.h"
#include "support/test_util.h"

using namespace lowbit;
namespace fs = std::filesystem;

namespace {

struct TempDir : test::TempDir {
  explicit TempDir(const std::string& tag) : test::TempDir("cifar_" + tag) {}
};

// n records; record r has label(r) and pixel j = (r + j) % 251.
void write_batch(const fs::path& p, int n, int label_bytes, const std::function<std::vector<uint8_t>(int)>& labels) {
  std::vector<uint8_t> out;
  for (int r = 0; r < n; ++r) {
    std::vector<uint8_t> l = labels(r);
    REQUIRE(static_cast<int>(l.size()) == label_bytes);
    out.insert(out.end(), l.begin(), l.end());
    for (int j = 0; j < 3072; ++j) out.push_back(static_cast<uint8_t>((r + j) % 251));
  }
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(out.data()), out.size());
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

TEST_CASE("CIFAR-10 batches load from the extracted folder or its parent", "[data][cifar]") {
  TempDir d("c10");
  const fs::path sub = d.path / "cifar-10-batches-bin";
  for (int b = 1; b <= 5; ++b)
    write_batch(sub / ("data_batch_" + std::to_string(b) + ".bin"), 3, 1,
                [b](int r) { return std::vector<uint8_t>{static_cast<uint8_t>((b + r) % 10)}; });
  write_batch(sub / "test_batch.bin", 4, 1, [](int r) { return std::vector<uint8_t>{static_cast<uint8_t>(r)}; });
  for (const fs::path& dir : {d.path, sub}) {
    CifarDataset train(dir.string(), true), test(dir.string(), false);
    REQUIRE(train.size() == 15);
    REQUIRE(test.size() == 4);
    REQUIRE(train.num_classes() == 10);
    REQUIRE(train.sample_shape() == Shape{3, 32, 32});
    // Sample 4 is record 1 of data_batch_2.
    Example ex = train.get(4);
    REQUIRE(ex.label == 3);
    REQUIRE(ex.image.data<float>()[0] == Approx(1 / 255.0f));
    REQUIRE(ex.image.data<float>()[3071] == Approx(((1 + 3071) % 251) / 255.0f));
    REQUIRE(test.get(3).label == 3);
  }
}

TEST_CASE("CIFAR-100 uses the fine label", "[data][cifar]") {
  TempDir d("c100");
  const fs::path sub = d.path / "cifar-100-binary";
  write_batch(sub / "train.bin", 5, 2,
              [](int r) { return std::vector<uint8_t>{static_cast<uint8_t>(r), static_cast<uint8_t>(90 + r)}; });
  write_batch(sub / "test.bin", 2, 2, [](int) { return std::vector<uint8_t>{1, 42}; });
  CifarDataset train(d.path.string(), true, CifarVariant::cifar100);
  CifarDataset test(d.path.string(), false, CifarVariant::cifar100);
  REQUIRE(train.size() == 5);
  REQUIRE(train.num_classes() == 100);
  REQUIRE(train.get(4).label == 94);
  REQUIRE(test.get(1).label == 42);
  REQUIRE(train.get(2).image.data<float>()[5] == Approx(7 / 255.0f));
}

TEST_CASE("CIFAR errors", "[data][cifar]") {
  TempDir d("bad");
  SECTION("missing files name the expected layout") {
    std::string msg = error_of([&] { CifarDataset ds(d.path.string(), false); });
    REQUIRE(msg.find("test_batch.bin") != std::string::npos);
    REQUIRE(msg.find("cifar-10-batches-bin") != std::string::npos);
  }
  SECTION("size not a multiple of the record") {
    write_batch(d.path / "test_batch.bin", 2, 1, [](int) { return std::vector<uint8_t>{1}; });
    std::ofstream(d.path / "test_batch.bin", std::ios::binary | std::ios::app).put(0);
    std::string msg = error_of([&] { CifarDataset ds(d.path.string(), false); });
    REQUIRE(msg.find("3073-byte record") != std::string::npos);
    REQUIRE(msg.find("test_batch.bin") != std::string::npos);
  }
  SECTION("label out of range") {
    write_batch(d.path / "test_batch.bin", 2, 1, [](int r) { return std::vector<uint8_t>{static_cast<uint8_t>(9 + r)}; });
    REQUIRE(error_of([&] { CifarDataset ds(d.path.string(), false); }).find("label 10 of record 1") !=
            std::string::npos);
    write_batch(d.path / "test.bin", 1, 2, [](int) { return std::vector<uint8_t>{0, 100}; });
    REQUIRE_THROWS_AS(CifarDataset(d.path.string(), false, CifarVariant::cifar100), Error);
  }
}
