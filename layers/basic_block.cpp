// BasicBlock and its parameter-free shortcut.
#include "basic_block.h"

#include "../core/ops/elementwise.h"
#include "../core/ops/shape_ops.h"

namespace lowbit {

Tensor PadShortcut::forward(const Tensor& x) {
  LOWBIT_CHECK(x.dim() == 4 && x.size(1) <= planes_, "PadShortcut", "expected [N, C <= ", planes_,
               ", H, W], got ", shape_str(x.shape()));
  Tensor y = x;
  if (stride_ != 1) y = slice(slice(y, 2, 0, y.size(2), stride_), 3, 0, y.size(3), stride_);
  int64_t extra = planes_ - y.size(1);
  if (extra == 0) return y;
  int64_t lo = extra / 2, hi = extra - lo;
  std::vector<Tensor> parts;
  if (lo > 0) parts.push_back(Tensor::zeros({y.size(0), lo, y.size(2), y.size(3)}, y.dtype(), y.device()));
  parts.push_back(y);
  if (hi > 0) parts.push_back(Tensor::zeros({y.size(0), hi, y.size(2), y.size(3)}, y.dtype(), y.device()));
  return concat(parts, 1);
}

BasicBlock::BasicBlock(int64_t in_planes, int64_t planes, int64_t stride, ShortcutOption option, Generator& gen)
    : Module("BasicBlock") {
  Conv2dOptions c1;
  c1.stride = {stride, stride};
  c1.padding = {1, 1};
  Conv2dOptions c2;
  c2.padding = {1, 1};
  conv1 = register_module("conv1", std::make_shared<Conv2d>(in_planes, planes, std::array<int64_t, 2>{3, 3}, c1,
                                                            false, gen));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2 = register_module("conv2", std::make_shared<Conv2d>(planes, planes, std::array<int64_t, 2>{3, 3}, c2,
                                                            false, gen));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (stride == 1 && in_planes == planes) {
    shortcut = register_module("shortcut", std::make_shared<Sequential>());
  } else if (option == ShortcutOption::A) {
    shortcut = register_module("shortcut", std::make_shared<PadShortcut>(stride, planes));
  } else {
    Conv2dOptions s;
    s.stride = {stride, stride};
    auto seq = std::make_shared<Sequential>();
    seq->push_back(std::make_shared<Conv2d>(in_planes, planes, std::array<int64_t, 2>{1, 1}, s, false, gen));
    seq->push_back(std::make_shared<BatchNorm2d>(planes));
    shortcut = register_module("shortcut", seq);
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = bn1->forward_relu(conv1->forward(x));
  out = bn2->forward(conv2->forward(out));
  return relu(add(out, shortcut->forward(x)));
}

}  // namespace lowbit
