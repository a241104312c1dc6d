// Sweep planning (file -> runs), execution (train or resume each) and the comparison table.
#include "sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "../core/error.h"
#include "../optim/optimizer.h"
#include "experiment.h"
#include "metrics.h"
#include "trainer.h"
#include "yaml_checks.h"

namespace fs = std::filesystem;

namespace lowbit {
namespace {

std::string at(const std::string& file, const YAML::Node& n) {
  return detail::cat(file, ":", n.Mark().line + 1, ":", n.Mark().column + 1);
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

std::vector<std::string> string_list(const std::string& file, const YAML::Node& n, const std::string& key) {
  LOWBIT_CHECK(n.IsSequence(), at(file, n), key, ": expected a list of KEY=VALUE strings");
  std::vector<std::string> out;
  for (const auto& item : n) {
    LOWBIT_CHECK(item.IsScalar() && item.Scalar().find('=') != std::string::npos, at(file, item), key,
                 ": expected KEY=VALUE, got '", scalar_text(item), "'");
    out.push_back(item.Scalar());
  }
  return out;
}

std::string folder_name(const std::string& s) {
  std::string out;
  for (char c : s) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '=') ? c : '_';
  return out;
}

struct Variant {
  std::string name;
  std::vector<std::string> set;
  bool cross = true;  // combined with the grid (runs.grid: false keeps a reference run as is)
};

const std::string kSweepDir = "{sweep_dir}";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string substitute(const std::string& s, const std::string& dir, uint64_t seed) {
  return replace_all(replace_all(s, kSweepDir, dir), "{seed}", std::to_string(seed));
}

// Whether `path` lies inside the folder `dir` (component-wise, so seed1 does not contain seed10).
bool inside(const std::string& path, const std::string& dir) {
  const fs::path p = fs::path(path).lexically_normal(), d = fs::path(dir).lexically_normal();
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di, ++pi)
    if (di->empty()) continue;
    else if (pi == p.end() || *pi != *di) return false;
  return true;
}

}  // namespace

