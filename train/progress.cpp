// Progress line formatting and the TTY / log split.
#include "progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace lowbit {

Progress::Progress(bool tty, std::function<void(const std::string&)> log, double interval_s)
    : tty_(tty), log_(std::move(log)), interval_s_(interval_s) {}

bool Progress::stderr_is_tty() { return isatty(fileno(stderr)) == 1; }

std::string Progress::format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  int64_t t = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60),
                  (long long)(t % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", (long long)(t / 60), (long long)(t % 60));
  return buf;
}

void Progress::begin_epoch(int64_t epoch, int64_t epochs, int64_t batches, int64_t first_batch) {
  epoch_ = epoch;
  epochs_ = epochs;
  batches_ = batches;
  next_quarter_ = (first_batch * 4 / std::max<int64_t>(1, batches) + 1);
  last_ = std::chrono::steady_clock::now();
}

std::string Progress::line(int64_t batch, double loss, double acc, double sps, double eta) const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "epoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.2f%%  %.0f samples/s  ETA %s",
                (long long)(epoch_ + 1), (long long)epochs_, (long long)(batch + 1), (long long)batches_, loss,
                100.0 * acc, sps, format_duration(eta).c_str());
  return buf;
}

void Progress::update(int64_t batch, double loss, double acc, double sps, double eta) {
  auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (tty_) {
    if (since < 0.1 && batch + 1 < batches_) return;  // redraw at most 10 times a second
    std::fprintf(stderr, "\r\033[K%s", line(batch, loss, acc, sps, eta).c_str());
    std::fflush(stderr);
    drawn_ = true;
    last_ = now;
    return;
  }
  // A line at each quarter of the epoch (unless one went out in the last few seconds) and
  // at least every interval_s_ in between.
  const bool quarter = (batch + 1) * 4 >= next_quarter_ * batches_;
  if ((quarter && since >= std::min(5.0, interval_s_)) || since >= interval_s_) {
    if (batch + 1 < batches_) log_(line(batch, loss, acc, sps, eta));
    last_ = now;
  }
  while ((batch + 1) * 4 >= next_quarter_ * batches_) ++next_quarter_;
}

void Progress::end_epoch() {
  if (tty_ && drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  drawn_ = false;
}

}  // namespace lowbit
