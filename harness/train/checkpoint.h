// Checkpoints of a training run (README "Run directories"): checkpoints/step_<N>.pt holds the
// model, the optimizer, the trainer's position (step, data position, best value and its step, the
// evaluations without improvement, training time) and the CPU generator; best.pt holds the model
// alone. Files are torch archives written atomically (temp file, fsync, rename).
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <utility>
#include <vector>

#include "harness/train/data_loader.h"

namespace mgl::harness {

// Where a run stands: what a checkpoint restores besides the model and the optimizer.
struct TrainerState {
  int64_t step = 0;
  LoaderPosition data;
  double best = std::nan("");
  int64_t best_step = -1;
  int64_t bad_evals = 0;
  double train_seconds = 0;
};

// The step_<N>.pt files of `dir`, by step.
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& dir);
void save_checkpoint(const std::filesystem::path& path, torch::nn::Module& model, torch::optim::Optimizer& opt,
                     const TrainerState& s);
// Loads the model's weights; with an optimizer, also its state, the trainer's state and the CPU
// generator (a model-only file such as best.pt is read with opt = nullptr).
TrainerState load_checkpoint(const std::filesystem::path& path, torch::nn::Module& model,
                             torch::optim::Optimizer* opt);
void save_model_only(const std::filesystem::path& path, torch::nn::Module& model);
// Keeps the metric lines a checkpoint at `step` has seen; later lines belong to the lost part of an
// interrupted run and are dropped (so the resumed run writes them again, once).
void truncate_metrics(const std::filesystem::path& file, int64_t step);

}  // namespace mgl::harness
