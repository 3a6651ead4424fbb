#include "harness/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace mgl::harness {

ConfigError::ConfigError(std::string where_, std::string key_, const std::string& what)
    : std::runtime_error(where_.empty() ? (key_.empty() ? what : fmt::format("{}: {}", key_, what))
                                        : (key_.empty() ? fmt::format("{}: {}", where_, what)
                                                        : fmt::format("{}: {}: {}", where_, key_, what))),
      where(std::move(where_)),
      key(std::move(key_)) {}

const char* to_string(ValueType t) {
  switch (t) {
    case ValueType::Int: return "integer";
    case ValueType::Float: return "float";
    case ValueType::Bool: return "boolean";
    case ValueType::String: return "string";
    case ValueType::IntList: return "list of integers";
    case ValueType::FloatList: return "list of floats";
    case ValueType::StringList: return "list of strings";
    case ValueType::Table: return "table";
    case ValueType::TableList: return "array of tables";
  }
  return "?";
}

namespace {

std::string quote(const std::string& s) {
  std::ostringstream os;
  os << toml::value<std::string>(s);
  return os.str();
}

std::string format_double(double d) {
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it a TOML float
  return s;
}

template <class T, class F>
std::string join_list(const std::vector<T>& v, F f) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + f(v[i]);
  return out + "]";
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

bool valid_key(const std::string& path) {
  if (path.empty()) return false;
  for (const auto& p : split_path(path)) {
    if (p.empty()) return false;
    for (char c : p)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string node_text(const toml::node& n) {
  std::ostringstream os;
  n.visit([&](auto&& x) { os << x; });
  std::string s = os.str();
  if (n.is_table()) s = "a table";
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

std::string where_of(const toml::node& n) {
  const auto& src = n.source();
  if (!src.path || src.begin.line == 0) return "";
  return fmt::format("{}:{}:{}", *src.path, src.begin.line, src.begin.column);
}

// Converts a TOML node to a Value; nullopt when it is not a scalar or a homogeneous list.
std::optional<Value> to_value(const toml::node& n) {
  if (auto v = n.as_integer()) return Value{v->get()};
  if (auto v = n.as_floating_point()) return Value{v->get()};
  if (auto v = n.as_boolean()) return Value{v->get()};
  if (auto v = n.as_string()) return Value{v->get()};
  if (auto a = n.as_array()) {
    bool all_int = true, all_num = true, all_str = true;
    for (const auto& e : *a) {
      all_int &= e.is_integer();
      all_num &= e.is_integer() || e.is_floating_point();
      all_str &= e.is_string();
    }
    if (a->empty()) return std::nullopt;  // typed by the schema
    if (all_int) {
      std::vector<int64_t> v;
      for (const auto& e : *a) v.push_back(e.as_integer()->get());
      return Value{v};
    }
    if (all_num) {
      std::vector<double> v;
      for (const auto& e : *a) v.push_back(e.is_integer() ? double(e.as_integer()->get()) : e.as_floating_point()->get());
      return Value{v};
    }
    if (all_str) {
      std::vector<std::string> v;
      for (const auto& e : *a) v.push_back(e.as_string()->get());
      return Value{v};
    }
  }
  return std::nullopt;
}

void insert_value(toml::table& t, const std::string& key, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double> || std::is_same_v<T, bool> ||
                      std::is_same_v<T, std::string>) {
          t.insert_or_assign(key, x);
        } else {
          toml::array arr;
          for (const auto& e : x) arr.push_back(e);
          t.insert_or_assign(key, std::move(arr));
        }
      },
      v);
}

toml::table& ensure_table(toml::table& root, const std::vector<std::string>& parts, size_t n,
                          const std::string& path) {
  toml::table* t = &root;
  for (size_t i = 0; i < n; ++i) {
    toml::node* child = t->get(parts[i]);
    if (!child) {
      t->insert(parts[i], toml::table{});
      child = t->get(parts[i]);
    }
    if (!child->is_table())
      throw ConfigError("", path, fmt::format("'{}' is a value, not a section", parts[i]));
    t = child->as_table();
  }
  return *t;
}

// Deep merge of `src` into `dst`; leaf origins recorded relative to `prefix`.
void deep_merge(toml::table& dst, const toml::table& src, const std::string& prefix,
                std::map<std::string, std::string>& origin, const std::string& fallback_where) {
  for (const auto& [k, node] : src) {
    const std::string key(k.str());
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    toml::node* existing = dst.get(key);
    if (node.is_table() && existing && existing->is_table()) {
      deep_merge(*existing->as_table(), *node.as_table(), path, origin, fallback_where);
      continue;
    }
    dst.insert_or_assign(key, node);
    std::string w = where_of(node);
    // Everything below a replaced node comes from the same place.
    for (auto it = origin.lower_bound(path); it != origin.end() && it->first.rfind(path, 0) == 0;)
      it = origin.erase(it);
    std::function<void(const toml::node&, const std::string&)> record = [&](const toml::node& n, const std::string& p) {
      if (auto t = n.as_table()) {
        for (const auto& [kk, nn] : *t) record(nn, p + "." + std::string(kk.str()));
      } else {
        std::string ww = where_of(n);
        origin[p] = ww.empty() ? (w.empty() ? fallback_where : w) : ww;
      }
    };
    record(node, path);
  }
}

const toml::node* node_at(const toml::table& t, const std::string& path) {
  const toml::node* n = &t;
  for (const auto& p : split_path(path)) {
    auto tt = n->as_table();
    if (!tt) return nullptr;
    n = tt->get(p);
    if (!n) return nullptr;
  }
  return n;
}

fs::path find_config_root(const fs::path& experiment_file) {
  fs::path dir = fs::absolute(experiment_file).parent_path();
  for (fs::path d = dir; !d.empty(); d = d.parent_path()) {
    if (fs::is_directory(d / "configs")) return d / "configs";
    if (d == d.root_path()) break;
  }
  return {};
}

// The config search path (LoadOptions::config_root documents the order), without duplicates.
std::vector<fs::path> config_search_path(const fs::path& experiment_file, const fs::path& explicit_root) {
  if (!explicit_root.empty()) return {explicit_root};
  std::vector<fs::path> path;
  auto add = [&](const fs::path& p) {
    if (p.empty()) return;
    std::error_code ec;
    const fs::path c = fs::weakly_canonical(fs::absolute(p), ec);
    const fs::path key = ec ? fs::absolute(p).lexically_normal() : c;
    for (const auto& q : path)
      if (q == key) return;
    path.push_back(key);
  };
  add(find_config_root(experiment_file));
#ifdef MEGALODON_SOURCE_DIR
  if (fs::is_directory(fs::path(MEGALODON_SOURCE_DIR) / "configs")) add(fs::path(MEGALODON_SOURCE_DIR) / "configs");
#endif
  if (const char* env = std::getenv("MEGALODON_CONFIG_PATH")) {
    std::string list = env;
    for (size_t b = 0; b <= list.size();) {
      const size_t e = std::min(list.find(':', b), list.size());
      add(list.substr(b, e - b));
      b = e + 1;
    }
  }
  return path;
}

}  // namespace

