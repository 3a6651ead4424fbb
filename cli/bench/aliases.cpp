// The old spellings of the benchmarks, as top-level commands and a data tool (see aliases.h).
#include "cli/bench/aliases.h"

#include <cstdio>

#include "cli/bench/bench.h"
#include "cli/commands.h"
#include "cli/data/data.h"

namespace mgl::cli {

int run_alias(const char* old_spelling, const char* op, const std::vector<std::string>& args) {
  std::fprintf(stderr, "megalodon %s: now `megalodon bench %s` (this spelling is kept for one release)\n",
               old_spelling, op);
  return bench_op(op).run(args);
}

namespace {

int bench_cema(const std::vector<std::string>& a) { return run_alias("bench-cema", "cema", a); }
int bench_tsn(const std::vector<std::string>& a) { return run_alias("bench-tsn", "timestep-norm", a); }
int bench_dist(const std::vector<std::string>& a) { return run_alias("bench-dist", "dist", a); }
int bench_data(const std::vector<std::string>& a) { return run_alias("bench-data", "data", a); }

const Command kBenchCema{"bench-cema", "old spelling of `bench cema` (kept for one release)", bench_cema};
const Command kBenchTsn{"bench-tsn", "old spelling of `bench timestep-norm` (kept for one release)", bench_tsn};
const Command kBenchDist{"bench-dist", "old spelling of `bench dist` (kept for one release)", bench_dist};
const Command kBenchData{"bench-data", "old spelling of `bench data` (kept for one release)", bench_data};

#ifdef MEGALODON_HAS_VISION
int augment_bench(const std::vector<std::string>& a) { return run_alias("data augment-bench", "augment", a); }
const DataTool kAugmentBench{"augment-bench", "old spelling of `megalodon bench augment` (kept for one release)",
                             augment_bench};
#endif

}  // namespace
}  // namespace mgl::cli
