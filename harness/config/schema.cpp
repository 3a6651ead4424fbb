// The typed schema (schema.h), and ConfigLoader::validate, which checks a composed config against
// it: unknown keys with the nearest known ones, wrong types, values outside the choices, missing
// required keys; defaults filled in.
#include "harness/config/schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>

#include "harness/config/config.h"
#include "harness/config/toml.h"

namespace mgl::harness {

using namespace toml_read;

namespace {

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

}  // namespace

Schema& Schema::add(KeySpec spec) {
  if (!valid_key(spec.path)) throw std::invalid_argument("schema: invalid key '" + spec.path + "'");
  std::string path = spec.path;
  keys_[path] = std::move(spec);
  return *this;
}
Schema& Schema::add_int(const std::string& p, int64_t d, const std::string& doc) {
  return add({p, ValueType::Int, Value{d}, doc, {}});
}
Schema& Schema::add_float(const std::string& p, double d, const std::string& doc) {
  return add({p, ValueType::Float, Value{d}, doc, {}});
}
Schema& Schema::add_bool(const std::string& p, bool d, const std::string& doc) {
  return add({p, ValueType::Bool, Value{d}, doc, {}});
}
Schema& Schema::add_string(const std::string& p, const std::string& d, const std::string& doc,
                           std::vector<std::string> choices) {
  return add({p, ValueType::String, Value{d}, doc, std::move(choices)});
}
Schema& Schema::add_ints(const std::string& p, std::vector<int64_t> d, const std::string& doc) {
  return add({p, ValueType::IntList, Value{std::move(d)}, doc, {}});
}
Schema& Schema::add_floats(const std::string& p, std::vector<double> d, const std::string& doc) {
  return add({p, ValueType::FloatList, Value{std::move(d)}, doc, {}});
}
Schema& Schema::add_strings(const std::string& p, std::vector<std::string> d, const std::string& doc) {
  return add({p, ValueType::StringList, Value{std::move(d)}, doc, {}});
}
Schema& Schema::add_table(const std::string& p, const std::string& doc) {
  return add({p, ValueType::Table, std::nullopt, doc, {}});
}
Schema& Schema::add_table_list(const std::string& p, const std::string& doc) {
  return add({p, ValueType::TableList, std::nullopt, doc, {}});
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
    out += fmt::format("  {:<28} {:<16} {:<14} {}{}\n", k.substr(dot == std::string::npos ? 0 : dot + 1),
                       to_string(spec.type), def, spec.doc, choices);
  }
  return out;
}

// ---- validation ----------------------------------------------------------------------------

Config ConfigLoader::validate(const Config& composed, const Schema& schema) {
  Config out;
  out.experiment_file = composed.experiment_file;
  out.experiment_name = composed.experiment_name;
  out.config_root = composed.config_root;

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

}  // namespace mgl::harness
