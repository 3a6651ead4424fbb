// A finished or interrupted run, rebuilt from its directory: for `megalodon eval`, `export`,
// `lm-eval` and `generate` (the run directory's files: harness/train/trainer.h).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/config/config.h"
#include "harness/task.h"

namespace mgl::harness {

// The resolved config (with `overrides` applied), the task and its model with the chosen
// checkpoint loaded ("best", "latest" or a file).
struct LoadedRun {
  Config cfg;
  std::unique_ptr<Task> task;
  std::shared_ptr<torch::nn::Module> model;
};
LoadedRun load_run(const std::filesystem::path& run_dir, const std::string& which,
                   const std::vector<std::string>& overrides);

// Evaluates a run's best (or latest) checkpoint on a split; used by `megalodon eval`.
std::map<std::string, double> evaluate_run(const std::filesystem::path& run_dir, const std::string& split,
                                           const std::string& which, const std::vector<std::string>& overrides);

// Writes a run's best (or latest) checkpoint as `<out>/model.safetensors` + `<out>/config.json`
// (official parameter names; see harness/io/weights.h). Returns the spec's architecture.
std::string export_run(const std::filesystem::path& run_dir, const std::string& which, const std::filesystem::path& out,
                       const std::vector<std::string>& overrides);

}  // namespace mgl::harness
