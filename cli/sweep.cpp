// `megalodon sweep`.
#include <unistd.h>

#include <climits>
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "harness/sweep.h"

namespace mgl::cli {
namespace {

const char* kSweepHelp = R"(usage: megalodon sweep <experiment.toml> [key.path=value ...] [--jobs N] [--dry-run]

Runs every variant of an experiment ([[sweep.variant]] entries, times the [sweep.grid] product)
for each of sweep.seeds, each as a `megalodon train` child process with its own run directory
under <run.root>/<experiment>/ and its log in log.txt there. All configurations are validated
before the first run starts. Finished runs are skipped and interrupted ones resumed, so running
the same command again continues an interrupted sweep. A failed run is reported in sweep.json and
the others go on (sweep.on_failure = "stop" changes that). The exit status is 1 if any run failed.

  --jobs N     runs in parallel (default: sweep.jobs)
  --dry-run    list the runs and their commands without running them

Then `megalodon table <run.root>/<experiment>` writes the table and the curves.
)";

int sweep_main(const std::vector<std::string>& args) {
  auto p = parse_args(args, {"--jobs"}, {"--help", "--dry-run"});
  if (p.flag("--help")) {
    std::fputs(kSweepHelp, stdout);
    return 0;
  }
  if (p.positional.size() != 1) {
    std::fputs(kSweepHelp, stderr);
    return 2;
  }
  harness::SweepPlan plan = harness::plan_sweep(p.positional[0], p.overrides);
  harness::SweepOptions o;
  char exe[PATH_MAX] = {0};
  if (readlink("/proc/self/exe", exe, sizeof exe - 1) <= 0) throw std::runtime_error("cannot resolve /proc/self/exe");
  o.executable = exe;
  o.jobs = p.option("--jobs").empty() ? 0 : std::stoll(p.option("--jobs"));
  o.dry_run = p.flag("--dry-run");
  std::printf("sweep %s: %zu variants × %zu seeds = %zu runs in %s\n", plan.experiment.c_str(), plan.variants.size(),
              plan.seeds.size(), plan.runs.size(), plan.sweep_dir.c_str());
  auto s = harness::run_sweep(plan, o);
  if (!o.dry_run)
    std::printf("sweep %s: %d finished, %d skipped (already finished), %d failed\n", plan.experiment.c_str(), s.finished,
                s.skipped, s.failed);
  return s.failed > 0 ? 1 : 0;
}

const Command kSweep{"sweep", "run an experiment's variants × grid × seeds; resumable", sweep_main};

}  // namespace
}  // namespace mgl::cli
