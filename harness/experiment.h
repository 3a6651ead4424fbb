// The harness's own configuration keys (run, model, optim, schedule, trainer, sweep, table) and the
// schema of a composed experiment: those plus the keys of the task that `task.name` selects.
#pragma once
#include "harness/config/config.h"

namespace mgl::harness {

Schema base_schema();
// base_schema() + the selected task's keys. An unknown or missing task.name is a ConfigError.
Schema experiment_schema(const Config& composed);
// Compose + validate an experiment with the harness schema.
Config load_experiment(const fs::path& experiment_file, const std::vector<std::string>& overrides);

}  // namespace mgl::harness
