// Model zoo: the name registry and the Sequential models (mlp, lenet5, vgg7, vgg_small).
#include "zoo.h"

#include <functional>
#include <utility>

#include "../core/ops/elementwise.h"
#include "activation.h"
#include "init.h"
#include "pooling.h"

namespace lowbit {

namespace {

using Builder = std::function<ModulePtr(const ModelOptions&, Generator&)>;

int64_t or_default(int64_t v, int64_t def) { return v == -1 ? def : v; }

std::shared_ptr<Conv2d> conv3x3(int64_t in, int64_t out, bool bias, Generator& gen) {
  Conv2dOptions o;
  o.padding = {1, 1};
  return std::make_shared<Conv2d>(in, out, std::array<int64_t, 2>{3, 3}, o, bias, gen);
}

std::shared_ptr<MaxPool2d> max_pool2() { return std::make_shared<MaxPool2d>(Pool2dOptions::square(2, 2)); }

ModulePtr build_mlp(const ModelOptions& opt, Generator& gen) {
  int64_t c = or_default(opt.in_channels, 1), s = or_default(opt.image_size, 28);
  auto net = std::make_shared<Sequential>();
  net->push_back(std::make_shared<Flatten>());
  int64_t width = c * s * s;
  for (int64_t h : opt.hidden) {
    LOWBIT_CHECK(h > 0, "build_model", "mlp: hidden widths must be positive, got ", shape_str(opt.hidden));
    net->push_back(std::make_shared<Linear>(width, h, true, gen));
    net->push_back(std::make_shared<ReLU>());
    width = h;
  }
  net->push_back(std::make_shared<Linear>(width, opt.num_classes, true, gen));
  return net;
}

// Each 5x5 valid conv takes 4 pixels, each pool halves (floor).
ModulePtr build_lenet5(const ModelOptions& opt, Generator& gen) {
  int64_t c = or_default(opt.in_channels, 1), s = or_default(opt.image_size, 28);
  int64_t f = ((s - 4) / 2 - 4) / 2;
  LOWBIT_CHECK(s >= 16, "build_model", "lenet5: image_size must be >= 16, got ", s);
  auto net = std::make_shared<Sequential>();
  int64_t in = c;
  for (int64_t out : {int64_t{32}, int64_t{64}}) {
    net->push_back(std::make_shared<Conv2d>(in, out, std::array<int64_t, 2>{5, 5}, Conv2dOptions{}, true, gen));
    if (opt.batch_norm) net->push_back(std::make_shared<BatchNorm2d>(out));
    net->push_back(std::make_shared<ReLU>());
    net->push_back(max_pool2());
    in = out;
  }
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(64 * f * f, 512, true, gen));
  if (opt.batch_norm) net->push_back(std::make_shared<BatchNorm1d>(512));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Linear>(512, opt.num_classes, true, gen));
  return net;
}

ModulePtr build_vgg7(const ModelOptions& opt, Generator& gen) {
  int64_t c = or_default(opt.in_channels, 3), s = or_default(opt.image_size, 32);
  LOWBIT_CHECK(s >= 8, "build_model", "vgg7: image_size must be >= 8, got ", s);
  auto net = std::make_shared<Sequential>();
  int64_t in = c;
  for (int64_t out : {int64_t{128}, int64_t{256}, int64_t{512}}) {
    for (int rep = 0; rep < 2; ++rep) {
      net->push_back(conv3x3(in, out, false, gen));
      net->push_back(std::make_shared<BatchNorm2d>(out));
      net->push_back(std::make_shared<ReLU>());
      in = out;
    }
    net->push_back(max_pool2());
  }
  int64_t f = s / 8;
  net->push_back(std::make_shared<Flatten>());
  net->push_back(std::make_shared<Linear>(512 * f * f, 1024, true, gen));
  net->push_back(std::make_shared<ReLU>());
  net->push_back(std::make_shared<Linear>(1024, opt.num_classes, true, gen));
  return net;
}

