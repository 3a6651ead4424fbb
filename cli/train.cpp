// `megalodon train` and `megalodon eval`.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "harness/experiment.h"
#include "harness/run.h"
#include "harness/train/trainer.h"

namespace mgl::cli {
namespace {

const char* kTrainHelp = R"(usage: megalodon train <experiment.toml> [key.path=value ...] [--resume]
                       [--print-config] [--help-config]

Trains one run of an experiment. The experiment file composes groups from configs/ through its
`defaults` list; `key.path=value` overrides any key (typed and validated before anything runs);
`group=name` swaps a defaults entry (e.g. model=fmnist_small).

  --resume         continue from the latest checkpoint in the run directory
  --print-config   print the resolved configuration and exit
  --help-config    list every key of this experiment's schema (type, default, meaning) and exit

The run directory is <run.root>/<experiment>/<run.variant>/seed<seed> unless run.dir is set.
)";

std::string join_command(const std::vector<std::string>& args, const char* cmd) {
  std::string s = std::string("megalodon ") + cmd;
  for (const auto& a : args) s += " " + a;
  return s;
}

int train_main(const std::vector<std::string>& args) {
  auto p = parse_args(args, {}, {"--help", "--resume", "--print-config", "--help-config"});
  if (p.flag("--help")) {
    std::fputs(kTrainHelp, stdout);
    return 0;
  }
  if (p.positional.size() != 1) {
    std::fputs(kTrainHelp, stderr);
    return 2;
  }
  if (p.flag("--help-config")) {
    harness::LoadOptions lo;
    lo.overrides = p.overrides;
    auto composed = harness::ConfigLoader::compose(p.positional[0], lo);
    std::fputs(harness::experiment_schema(composed).describe().c_str(), stdout);
    return 0;
  }
  harness::Config cfg = harness::load_experiment(p.positional[0], p.overrides);
  if (p.flag("--print-config")) {
    std::fputs(cfg.to_toml().c_str(), stdout);
    return 0;
  }
  harness::TrainOptions o;
  o.resume = p.flag("--resume");
  o.command_line = join_command(args, "train");
  auto r = harness::train(cfg, o);
  std::printf("finished %s after %lld steps%s\n", r.run_dir.c_str(), (long long)r.steps,
              r.early_stopped ? " (early stop)" : "");
  for (const auto& [k, v] : r.metrics) std::printf("  %-16s %.4f\n", k.c_str(), v);
  return 0;
}

const char* kEvalHelp = R"(usage: megalodon eval <run_dir> [--split val|test|train] [--checkpoint best|latest|PATH]
                      [key.path=value ...]

Evaluates a run's checkpoint on a split with the run's resolved configuration (overrides may
change e.g. task.root or trainer.eval_batch_size). Prints split/metric values.
)";

int eval_main(const std::vector<std::string>& args) {
  auto p = parse_args(args, {"--split", "--checkpoint"}, {"--help"});
  if (p.flag("--help")) {
    std::fputs(kEvalHelp, stdout);
    return 0;
  }
  if (p.positional.size() != 1) {
    std::fputs(kEvalHelp, stderr);
    return 2;
  }
  auto m = harness::evaluate_run(p.positional[0], p.option("--split", "test"), p.option("--checkpoint", "best"),
                                 p.overrides);
  for (const auto& [k, v] : m) std::printf("%-16s %.6f\n", k.c_str(), v);
  return 0;
}

const char* kExportHelp = R"(usage: megalodon export <run_dir> --out DIR [--checkpoint best|latest|PATH]

Writes the run's checkpoint as DIR/model.safetensors (official parameter names) and DIR/config.json
(architecture and model configuration), the interchange format `megalodon forward` and PyTorch
code read.
)";

int export_main(const std::vector<std::string>& args) {
  auto p = parse_args(args, {"--out", "--checkpoint"}, {"--help"});
  if (p.flag("--help")) {
    std::fputs(kExportHelp, stdout);
    return 0;
  }
  if (p.positional.size() != 1 || p.option("--out").empty()) {
    std::fputs(kExportHelp, stderr);
    return 2;
  }
  const std::string arch =
      harness::export_run(p.positional[0], p.option("--checkpoint", "best"), p.option("--out"), p.overrides);
  std::printf("wrote %s/model.safetensors and %s/config.json (%s)\n", p.option("--out").c_str(),
              p.option("--out").c_str(), arch.c_str());
  return 0;
}

const Command kTrain{"train", "train one run of an experiment (TOML config + key=value overrides)", train_main};
const Command kEval{"eval", "evaluate a run's best or latest checkpoint on a split", eval_main};
const Command kExport{"export", "write a run's checkpoint as safetensors + config.json", export_main};

}  // namespace
}  // namespace mgl::cli
