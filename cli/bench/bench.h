// `megalodon bench <op>`: the benchmarks, one per op, each printing a table whose ratios are
// measured side by side in one run. An op registers itself from its own cli/bench/*.cpp file:
//   static const mgl::cli::BenchOp kCema{"cema", "one-line summary", bench_cema_main};
#pragma once
#include <string>

#include "cli/commands.h"

namespace mgl::cli {

struct BenchOp : Subcommand {
  BenchOp(const char* name, const char* summary, CommandFn run);
};

// The op registered as `name`; throws std::invalid_argument for an unknown name.
const Subcommand& bench_op(const std::string& name);

// fp32 2048² matmul GFLOP/s on this process's intra-op threads, the best of 5: the machine's GEMM
// rate, the denominator of the CPU benchmarks' "share of GEMM" columns.
double cpu_gemm_gflops();

}  // namespace mgl::cli
