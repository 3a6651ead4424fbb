// Minimal argument splitting shared by the subcommands: `--flag`, `--key value`, `a.b=c`
// overrides and positionals.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace mgl::cli {

// `v` as a whole decimal number; otherwise std::invalid_argument "<key> expects a number, got 'v'".
inline double parse_number(const std::string& key, const std::string& v) {
  size_t used = 0;
  double out = 0;
  try {
    out = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty()) throw std::invalid_argument(key + " expects a number, got '" + v + "'");
  return out;
}

struct ParsedArgs {
  std::vector<std::string> positional;
  std::vector<std::string> overrides;  // anything containing '=' that is not an option
  std::map<std::string, std::string> options;
  std::set<std::string> flags;
  bool flag(const std::string& f) const { return flags.count(f) > 0; }
  std::string option(const std::string& k, const std::string& def = "") const {
    auto it = options.find(k);
    return it == options.end() ? def : it->second;
  }
  // `--key N`: the whole value must be an integer >= lo; absent = def.
  int64_t int_option(const std::string& k, int64_t def,
                     int64_t lo = std::numeric_limits<int64_t>::min()) const {
    const std::string v = option(k);
    if (v.empty()) return def;
    size_t used = 0;
    int64_t out = 0;
    try {
      out = std::stoll(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || out < lo)
      throw std::invalid_argument(k + " expects an integer" +
                                  (lo == std::numeric_limits<int64_t>::min() ? "" : " >= " + std::to_string(lo)) +
                                  ", got '" + v + "'");
    return out;
  }
  // `--key X`: a number (parse_number); absent = def.
  double float_option(const std::string& k, double def) const {
    const std::string v = option(k);
    return v.empty() ? def : parse_number(k, v);
  }
  // `--seed S` (decimal, 0x hex or octal): a non-negative 64-bit integer; absent = def.
  uint64_t seed_option(const std::string& k = "--seed", uint64_t def = 0) const {
    const std::string v = option(k);
    if (v.empty()) return def;
    size_t used = 0;
    uint64_t out = 0;
    try {
      out = std::stoull(v, &used, 0);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || v[0] == '-')
      throw std::invalid_argument(k + " expects a non-negative integer, got '" + v + "'");
    return out;
  }
};

// `with_value` lists the options that take a value; other `--x` are flags. Unknown options are
// an error naming them.
inline ParsedArgs parse_args(const std::vector<std::string>& args, const std::set<std::string>& with_value,
                             const std::set<std::string>& flags) {
  ParsedArgs p;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) == 0) {
      std::string key = a, value;
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        key = a.substr(0, eq);
        value = a.substr(eq + 1);
      }
      if (with_value.count(key)) {
        if (eq == std::string::npos) {
          if (i + 1 >= args.size()) throw std::invalid_argument(key + " needs a value");
          value = args[++i];
        }
        p.options[key] = value;
      } else if (flags.count(key) && eq == std::string::npos) {
        p.flags.insert(key);
      } else {
        throw std::invalid_argument("unknown option " + a + " (see --help)");
      }
    } else if (a.find('=') != std::string::npos) {
      p.overrides.push_back(a);
    } else {
      p.positional.push_back(a);
    }
  }
  return p;
}

}  // namespace mgl::cli
