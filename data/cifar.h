// CIFAR-10 and CIFAR-100 in their binary distributions, held as bytes in memory.
#pragma once

#include <string>

#include "u8_images.h"

namespace lowbit {

enum class CifarVariant { cifar10, cifar100 };

// CIFAR-10: data_batch_{1..5}.bin / test_batch.bin, records of 1 label byte + 3072 pixel bytes.
// CIFAR-100: train.bin / test.bin, records of coarse label, fine label, 3072 pixel bytes; the
// fine label (100 classes) is used. `dir` is the folder holding the .bin files or its parent
// (which then holds cifar-10-batches-bin/ or cifar-100-binary/). Images are [3, 32, 32].
class CifarDataset : public U8ImageDataset {
 public:
  CifarDataset(const std::string& dir, bool train, CifarVariant variant = CifarVariant::cifar10);
};

}  // namespace lowbit
