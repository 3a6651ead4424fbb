// Sweeps: an experiment's `[[sweep.variant]]` list and `[sweep.grid]` product, times `sweep.seeds`,
// (a variant may name another experiment file: a suite such as the whole LRA table; a suite file
// without a task of its own is validated against the base schema only),
// each run a child `megalodon train` process in its own run directory under
// <run.root>/<experiment>/. Every run's configuration is validated before the first one starts.
// Finished runs (final.json) are skipped and interrupted ones resumed, so re-running an interrupted
// sweep continues it. A failing run is recorded in sweep.json and does not stop the others
// (unless sweep.on_failure = "stop").
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "harness/config/config.h"

namespace mgl::harness {

// One named variant of a sweep. `experiment_file`, when set, is the experiment its runs train
// (a suite sweep: e.g. the six LRA tasks, each its own experiment file); otherwise the sweep's own
// file. `row` / `column` place the variant in a two-way results table (e.g. model × task).
struct SweepVariant {
  std::string name;
  std::vector<std::string> overrides;
  std::filesystem::path experiment_file;
  std::string row, column;
};

struct SweepRun {
  std::string variant;
  std::filesystem::path experiment_file;  // what `megalodon train` runs
  int64_t seed = 1;
  std::vector<std::string> overrides;  // complete: experiment overrides + variant + seed + run.dir
  std::filesystem::path dir;
};

struct SweepPlan {
  std::string experiment;
  std::filesystem::path experiment_file, sweep_dir;
  std::vector<SweepVariant> variants;
  std::vector<int64_t> seeds;
  std::vector<SweepRun> runs;
  nlohmann::json table;  // the [table] section, for `megalodon table`
  int64_t jobs = 1;
  bool stop_on_failure = false;
};

SweepPlan plan_sweep(const std::filesystem::path& experiment_file, const std::vector<std::string>& overrides);

struct SweepOptions {
  std::filesystem::path executable;  // the megalodon binary
  int64_t jobs = 0;                  // 0: the plan's sweep.jobs
  bool dry_run = false;              // print the runs, run nothing
};

struct SweepSummary {
  int finished = 0, skipped = 0, failed = 0;
};
SweepSummary run_sweep(const SweepPlan& plan, const SweepOptions& options);

}  // namespace mgl::harness
