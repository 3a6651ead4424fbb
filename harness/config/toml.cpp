// Reading TOML (toml.h): nodes and Values, dotted paths, the deep merge of composition; and the
// two entry points that parse text, ConfigLoader::parse_file and parse_override (config.h).
#include "harness/config/toml.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <functional>
#include <sstream>

#include "harness/config/config.h"

namespace mgl::harness {

namespace toml_read {

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

}  // namespace toml_read

using namespace toml_read;

// ---- parsing text ----------------------------------------------------------------------------

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

}  // namespace mgl::harness
