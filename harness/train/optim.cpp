#include "harness/train/optim.h"

#include <cmath>

namespace mgl::harness {

std::string parameter_kind(const std::string& name) {
  auto dot = name.rfind('.');
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  const std::string path = "." + name;
  if (path.find(".cema.") != std::string::npos) return "cema";
  if (path.find("norm.") != std::string::npos) return "norm";  // timenorm, layernorm, rmsnorm, znorm, final_norm, ...
  if (leaf == "bias" || (leaf == "beta" && path.find(".mega.") != std::string::npos)) return "bias";
  // Token embeddings, and the learned positions / class token of the image encoders (timm exempts
  // those from weight decay too).
  if (path.rfind(".embed.", 0) == 0 || name == "positions" || name == "cls_token") return "embedding";
  return "weight";
}

Registry<OptimizerEntry>& optimizer_registry() {
  static Registry<OptimizerEntry> r("optimizer");
  return r;
}
Registry<ScheduleEntry>& schedule_registry() {
  static Registry<ScheduleEntry> r("schedule");
  return r;
}

namespace {

std::pair<double, double> betas_of(const Config& cfg) {
  auto b = cfg.get_floats("optim.betas");
  if (b.size() != 2 || b[0] < 0 || b[0] >= 1 || b[1] < 0 || b[1] >= 1)
    throw ConfigError(cfg.origin("optim.betas"), "optim.betas", "expected two values in [0, 1)");
  return {b[0], b[1]};
}

const bool registered_optimizers = [] {
  optimizer_registry().add(
      "adamw", {"AdamW (decoupled weight decay), the official optimizer",
                [](std::vector<torch::optim::OptimizerParamGroup> groups, const Config& cfg) {
                  auto [b1, b2] = betas_of(cfg);
                  auto opts = torch::optim::AdamWOptions(cfg.get_float("optim.lr"))
                                  .betas({b1, b2})
                                  .eps(cfg.get_float("optim.eps"))
                                  .weight_decay(cfg.get_float("optim.weight_decay"));
                  return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::AdamW(std::move(groups), opts));
                }});
  optimizer_registry().add(
      "adam", {"Adam (weight decay as an L2 term in the gradient)",
               [](std::vector<torch::optim::OptimizerParamGroup> groups, const Config& cfg) {
                 auto [b1, b2] = betas_of(cfg);
                 auto opts = torch::optim::AdamOptions(cfg.get_float("optim.lr"))
                                 .betas({b1, b2})
                                 .eps(cfg.get_float("optim.eps"))
                                 .weight_decay(cfg.get_float("optim.weight_decay"));
                 return std::unique_ptr<torch::optim::Optimizer>(new torch::optim::Adam(std::move(groups), opts));
               }});
  return true;
}();

double warmup_or(int64_t step, const ScheduleParams& p, double after) {
  if (step < p.warmup) return p.init_ratio + double(step) * (1.0 - p.init_ratio) / double(p.warmup);
  return after;
}
double progress(int64_t step, const ScheduleParams& p) {
  if (p.total <= p.warmup) return 1.0;
  return std::min(1.0, double(step - p.warmup) / double(p.total - p.warmup));
}

const bool registered_schedules = [] {
  schedule_registry().add("linear", {"warm-up, then linear decay to end_ratio (official default)",
                                     [](int64_t step, const ScheduleParams& p) {
                                       const double s = progress(step, p);
                                       return warmup_or(step, p, s * p.end_ratio + (1.0 - s));
                                     }});
  schedule_registry().add("cosine", {"warm-up, then cosine decay to end_ratio",
                                     [](int64_t step, const ScheduleParams& p) {
                                       const double s = progress(step, p);
                                       return warmup_or(step, p,
                                                        p.end_ratio + 0.5 * (1.0 - p.end_ratio) *
                                                                          (std::cos(M_PI * s * p.cycles) + 1.0));
                                     }});
  schedule_registry().add("constant", {"warm-up, then constant",
                                       [](int64_t step, const ScheduleParams& p) { return warmup_or(step, p, 1.0); }});
  return true;
}();

}  // namespace

std::vector<std::string> optimizer_names() {
  (void)registered_optimizers;
  return optimizer_registry().names();
}
std::vector<std::string> schedule_names() {
  (void)registered_schedules;
  return schedule_registry().names();
}

OptimizerBuild make_optimizer(const Config& cfg, torch::nn::Module& model) {
  const auto exempt_kinds = cfg.get_strings("optim.no_decay");
  for (const auto& k : exempt_kinds)
    if (k != "norm" && k != "bias" && k != "cema" && k != "embedding")
      throw ConfigError(cfg.origin("optim.no_decay"), "optim.no_decay",
                        "unknown parameter kind '" + k + "' (expected norm, bias, cema, embedding)");
  std::vector<torch::Tensor> decay, exempt;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) {
    if (!p.value().requires_grad()) continue;
    const std::string kind = parameter_kind(p.key());
    (std::find(exempt_kinds.begin(), exempt_kinds.end(), kind) != exempt_kinds.end() ? exempt : decay)
        .push_back(p.value());
  }
  OptimizerBuild out;
  for (auto& t : decay) out.decayed += t.numel();
  for (auto& t : exempt) out.exempt += t.numel();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay);
  const std::string name = cfg.get_string("optim.name");
  const auto& entry = optimizer_registry().at(name, "optim.name", cfg.origin("optim.name"));
  if (!exempt.empty()) {
    // The second group carries its own options with weight decay 0.
    auto probe = entry.create({torch::optim::OptimizerParamGroup(exempt)}, cfg);
    std::unique_ptr<torch::optim::OptimizerOptions> o = probe->param_groups()[0].options().clone();
    if (auto* a = dynamic_cast<torch::optim::AdamWOptions*>(o.get())) a->weight_decay(0);
    if (auto* a = dynamic_cast<torch::optim::AdamOptions*>(o.get())) a->weight_decay(0);
    groups.emplace_back(exempt, std::move(o));
  }
  out.optimizer = entry.create(std::move(groups), cfg);
  return out;
}

ScheduleParams schedule_params(const Config& cfg) {
  ScheduleParams p;
  p.warmup = cfg.get_int("schedule.warmup");
  p.total = cfg.get_int("schedule.total") > 0 ? cfg.get_int("schedule.total") : cfg.get_int("trainer.steps");
  p.init_ratio = cfg.get_float("schedule.init_ratio");
  p.end_ratio = cfg.get_float("schedule.end_ratio");
  p.cycles = cfg.get_float("schedule.cycles");
  if (p.warmup < 0) throw ConfigError(cfg.origin("schedule.warmup"), "schedule.warmup", "must be >= 0");
  return p;
}

double lr_multiplier(const std::string& schedule, int64_t step, const ScheduleParams& p) {
  (void)registered_schedules;
  return schedule_registry().at(schedule, "schedule.name").multiplier(step, p);
}

void set_learning_rate(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
}

}  // namespace mgl::harness
