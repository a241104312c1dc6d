// BasicBlock: the CIFAR ResNet residual block (He et al. 2016, section 4.2), with the names
// of the common PyTorch implementation: conv1, bn1, conv2, bn2, shortcut.
#pragma once

#include "../core/rng.h"
#include "batch_norm.h"
#include "conv2d.h"
#include "sequential.h"

namespace lowbit {

// How the shortcut changes shape when stride != 1 or in_planes != planes.
//   A: parameter-free: keep every stride-th pixel and zero-pad the channels (CIFAR ResNet);
//   B: 1x1 convolution with that stride (no bias) and BatchNorm ("shortcut.0", "shortcut.1").
enum class ShortcutOption { A, B };

// x[:, :, ::stride, ::stride] with (planes - C) / 2 zero channels before and the rest after.
class PadShortcut : public Module {
 public:
  PadShortcut(int64_t stride, int64_t planes) : Module("PadShortcut"), stride_(stride), planes_(planes) {}
  Tensor forward(const Tensor& x) override;

 private:
  int64_t stride_, planes_;
};

// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); conv1 is 3x3 with `stride`, conv2 3x3,
// both padded by 1 and without bias. With matching shapes the shortcut is an empty
// Sequential (identity), as in PyTorch, so it adds no state_dict keys.
class BasicBlock : public Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t in_planes, int64_t planes, int64_t stride = 1, ShortcutOption option = ShortcutOption::A,
             Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  ModulePtr shortcut;
};

}  // namespace lowbit
