// `megalodon bench`: dispatches to the registered benchmark ops (cli/bench/*.cpp).
#include "cli/bench/bench.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "cli/bench/aliases.h"

namespace mgl::cli {
namespace {

CommandGroup& ops() {
  static CommandGroup o("bench", "op");
  return o;
}

int bench_main(const std::vector<std::string>& args) {
  // The previous release's `megalodon bench [model options]`: no op named, the model benchmark.
  if (args.empty() || (args[0].rfind("-", 0) == 0 && args[0] != "--help" && args[0] != "-h"))
    return run_alias("bench", "model", args);
  return ops().dispatch(args);
}

const Command kBench{"bench", "benchmarks, one per op (megalodon bench --help lists them)", bench_main};

}  // namespace

BenchOp::BenchOp(const char* n, const char* s, CommandFn r) : Subcommand{n, s, r} { ops().add(this); }

const Subcommand& bench_op(const std::string& name) {
  if (const Subcommand* o = ops().find(name)) return *o;
  throw std::invalid_argument("no benchmark op '" + name + "'");
}

double cpu_gemm_gflops() {
  const int64_t n = 2048;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    torch::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

}  // namespace mgl::cli
