// `megalodon data <tool>`: dataset preparation and generators. A tool registers itself from its
// own cli/data/*.cpp file:  static const mgl::cli::DataTool kX{"listops", "summary", fn};
#pragma once
#include "cli/commands.h"

namespace mgl::cli {

struct DataTool : Subcommand {
  DataTool(const char* name, const char* summary, CommandFn run);
};

}  // namespace mgl::cli
