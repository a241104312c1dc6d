// IDX parsing through zlib's gz* functions, which also read uncompressed files unchanged.
#include "idx.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <memory>

namespace lowbit {

namespace {

constexpr const char* kHint =
    "get MNIST-format data with e.g. `apt-get install dataset-fashion-mnist` "
    "(files under /usr/share/datasets/fashion-mnist), plain or .gz";

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzPtr = std::unique_ptr<gzFile_s, GzCloser>;

// Reads up to n bytes; returns how many arrived (fewer only at end of data).
int64_t read_some(gzFile f, uint8_t* dst, int64_t n, const std::string& path) {
  int64_t got = 0;
  while (got < n) {
    unsigned want = static_cast<unsigned>(std::min<int64_t>(n - got, 1 << 20));
    int r = gzread(f, dst + got, want);
    if (r < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      throw Error(detail::cat("read error: ", msg ? msg : "unknown"), path, kHint);
    }
    if (r == 0) break;
    got += r;
  }
  return got;
}

uint32_t big_endian(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The existing one of `base` and `base.gz`.
std::string find_file(const std::string& dir, const std::string& base) {
  namespace fs = std::filesystem;
  for (const std::string& name : {base, base + ".gz"}) {
    fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p)) return p.string();
  }
  throw Error(detail::cat("missing ", base, " (or ", base, ".gz) in ", dir), "IdxDataset", kHint);
}

}  // namespace

IdxArray read_idx(const std::string& path, uint32_t magic) {
  GzPtr f(gzopen(path.c_str(), "rb"));
  if (!f) throw Error("cannot open file", path, kHint);
  uint8_t head[4];
  if (read_some(f.get(), head, 4, path) != 4) throw Error("file too short for an IDX header", path, kHint);
  const uint32_t got_magic = big_endian(head);
  if (got_magic != magic)
    throw Error(detail::cat("bad magic number ", got_magic, ", expected ", magic, " (not an unsigned-byte IDX ",
                            magic == 2049 ? "label" : "image", " file?)"),
                path, kHint);
  IdxArray out;
  const int rank = head[3];
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    uint8_t b[4];
    if (read_some(f.get(), b, 4, path) != 4) throw Error("header ends inside the dimensions", path, kHint);
    const int64_t n = big_endian(b);
    if (n == 0) throw Error(detail::cat("dimension ", d, " is 0"), path, kHint);
    // Checked before multiplying, so no product can overflow (n < 2^32, total <= 2^32).
    if (n > kIdxMaxElements / total)
      throw Error(detail::cat("header claims more than ", kIdxMaxElements, " elements (dimension ", d, " = ", n,
                              "); the file is corrupt"),
                  path, kHint);
    total *= n;
    out.dims.push_back(n);
  }
  // Grow with what actually arrives, so a lying header cannot make us allocate.
  constexpr int64_t kChunk = int64_t{1} << 22;
  while (static_cast<int64_t>(out.data.size()) < total) {
    const int64_t have = static_cast<int64_t>(out.data.size());
    const int64_t want = std::min(kChunk, total - have);
    out.data.resize(static_cast<size_t>(have + want));
    const int64_t got = read_some(f.get(), out.data.data() + have, want, path);
    if (got < want)
      throw Error(detail::cat("truncated: header promises ", total, " bytes of data but only ", have + got,
                              " are there"),
                  path, kHint);
  }
  uint8_t extra;
  if (read_some(f.get(), &extra, 1, path) != 0)
    throw Error(detail::cat("trailing data after the ", total, " bytes the header promises"), path, kHint);
  return out;
}

IdxDataset::IdxDataset(const std::string& dir, bool train, int64_t num_classes) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string img_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string lab_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  IdxArray img = read_idx(img_path, 2051);
  IdxArray lab = read_idx(lab_path, 2049);
  if (img.dims.size() != 3)
    throw Error(detail::cat("image file has rank ", img.dims.size(), ", expected 3 (count, rows, cols)"), img_path,
                kHint);
  if (lab.dims.size() != 1)
    throw Error(detail::cat("label file has rank ", lab.dims.size(), ", expected 1"), lab_path, kHint);
  if (img.dims[0] != lab.dims[0])
    throw Error(detail::cat(img.dims[0], " images but ", lab.dims[0], " labels in ", lab_path), img_path, kHint);
  LOWBIT_CHECK(num_classes >= 0 && num_classes <= 256, "IdxDataset", "num_classes ", num_classes,
               " must be in [1, 256] (0: from the labels)");
  if (num_classes == 0) {
    for (uint8_t l : lab.data) num_classes = std::max<int64_t>(num_classes, int64_t{l} + 1);
    num_classes = std::max<int64_t>(num_classes, 1);
  }
  for (size_t i = 0; i < lab.data.size(); ++i)
    if (lab.data[i] >= num_classes)
      throw Error(detail::cat("label ", int{lab.data[i]}, " of sample ", i, " is not below ", num_classes), lab_path,
                  kHint);
  pixels_ = std::move(img.data);
  labels_ = std::move(lab.data);
  shape_ = {1, img.dims[1], img.dims[2]};
  num_classes_ = num_classes;
}

}  // namespace lowbit
