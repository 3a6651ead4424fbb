// What every task adapter's set-up shares: the data folder (`task.root`) and the per-split limits
// (`task.{train,val,test}_limit`). An adapter states only what is its own: the layout it expects
// and how a limited split is chosen.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

#include "harness/config/config.h"
#include "harness/config/schema.h"

namespace mgl::tasks {

// `task.root` as a folder; otherwise a ConfigError naming the key and its origin:
// "'<root>' is not a directory (expected <expected>)".
std::filesystem::path task_root(const harness::Config& cfg, const std::string& expected);

// The limit keys of the three splits, in the order train, val, test.
inline constexpr std::array<const char*, 3> kSplitLimitKeys{"task.train_limit", "task.val_limit",
                                                            "task.test_limit"};
// `task.<split>_limit` of split 0 (train), 1 (val) or 2 (test); -1 = all.
int64_t split_limit(const harness::Config& cfg, int split);

// Declares the three limit keys (default -1 = all, else >= 0). Each doc says how a limited split
// is chosen, e.g. "use only the first N training examples"; "; -1 = all" is appended.
void add_split_limits(harness::Schema& s, const std::string& train_doc, const std::string& val_doc,
                      const std::string& test_doc);

}  // namespace mgl::tasks
