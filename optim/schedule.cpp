// Learning-rate schedules: closed forms of torch's StepLR, MultiStepLR, CosineAnnealingLR, LinearLR warmup.
#include "schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace lowbit {

namespace {
void check_t(int64_t t, const char* who) { LOWBIT_CHECK(t >= 0, who, "time t = ", t, " is negative"); }
void check_gamma(double gamma, const char* who) {
  LOWBIT_CHECK(std::isfinite(gamma) && gamma >= 0, who, "invalid gamma = ", gamma, " (expected finite and >= 0)");
}
}  // namespace

void LrSchedule::apply(Optimizer& optimizer, int64_t t) const {
  for (auto& g : optimizer.groups()) g.lr = lr(g.base_lr, t);
}

double ConstantLr::lr(double base_lr, int64_t t) const {
  check_t(t, "ConstantLr");
  return base_lr;
}

StepLr::StepLr(int64_t step_size, double gamma) : step_size_(step_size), gamma_(gamma) {
  LOWBIT_CHECK(step_size > 0, "StepLr", "invalid step_size = ", step_size, " (expected > 0)");
  check_gamma(gamma, "StepLr");
}

double StepLr::lr(double base_lr, int64_t t) const {
  check_t(t, "StepLr");
  return base_lr * std::pow(gamma_, static_cast<double>(t / step_size_));
}

MultiStepLr::MultiStepLr(std::vector<int64_t> milestones, double gamma)
    : milestones_(std::move(milestones)), gamma_(gamma) {
  for (size_t i = 0; i < milestones_.size(); ++i) {
    LOWBIT_CHECK(milestones_[i] >= 0, "MultiStepLr", "invalid milestone = ", milestones_[i], " (expected >= 0)");
    LOWBIT_CHECK(i == 0 || milestones_[i] > milestones_[i - 1], "MultiStepLr", "milestones must increase, got ",
                 milestones_[i - 1], " then ", milestones_[i]);
  }
  check_gamma(gamma, "MultiStepLr");
}

double MultiStepLr::lr(double base_lr, int64_t t) const {
  check_t(t, "MultiStepLr");
  auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
  return base_lr * std::pow(gamma_, static_cast<double>(passed));
}

CosineLr::CosineLr(int64_t t_max, double eta_min, CosineFloor floor) : t_max_(t_max), eta_min_(eta_min), floor_(floor) {
  LOWBIT_CHECK(t_max > 0, "CosineLr", "invalid t_max = ", t_max, " (expected > 0)");
  LOWBIT_CHECK(std::isfinite(eta_min) && eta_min >= 0, "CosineLr", "invalid eta_min = ", eta_min,
               " (expected finite and >= 0)");
  LOWBIT_CHECK(floor != CosineFloor::fraction || eta_min <= 1, "CosineLr", "invalid eta_min = ", eta_min,
               " (a fraction of the base lr must be <= 1)");
}

double CosineLr::lr(double base_lr, int64_t t) const {
  check_t(t, "CosineLr");
  double lo = floor_ == CosineFloor::absolute ? eta_min_ : eta_min_ * base_lr;
  double c = std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(t_max_));
  return lo + (base_lr - lo) * (1 + c) / 2;
}

WarmupLr::WarmupLr(std::shared_ptr<const LrSchedule> after, int64_t warmup_steps, double start_factor)
    : after_(std::move(after)), warmup_(warmup_steps), start_(start_factor) {
  LOWBIT_CHECK(after_ != nullptr, "WarmupLr", "the schedule after warmup is null");
  LOWBIT_CHECK(warmup_steps >= 0, "WarmupLr", "invalid warmup_steps = ", warmup_steps, " (expected >= 0)");
  LOWBIT_CHECK(std::isfinite(start_factor) && start_factor >= 0 && start_factor <= 1, "WarmupLr",
               "invalid start_factor = ", start_factor, " (expected in [0, 1])");
}

double WarmupLr::lr(double base_lr, int64_t t) const {
  check_t(t, "WarmupLr");
  if (t >= warmup_) return after_->lr(base_lr, t - warmup_);
  double f = start_ + (1 - start_) * static_cast<double>(t) / static_cast<double>(warmup_);
  return after_->lr(base_lr, 0) * f;
}

}  // namespace lowbit