// VGG-Small (LQ-Nets, IR-Net): conv0..conv5 with bn0..bn5; the second conv of each pair is
// pooled before its BN. Named modules, so not a Sequential.
class VggSmall : public Module {
 public:
  VggSmall(int64_t in_channels, int64_t image_size, int64_t num_classes, Generator& gen) : Module("VGGSmall") {
    const int64_t widths[6] = {128, 128, 256, 256, 512, 512};
    int64_t in = in_channels;
    for (int i = 0; i < 6; ++i) {
      convs_[i] = register_module("conv" + std::to_string(i), conv3x3(in, widths[i], false, gen));
      // IR-Net's _initialize_weights: normal(0, sqrt(2 / (k * k * out))) = kaiming fan_out relu.
      Tensor w = convs_[i]->weight();
      init::kaiming_normal_(w, 0, init::FanMode::fan_out, "relu", gen);
      bns_[i] = register_module("bn" + std::to_string(i), std::make_shared<BatchNorm2d>(widths[i]));
      in = widths[i];
    }
    int64_t f = image_size / 8;
    fc_ = register_module("fc", std::make_shared<Linear>(512 * f * f, num_classes, true, gen));
    Tensor w = fc_->weight(), b = fc_->bias();
    init::normal_(w, 0, 0.01, gen);
    init::zeros_(b);
  }

  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (int i = 0; i < 6; ++i) {
      y = convs_[i]->forward(y);
      if (i % 2 == 1) y = max_pool2d(y, Pool2dOptions::square(2, 2));
      y = relu(bns_[i]->forward(y));
    }
    return fc_->forward(y.flatten(1, -1));
  }

 private:
  std::shared_ptr<Conv2d> convs_[6];
  std::shared_ptr<BatchNorm2d> bns_[6];
  std::shared_ptr<Linear> fc_;
};

ModulePtr build_vgg_small(const ModelOptions& opt, Generator& gen) {
  int64_t c = or_default(opt.in_channels, 3), s = or_default(opt.image_size, 32);
  LOWBIT_CHECK(s >= 8, "build_model", "vgg_small: image_size must be >= 8, got ", s);
  return std::make_shared<VggSmall>(c, s, opt.num_classes, gen);
}

Builder cifar_resnet(int64_t n) {
  return [n](const ModelOptions& opt, Generator& gen) -> ModulePtr {
    LOWBIT_CHECK(opt.shortcut == 'A' || opt.shortcut == 'B', "build_model", "shortcut must be 'A' or 'B', got '",
                 opt.shortcut, "'");
    return std::make_shared<CifarResNet>(n, or_default(opt.in_channels, 3), opt.num_classes,
                                         opt.shortcut == 'A' ? ShortcutOption::A : ShortcutOption::B, gen);
  };
}

ModulePtr build_resnet18(const ModelOptions& opt, Generator& gen) {
  return std::make_shared<ResNet18>(or_default(opt.in_channels, 3), opt.num_classes, gen);
}

const std::vector<std::pair<std::string, Builder>>& registry() {
  static const std::vector<std::pair<std::string, Builder>> r = {
      {"mlp", build_mlp},           {"lenet5", build_lenet5},       {"vgg7", build_vgg7},
      {"vgg_small", build_vgg_small}, {"resnet20", cifar_resnet(3)}, {"resnet32", cifar_resnet(5)},
      {"resnet44", cifar_resnet(7)}, {"resnet56", cifar_resnet(9)}, {"resnet18", build_resnet18},
  };
  return r;
}

}  // namespace

std::vector<std::string> model_names() {
  std::vector<std::string> out;
  for (const auto& [n, b] : registry()) out.push_back(n);
  return out;
}

ModulePtr build_model(const std::string& name, const ModelOptions& opt, Generator& gen) {
  LOWBIT_CHECK(opt.num_classes >= 1, "build_model", name, ": num_classes must be >= 1, got ", opt.num_classes);
  LOWBIT_CHECK(opt.in_channels == -1 || opt.in_channels >= 1, "build_model", name,
               ": in_channels must be >= 1 (or -1 for the default), got ", opt.in_channels);
  LOWBIT_CHECK(opt.image_size == -1 || opt.image_size >= 1, "build_model", name,
               ": image_size must be >= 1 (or -1 for the default), got ", opt.image_size);
  for (const auto& [n, build] : registry())
    if (n == name) return build(opt, gen);
  std::string known;
  for (const auto& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(detail::cat("unknown model '", name, "'; known models: ", known), "build_model");
}

}  // namespace lowbit
