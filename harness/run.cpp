// A finished or interrupted run, rebuilt from its directory (run.h).
#include "harness/run.h"

#include <fmt/format.h>

#include "harness/experiment.h"
#include "harness/io/weights.h"
#include "harness/train/checkpoint.h"
#include "harness/train/trainer.h"

namespace mgl::harness {

LoadedRun load_run(const fs::path& run_dir, const std::string& which, const std::vector<std::string>& overrides) {
  const fs::path cfg_file = run_dir / "config.toml";
  if (!fs::exists(cfg_file))
    throw std::runtime_error(fmt::format("{}: no config.toml (not a run directory)", run_dir.string()));
  LoadOptions lo;
  lo.overrides = overrides;
  lo.config_root = run_dir;  // the resolved config has no defaults list
  LoadedRun r;
  r.cfg = ConfigLoader::load(cfg_file, lo, experiment_schema);
  if (r.cfg.get_int("run.threads") > 0) torch::set_num_threads(static_cast<int>(r.cfg.get_int("run.threads")));
  fs::path ckpt;
  if (which == "best") {
    ckpt = run_dir / "best.pt";
  } else if (which == "latest") {
    auto all = list_checkpoints(run_dir / "checkpoints");
    if (!all.empty()) ckpt = all.back().second;
  } else {
    ckpt = which;
  }
  if (ckpt.empty() || !fs::exists(ckpt))
    throw std::runtime_error(fmt::format("{}: no '{}' checkpoint", run_dir.string(), which));
  torch::manual_seed(static_cast<uint64_t>(r.cfg.get_int("seed")));
  r.task = task_registry().at(r.cfg.get_string("task.name"), "task.name").create(r.cfg);
  r.model = r.task->build_model();
  load_checkpoint(ckpt, *r.model, nullptr);
  return r;
}


std::map<std::string, double> evaluate_run(const fs::path& run_dir, const std::string& split, const std::string& which,
                                           const std::vector<std::string>& overrides) {
  Split s;
  if (split == "train") s = Split::train;
  else if (split == "val") s = Split::val;
  else if (split == "test") s = Split::test;
  else throw std::invalid_argument("--split must be train, val or test");
  LoadedRun r = load_run(run_dir, which, overrides);
  const torch::Device device = run_device(r.cfg);
  r.model->to(device);
  std::map<std::string, double> out;
  for (const auto& [k, v] : evaluate_split(*r.task, s, r.cfg, device, *r.model)) out[split + "/" + k] = v;
  return out;
}

std::string export_run(const fs::path& run_dir, const std::string& which, const fs::path& out,
                       const std::vector<std::string>& overrides) {
  LoadedRun r = load_run(run_dir, which, overrides);
  auto spec = r.task->model_spec();
  if (!spec)
    throw std::runtime_error(fmt::format("task '{}' does not describe its model for export",
                                         r.cfg.get_string("task.name")));
  export_weights(*r.model, *spec, out);
  return spec->architecture;
}

}  // namespace mgl::harness
