// Reading TOML for the configuration code (value.cpp, config.cpp, schema.cpp, compose.cpp; not a
// public interface): TOML nodes to and from Values, dotted key paths, where a node was written
// (file:line:col), and the deep merge that composes files. Files and `a.b.c=value` overrides are
// parsed by ConfigLoader::parse_file and parse_override (config.h), defined in toml.cpp.
#pragma once
#include <toml++/toml.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/config/value.h"

namespace mgl::harness::toml_read {

std::string quote(const std::string& s);  // a TOML string literal
std::string format_double(double d);      // a TOML float literal (always has a '.', 'e' or 'n')
template <class T, class F>
std::string join_list(const std::vector<T>& v, F f) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + f(v[i]);
  return out + "]";
}

std::vector<std::string> split_path(const std::string& path);  // "a.b.c" -> {a, b, c}
bool valid_key(const std::string& path);  // non-empty parts of letters, digits, '_', '-'

std::string node_text(const toml::node& n);  // the node as TOML, cut at 60 characters
std::string where_of(const toml::node& n);   // "file:line:col", or "" when unknown
// Converts a TOML node to a Value; nullopt when it is not a scalar or a homogeneous list.
std::optional<Value> to_value(const toml::node& n);
void insert_value(toml::table& t, const std::string& key, const Value& v);
// The table at parts[0..n) below root, created where missing; a value in the way is a ConfigError.
toml::table& ensure_table(toml::table& root, const std::vector<std::string>& parts, size_t n,
                          const std::string& path);
// Deep merge of `src` into `dst`; leaf origins recorded relative to `prefix`.
void deep_merge(toml::table& dst, const toml::table& src, const std::string& prefix,
                std::map<std::string, std::string>& origin, const std::string& fallback_where);
const toml::node* node_at(const toml::table& t, const std::string& path);  // nullptr if absent

}  // namespace mgl::harness::toml_read
