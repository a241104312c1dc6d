// CIFAR binary batches: file discovery, record-size and label checks.
#include "cifar.h"

#include <filesystem>
#include <fstream>
#include <vector>

namespace lowbit {

namespace {

constexpr int64_t kPixels = 3 * 32 * 32;

struct Layout {
  const char* subdir;
  std::vector<std::string> files;
  int64_t label_bytes;  // bytes before the pixels; the last of them is the label used
  int64_t classes;
};

Layout layout(CifarVariant v, bool train) {
  if (v == CifarVariant::cifar10) {
    std::vector<std::string> f;
    if (train)
      for (int i = 1; i <= 5; ++i) f.push_back("data_batch_" + std::to_string(i) + ".bin");
    else
      f.push_back("test_batch.bin");
    return {"cifar-10-batches-bin", f, 1, 10};
  }
  return {"cifar-100-binary", {train ? "train.bin" : "test.bin"}, 2, 100};
}

std::string hint(const Layout& l) {
  return detail::cat("download the binary version from https://www.cs.toronto.edu/~kriz/cifar.html and extract it "
                     "so that <dir>/", l.subdir, "/", l.files.front(), " exists");
}

}  // namespace

CifarDataset::CifarDataset(const std::string& dir, bool train, CifarVariant variant) {
  namespace fs = std::filesystem;
  const Layout l = layout(variant, train);
  fs::path root(dir);
  if (!fs::is_regular_file(root / l.files.front()) && fs::is_directory(root / l.subdir)) root /= l.subdir;
  const int64_t record = l.label_bytes + kPixels;
  for (const std::string& name : l.files) {
    const fs::path p = root / name;
    if (!fs::is_regular_file(p))
      throw Error(detail::cat("missing ", name, " in ", root.string()), "CifarDataset", hint(l));
    const int64_t bytes = static_cast<int64_t>(fs::file_size(p));
    if (bytes == 0 || bytes % record != 0)
      throw Error(detail::cat("size ", bytes, " is not a positive multiple of the ", record, "-byte record"),
                  p.string(), hint(l));
    std::ifstream in(p, std::ios::binary);
    std::vector<uint8_t> buf(static_cast<size_t>(bytes));
    if (!in.read(reinterpret_cast<char*>(buf.data()), bytes))
      throw Error("read error", p.string(), hint(l));
    const int64_t n = bytes / record;
    const size_t old = pixels_.size();
    pixels_.resize(old + static_cast<size_t>(n * kPixels));
    for (int64_t r = 0; r < n; ++r) {
      const uint8_t* rec = buf.data() + r * record;
      const uint8_t lab = rec[l.label_bytes - 1];
      if (lab >= l.classes)
        throw Error(detail::cat("label ", int{lab}, " of record ", r, " is not below ", l.classes), p.string(),
                    hint(l));
      labels_.push_back(lab);
      std::copy(rec + l.label_bytes, rec + record, pixels_.begin() + static_cast<int64_t>(old) + r * kPixels);
    }
  }
  shape_ = {3, 32, 32};
  num_classes_ = l.classes;
}

}  // namespace lowbit
