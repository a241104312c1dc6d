// load_config: YAML text -> overrides applied -> typed ExperimentConfig, every key checked.
#include "config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <set>
#include <sstream>
#include <utility>

#include "../core/error.h"
#include "yaml_checks.h"

namespace lowbit {

namespace {

// Where the text of each key came from: the file, or one of the --set overrides.
struct Source {
  std::string file;
  std::vector<std::pair<std::string, std::string>> sets;  // key path, "key=value"

  // An override owns its own path, everything below it, and the maps it had to create above it.
  std::string where(const std::string& path, const YAML::Mark& mark) const {
    for (auto it = sets.rbegin(); it != sets.rend(); ++it) {
      const std::string& k = it->first;
      auto below = [](const std::string& a, const std::string& b) {
        return a.size() > b.size() && a.compare(0, b.size(), b) == 0 &&
               (a[b.size()] == '.' || a[b.size()] == '[');
      };
      if (path == k || below(path, k) || below(k, path)) return "--set " + it->second;
    }
    if (mark.is_null()) return file;
    return detail::cat(file, ":", mark.line + 1, ":", mark.column + 1);
  }
};

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  return "'" + n.Scalar() + "'";
}

// One value in the tree: its node, its dotted key path, and the mark to report it at.
struct Field {
  const Source* src;
  YAML::Node node;
  std::string path;
  YAML::Mark mark;

  [[noreturn]] void fail(const std::string& what, const std::string& hint = {}) const {
    throw Error(path + ": " + what, src->where(path, mark), hint);
  }
  void check(bool ok, const std::string& what) const {
    if (!ok) fail(what);
  }
  Field at(std::size_t i) const {
    YAML::Node e = node[i];
    YAML::Mark m = e.Mark().is_null() ? mark : e.Mark();
    return {src, e, detail::cat(path, "[", i, "]"), m};
  }
};

long long as_int(const Field& f) {
  long long v = 0;
  if (!f.node.IsScalar() || !YAML::convert<long long>::decode(f.node, v))
    f.fail("expected integer, got " + describe(f.node));
  return v;
}

int as_int32(const Field& f) {
  long long v = as_int(f);
  f.check(v >= INT_MIN && v <= INT_MAX, detail::cat("integer ", v, " is out of range"));
  return static_cast<int>(v);
}

double as_number(const Field& f) {
  double v = 0;
  if (!f.node.IsScalar() || !YAML::convert<double>::decode(f.node, v))
    f.fail("expected number, got " + describe(f.node));
  return v;
}

bool as_bool(const Field& f) {
  bool v = false;
  if (!f.node.IsScalar() || !YAML::convert<bool>::decode(f.node, v))
    f.fail("expected bool, got " + describe(f.node));
  return v;
}

std::string as_string(const Field& f) {
  if (!f.node.IsScalar()) f.fail("expected string, got " + describe(f.node));
  return f.node.Scalar();
}

std::string as_enum(const Field& f, std::initializer_list<const char*> allowed) {
  std::string v = as_string(f);
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return v;
    list += list.empty() ? a : std::string(", ") + a;
  }
  f.fail("unknown value '" + v + "'", "allowed: " + list);
}

template <class T>
std::vector<T> as_list(const Field& f, T (*elem)(const Field&)) {
  if (!f.node.IsSequence()) f.fail("expected list, got " + describe(f.node));
  std::vector<T> out;
  for (std::size_t i = 0; i < f.node.size(); ++i) out.push_back(elem(f.at(i)));
  return out;
}

// A mapping section: fields are taken by name, and finish() rejects every key not taken.
class Section {
 public:
  Section(const Field& self) : self_(self) {
    if (self.node.IsDefined() && !self.node.IsNull() && !self.node.IsMap())
      self.fail("expected a mapping, got " + describe(self.node));
  }

  // The field `key`, or nullopt when it is absent (an explicit null counts as present).
  std::optional<Field> take(const std::string& key) {
    known_.push_back(key);
    if (!self_.node.IsMap()) return std::nullopt;
    for (auto it = self_.node.begin(); it != self_.node.end(); ++it) {
      if (it->first.Scalar() != key) continue;
      YAML::Mark m = it->second.Mark().is_null() ? it->first.Mark() : it->second.Mark();
      return Field{self_.src, it->second, child_path(key), m};
    }
    return std::nullopt;
  }

  template <class T, class Parse>
  void get(const std::string& key, T& out, Parse parse) {
    if (auto f = take(key)) out = parse(*f);
  }

