// Progress: a live line on a terminal, plain periodic log lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace lowbit {

class Progress {
 public:
  // tty: redraw one line on stderr; else call `log` at most every `interval_s` seconds and at
  // each 25% of the epoch.
  Progress(bool tty, std::function<void(const std::string&)> log, double interval_s = 30.0);

  void begin_epoch(int64_t epoch, int64_t epochs, int64_t batches, int64_t first_batch);
  // After batch `batch` (0-based) with the epoch's running loss/accuracy and throughput.
  void update(int64_t batch, double loss, double acc, double samples_per_s, double eta_s);
  // Clears the live line (before other output).
  void end_epoch();

  static bool stderr_is_tty();
  static std::string format_duration(double seconds);

 private:
  std::string line(int64_t batch, double loss, double acc, double samples_per_s, double eta_s) const;

  bool tty_;
  std::function<void(const std::string&)> log_;
  double interval_s_;
  int64_t epoch_ = 0, epochs_ = 0, batches_ = 0, next_quarter_ = 0;
  std::chrono::steady_clock::time_point last_;
  bool drawn_ = false;
};

}  // namespace lowbit
