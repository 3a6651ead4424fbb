// Composition (config.h, ConfigLoader::compose and load): an experiment file's `defaults` list
// (groups under `configs/`, other experiment files), its own body, then the command line's
// `group=name` swaps and `a.b.c=value` overrides, each value keeping where it came from.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "harness/config/config.h"
#include "harness/config/toml.h"

namespace mgl::harness {

using namespace toml_read;

namespace {

fs::path find_config_root(const fs::path& experiment_file) {
  fs::path dir = fs::absolute(experiment_file).parent_path();
  for (fs::path d = dir; !d.empty(); d = d.parent_path()) {
    if (fs::is_directory(d / "configs")) return d / "configs";
    if (d == d.root_path()) break;
  }
  return {};
}

struct Composer {
  fs::path root;
  std::map<std::string, std::string> swaps;  // group -> name, from `group=name` overrides
  std::set<std::string> used_swaps;
  std::vector<fs::path> stack;
  std::map<std::string, std::string>* origin;

  void compose_file(const fs::path& file, toml::table& out, const std::string& prefix) {
    const fs::path canon = fs::weakly_canonical(file);
    if (std::find(stack.begin(), stack.end(), canon) != stack.end())
      throw ConfigError(file.string(), "defaults", "the defaults lists form a cycle");
    stack.push_back(canon);
    toml::table t = ConfigLoader::parse_file(file);
    if (const toml::node* d = t.get("defaults")) {
      const toml::array* arr = d->as_array();
      if (!arr) throw ConfigError(where_of(*d), "defaults", "expected a list of \"group/name\" strings");
      for (const auto& e : *arr) {
        if (!e.is_string())
          throw ConfigError(where_of(e), "defaults", "expected a list of \"group/name\" strings");
        include(e.as_string()->get(), file, where_of(e), out, prefix);
      }
      t.erase("defaults");
    }
    if (prefix.empty()) {
      deep_merge(out, t, "", *origin, file.string());
    } else {
      toml::table& sub = ensure_table(out, split_path(prefix), split_path(prefix).size(), prefix);
      deep_merge(sub, t, prefix, *origin, file.string());
    }
    stack.pop_back();
  }

  void include(std::string entry, const fs::path& from, const std::string& where, toml::table& out,
               const std::string& prefix) {
    // "path/to/file.toml": another experiment (relative to this file), merged at the root.
    if (entry.size() > 5 && entry.compare(entry.size() - 5, 5, ".toml") == 0) {
      fs::path f = from.parent_path() / entry;
      if (!fs::exists(f)) throw ConfigError(where, "defaults", fmt::format("no such file '{}'", f.string()));
      compose_file(f, out, prefix);
      return;
    }
    auto slash = entry.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == entry.size())
      throw ConfigError(where, "defaults", fmt::format("'{}' is not \"group/name\" or a .toml path", entry));
    std::string group = entry.substr(0, slash), name = entry.substr(slash + 1);
    if (prefix.empty()) {
      if (auto it = swaps.find(group); it != swaps.end()) {
        name = it->second;
        used_swaps.insert(group);
      }
    }
    fs::path f = root / group / (name + ".toml");
    if (!fs::exists(f)) {
      std::string avail;
      if (fs::is_directory(root / group))
        for (const auto& de : fs::directory_iterator(root / group))
          if (de.path().extension() == ".toml") avail += " " + de.path().stem().string();
      throw ConfigError(where, "defaults",
                        fmt::format("no config '{}' (looked for {}){}", entry, f.string(),
                                    avail.empty() ? "" : "; available in " + group + ":" + avail));
    }
    compose_file(f, out, prefix.empty() ? group : prefix + "." + group);
  }
};

}  // namespace

Config ConfigLoader::compose(const fs::path& experiment_file, const LoadOptions& options) {
  Config cfg;
  if (!fs::exists(experiment_file))
    throw ConfigError(experiment_file.string(), "", "no such experiment file");
  cfg.experiment_file = experiment_file;
  cfg.experiment_name = experiment_file.stem().string();
  // Under an `experiments/` folder the name keeps its sub-folders: experiments/ablations/norm.toml
  // is "ablations/norm", so its runs go to <run.root>/ablations/norm/.
  {
    const fs::path abs = fs::absolute(experiment_file).lexically_normal();
    for (fs::path d = abs.parent_path(); d.has_relative_path(); d = d.parent_path()) {
      if (d.filename() == "experiments") {
        cfg.experiment_name = abs.lexically_relative(d).replace_extension().string();
        break;
      }
    }
  }
  cfg.config_root = options.config_root.empty() ? find_config_root(experiment_file) : options.config_root;

  Composer c;
  c.root = cfg.config_root;
  c.origin = &cfg.origin_;
  std::vector<std::pair<std::string, Value>> overrides;
  for (const auto& o : options.overrides) {
    auto [k, v] = parse_override(o);
    // `group=name` swaps a defaults entry, like Hydra's `model=small`.
    if (k.find('.') == std::string::npos && std::holds_alternative<std::string>(v) && !cfg.config_root.empty() &&
        fs::is_directory(cfg.config_root / k)) {
      c.swaps[k] = std::get<std::string>(v);
      continue;
    }
    overrides.emplace_back(k, v);
  }
  c.compose_file(experiment_file, *cfg.table_, "");
  for (const auto& [g, n] : c.swaps)
    if (!c.used_swaps.count(g))
      throw ConfigError("command line", g, fmt::format("'{}={}': the experiment has no '{}/...' entry in its defaults",
                                                       g, n, g));
  for (const auto& [k, v] : overrides) cfg.set(k, v, "command line");
  return cfg;
}

Config ConfigLoader::load(const fs::path& experiment_file, const LoadOptions& options, const SchemaFn& schema_for) {
  Config composed = compose(experiment_file, options);
  return validate(composed, schema_for(composed));
}

}  // namespace mgl::harness