std::string format_value(const Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) return std::to_string(x);
        else if constexpr (std::is_same_v<T, double>) return format_double(x);
        else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::string>) return quote(x);
        else if constexpr (std::is_same_v<T, std::vector<int64_t>>)
          return join_list(x, [](int64_t e) { return std::to_string(e); });
        else if constexpr (std::is_same_v<T, std::vector<double>>) return join_list(x, format_double);
        else return join_list(x, quote);
      },
      v);
}

// ---- Schema --------------------------------------------------------------------------------

bool Range::contains(double v) const {
  if (sentinel && v == *sentinel) return true;
  if (std::isnan(v)) return false;
  return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
}

std::string Range::describe(bool integer) const {
  auto num = [&](double v) { return integer ? fmt::format("{}", static_cast<int64_t>(v)) : fmt::format("{}", v); };
  std::string s;
  const bool has_lo = lo > -1e308, has_hi = hi < 1e308;
  if (has_lo && has_hi)
    s = fmt::format("in {}{}, {}{}", lo_open ? "(" : "[", num(lo), num(hi), hi_open ? ")" : "]");
  else if (has_lo)
    s = fmt::format("{} {}", lo_open ? ">" : ">=", num(lo));
  else if (has_hi)
    s = fmt::format("{} {}", hi_open ? "<" : "<=", num(hi));
  else
    s = "finite";
  if (sentinel) s += fmt::format(" (or {})", num(*sentinel));
  return s;
}

