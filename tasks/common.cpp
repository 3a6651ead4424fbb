#include "tasks/common.h"

#include <fmt/format.h>

namespace mgl::tasks {

std::filesystem::path task_root(const harness::Config& cfg, const std::string& expected) {
  const std::filesystem::path root = cfg.get_string("task.root");
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec))
    throw harness::ConfigError(cfg.origin("task.root"), "task.root",
                               fmt::format("'{}' is not a directory (expected {})", root.string(), expected));
  return root;
}

int64_t split_limit(const harness::Config& cfg, int split) {
  return cfg.get_int(kSplitLimitKeys.at(static_cast<size_t>(split)));
}

void add_split_limits(harness::Schema& s, const std::string& train_doc, const std::string& val_doc,
                      const std::string& test_doc) {
  const std::string docs[3] = {train_doc, val_doc, test_doc};
  for (int i = 0; i < 3; ++i)
    s.add_int(kSplitLimitKeys[static_cast<size_t>(i)], -1, docs[i] + "; -1 = all",
              harness::Range::at_least(0).or_value(-1));
}

}  // namespace mgl::tasks
