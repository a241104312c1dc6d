// MetricsLog: JSON lines and CSV writers, and the resume-time truncation.
#include "metrics.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../core/error.h"

namespace lowbit {
namespace {

const char* kCsvHeader = "epoch,step,train_loss,train_acc,test_loss,test_acc,test_top5,lr,seconds,samples_per_s";

nlohmann::json to_json(const EpochMetrics& m) {
  nlohmann::json j = {{"epoch", m.epoch},         {"step", m.step},       {"train_loss", m.train_loss},
                      {"train_acc", m.train_acc}, {"test_loss", nullptr}, {"test_acc", nullptr},
                      {"test_top5", nullptr},     {"lr", m.lr},           {"seconds", m.seconds},
                      {"samples_per_s", m.samples_per_s}};
  if (m.evaluated) {
    j["test_loss"] = m.test_loss;
    j["test_acc"] = m.test_acc;
    j["test_top5"] = m.test_top5;
  }
  if (!m.extra.empty()) j["extra"] = m.extra;
  return j;
}

EpochMetrics from_json(const nlohmann::json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch").get<int64_t>();
  m.step = j.value("step", int64_t(0));
  m.train_loss = j.value("train_loss", 0.0);
  m.train_acc = j.value("train_acc", 0.0);
  m.evaluated = j.contains("test_acc") && j.at("test_acc").is_number();
  if (m.evaluated) {
    m.test_loss = j.at("test_loss").get<double>();
    m.test_acc = j.at("test_acc").get<double>();
    m.test_top5 = j.at("test_top5").get<double>();
  }
  m.lr = j.value("lr", 0.0);
  m.seconds = j.value("seconds", 0.0);
  m.samples_per_s = j.value("samples_per_s", 0.0);
  if (j.contains("extra")) m.extra = j.at("extra").get<std::map<std::string, double>>();
  return m;
}

std::string csv_row(const EpochMetrics& m) {
  std::ostringstream os;
  os.precision(8);
  os << m.epoch << ',' << m.step << ',' << m.train_loss << ',' << m.train_acc << ',';
  if (m.evaluated) os << m.test_loss << ',' << m.test_acc << ',' << m.test_top5;
  else os << ",,";
  os << ',' << m.lr << ',' << m.seconds << ',' << m.samples_per_s;
  return os.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    LOWBIT_CHECK(out.good(), path, "cannot write metrics");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

std::vector<EpochMetrics> MetricsLog::read(const std::string& dir) {
  std::vector<EpochMetrics> rows;
  std::string path = (std::filesystem::path(dir) / "metrics.jsonl").string();
  std::ifstream in(path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    try {
      rows.push_back(from_json(nlohmann::json::parse(line)));
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::cat("line ", n, " is not a metrics row: ", e.what()), path);
    }
  }
  return rows;
}

MetricsLog::MetricsLog(std::string dir, int64_t keep_before) {
  std::filesystem::path d(dir);
  jsonl_ = (d / "metrics.jsonl").string();
  csv_ = (d / "metrics.csv").string();
  if (keep_before >= 0 && std::filesystem::exists(jsonl_)) {
    std::string js, cs = std::string(kCsvHeader) + "\n";
    for (const EpochMetrics& m : read(dir)) {
      if (m.epoch > keep_before) continue;
      js += to_json(m).dump() + "\n";
      cs += csv_row(m) + "\n";
    }
    write_file(jsonl_, js);
    write_file(csv_, cs);
  }
  if (!std::filesystem::exists(csv_)) write_file(csv_, std::string(kCsvHeader) + "\n");
  if (!std::filesystem::exists(jsonl_)) write_file(jsonl_, "");
}

void MetricsLog::append(const EpochMetrics& m) {
  std::ofstream js(jsonl_, std::ios::app), cs(csv_, std::ios::app);
  js << to_json(m).dump() << "\n";
  cs << csv_row(m) << "\n";
  LOWBIT_CHECK(js.good() && cs.good(), jsonl_, "cannot append metrics");
}

}  // namespace lowbit
