// `megalodon data <tool>`: dataset preparation and generators. A tool registers itself from its
// own cli/data/*.cpp file:  static const mgl::cli::DataTool kX{"listops", "summary", fn};
#pragma once
#include <string>
#include <vector>

namespace mgl::cli {

struct DataTool {
  using Fn = int (*)(const std::vector<std::string>& args);
  DataTool(const char* name, const char* summary, Fn run);
  const char* name;
  const char* summary;
  Fn run;
};

}  // namespace mgl::cli
