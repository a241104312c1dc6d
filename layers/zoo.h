// Model zoo: standard architectures by name, with the state_dict keys of their PyTorch definitions (docs/models.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../core/rng.h"
#include "basic_block.h"
#include "batch_norm.h"
#include "conv2d.h"
#include "linear.h"
#include "module.h"
#include "sequential.h"

namespace lowbit {

// Options of build_model. -1 means "the model's default"; options a model does not use are ignored.
struct ModelOptions {
  int64_t num_classes = 10;
  int64_t in_channels = -1;                // mlp, lenet5: 1; the others: 3
  int64_t image_size = -1;                 // mlp, lenet5: 28; vgg7, vgg_small: 32 (sizes the first Linear)
  std::vector<int64_t> hidden = {512, 512};  // mlp hidden widths ({} gives a single Linear)
  bool batch_norm = false;                 // lenet5: BatchNorm2d after each conv
  char shortcut = 'A';                     // resnet20/32/44/56: 'A' (zero padding) or 'B' (1x1 conv + BN)
};

// The names build_model knows, in a fixed order.
std::vector<std::string> model_names();

// A fresh model in training mode, initialised as its PyTorch definition, drawing from gen.
// An unknown name or an invalid option throws Error (the message lists the known names).
ModulePtr build_model(const std::string& name, const ModelOptions& opt = {}, Generator& gen = default_generator());

// CIFAR ResNet (He et al. 2016, section 4.2) with 6n + 2 layers, named as the common PyTorch
// implementation: conv1, bn1, layer1..3 (n BasicBlocks each, 16/32/64 planes), linear.
class CifarResNet : public Module {
 public:
  CifarResNet(int64_t n, int64_t in_channels, int64_t num_classes, ShortcutOption option, Generator& gen);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, layer2, layer3;
  std::shared_ptr<Linear> linear;
};

// torchvision's BasicBlock: conv1 bn1 conv2 bn2 and, when the shape changes, downsample
// (0: 1x1 conv with the stride, 1: BatchNorm2d). Without downsample there is no such child.
class TorchvisionBasicBlock : public Module {
 public:
  TorchvisionBasicBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> downsample;  // null when the shortcut is the identity
};

// torchvision's resnet18: conv1 7x7/2, bn1, relu, maxpool 3/2, layer1..4 (2 blocks each,
// 64/128/256/512 planes), avgpool (adaptive 1x1), fc. Inputs of any size >= 32.
class ResNet18 : public Module {
 public:
  ResNet18(int64_t in_channels, int64_t num_classes, Generator& gen);
  Tensor forward(const Tensor& x) override;

  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<Linear> fc;
};

}  // namespace lowbit
