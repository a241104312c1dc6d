// IDX files (MNIST, Fashion-MNIST): a reader for u8 IDX arrays, plain or gzipped, and IdxDataset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "u8_images.h"

namespace lowbit {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. [count, rows, cols]
  std::vector<uint8_t> data;  // product(dims) bytes
};

// Reads an unsigned-byte IDX file (gzip or plain, told apart by zlib) whose magic number must be
// `magic` (2051 for images, 2049 for labels). Throws naming the file when the magic, the
// header or the amount of data is wrong; memory grows only with the data actually read.
IdxArray read_idx(const std::string& path, uint32_t magic);

// The largest element count read_idx accepts (a 4 GiB array).
inline constexpr int64_t kIdxMaxElements = int64_t{1} << 32;

// {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from `dir`: images [1, rows, cols].
// num_classes > 0: every label must be below it; 0: one more than the largest label (MNIST and
// Fashion-MNIST give 10, EMNIST balanced 47), so other IDX data sets load as they are.
class IdxDataset : public U8ImageDataset {
 public:
  IdxDataset(const std::string& dir, bool train, int64_t num_classes = 0);
};

}  // namespace lowbit
