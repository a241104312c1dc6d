// MetricsLog: one row per evaluated epoch in metrics.jsonl and metrics.csv of a run directory.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lowbit {

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based, as printed
  int64_t step = 0;
  double train_loss = 0, train_acc = 0;
  bool evaluated = false;  // test_* hold numbers only when true (else null in JSON, empty in CSV)
  double test_loss = 0, test_acc = 0, test_top5 = 0;
  double lr = 0, seconds = 0, samples_per_s = 0;
  // Extra per-epoch numbers (e.g. bits per quantized layer), in the JSON under "extra".
  std::map<std::string, double> extra;
};

class MetricsLog {
 public:
  // Opens (creating if needed) <dir>/metrics.jsonl and <dir>/metrics.csv. With keep_before >= 0
  // (a resumed run) rows of epochs > keep_before are dropped first, so an epoch that ran again
  // after a resume appears once.
  explicit MetricsLog(std::string dir, int64_t keep_before = -1);
  void append(const EpochMetrics& m);
  // The rows read back from metrics.jsonl (for tests and summaries).
  static std::vector<EpochMetrics> read(const std::string& dir);

 private:
  std::string jsonl_, csv_;
};

}  // namespace lowbit