Schema& Schema::add(KeySpec spec) {
  if (!valid_key(spec.path)) throw std::invalid_argument("schema: invalid key '" + spec.path + "'");
  // A default outside its own range is a bug in the schema, not a user error.
  if (spec.range && spec.default_value) {
    std::vector<double> values;
    if (auto i = std::get_if<int64_t>(&*spec.default_value)) values.push_back(double(*i));
    if (auto d = std::get_if<double>(&*spec.default_value)) values.push_back(*d);
    if (auto l = std::get_if<std::vector<int64_t>>(&*spec.default_value)) values.assign(l->begin(), l->end());
    if (auto l = std::get_if<std::vector<double>>(&*spec.default_value)) values.assign(l->begin(), l->end());
    for (double v : values)
      if (!spec.range->contains(v))
        throw std::logic_error(fmt::format("schema: the default {} of '{}' is not {}", v, spec.path,
                                           spec.range->describe(spec.type == ValueType::Int)));
  }
  std::string path = spec.path;
  keys_[path] = std::move(spec);
  return *this;
}
Schema& Schema::add_int(const std::string& p, int64_t d, const std::string& doc, std::optional<Range> range) {
  return add({p, ValueType::Int, Value{d}, doc, {}, range});
}
Schema& Schema::add_float(const std::string& p, double d, const std::string& doc, std::optional<Range> range) {
  return add({p, ValueType::Float, Value{d}, doc, {}, range});
}
Schema& Schema::add_bool(const std::string& p, bool d, const std::string& doc) {
  return add({p, ValueType::Bool, Value{d}, doc, {}, std::nullopt});
}
Schema& Schema::add_string(const std::string& p, const std::string& d, const std::string& doc,
                           std::vector<std::string> choices) {
  return add({p, ValueType::String, Value{d}, doc, std::move(choices), std::nullopt});
}
Schema& Schema::add_ints(const std::string& p, std::vector<int64_t> d, const std::string& doc,
                         std::optional<Range> range) {
  return add({p, ValueType::IntList, Value{std::move(d)}, doc, {}, range});
}
Schema& Schema::add_floats(const std::string& p, std::vector<double> d, const std::string& doc,
                           std::optional<Range> range) {
  return add({p, ValueType::FloatList, Value{std::move(d)}, doc, {}, range});
}
Schema& Schema::add_strings(const std::string& p, std::vector<std::string> d, const std::string& doc) {
  return add({p, ValueType::StringList, Value{std::move(d)}, doc, {}, std::nullopt});
}
Schema& Schema::add_table(const std::string& p, const std::string& doc) {
  return add({p, ValueType::Table, std::nullopt, doc, {}, std::nullopt});
}
Schema& Schema::add_table_list(const std::string& p, const std::string& doc) {
  return add({p, ValueType::TableList, std::nullopt, doc, {}, std::nullopt});
}
Schema& Schema::merge(const Schema& other) {
  for (const auto& [k, v] : other.keys_) keys_[k] = v;
  return *this;
}

const KeySpec* Schema::find(const std::string& path) const {
  auto it = keys_.find(path);
  return it == keys_.end() ? nullptr : &it->second;
}

