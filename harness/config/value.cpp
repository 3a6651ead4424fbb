// ValueType names and Values in TOML syntax (value.h).
#include "harness/config/value.h"

#include <fmt/format.h>

#include "harness/config/toml.h"

namespace mgl::harness {

using namespace toml_read;

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

}  // namespace mgl::harness
