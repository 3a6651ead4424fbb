// Minimal argument splitting shared by the subcommands: `--flag`, `--key value`, `a.b=c`
// overrides and positionals.
#pragma once
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace mgl::cli {

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
