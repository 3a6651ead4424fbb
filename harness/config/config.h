// Typed, validated experiment configuration (issue 3).
//
// A run is configured by a TOML experiment file that composes groups under `configs/` through a
// `defaults` list (Hydra-style), overrides single keys in its own body, and is overridden again by
// `a.b.c=value` arguments on the command line. The composed table is checked against a Schema
// before anything runs: unknown keys (with "did you mean"), wrong types and out-of-choice values
// stop with the file, line and key. The resolved Config holds every key, defaults filled in.
//
// harness/config/: value.h (values, ConfigError), schema.h (the typed schema; validation in
// schema.cpp), this header (the resolved Config, the loader), toml.{h,cpp} (reading TOML: nodes,
// dotted paths, files, overrides), compose.cpp (defaults lists and overrides), model.h (the `model`
// section). It knows no task, optimizer or trainer: the schema of a whole experiment (the harness's
// keys plus the selected task's) is harness/experiment.h.
#pragma once
#include <toml++/toml.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/config/schema.h"
#include "harness/config/value.h"

namespace mgl::harness {

namespace fs = std::filesystem;

// The resolved configuration: every schema key present (defaults filled), with the origin of each
// value ("configs/optim/adamw.toml:3", "command line", "default").
class Config {
 public:
  Config();
  ~Config();
  Config(const Config&);
  Config& operator=(const Config&);
  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;

  bool has(const std::string& path) const;
  int64_t get_int(const std::string& path) const;
  double get_float(const std::string& path) const;
  bool get_bool(const std::string& path) const;
  std::string get_string(const std::string& path) const;
  std::vector<int64_t> get_ints(const std::string& path) const;
  std::vector<double> get_floats(const std::string& path) const;
  std::vector<std::string> get_strings(const std::string& path) const;
  Value get(const std::string& path) const;
  // Whether the value came from a file or the command line rather than a schema default.
  bool is_set(const std::string& path) const;
  std::string origin(const std::string& path) const;
  // Scalar/list leaves of a Table-typed key, dotted relative keys, e.g. grid → {"model.ema": [...]}.
  std::vector<std::pair<std::string, Value>> table_entries(const std::string& path) const;
  // Elements of a TableList key, each as its own Config-free map of leaves.
  std::vector<std::map<std::string, Value>> table_list(const std::string& path) const;

  void set(const std::string& path, const Value& v, const std::string& origin);
  std::string to_toml() const;  // the resolved config, as written to the run directory
  const toml::table& table() const;

  std::string experiment_name;  // stem of the experiment file
  fs::path experiment_file;
  fs::path config_root;  // the first folder of the config search path (see LoadOptions)
  std::vector<fs::path> config_path;  // every folder searched for `group/name` entries, in order

 private:
  friend class ConfigLoader;
  std::unique_ptr<toml::table> table_;
  std::map<std::string, std::string> origin_;
};

// Runs fn() and returns its result; a ConfigError it throws without an origin (the core's
// validation knows keys, not files) gets the origin of its key in `cfg` and is rethrown. The one
// place where core errors learn where their value came from.
template <typename Fn>
decltype(auto) with_origin(const Config& cfg, Fn&& fn) {
  try {
    return fn();
  } catch (ConfigError& e) {
    if (e.where.empty() && !e.key.empty()) e.locate(cfg.origin(e.key));
    throw;
  }
}

// Parses `a.b.c=value`. Values are TOML literals (`1e-3`, `true`, `"x"`, `[1, 2]`); a bare word that
// is not a TOML literal is taken as a string (`model.norm=layer`).
std::pair<std::string, Value> parse_override(const std::string& arg);

// Compose + validate. `schema_for` receives the composed (unvalidated) config and returns the
// schema that applies (the base schema plus the sections of the selected task, model, ...).
struct LoadOptions {
  std::vector<std::string> overrides;  // `a.b.c=value`, and `group=name` to swap a defaults entry
  // Where `group/name` defaults entries are looked up. Given: only there. Empty: the search path,
  // first folder holding configs/<group>/<name>.toml wins:
  //   1. the experiment's own tree: the nearest `configs/` beside or above the experiment file;
  //   2. the project's `configs/` (of the source tree this harness was built from);
  //   3. the folders of $MEGALODON_CONFIG_PATH (separated by ':').
  // An entry found in none of them is an error naming every folder searched.
  fs::path config_root;
};
class ConfigLoader {
 public:
  using SchemaFn = std::function<Schema(const Config& composed)>;
  static Config load(const fs::path& experiment_file, const LoadOptions& options, const SchemaFn& schema_for);
  // Parses a TOML file; a syntax error is reported as ConfigError with file:line:col.
  static toml::table parse_file(const fs::path& file);
  // Compose without validating (defaults list, body, overrides): for tools that only read a few keys.
  static Config compose(const fs::path& experiment_file, const LoadOptions& options);
  static Config validate(const Config& composed, const Schema& schema);
};

}  // namespace mgl::harness
