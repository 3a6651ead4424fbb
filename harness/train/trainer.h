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
// bf16 autocast, checkpoints, the run record and the step line (progress.h). A finished run is
// reloaded (eval, export) by harness/run.h.
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

// The device a config asks for (run.device: auto, cpu, cuda).
torch::Device run_device(const Config& cfg);

namespace dist {
class Context;
}
// The task's metrics of `model` on a split. With a process group, data-parallel over every rank (no
// chunk parallelism: each rank scores whole sequences) and the metric sums merged before
// finalising, so the metrics are exact.
std::map<std::string, double> evaluate_split(Task& task, Split split, const Config& cfg, const torch::Device& device,
                                             torch::nn::Module& model, dist::Context* dctx = nullptr);

}  // namespace mgl::harness
