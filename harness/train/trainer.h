// The training loop: optimizer steps with warm-up schedules, clipping and accumulation; periodic
// evaluation with best-checkpoint selection and early stopping; atomic, resumable checkpoints
// (model, optimizer, schedule position, data position, RNG); a step line and metrics.jsonl.
//
// Run directory (see README "Run directories"; run_record.h, checkpoint.h):
//   config.toml     the resolved configuration     run.json      seed, git, versions, device
//   metrics.jsonl   one JSON object per log line    final.json    written when the run finishes
//   checkpoints/step_<N>.pt, best.pt                 (torch archives; atomic temp + rename)
//
// harness/train/: this loop (trainer.cpp), the data loader, optimizers and schedules (optim.h),
// bf16 autocast, checkpoints, the run record and the step line (progress.h).
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "harness/config/config.h"
#include "harness/task.h"
#include "harness/train/run_record.h"

namespace mgl::harness {

struct TrainOptions {
  bool resume = false;       // continue from the latest checkpoint in the run directory
  std::string command_line;  // recorded in run.json
};

struct TrainResult {
  std::filesystem::path run_dir;
  int64_t steps = 0;
  bool early_stopped = false;
  std::map<std::string, double> metrics;  // "val/accuracy", "test/loss", ...
};

TrainResult train(const Config& cfg, const TrainOptions& options);

// A finished or interrupted run, rebuilt from its directory: the resolved config (with `overrides`
// applied), the task and its model with the chosen checkpoint loaded ("best", "latest" or a file).
struct LoadedRun {
  Config cfg;
  std::unique_ptr<Task> task;
  std::shared_ptr<torch::nn::Module> model;
};
LoadedRun load_run(const std::filesystem::path& run_dir, const std::string& which,
                   const std::vector<std::string>& overrides);
// The device a config asks for (run.device: auto, cpu, cuda).
torch::Device run_device(const Config& cfg);

// Evaluates a run's best (or latest) checkpoint on a split; used by `megalodon eval`.
std::map<std::string, double> evaluate_run(const std::filesystem::path& run_dir, const std::string& split,
                                           const std::string& which, const std::vector<std::string>& overrides);

// Writes a run's best (or latest) checkpoint as `<out>/model.safetensors` + `<out>/config.json`
// (official parameter names; see harness/io/weights.h). Returns the spec's architecture.
std::string export_run(const std::filesystem::path& run_dir, const std::string& which, const std::filesystem::path& out,
                       const std::vector<std::string>& overrides);

}  // namespace mgl::harness
