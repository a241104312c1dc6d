// `lowbit info CHECKPOINT`: the tensors, shapes and metadata of a safetensors file.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "../core/error.h"
#include "../core/safetensors.h"
#include "commands.h"

namespace lowbit::cli {
namespace {

struct InfoArgs {
  std::string checkpoint;
  bool json = false, config = false;
};

// Reserved names of training checkpoints (train/checkpoint.h) are grouped apart from the weights.
const char* group_of(const std::string& name) {
  if (name.rfind("@optim.", 0) == 0) return "optimizer";
  if (name.rfind("@rng.", 0) == 0) return "rng";
  return "model";
}

void run_info(const InfoArgs& a) {
  SafetensorsFile f = load_safetensors(a.checkpoint);
  if (a.json) {
    nlohmann::json j;
    j["path"] = a.checkpoint;
    j["metadata"] = f.metadata;
    j["tensors"] = nlohmann::json::array();
    for (const auto& [name, t] : f.tensors)
      j["tensors"].push_back({{"name", name},
                              {"group", group_of(name)},
                              {"dtype", std::string(dtype_name(t.dtype()))},
                              {"shape", t.shape()},
                              {"numel", t.numel()}});
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("%s\n", a.checkpoint.c_str());
  size_t width = 4;
  for (const auto& [name, t] : f.tensors) width = std::max(width, name.size());
  int64_t counts[3] = {0, 0, 0}, numel[3] = {0, 0, 0}, bytes = 0;
  std::printf("\n  %-*s  %-5s  %s\n", int(width), "name", "dtype", "shape");
  for (const auto& [name, t] : f.tensors) {
    std::printf("  %-*s  %-5s  %s\n", int(width), name.c_str(), std::string(dtype_name(t.dtype())).c_str(),
                shape_str(t.shape()).c_str());
    const std::string g = group_of(name);
    const int k = g == "model" ? 0 : g == "optimizer" ? 1 : 2;
    ++counts[k];
    numel[k] += t.numel();
    bytes += t.nbytes();
  }
  std::printf("\n  model: %lld tensors, %lld values", (long long)counts[0], (long long)numel[0]);
  if (counts[1] || counts[2])
    std::printf("; optimizer state: %lld tensors; generators: %lld", (long long)counts[1], (long long)counts[2]);
  std::printf("; %.2f MiB of data\n", double(bytes) / (1 << 20));
  if (!f.metadata.empty()) std::printf("\n  metadata:\n");
  for (const auto& [k, v] : f.metadata) {
    if (k == "config" && !a.config) {
      std::printf("    %-16s (%zu lines of YAML; --config prints it)\n", k.c_str(),
                  static_cast<size_t>(std::count(v.begin(), v.end(), '\n')));
      continue;
    }
    if (k == "config")
      std::printf("    config:\n%s\n", v.c_str());
    else
      std::printf("    %-16s %s\n", k.c_str(), v.c_str());
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "list the tensors, shapes and metadata of a checkpoint");
  cmd->add_option("checkpoint", a->checkpoint, "a .safetensors file")->required();
  cmd->add_flag("--json", a->json, "print as JSON");
  cmd->add_flag("--config", a->config, "print the embedded experiment config in full");
  cmd->callback([a] { run_info(*a); });
}

}  // namespace lowbit::cli
