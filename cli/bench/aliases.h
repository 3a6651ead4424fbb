// The previous release's spellings of the benchmarks (`bench` with model options, `bench-cema`,
// `bench-tsn`, `bench-dist`, `bench-data`, `data augment-bench`), kept for one release: each runs
// `megalodon bench <op>` after a one-line notice on stderr naming the new spelling. Removing them
// is deleting cli/bench/aliases.{h,cpp} and the one call in cli/bench/bench.cpp.
#pragma once
#include <string>
#include <vector>

namespace mgl::cli {

// Prints "megalodon <old>: now `megalodon bench <op>` ..." on stderr, then runs the op.
int run_alias(const char* old_spelling, const char* op, const std::vector<std::string>& args);

}  // namespace mgl::cli
