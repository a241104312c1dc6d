// load_trained_model: config from the checkpoint (or a file), model without data, strict load.
#include "load_model.h"

#include "../core/error.h"

namespace lowbit {

TrainedModel load_trained_model(const std::string& checkpoint, const std::string& config_path,
                                const std::vector<std::string>& overrides) {
  TrainedModel t;
  t.checkpoint = load_checkpoint(checkpoint);
  if (!config_path.empty()) {
    t.config = load_config(config_path, overrides);
  } else {
    LOWBIT_CHECK(!t.checkpoint.config_yaml.empty(), checkpoint, "has no embedded config (not written by ",
                 "lowbit train); pass the experiment file with --config");
    t.config = load_config_string(t.checkpoint.config_yaml, checkpoint + " (embedded config)", overrides);
  }
  Generator gen(t.config.train.seed);
  t.model = make_experiment_model(t.config, gen);
  LoadReport report = t.model.model->load_state_dict(t.checkpoint.model, /*strict=*/false);
  std::string problems;
  for (const auto& n : report.missing) problems += " missing '" + n + "';";
  for (const auto& n : report.unexpected) problems += " unexpected '" + n + "';";
  for (const auto& m : report.shape_mismatch)
    problems += " '" + m.name + "' is " + shape_str(m.got) + " in the file, the model wants " +
                shape_str(m.expected) + ";";
  LOWBIT_CHECK(problems.empty(), checkpoint, "does not fit model '", t.config.model.name, "' of its config:",
               problems);
  return t;
}

}  // namespace lowbit
