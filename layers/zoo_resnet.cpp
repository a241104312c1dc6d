// Model zoo ResNets: the CIFAR ResNets (resnet20..56) and torchvision's resnet18.
#include <string>

#include "../core/ops/elementwise.h"
#include "../core/ops/pool.h"
#include "activation.h"
#include "init.h"
#include "pooling.h"
#include "zoo.h"

namespace lowbit {

namespace {

std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, Generator& gen) {
  Conv2dOptions o;
  o.stride = {stride, stride};
  o.padding = {pad, pad};
  return std::make_shared<Conv2d>(in, out, std::array<int64_t, 2>{k, k}, o, false, gen);
}

// torchvision's ResNet.__init__: every conv weight kaiming_normal_(fan_out, relu); BatchNorm
// is already weight 1, bias 0. Linear keeps its default init.
void torchvision_init(Module& m, Generator& gen) {
  for (auto& [name, mod] : m.named_modules()) {
    if (mod->type_name() != "Conv2d") continue;
    Tensor w = mod->parameter("weight");
    init::kaiming_normal_(w, 0, init::FanMode::fan_out, "relu", gen);
  }
}

}  // namespace

CifarResNet::CifarResNet(int64_t n, int64_t in_channels, int64_t num_classes, ShortcutOption option,
                         Generator& gen)
    : Module("CifarResNet") {
  LOWBIT_CHECK(n >= 1, "CifarResNet", "blocks per stage must be >= 1, got ", n);
  conv1 = register_module("conv1", conv(in_channels, 16, 3, 1, 1, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(16));
  int64_t in = 16;
  std::shared_ptr<Sequential>* stages[3] = {&layer1, &layer2, &layer3};
  for (int s = 0; s < 3; ++s) {
    int64_t planes = int64_t{16} << s;
    auto stage = std::make_shared<Sequential>();
    for (int64_t b = 0; b < n; ++b) {
      stage->push_back(std::make_shared<BasicBlock>(in, planes, (b == 0 && s > 0) ? 2 : 1, option, gen));
      in = planes;
    }
    *stages[s] = register_module("layer" + std::to_string(s + 1), stage);
  }
  linear = register_module("linear", std::make_shared<Linear>(64, num_classes, true, gen));
  // The reference's _weights_init: kaiming_normal_ (fan_in, gain sqrt(2)) on every Conv2d and
  // Linear weight; biases and BatchNorm keep their defaults.
  for (auto& [name, mod] : named_modules()) {
    if (mod->type_name() != "Conv2d" && mod->type_name() != "Linear") continue;
    Tensor w = mod->parameter("weight");
    init::kaiming_normal_(w, 0, init::FanMode::fan_in, "leaky_relu", gen);
  }
}

Tensor CifarResNet::forward(const Tensor& x) {
  Tensor y = bn1->forward_relu(conv1->forward(x));
  y = layer3->forward(layer2->forward(layer1->forward(y)));
  return linear->forward(adaptive_avg_pool2d(y, 1, 1).flatten(1, -1));
}

TorchvisionBasicBlock::TorchvisionBasicBlock(int64_t in_planes, int64_t planes, int64_t stride, Generator& gen)
    : Module("BasicBlock") {
  conv1 = register_module("conv1", conv(in_planes, planes, 3, stride, 1, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  register_module("relu", std::make_shared<ReLU>());
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (stride != 1 || in_planes != planes) {
    downsample = std::make_shared<Sequential>();
    downsample->push_back(conv(in_planes, planes, 1, stride, 0, gen));
    downsample->push_back(std::make_shared<BatchNorm2d>(planes));
    register_module("downsample", downsample);
  }
}

Tensor TorchvisionBasicBlock::forward(const Tensor& x) {
  Tensor out = bn1->forward_relu(conv1->forward(x));
  out = bn2->forward(conv2->forward(out));
  return relu(add(out, downsample ? downsample->forward(x) : x));
}

ResNet18::ResNet18(int64_t in_channels, int64_t num_classes, Generator& gen) : Module("ResNet") {
  conv1 = register_module("conv1", conv(in_channels, 64, 7, 2, 3, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  register_module("relu", std::make_shared<ReLU>());
  register_module("maxpool", std::make_shared<MaxPool2d>(Pool2dOptions::square(3, 2, 1)));
  int64_t in = 64;
  std::shared_ptr<Sequential>* stages[4] = {&layer1, &layer2, &layer3, &layer4};
  for (int s = 0; s < 4; ++s) {
    int64_t planes = int64_t{64} << s;
    auto stage = std::make_shared<Sequential>();
    stage->push_back(std::make_shared<TorchvisionBasicBlock>(in, planes, s > 0 ? 2 : 1, gen));
    stage->push_back(std::make_shared<TorchvisionBasicBlock>(planes, planes, 1, gen));
    in = planes;
    *stages[s] = register_module("layer" + std::to_string(s + 1), stage);
  }
  register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  fc = register_module("fc", std::make_shared<Linear>(512, num_classes, true, gen));
  torchvision_init(*this, gen);
}

Tensor ResNet18::forward(const Tensor& x) {
  LOWBIT_CHECK(x.dim() == 4 && x.size(2) >= 32 && x.size(3) >= 32, "ResNet18",
               "expected [N, C, H >= 32, W >= 32], got ", shape_str(x.shape()));
  Tensor y = bn1->forward_relu(conv1->forward(x));
  y = max_pool2d(y, Pool2dOptions::square(3, 2, 1));
  y = layer4->forward(layer3->forward(layer2->forward(layer1->forward(y))));
  return fc->forward(adaptive_avg_pool2d(y, 1, 1).flatten(1, -1));
}

}  // namespace lowbit
