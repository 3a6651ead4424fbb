// Typed, validated experiment configuration (issue 3).
//
// A run is configured by a TOML experiment file that composes groups under `configs/` through a
// `defaults` list (Hydra-style), overrides single keys in its own body, and is overridden again by
// `a.b.c=value` arguments on the command line. The composed table is checked against a Schema
// before anything runs: unknown keys (with "did you mean"), wrong types and out-of-choice values
// stop with the file, line and key. The resolved Config holds every key, defaults filled in.
#pragma once
#include <toml++/toml.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace mgl::harness {

namespace fs = std::filesystem;

// A configuration error the user can act on: where (file:line:col, or "command line"), which key,
// and what was expected.
struct ConfigError : std::runtime_error {
  ConfigError(std::string where, std::string key, const std::string& what);
  std::string where, key;
};

enum class ValueType { Int, Float, Bool, String, IntList, FloatList, StringList, Table, TableList };
const char* to_string(ValueType);

// A scalar or list value as the harness sees it. Table-typed keys (free-form sub-tables such as a
// sweep grid) keep their TOML in the Config and are read with Config::subtable_keys / get_*.
using Value = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, std::vector<double>,
                           std::vector<std::string>>;
std::string format_value(const Value& v);  // TOML syntax

// The valid values of a numeric key (every element, for lists): an interval, open or closed at
// either end, plus optionally one sentinel outside it ("-1 = all"). Checked when the config is
// validated, before anything runs, with the value's file:line or command-line origin.
struct Range {
  double lo = -1e308, hi = 1e308;
  bool lo_open = false, hi_open = false;
  std::optional<double> sentinel;
  static Range at_least(double lo) { return {lo, 1e308, false, false, std::nullopt}; }
  static Range above(double lo) { return {lo, 1e308, true, false, std::nullopt}; }      // > lo
  static Range between(double lo, double hi) { return {lo, hi, false, false, std::nullopt}; }
  static Range fraction() { return between(0, 1); }                                  // [0, 1]
  static Range dropout() { return {0, 1, false, true, std::nullopt}; }                // [0, 1)
  Range or_value(double v) const {
    Range r = *this;
    r.sentinel = v;
    return r;
  }
  bool contains(double v) const;
  std::string describe(bool integer) const;  // ">= 1 (or -1)", "in [0, 1)", "> 0"
};

struct KeySpec {
  std::string path;  // dotted, e.g. "optim.lr"
  ValueType type = ValueType::String;
  std::optional<Value> default_value;  // none: required (unless the type is Table/TableList)
  std::string doc;
  std::vector<std::string> choices;  // allowed strings (String keys), empty = any
  std::optional<Range> range;        // numeric keys: the valid values (none = any)
};

class Schema {
 public:
  Schema& add(KeySpec spec);
  Schema& add_int(const std::string& path, int64_t def, const std::string& doc, std::optional<Range> range = std::nullopt);
  Schema& add_float(const std::string& path, double def, const std::string& doc,
                    std::optional<Range> range = std::nullopt);
  Schema& add_bool(const std::string& path, bool def, const std::string& doc);
  Schema& add_string(const std::string& path, const std::string& def, const std::string& doc,
                     std::vector<std::string> choices = {});
  Schema& add_ints(const std::string& path, std::vector<int64_t> def, const std::string& doc,
                   std::optional<Range> range = std::nullopt);
  Schema& add_floats(const std::string& path, std::vector<double> def, const std::string& doc,
                     std::optional<Range> range = std::nullopt);
  Schema& add_strings(const std::string& path, std::vector<std::string> def, const std::string& doc);
  // A free-form table (keys not checked here), e.g. `sweep.grid`.
  Schema& add_table(const std::string& path, const std::string& doc);
  // An array of tables, e.g. `[[sweep.variant]]`.
  Schema& add_table_list(const std::string& path, const std::string& doc);
  Schema& merge(const Schema& other);

  const KeySpec* find(const std::string& path) const;
  bool is_section(const std::string& path) const;  // some key lives under "path."
  const std::map<std::string, KeySpec>& keys() const { return keys_; }
  // Up to three known keys closest to `path` (edit distance on the full key and on the last part).
  std::vector<std::string> nearest(const std::string& path) const;
  // `megalodon <cmd> --help-config`: every key with type, default and doc.
  std::string describe() const;

 private:
  std::map<std::string, KeySpec> keys_;
};

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

// The run's own record of itself, beside the resolved config.
std::string git_revision(const fs::path& source_dir);  // "abc123…" (+ "-dirty"), or "unknown"

}  // namespace mgl::harness
