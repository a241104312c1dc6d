// Safetensors checkpoint I/O: the format that safetensors.torch.load_file/save_file read and write.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor.h"

namespace lowbit {

// What a safetensors file holds. `tensors` keeps the order of the tensors' data in the
// file, which for files lowbit wrote is the order they were given to save_safetensors.
struct SafetensorsFile {
  std::string path;  // where it was loaded from (the name used in error messages)
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;  // the header's "__metadata__" map

  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const Tensor* find(const std::string& name) const;  // nullptr when absent
  const Tensor& at(const std::string& name) const;    // throws lowbit::Error naming the file when absent
  std::vector<std::string> names() const;             // in file order
};

// Writes `tensors` (CPU, dtypes f32/i64/i32/u8/i8 as F32/I64/I32/U8/I8) in the given order,
// with `metadata` as the header's "__metadata__" (omitted when empty). The write is atomic:
// a temp file beside `path` is written, fsynced and renamed over it, so on any error the
// previous file at `path` is left as it was and no temp file remains.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads F32, F16, BF16 and F64 (all as f32; F16/BF16 exactly, F64 rounded to nearest), I64,
// I32, U8 and I8. Every malformed header, size or layout is a lowbit::Error naming the file
// and the tensor; sizes are checked against the file before anything is allocated.
SafetensorsFile load_safetensors(const std::string& path);
SafetensorsFile load_safetensors_from_memory(const void* data, size_t size, const std::string& name_for_errors);

}  // namespace lowbit
