// The resolved configuration (config.h): typed reads, origins, tables, and writing it back as TOML.
#include "harness/config/config.h"

#include <fmt/format.h>

#include <functional>
#include <sstream>

#include "harness/config/toml.h"

namespace mgl::harness {

using namespace toml_read;

Config::Config() : table_(std::make_unique<toml::table>()) {}
Config::~Config() = default;
Config::Config(const Config& o)
    : experiment_name(o.experiment_name),
      experiment_file(o.experiment_file),
      config_root(o.config_root),
      table_(std::make_unique<toml::table>(*o.table_)),
      origin_(o.origin_) {}
Config& Config::operator=(const Config& o) {
  if (this != &o) *this = Config(o);
  return *this;
}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;

const toml::table& Config::table() const { return *table_; }

bool Config::has(const std::string& path) const { return node_at(*table_, path) != nullptr; }

Value Config::get(const std::string& path) const {
  const toml::node* n = node_at(*table_, path);
  if (!n) throw ConfigError("", path, "no such key in the resolved config");
  auto v = to_value(*n);
  if (!v) {
    if (auto a = n->as_array(); a && a->empty()) return Value{std::vector<std::string>{}};
    throw ConfigError(origin(path), path, "is a table, not a value");
  }
  return *v;
}

namespace {
template <class T>
T get_as(const Config& c, const std::string& path, const char* what) {
  Value v = c.get(path);
  if (auto p = std::get_if<T>(&v)) return *p;
  if constexpr (std::is_same_v<T, double>) {
    if (auto i = std::get_if<int64_t>(&v)) return double(*i);
  }
  if constexpr (std::is_same_v<T, std::vector<double>>) {
    if (auto i = std::get_if<std::vector<int64_t>>(&v)) return std::vector<double>(i->begin(), i->end());
  }
  // An empty list reads as any list type.
  if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<double>>) {
    if (auto s = std::get_if<std::vector<std::string>>(&v); s && s->empty()) return T{};
  }
  throw ConfigError(c.origin(path), path, fmt::format("expected a {}, got {}", what, format_value(v)));
}
}  // namespace

int64_t Config::get_int(const std::string& p) const { return get_as<int64_t>(*this, p, "integer"); }
double Config::get_float(const std::string& p) const { return get_as<double>(*this, p, "float"); }
bool Config::get_bool(const std::string& p) const { return get_as<bool>(*this, p, "boolean"); }
std::string Config::get_string(const std::string& p) const { return get_as<std::string>(*this, p, "string"); }
std::vector<int64_t> Config::get_ints(const std::string& p) const {
  return get_as<std::vector<int64_t>>(*this, p, "list of integers");
}
std::vector<double> Config::get_floats(const std::string& p) const {
  return get_as<std::vector<double>>(*this, p, "list of floats");
}
std::vector<std::string> Config::get_strings(const std::string& p) const {
  return get_as<std::vector<std::string>>(*this, p, "list of strings");
}

bool Config::is_set(const std::string& path) const {
  auto it = origin_.find(path);
  return it != origin_.end() && it->second != "default";
}

std::string Config::origin(const std::string& path) const {
  auto it = origin_.find(path);
  if (it != origin_.end()) return it->second;
  // A table key: report where its first leaf came from.
  auto lb = origin_.lower_bound(path + ".");
  if (lb != origin_.end() && lb->first.rfind(path + ".", 0) == 0) return lb->second;
  return experiment_file.empty() ? "" : experiment_file.string();
}

std::vector<std::pair<std::string, Value>> Config::table_entries(const std::string& path) const {
  std::vector<std::pair<std::string, Value>> out;
  const toml::node* n = node_at(*table_, path);
  if (!n) return out;
  if (!n->is_table()) throw ConfigError(origin(path), path, "expected a table");
  std::function<void(const toml::table&, const std::string&)> walk = [&](const toml::table& t, const std::string& pre) {
    for (const auto& [k, node] : t) {
      std::string key = pre.empty() ? std::string(k.str()) : pre + "." + std::string(k.str());
      if (auto sub = node.as_table()) {
        walk(*sub, key);
        continue;
      }
      auto v = to_value(node);
      if (!v) throw ConfigError(origin(path + "." + key), path + "." + key, "expected a value or a list of values");
      out.emplace_back(key, *v);
    }
  };
  walk(*n->as_table(), "");
  return out;
}

std::vector<std::map<std::string, Value>> Config::table_list(const std::string& path) const {
  std::vector<std::map<std::string, Value>> out;
  const toml::node* n = node_at(*table_, path);
  if (!n) return out;
  auto arr = n->as_array();
  if (!arr) throw ConfigError(origin(path), path, "expected an array of tables ([[...]])");
  for (size_t i = 0; i < arr->size(); ++i) {
    auto t = (*arr)[i].as_table();
    if (!t) throw ConfigError(origin(path), fmt::format("{}[{}]", path, i), "expected a table");
    std::map<std::string, Value> m;
    for (const auto& [k, node] : *t) {
      auto v = to_value(node);
      if (!v) {
        if (auto a = node.as_array(); a && a->empty()) v = Value{std::vector<std::string>{}};
        else throw ConfigError(where_of(node), fmt::format("{}[{}].{}", path, i, k.str()), "expected a value or a list");
      }
      m[std::string(k.str())] = *v;
    }
    out.push_back(std::move(m));
  }
  return out;
}

void Config::set(const std::string& path, const Value& v, const std::string& where) {
  if (!valid_key(path)) throw ConfigError(where, path, "not a valid dotted key");
  auto parts = split_path(path);
  toml::table& t = ensure_table(*table_, parts, parts.size() - 1, path);
  insert_value(t, parts.back(), v);
  for (auto it = origin_.lower_bound(path); it != origin_.end() && it->first.rfind(path, 0) == 0;)
    it = origin_.erase(it);
  origin_[path] = where;
}

std::string Config::to_toml() const {
  std::ostringstream os;
  os << *table_;
  return os.str() + "\n";
}

}  // namespace mgl::harness
