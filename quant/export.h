// Export of a quantized model: packed integer codes, scales, float tensors and a versioned manifest.
#pragma once

#include <string>
#include <vector>

#include "../layers/module.h"

namespace lowbit {

// Files written into `dir` (created if needed):
//   manifest.json        format "lowbit-export", version 1 (below)
//   weights.bin          every quantized weight's codes, packed at its bit-width
//   tensors.safetensors  every other state_dict entry (biases, BatchNorm, float layers'
//                        weights), quantizer state excluded
// Packing: each code is written as `bits` bits, two's complement when signed, least
// significant bit first within bytes (bit j of code i of a tensor is bit (i*bits + j) % 8 of
// byte (i*bits + j) / 8 of that tensor's span); each tensor starts on a byte boundary.
// Manifest "tensors": per quantized weight {name, method, shape, bits, signed, qmin and qmax
// with scale (one value or one per channel along dim 0), or codebook, offset, length (bytes
// in the blob), crc32}. Manifest "activations": per activation quantizer {layer, method, bits,
// signed, qmin, qmax, scale}: every built-in method's eval activation quantizer is the uniform
// grid alpha * clamp(round(x / alpha), qmin, qmax), which load_exported_into() re-creates.
// A grid is one of grid.h's: [0, 2^b - 1] unsigned, [-2^(b-1), 2^(b-1) - 1] or the symmetric
// [-(2^(b-1) - 1), 2^(b-1) - 1] signed; the loader checks every code against it. "method" is
// informational (a non-empty name); "blob", "floats" and "packing" name version 1's fixed
// files and packing and must have those values when present.
// Activation quantizers must be calibrated; the eval forward of the model is what is exported.
void export_quantized(Module& root, const std::string& dir);

// The dequantized weights (codes * scale, or codebook[code]) and the float tensors, by name.
// A corrupt or inconsistent manifest or blob throws an Error naming the file and the tensor.
NamedTensors load_exported(const std::string& dir);

// Loads an export into a float model of the same architecture (no quantizers): weights are
// the dequantized values, and each exported activation quantizer is attached as a fixed
// uniform quantizer, so model.eval() forward equals the fake-quantized eval bit for bit.
void load_exported_into(Module& float_model, const std::string& dir);

}  // namespace lowbit
