// The values a configuration holds (the scalar and list types of the schema, as TOML writes them)
// and the error a bad one raises.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "core/config.h"

namespace mgl::harness {

// A configuration error the user can act on: where (file:line:col, or "command line"), which key,
// and what was expected. One type with the core's (core/config.h).
using mgl::ConfigError;

enum class ValueType { Int, Float, Bool, String, IntList, FloatList, StringList, Table, TableList };
const char* to_string(ValueType);

// A scalar or list value as the harness sees it. Table-typed keys (free-form sub-tables such as a
// sweep grid) keep their TOML in the Config and are read with Config::table_entries / table_list.
using Value = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>, std::vector<double>,
                           std::vector<std::string>>;
std::string format_value(const Value& v);  // TOML syntax

}  // namespace mgl::harness
