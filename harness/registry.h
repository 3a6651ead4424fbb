// Name → entry registries for tasks, models, optimizers and schedules. Entries register themselves
// from static initialisers (MGL_REGISTER_* macros), so adding a task adapter is one source file:
// nothing in the trainer or the CLI lists them.
#pragma once
#include <fmt/format.h>

#include <map>
#include <string>
#include <vector>

#include "harness/config/config.h"

namespace mgl::harness {

template <class Entry>
class Registry {
 public:
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  bool add(const std::string& name, Entry entry) {
    if (!entries_.emplace(name, std::move(entry)).second)
      throw std::logic_error(fmt::format("{} '{}' is registered twice", kind_, name));
    return true;
  }
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  // Throws ConfigError naming `key` and listing the registered names.
  const Entry& at(const std::string& name, const std::string& key = "", const std::string& where = "") const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string names;
      for (const auto& [n, e] : entries_) names += (names.empty() ? "" : ", ") + n;
      throw ConfigError(where, key, fmt::format("no {} named '{}' (registered: {})", kind_, name, names));
    }
    return it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [n, e] : entries_) out.push_back(n);
    return out;
  }

 private:
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace mgl::harness
