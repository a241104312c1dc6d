// Learning-rate schedules in torch.optim.lr_scheduler's closed forms, and linear warmup.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "optimizer.h"

namespace lowbit {

// A schedule maps (a group's base lr, time t >= 0) to that group's lr. The unit of t
// (iterations or epochs) is the caller's; t = 0 is the start of training.
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr(double base_lr, int64_t t) const = 0;
  // lr(base, t) / base for a unit base; exact for every schedule except an absolute cosine floor.
  double factor(int64_t t) const { return lr(1.0, t); }
  // Sets every group's lr to lr(group.base_lr, t).
  void apply(Optimizer& optimizer, int64_t t) const;
};

// lr = base.
class ConstantLr : public LrSchedule {
 public:
  double lr(double base_lr, int64_t t) const override;
};

// StepLR: lr = base * gamma^floor(t / step_size).
class StepLr : public LrSchedule {
 public:
  StepLr(int64_t step_size, double gamma = 0.1);
  double lr(double base_lr, int64_t t) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// MultiStepLR: lr = base * gamma^(number of milestones <= t); milestones strictly increasing.
class MultiStepLr : public LrSchedule {
 public:
  MultiStepLr(std::vector<int64_t> milestones, double gamma = 0.1);
  double lr(double base_lr, int64_t t) const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

// CosineAnnealingLR closed form: lr = floor + (base - floor) * (1 + cos(pi * t / t_max)) / 2,
// where floor = eta_min (an absolute lr, torch's meaning) or eta_min * base (fraction).
// As in torch, past t_max the curve continues periodically (it rises again).
enum class CosineFloor { absolute, fraction };
class CosineLr : public LrSchedule {
 public:
  CosineLr(int64_t t_max, double eta_min = 0, CosineFloor floor = CosineFloor::absolute);
  double lr(double base_lr, int64_t t) const override;

 private:
  int64_t t_max_;
  double eta_min_;
  CosineFloor floor_;
};

// Linear warmup in front of `after`, as SequentialLR([LinearLR(start_factor, 1, warmup_steps),
// after], milestones=[warmup_steps]): for t < warmup_steps lr = after.lr(base, 0) *
// (start_factor + (1 - start_factor) * t / warmup_steps); afterwards after.lr(base, t - warmup_steps).
class WarmupLr : public LrSchedule {
 public:
  WarmupLr(std::shared_ptr<const LrSchedule> after, int64_t warmup_steps, double start_factor = 0);
  double lr(double base_lr, int64_t t) const override;

 private:
  std::shared_ptr<const LrSchedule> after_;
  int64_t warmup_;
  double start_;
};

}  // namespace lowbit