SweepPlan plan_sweep(const std::string& path, const std::vector<std::string>& extra, const std::string& dir) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw Error("cannot open the sweep file", path, "check the path");
  } catch (const YAML::Exception& e) {
    throw Error(detail::cat("YAML syntax error at line ", e.mark.line + 1, ": ", e.msg), path);
  }
  check_unique_keys(root, path);
  LOWBIT_CHECK(root.IsMap(), path, "a sweep file is a mapping with base, runs, grid, seeds, ...");
  static const std::set<std::string> known = {"base", "set", "runs", "grid", "seeds", "output"};
  for (const auto& kv : root) {
    const std::string k = kv.first.Scalar();
    LOWBIT_CHECK(known.count(k), at(path, kv.first), "unknown key '", k,
                 "' (known: base, set, runs, grid, seeds, output)");
  }
  LOWBIT_CHECK(root["base"] && root["base"].IsScalar(), path, "missing 'base': the experiment file to vary");
  SweepPlan plan;
  plan.file = path;
  fs::path base = root["base"].Scalar();
  if (base.is_relative()) base = fs::path(path).parent_path() / base;
  LOWBIT_CHECK(fs::exists(base), at(path, root["base"]), "base config ", base.string(), " does not exist");

  std::vector<std::string> common;
  if (root["set"]) common = string_list(path, root["set"], "set");

  std::vector<Variant> variants;
  if (root["runs"]) {
    LOWBIT_CHECK(root["runs"].IsSequence() && root["runs"].size() > 0, at(path, root["runs"]),
                 "runs: expected a non-empty list of {name, set}");
    for (const auto& r : root["runs"]) {
      LOWBIT_CHECK(r.IsMap(), at(path, r), "runs: each entry is a mapping {name: ..., set: [...]}");
      Variant v;
      for (const auto& kv : r) {
        const std::string k = kv.first.Scalar();
        if (k == "name") v.name = kv.second.Scalar();
        else if (k == "set") v.set = string_list(path, kv.second, "runs.set");
        else if (k == "grid") {
          LOWBIT_CHECK(kv.second.IsScalar() && (kv.second.Scalar() == "true" || kv.second.Scalar() == "false"),
                       at(path, kv.second), "runs.grid: expected true or false");
          v.cross = kv.second.Scalar() == "true";
        } else throw Error(detail::cat("unknown key 'runs.", k, "' (known: name, set, grid)"), at(path, kv.first));
      }
      if (v.name.empty()) {
        for (const auto& s : v.set) v.name += (v.name.empty() ? "" : ",") + s;
        if (v.name.empty()) v.name = "base";
      }
      variants.push_back(v);
    }
  } else {
    variants.push_back({"base", {}});
  }
  if (root["grid"]) {
    LOWBIT_CHECK(root["grid"].IsMap() && root["grid"].size() > 0, at(path, root["grid"]),
                 "grid: expected a mapping key.path: [values]");
    for (const auto& kv : root["grid"]) {
      const std::string key = kv.first.Scalar();
      LOWBIT_CHECK(kv.second.IsSequence() && kv.second.size() > 0, at(path, kv.second), "grid.", key,
                   ": expected a non-empty list of values");
      // "a.x, b.y: [2, 4]" sets both keys to each value (paired, not crossed).
      std::vector<std::string> keys;
      std::string leaves;
      std::stringstream ks(key);
      for (std::string k; std::getline(ks, k, ',');) {
        k.erase(0, k.find_first_not_of(' '));
        k.erase(k.find_last_not_of(' ') + 1);
        LOWBIT_CHECK(!k.empty(), at(path, kv.first), "grid: empty key in '", key, "'");
        keys.push_back(k);
        leaves += (leaves.empty() ? "" : "/") + k.substr(k.rfind('.') + 1);
      }
      std::vector<Variant> crossed;
      for (const Variant& v : variants) {
        if (!v.cross) {
          crossed.push_back(v);
          continue;
        }
        for (const auto& value : kv.second) {
          Variant w = v;
          const std::string text = scalar_text(value);
          for (const auto& k : keys) w.set.push_back(k + "=" + text);
          w.name = (v.name == "base" && !root["runs"] ? "" : v.name + ",") + leaves + "=" + text;
          crossed.push_back(w);
        }
      }
      variants = crossed;
    }
  }
  std::vector<uint64_t> seeds;
  if (root["seeds"]) {
    LOWBIT_CHECK(root["seeds"].IsSequence() && root["seeds"].size() > 0, at(path, root["seeds"]),
                 "seeds: expected a non-empty list of integers");
    for (const auto& s : root["seeds"]) {
      try {
        seeds.push_back(s.as<uint64_t>());
      } catch (const YAML::Exception&) {
        throw Error(detail::cat("seeds: '", scalar_text(s), "' is not a non-negative integer"), at(path, s));
      }
    }
  }
  std::string out_dir = "runs/sweeps";
  plan.name = fs::path(path).stem().string();
  if (root["output"]) {
    for (const auto& kv : root["output"]) {
      const std::string k = kv.first.Scalar();
      if (k == "dir") out_dir = kv.second.Scalar();
      else if (k == "name") plan.name = kv.second.Scalar();
      else throw Error(detail::cat("unknown key 'output.", k, "' (known: dir, name)"), at(path, kv.first));
    }
  }
  plan.dir = dir.empty() ? (fs::path(out_dir) / plan.name).string() : dir;

  std::set<std::string> names;
  for (const Variant& v : variants) {
    LOWBIT_CHECK(names.insert(v.name).second, path, "two runs are named '", v.name, "'");
    std::vector<std::string> overrides = common;
    overrides.insert(overrides.end(), v.set.begin(), v.set.end());
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    // Values naming another run's output ({sweep_dir}) are left out of the probe: that file
    // appears only when the earlier run has trained.
    std::vector<std::string> probe_overrides;
    for (const auto& o : overrides)
      if (o.find(kSweepDir) == std::string::npos) probe_overrides.push_back(o);
    ExperimentConfig probe;
    try {
      probe = load_config(base.string(), probe_overrides);
      // The quant: section and its fit to the model, so a typo fails before the first run.
      Generator gen(0);
      make_experiment_model(probe, gen);
    } catch (const Error& e) {
      throw Error(detail::cat("run '", v.name, "': ", e.what()), path);
    }
    std::vector<uint64_t> run_seeds = seeds.empty() ? std::vector<uint64_t>{probe.train.seed} : seeds;
    for (uint64_t seed : run_seeds) {
      SweepRun r;
      r.name = v.name;
      r.seed = seed;
      for (const auto& o : overrides) r.overrides.push_back(substitute(o, plan.dir, seed));
      r.overrides.push_back(detail::cat("train.seed=", seed));
      r.overrides.push_back("output.name=" + folder_name(v.name));
      try {
        r.config = load_config(base.string(), r.overrides);
      } catch (const Error& e) {
        throw Error(detail::cat("run '", v.name, "' seed ", seed, ": ", e.what()), path);
      }
      r.run_dir = (fs::path(plan.dir) / folder_name(v.name) / detail::cat("seed", seed)).string();
      for (const auto& o : overrides) {
        if (o.find(kSweepDir) == std::string::npos) continue;
        const std::string value = substitute(o.substr(o.find('=') + 1), plan.dir, seed);
        size_t found = plan.runs.size();
        for (size_t i = 0; i < plan.runs.size(); ++i)
          if (inside(value, plan.runs[i].run_dir)) found = i;
        LOWBIT_CHECK(found < plan.runs.size(), path, "run '", v.name, "' seed ", seed, ": '", o, "' names ", value,
                     ", which no earlier run of the sweep writes (list the run it comes from before this one)");
        r.needs.push_back(found);
      }
      plan.runs.push_back(std::move(r));
    }
  }
  return plan;
}