  void finish() const {
    if (!self_.node.IsMap()) return;
    for (auto it = self_.node.begin(); it != self_.node.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
      std::string best;
      std::size_t best_d = SIZE_MAX;
      for (const auto& k : known_) {
        std::size_t d = edit_distance(key, k);
        if (d < best_d) best_d = d, best = k;
      }
      std::string hint;
      if (!best.empty() && best_d <= std::max<std::size_t>(2, key.size() / 3))
        hint = "did you mean '" + child_path(best) + "'?";
      Field f{self_.src, it->second, child_path(key), it->first.Mark()};
      f.fail("unknown key", hint);
    }
  }

 private:
  std::string child_path(const std::string& key) const {
    return self_.path.empty() ? key : self_.path + "." + key;
  }
  Field self_;
  std::vector<std::string> known_;
};

// Range predicates bound into parsers, so each get() line reads as "key, type, range".
auto int_at_least(int lo) {
  return [lo](const Field& f) {
    int v = as_int32(f);
    f.check(v >= lo, detail::cat("must be >= ", lo, ", got ", v));
    return v;
  };
}
auto num_at_least(double lo) {
  return [lo](const Field& f) {
    double v = as_number(f);
    f.check(v >= lo, detail::cat("must be >= ", lo, ", got ", v));
    return v;
  };
}
auto num_positive() {
  return [](const Field& f) {
    double v = as_number(f);
    f.check(v > 0, detail::cat("must be > 0, got ", v));
    return v;
  };
}
auto num_unit(bool closed_top) {  // [0, 1) or [0, 1]
  return [closed_top](const Field& f) {
    double v = as_number(f);
    f.check(v >= 0 && (closed_top ? v <= 1 : v < 1),
            detail::cat("must be in [0, 1", closed_top ? "]" : ")", ", got ", v));
    return v;
  };
}
auto from_dataset_or_positive() {
  return [](const Field& f) {
    int v = as_int32(f);
    f.check(v == -1 || v >= 1, detail::cat("must be -1 (from the dataset) or >= 1, got ", v));
    return v;
  };
}

void read_model(Section s, ModelConfig& m) {
  s.get("name", m.name, [](const Field& f) {
    std::string v = as_string(f);
    f.check(!v.empty(), "must not be empty");
    return v;
  });
  s.get("num_classes", m.num_classes, int_at_least(1));
  s.get("in_channels", m.in_channels, from_dataset_or_positive());
  s.get("image_size", m.image_size, from_dataset_or_positive());
  s.get("hidden", m.hidden, [](const Field& f) {
    std::vector<int> out;
    if (!f.node.IsSequence()) f.fail("expected list, got " + describe(f.node));
    for (std::size_t i = 0; i < f.node.size(); ++i) out.push_back(int_at_least(1)(f.at(i)));
    return out;
  });
  s.get("batch_norm", m.batch_norm, as_bool);
  s.get("shortcut", m.shortcut, [](const Field& f) { return as_enum(f, {"A", "B"}); });
  s.get("init_from", m.init_from, as_string);
  s.finish();
}

void read_data(Section s, DataConfig& d) {
  s.get("dataset", d.dataset, [](const Field& f) {
    return as_enum(f, {"fashion_mnist", "mnist", "cifar10", "cifar100", "synthetic"});
  });
  s.get("path", d.path, as_string);
  if (auto f = s.take("normalize"); f && !f->node.IsNull()) {
    Section n(*f);
    NormalizeConfig nc;
    auto mean = n.take("mean"), std = n.take("std");
    if (!mean || !std) f->fail("needs both 'mean' and 'std'");
    nc.mean = as_list(*mean, as_number);
    nc.std = as_list(*std, as_number);
    mean->check(!nc.mean.empty(), "must not be empty");
    std->check(nc.std.size() == nc.mean.size(),
               detail::cat("has ", nc.std.size(), " entries but mean has ", nc.mean.size()));
    for (std::size_t i = 0; i < nc.std.size(); ++i) std->at(i).check(nc.std[i] > 0, "must be > 0");
    n.finish();
    d.normalize = nc;
  }
  if (auto f = s.take("augment")) {
    Section a(*f);
    a.get("random_crop_padding", d.augment.random_crop_padding, int_at_least(0));
    a.get("horizontal_flip", d.augment.horizontal_flip, as_bool);
    a.finish();
  }
  if (auto f = s.take("synthetic")) {
    Section y(*f);
    y.get("train_size", d.synthetic.train_size, int_at_least(1));
    y.get("test_size", d.synthetic.test_size, int_at_least(1));
    y.get("channels", d.synthetic.channels, int_at_least(1));
    y.get("image_size", d.synthetic.image_size, int_at_least(1));
    y.get("classes", d.synthetic.classes, int_at_least(2));
    y.finish();
  }
  s.finish();
}

