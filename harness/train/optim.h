// Optimizers and learning-rate schedules, found by name (spec §5.3).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "harness/config/config.h"
#include "harness/registry.h"

namespace mgl::harness {

// What kind of parameter a state-dict name is, for `optim.no_decay`: "norm" (any *norm* module),
// "bias" (biases and attention offsets), "cema" (the EMA's parameters), "embedding", or "weight".
std::string parameter_kind(const std::string& name);

// Parameters are split into a decayed group and (when `optim.no_decay` names kinds) a group
// with weight decay 0. The official code has no groups: everything decays.
struct OptimizerEntry {
  std::string summary;
  std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::optim::OptimizerParamGroup>,
                                                         const Config&)>
      create;
};
Registry<OptimizerEntry>& optimizer_registry();
std::vector<std::string> optimizer_names();

struct OptimizerBuild {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  int64_t decayed = 0, exempt = 0;  // parameter counts per group, for the run record
};
OptimizerBuild make_optimizer(const Config& cfg, torch::nn::Module& model);

struct ScheduleParams {
  int64_t warmup = 2000, total = 0;
  double init_ratio = 1e-4, end_ratio = 0.01, cycles = 1.0;
};
// The LambdaLR multiplier at `step` (spec §5.3): warm-up from init_ratio to 1, then the named
// decay with s = (step − warmup)/(total − warmup).
using ScheduleFn = double (*)(int64_t step, const ScheduleParams&);
struct ScheduleEntry {
  std::string summary;
  ScheduleFn multiplier;
};
Registry<ScheduleEntry>& schedule_registry();
std::vector<std::string> schedule_names();
ScheduleParams schedule_params(const Config& cfg);
double lr_multiplier(const std::string& schedule, int64_t step, const ScheduleParams& p);
void set_learning_rate(torch::optim::Optimizer& opt, double lr);

}  // namespace mgl::harness