bool Schema::is_section(const std::string& path) const {
  auto it = keys_.lower_bound(path + ".");
  return it != keys_.end() && it->first.rfind(path + ".", 0) == 0;
}

std::vector<std::string> Schema::nearest(const std::string& path) const {
  const auto parts = split_path(path);
  const std::string& last = parts.back();
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& [k, spec] : keys_) {
    const auto kp = split_path(k);
    size_t d = std::min(edit_distance(path, k), edit_distance(last, kp.back()) + (kp.size() == parts.size() ? 0 : 1));
    // Same section, same leaf, a different section is also a good hint ("optim.warmup" → "schedule.warmup").
    if (kp.back() == last) d = std::min<size_t>(d, 1);
    scored.emplace_back(d, k);
  }
  std::sort(scored.begin(), scored.end());
  const size_t limit = std::max<size_t>(2, last.size() / 3);
  std::vector<std::string> out;
  for (const auto& [d, k] : scored) {
    if (d > limit || out.size() == 3) break;
    out.push_back(k);
  }
  return out;
}

std::string Schema::describe() const {
  std::string out;
  std::string section;
  for (const auto& [k, spec] : keys_) {
    auto dot = k.rfind('.');
    std::string sec = dot == std::string::npos ? "" : k.substr(0, dot);
    if (sec != section) {
      out += fmt::format("\n[{}]\n", sec);
      section = sec;
    }
    std::string def = spec.default_value ? format_value(*spec.default_value) : "(required)";
    if (spec.type == ValueType::Table || spec.type == ValueType::TableList) def = "(optional)";
    std::string choices;
    if (!spec.choices.empty()) {
      choices = " one of:";
      for (const auto& c : spec.choices) choices += " " + c;
    }
    if (spec.range)
      choices += " (" + spec.range->describe(spec.type == ValueType::Int || spec.type == ValueType::IntList) + ")";
    out += fmt::format("  {:<28} {:<16} {:<14} {}{}\n", k.substr(dot == std::string::npos ? 0 : dot + 1),
                       to_string(spec.type), def, spec.doc, choices);
  }
  return out;
}

// ---- Config --------------------------------------------------------------------------------

Config::Config() : table_(std::make_unique<toml::table>()) {}
Config::~Config() = default;
Config::Config(const Config& o)
    : experiment_name(o.experiment_name),
      experiment_file(o.experiment_file),
      config_root(o.config_root),
      config_path(o.config_path),
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

// ---- overrides -----------------------------------------------------------------------------

std::pair<std::string, Value> parse_override(const std::string& arg) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("command line", arg, "an override must look like key.path=value");
  std::string key = arg.substr(0, eq), text = arg.substr(eq + 1);
  if (!valid_key(key)) throw ConfigError("command line", key, "not a valid dotted key");
  try {
    toml::table t = toml::parse("v = " + text);
    if (auto v = to_value(*t.get("v"))) return {key, *v};
    if (auto a = t.get("v")->as_array(); a && a->empty()) return {key, Value{std::vector<std::string>{}}};
  } catch (const toml::parse_error&) {
  }
  return {key, Value{text}};  // a bare word: a string
}

// ---- loading -------------------------------------------------------------------------------

toml::table ConfigLoader::parse_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(file.string(), "", "cannot open the file");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return toml::parse(ss.str(), file.string());
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    throw ConfigError(fmt::format("{}:{}:{}", file.string(), b.line, b.column), "",
                      fmt::format("TOML syntax error: {}", e.description()));
  }
}