SweepResult read_run_result(const SweepRun& run) {
  SweepResult r;
  r.name = run.name;
  r.seed = run.seed;
  if (!fs::exists(fs::path(run.run_dir) / "metrics.jsonl")) return r;
  auto rows = MetricsLog::read(run.run_dir);
  for (const EpochMetrics& m : rows) {
    r.seconds += m.seconds;
    if (m.evaluated) {
      r.best_top1 = std::max(r.best_top1, m.test_acc);
      r.top1 = m.test_acc;
      r.top5 = m.test_top5;
      r.loss = m.test_loss;
    }
  }
  r.epochs = rows.empty() ? 0 : rows.back().epoch;
  r.finished = !rows.empty() && rows.back().epoch == run.config.train.epochs && rows.back().evaluated;
  std::ifstream in(fs::path(run.run_dir) / "quant_report.json");
  if (in) {
    try {
      auto j = nlohmann::json::parse(in).at("totals");
      r.avg_weight_bits = j.at("avg_weight_bits").get<double>();
      r.model_bytes = j.at("model_bytes").get<int64_t>();
      r.model_float_bytes = j.at("model_float_bytes").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::cat("unreadable quant report: ", e.what()), run.run_dir + "/quant_report.json");
    }
  }
  return r;
}

std::string sweep_table(const std::vector<SweepResult>& results) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<const SweepResult*>> by;
  for (const auto& r : results) {
    if (!by.count(r.name)) order.push_back(r.name);
    by[r.name].push_back(&r);
  }
  std::string t =
      "| run | seeds | top-1 % (mean ± std) | top-5 % | avg weight bits | model size KiB | compression | time/run |\n"
      "|---|---|---|---|---|---|---|---|\n";
  char buf[512];
  for (const auto& name : order) {
    const auto& rs = by[name];
    double m = 0, m5 = 0, secs = 0, bits = 0;
    int64_t done = 0, bytes = 0, fbytes = 0;
    for (const auto* r : rs) {
      if (!r->finished) continue;
      ++done;
      m += r->top1;
      m5 += r->top5;
      secs += r->seconds;
      bits += r->avg_weight_bits;
      bytes += r->model_bytes;
      fbytes += r->model_float_bytes;
    }
    if (done == 0) {
      std::snprintf(buf, sizeof buf, "| %s | 0/%zu | (not finished) | | | | | |\n", name.c_str(), rs.size());
      t += buf;
      continue;
    }
    m /= done;
    m5 /= done;
    double var = 0;
    for (const auto* r : rs)
      if (r->finished) var += (r->top1 - m) * (r->top1 - m);
    const double sd = done > 1 ? std::sqrt(var / double(done - 1)) : 0;
    std::snprintf(buf, sizeof buf, "| %s | %lld/%zu | %.2f ± %.2f | %.2f | %.2f | %.1f | %.1fx | %.0f s |\n",
                  name.c_str(), (long long)done, rs.size(), 100 * m, 100 * sd, 100 * m5, bits / done,
                  double(bytes) / done / 1024.0, bytes ? double(fbytes) / double(bytes) : 1.0, secs / done);
    t += buf;
  }
  return t;
}