void read_optim(Section s, OptimConfig& o) {
  s.get("name", o.name, [](const Field& f) { return as_enum(f, {"sgd", "adam", "adamw"}); });
  s.get("lr", o.lr, num_at_least(0));
  s.get("momentum", o.momentum, num_unit(false));
  s.get("nesterov", o.nesterov, as_bool);
  s.get("weight_decay", o.weight_decay, num_at_least(0));
  s.get("betas", o.betas, [](const Field& f) {
    if (!f.node.IsSequence()) f.fail("expected list, got " + describe(f.node));
    f.check(f.node.size() == 2, detail::cat("expected 2 entries, got ", f.node.size()));
    return std::vector<double>{num_unit(false)(f.at(0)), num_unit(false)(f.at(1))};
  });
  s.get("eps", o.eps, num_positive());
  s.get("clip_grad_norm", o.clip_grad_norm, num_at_least(0));
  if (auto f = s.take("groups")) {
    if (!f->node.IsSequence()) f->fail("expected list, got " + describe(f->node));
    o.groups.clear();
    for (std::size_t i = 0; i < f->node.size(); ++i) {
      Field e = f->at(i);
      Section g(e);
      ParamGroupConfig pg;
      auto match = g.take("match");
      if (!match) e.fail("needs a 'match' glob");
      pg.match = as_string(*match);
      match->check(!pg.match.empty(), "must not be empty");
      if (auto lr = g.take("lr")) pg.lr = num_at_least(0)(*lr);
      if (auto wd = g.take("weight_decay")) pg.weight_decay = num_at_least(0)(*wd);
      g.finish();
      o.groups.push_back(pg);
    }
  }
  s.finish();
}

void read_schedule(Section s, ScheduleConfig& c) {
  s.get("name", c.name,
        [](const Field& f) { return as_enum(f, {"constant", "step", "multistep", "cosine"}); });
  s.get("step_size", c.step_size, int_at_least(1));
  s.get("gamma", c.gamma, num_positive());
  s.get("milestones", c.milestones, [](const Field& f) {
    if (!f.node.IsSequence()) f.fail("expected list, got " + describe(f.node));
    std::vector<int> out;
    for (std::size_t i = 0; i < f.node.size(); ++i) {
      Field e = f.at(i);
      int v = int_at_least(1)(e);
      e.check(out.empty() || v > out.back(), "milestones must be strictly increasing");
      out.push_back(v);
    }
    return out;
  });
  s.get("eta_min", c.eta_min, num_at_least(0));
  s.get("warmup_epochs", c.warmup_epochs, int_at_least(0));
  s.get("warmup_start_factor", c.warmup_start_factor, num_unit(true));
  s.get("per_iteration", c.per_iteration, as_bool);
  s.finish();
}

void read_train(Section s, TrainConfig& t) {
  s.get("epochs", t.epochs, int_at_least(1));
  s.get("batch_size", t.batch_size, int_at_least(1));
  s.get("seed", t.seed, [](const Field& f) {
    long long v = as_int(f);
    f.check(v >= 0, detail::cat("must be >= 0, got ", v));
    return static_cast<std::uint64_t>(v);
  });
  s.get("threads", t.threads, int_at_least(1));
  s.get("eval_interval", t.eval_interval, int_at_least(1));
  s.get("device", t.device, [](const Field& f) {
    std::string v = as_string(f);
    bool ok = v == "cpu" || v == "cuda";
    if (!ok && v.rfind("cuda:", 0) == 0 && v.size() > 5)
      ok = std::all_of(v.begin() + 5, v.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!ok) f.fail("unknown value '" + v + "'", "allowed: cpu, cuda, cuda:N");
    return v;
  });
  s.get("deterministic", t.deterministic, as_bool);
  s.get("allow_tf32", t.allow_tf32, as_bool);
  s.get("bn_recalibration", t.bn_recalibration, int_at_least(0));
  s.finish();
}

void read_output(Section s, OutputConfig& o) {
  s.get("dir", o.dir, [](const Field& f) {
    std::string v = as_string(f);
    f.check(!v.empty(), "must not be empty");
    return v;
  });
  s.get("name", o.name, as_string);
  s.finish();
}