namespace {

struct Composer {
  std::vector<fs::path> roots;  // the config search path
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
    fs::path f;
    for (const auto& root : roots)
      if (fs::exists(root / group / (name + ".toml"))) {
        f = root / group / (name + ".toml");
        break;
      }
    if (f.empty()) {
      // The folders searched, and what each offers for the group (the first one as "available in <group>").
      std::string searched, avail;
      for (const auto& root : roots) {
        searched += (searched.empty() ? "" : ", ") + root.string();
        std::error_code ec;
        if (!fs::is_directory(root / group, ec)) continue;
        std::set<std::string> names;
        for (const auto& de : fs::directory_iterator(root / group))
          if (de.path().extension() == ".toml") names.insert(de.path().stem().string());
        if (names.empty()) continue;
        avail += avail.empty() ? "; available in " + group + ":" : "; in " + (root / group).string() + ":";
        for (const auto& n : names) avail += " " + n;
      }
      throw ConfigError(
          where, "defaults",
          fmt::format("no config '{}': no {}/{}.toml in the config search path ({}; the order is the experiment's "
                      "own configs/, the project's configs/, then $MEGALODON_CONFIG_PATH){}",
                      group + "/" + name, group, name, searched.empty() ? "no folder found" : "searched " + searched, avail));
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
  cfg.config_path = config_search_path(experiment_file, options.config_root);
  cfg.config_root = cfg.config_path.empty() ? fs::path() : cfg.config_path.front();

  Composer c;
  c.roots = cfg.config_path;
  c.origin = &cfg.origin_;
  std::vector<std::pair<std::string, Value>> overrides;
  for (const auto& o : options.overrides) {
    auto [k, v] = parse_override(o);
    // `group=name` swaps a defaults entry, like Hydra's `model=small`.
    const bool is_group = std::any_of(cfg.config_path.begin(), cfg.config_path.end(),
                                      [&](const fs::path& r) { return fs::is_directory(r / k); });
    if (k.find('.') == std::string::npos && std::holds_alternative<std::string>(v) && is_group) {
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

Config ConfigLoader::validate(const Config& composed, const Schema& schema) {
  Config out;
  out.experiment_file = composed.experiment_file;
  out.experiment_name = composed.experiment_name;
  out.config_root = composed.config_root;
  out.config_path = composed.config_path;

  auto unknown = [&](const std::string& path) {
    auto near = schema.nearest(path);
    std::string hint;
    if (!near.empty()) {
      hint = "; did you mean ";
      for (size_t i = 0; i < near.size(); ++i) hint += (i ? ", '" : "'") + near[i] + "'";
      hint += "?";
    }
    return ConfigError(composed.origin(path), path, "unknown key" + hint);
  };

  std::function<void(const toml::table&, const std::string&)> walk = [&](const toml::table& t, const std::string& pre) {
    for (const auto& [k, node] : t) {
      const std::string path = pre.empty() ? std::string(k.str()) : pre + "." + std::string(k.str());
      const KeySpec* spec = schema.find(path);
      const std::string where = composed.origin(path);
      if (!spec) {
        if (node.is_table() && schema.is_section(path)) {
          walk(*node.as_table(), path);
          continue;
        }
        throw unknown(path);
      }
      auto parts = split_path(path);
      toml::table& dst = ensure_table(*out.table_, parts, parts.size() - 1, path);
      auto bad = [&](const std::string& got) {
        std::string choices;
        if (!spec->choices.empty()) {
          choices = " (one of:";
          for (const auto& c : spec->choices) choices += " " + c;
          choices += ")";
        }
        return ConfigError(where, path, fmt::format("expected a {}{}, got {}", to_string(spec->type), choices, got));
      };
      const std::string got = node_text(node);
      switch (spec->type) {
        case ValueType::Table:
          if (!node.is_table()) throw bad(got);
          dst.insert_or_assign(parts.back(), node);
          for (auto it = composed.origin_.lower_bound(path); it != composed.origin_.end() && it->first.rfind(path, 0) == 0; ++it)
            out.origin_[it->first] = it->second;
          continue;
        case ValueType::TableList:
          if (!node.is_array_of_tables() && !(node.is_array() && node.as_array()->empty())) throw bad(got);
          dst.insert_or_assign(parts.back(), node);
          out.origin_[path] = where;
          continue;
        default: break;
      }
      auto v = to_value(node);
      if (!v && node.is_array() && node.as_array()->empty()) {
        if (spec->type == ValueType::IntList) v = Value{std::vector<int64_t>{}};
        else if (spec->type == ValueType::FloatList) v = Value{std::vector<double>{}};
        else if (spec->type == ValueType::StringList) v = Value{std::vector<std::string>{}};
      }
      if (!v) throw bad(got);
      Value val = *v;
      switch (spec->type) {
        case ValueType::Int:
          if (!std::holds_alternative<int64_t>(val)) throw bad(got);
          break;
        case ValueType::Float:
          if (auto i = std::get_if<int64_t>(&val)) val = double(*i);
          else if (!std::holds_alternative<double>(val)) throw bad(got);
          break;
        case ValueType::Bool:
          if (!std::holds_alternative<bool>(val)) throw bad(got);
          break;
        case ValueType::String: {
          auto s = std::get_if<std::string>(&val);
          if (!s) throw bad(got);
          if (!spec->choices.empty() && std::find(spec->choices.begin(), spec->choices.end(), *s) == spec->choices.end())
            throw bad(got);
          break;
        }
        case ValueType::IntList:
          if (!std::holds_alternative<std::vector<int64_t>>(val)) throw bad(got);
          break;
        case ValueType::FloatList:
          if (auto i = std::get_if<std::vector<int64_t>>(&val)) val = std::vector<double>(i->begin(), i->end());
          else if (!std::holds_alternative<std::vector<double>>(val)) throw bad(got);
          break;
        case ValueType::StringList:
          if (!std::holds_alternative<std::vector<std::string>>(val)) throw bad(got);
          break;
        default: break;
      }
      if (spec->range) {
        // Every numeric value (each element of a list) must lie in the key's range.
        std::vector<double> values;
        if (auto i = std::get_if<int64_t>(&val)) values.push_back(double(*i));
        if (auto d = std::get_if<double>(&val)) values.push_back(*d);
        if (auto l = std::get_if<std::vector<int64_t>>(&val)) values.assign(l->begin(), l->end());
        if (auto l = std::get_if<std::vector<double>>(&val)) values.assign(l->begin(), l->end());
        const bool integer = spec->type == ValueType::Int || spec->type == ValueType::IntList;
        const bool list = spec->type == ValueType::IntList || spec->type == ValueType::FloatList;
        for (double x : values)
          if (!spec->range->contains(x))
            throw ConfigError(where, path,
                              fmt::format("expected {} {}, got {}", list ? "every element" : "a value",
                                          spec->range->describe(integer), got));
      }
      insert_value(dst, parts.back(), val);
      out.origin_[path] = where;
    }
  };
  walk(*composed.table_, "");

  for (const auto& [path, spec] : schema.keys()) {
    if (node_at(*out.table_, path)) continue;
    if (spec.type == ValueType::Table || spec.type == ValueType::TableList) continue;
    if (!spec.default_value)
      throw ConfigError(composed.experiment_file.string(), path, fmt::format("required key is missing ({}: {})",
                                                                          to_string(spec.type), spec.doc));
    auto parts = split_path(path);
    insert_value(ensure_table(*out.table_, parts, parts.size() - 1, path), parts.back(), *spec.default_value);
    out.origin_[path] = "default";
  }
  return out;
}

Config ConfigLoader::load(const fs::path& experiment_file, const LoadOptions& options, const SchemaFn& schema_for) {
  Config composed = compose(experiment_file, options);
  return validate(composed, schema_for(composed));
}

std::string git_revision(const fs::path& source_dir) {
  auto run = [&](const std::string& cmd) {
    std::string out;
    FILE* p = popen(fmt::format("git -C '{}' {} 2>/dev/null", source_dir.string(), cmd).c_str(), "r");
    if (!p) return out;
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  };
  std::string rev = run("rev-parse HEAD");
  if (rev.empty()) return "unknown";
  if (!run("status --porcelain --untracked-files=no").empty()) rev += "-dirty";
  return rev;
}

}  // namespace mgl::harness
