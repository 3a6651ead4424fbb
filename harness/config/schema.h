// The typed schema: every key a configuration may hold, with its type, default, meaning and (for
// strings) its allowed values. ConfigLoader::validate (schema.cpp) checks a composed config
// against it; unknown keys get the nearest known ones as a hint.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "harness/config/value.h"

namespace mgl::harness {

struct KeySpec {
  std::string path;  // dotted, e.g. "optim.lr"
  ValueType type = ValueType::String;
  std::optional<Value> default_value;  // none: required (unless the type is Table/TableList)
  std::string doc;
  std::vector<std::string> choices;  // allowed strings (String keys), empty = any
};

class Schema {
 public:
  Schema& add(KeySpec spec);
  Schema& add_int(const std::string& path, int64_t def, const std::string& doc);
  Schema& add_float(const std::string& path, double def, const std::string& doc);
  Schema& add_bool(const std::string& path, bool def, const std::string& doc);
  Schema& add_string(const std::string& path, const std::string& def, const std::string& doc,
                     std::vector<std::string> choices = {});
  Schema& add_ints(const std::string& path, std::vector<int64_t> def, const std::string& doc);
  Schema& add_floats(const std::string& path, std::vector<double> def, const std::string& doc);
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

}  // namespace mgl::harness