YAML::Node parse_yaml(const std::string& text, const std::string& where_prefix, bool is_file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    std::string where = is_file ? detail::cat(where_prefix, ":", e.mark.line + 1, ":", e.mark.column + 1)
                                : where_prefix;
    throw Error("YAML syntax error: " + e.msg, where);
  }
  check_unique_keys(root, where_prefix, is_file);
  return root;
}

// Writes one "a.b.c=value" into the tree, creating the maps on the way; `where` names the
// option it came from.
void set_path(YAML::Node& root, const std::string& text, const std::string& where) {
  const std::string ctx = where + " " + text;
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw Error("expected key.path=value", ctx);
  std::string key = text.substr(0, eq);
  YAML::Node value = parse_yaml(text.substr(eq + 1), ctx, false);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) {
    if (p.empty()) throw Error("empty key segment in '" + key + "'", ctx);
    parts.push_back(p);
  }
  if (key.back() == '.') throw Error("empty key segment in '" + key + "'", ctx);
  // reset() rebinds the handle; plain assignment would overwrite the node it points at.
  YAML::Node cur;
  cur.reset(root);
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (cur.IsDefined() && !cur.IsNull() && !cur.IsMap()) {
      std::string path;
      for (std::size_t j = 0; j < i; ++j) path += (j ? "." : "") + parts[j];
      throw Error(path + ": is " + describe(cur) + ", cannot set '" + parts[i] + "' inside it", ctx);
    }
    YAML::Node next = cur[parts[i]];
    cur.reset(next);
  }
  if (cur.IsDefined() && !cur.IsNull() && !cur.IsMap())
    throw Error("cannot set '" + parts.back() + "' inside " + describe(cur), ctx);
  cur[parts.back()] = value;
}

void apply_overrides(YAML::Node& root, const std::vector<std::string>& overrides, Source& src) {
  for (const auto& ov : overrides) {
    std::string text = ov.rfind("--set ", 0) == 0 ? ov.substr(6) : ov;
    if (!root.IsMap() && !root.IsNull() && root.IsDefined())
      throw Error("the config is not a mapping", src.file);
    auto eq = text.find('=');
    if (eq != std::string::npos && eq > 0) src.sets.emplace_back(text.substr(0, eq), text);
    set_path(root, text, "--set");
  }
}

ExperimentConfig load_tree(YAML::Node root, const std::string& name,
                           const std::vector<std::string>& overrides) {
  Source src{name, {}};
  // An empty document is a handle without a node; give overrides a map to write into.
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  apply_overrides(root, overrides, src);
  Field top{&src, root, "", root.Mark()};
  if (root.IsDefined() && !root.IsNull() && !root.IsMap())
    throw Error("expected a mapping of sections, got " + describe(root), src.where("", root.Mark()));

  ExperimentConfig c;
  Section s(top);
  if (auto f = s.take("model")) read_model(Section(*f), c.model);
  if (auto f = s.take("data")) read_data(Section(*f), c.data);
  if (auto f = s.take("optim")) read_optim(Section(*f), c.optim);
  if (auto f = s.take("schedule")) read_schedule(Section(*f), c.schedule);
  if (auto f = s.take("train")) read_train(Section(*f), c.train);
  if (auto f = s.take("quant"); f && !f->node.IsNull()) {
    if (!f->node.IsMap()) f->fail("expected a mapping, got " + describe(f->node));
    YAML::Emitter out;
    out << f->node;
    c.quant.yaml = out.c_str();
  }
  if (auto f = s.take("output")) read_output(Section(*f), c.output);
  s.finish();
  if (c.output.name.empty()) c.output.name = std::filesystem::path(name).stem().string();
  return c;
}

}  // namespace

std::string apply_assignments(const std::string& yaml, const std::vector<std::string>& assignments,
                              const std::string& where) {
  YAML::Node root = parse_yaml(yaml, where, false);
  if (root.IsDefined() && !root.IsNull() && !root.IsMap()) throw Error("expected a mapping, got " + describe(root), where);
  for (const auto& a : assignments) set_path(root, a, where);
  YAML::Emitter out;
  out << YAML::Flow << root;
  return out.c_str();
}

ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open config file", path, "check the path");
  std::stringstream text;
  text << in.rdbuf();
  return load_tree(parse_yaml(text.str(), path, true), path, overrides);
}

ExperimentConfig load_config_string(const std::string& yaml, const std::string& name_for_errors,
                                    const std::vector<std::string>& overrides) {
  return load_tree(parse_yaml(yaml, name_for_errors, true), name_for_errors, overrides);
}

}  // namespace lowbit
