// `megalodon bench`: dispatches to the registered benchmark ops (cli/bench/*.cpp).
#include "cli/bench/bench.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "cli/bench/aliases.h"
#include "cli/commands.h"

namespace mgl::cli {
namespace {

std::vector<const BenchOp*>& ops() {
  static std::vector<const BenchOp*> o;
  return o;
}

void usage(FILE* out) {
  std::fprintf(out, "usage: megalodon bench <op> [options]   (megalodon bench <op> --help)\n\nops:\n");
  auto all = ops();
  std::sort(all.begin(), all.end(), [](auto a, auto b) { return std::strcmp(a->name, b->name) < 0; });
  for (const auto* o : all) std::fprintf(out, "  %-14s %s\n", o->name, o->summary);
}

int bench_main(const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    usage(stdout);
    return 0;
  }
  // The previous release's `megalodon bench [model options]`: no op named, the model benchmark.
  if (args.empty() || args[0].rfind("-", 0) == 0) return run_alias("bench", "model", args);
  for (const auto* o : ops())
    if (args[0] == o->name) return o->run(std::vector<std::string>(args.begin() + 1, args.end()));
  std::fprintf(stderr, "megalodon bench: unknown op '%s'\n", args[0].c_str());
  usage(stderr);
  return 2;
}

const Command kBench{"bench", "benchmarks, one per op (megalodon bench --help lists them)",
                     bench_main};

}  // namespace

BenchOp::BenchOp(const char* n, const char* s, Fn r) : name(n), summary(s), run(r) { ops().push_back(this); }

const BenchOp& bench_op(const std::string& name) {
  for (const auto* o : ops())
    if (name == o->name) return *o;
  throw std::invalid_argument("no benchmark op '" + name + "'");
}

}  // namespace mgl::cli