void select_sweep_runs(SweepPlan& plan, const std::vector<std::string>& only, const std::vector<uint64_t>& seeds) {
  for (const std::string& g : only) {
    const bool any = std::any_of(plan.runs.begin(), plan.runs.end(), [&](const SweepRun& r) { return glob_match(g, r.name); });
    LOWBIT_CHECK(any, plan.file, "--only '", g, "' matches no run of the sweep (see --dry-run for the names)");
  }
  for (uint64_t s : seeds) {
    const bool any = std::any_of(plan.runs.begin(), plan.runs.end(), [&](const SweepRun& r) { return r.seed == s; });
    LOWBIT_CHECK(any, plan.file, "--seeds: seed ", s, " is not one of the sweep's seeds");
  }
  for (SweepRun& r : plan.runs) {
    const bool name_ok = only.empty() || std::any_of(only.begin(), only.end(), [&](const std::string& g) { return glob_match(g, r.name); });
    const bool seed_ok = seeds.empty() || std::find(seeds.begin(), seeds.end(), r.seed) != seeds.end();
    r.selected = name_ok && seed_ok;
  }
}

std::string run_sweep(const SweepPlan& plan, bool quiet) {
  fs::create_directories(plan.dir);
  fs::copy_file(plan.file, fs::path(plan.dir) / "sweep.yaml", fs::copy_options::overwrite_existing);
  std::vector<SweepResult> results;
  bool stopped = false;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const SweepRun& run = plan.runs[i];
    SweepResult r = read_run_result(run);
    if (!run.selected) {
      if (r.finished) results.push_back(r);
      continue;
    }
    if (!r.finished && !stopped) {
      for (size_t need : run.needs) {
        const SweepRun& dep = plan.runs[need];
        LOWBIT_CHECK(read_run_result(dep).finished, plan.file, "run '", run.name, "' seed ", run.seed, " needs run '",
                     dep.name, "' seed ", dep.seed, " (", dep.run_dir, ") to have finished first; include it (--only/--seeds)");
      }
      std::fprintf(stderr, "sweep %s: run %zu/%zu: %s (seed %llu)\n", plan.name.c_str(), i + 1, plan.runs.size(),
                   run.name.c_str(), (unsigned long long)run.seed);
      TrainerOptions o;
      o.run_dir = run.run_dir;
      o.console = !quiet;
      std::unique_ptr<Trainer> t;
      if (fs::exists(fs::path(run.run_dir) / "last.safetensors"))
        t = Trainer::resume(run.run_dir, {}, o);
      else
        t = std::make_unique<Trainer>(run.config, o);
      stopped = t->fit().interrupted;
      r = read_run_result(run);
    }
    results.push_back(r);
  }
  std::string csv = "run,seed,finished,epochs,top1,top5,best_top1,loss,avg_weight_bits,model_bytes,model_float_bytes,seconds\n";
  for (const auto& r : results) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "\"%s\",%llu,%d,%lld,%.6f,%.6f,%.6f,%.6f,%.4f,%lld,%lld,%.1f\n", r.name.c_str(),
                  (unsigned long long)r.seed, int(r.finished), (long long)r.epochs, r.top1, r.top5, r.best_top1,
                  r.loss, r.avg_weight_bits, (long long)r.model_bytes, (long long)r.model_float_bytes, r.seconds);
    csv += buf;
  }
  std::string md = "# Sweep " + plan.name + "\n\nFrom `" + plan.file + "`; top-1/top-5 after the last epoch, " +
                   "mean ± sample std over seeds.\n\n" + sweep_table(results);
  std::ofstream(fs::path(plan.dir) / "results.csv") << csv;
  std::ofstream(fs::path(plan.dir) / "results.md") << md;
  if (stopped) md += "\n(stopped: run the same command again to continue)\n";
  return md;
}

}  // namespace lowbit
