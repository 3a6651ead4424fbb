// Subcommands of the `megalodon` executable; each is a thin layer over the library. A subcommand
// registers itself from its own source file:
//   static const mgl::cli::Command kForward{"forward", "one-line summary", forward_main};
#pragma once
#include <string>
#include <vector>

namespace mgl::cli {

using CommandFn = int (*)(const std::vector<std::string>& args);

struct Command {
  Command(const char* name, const char* summary, CommandFn run);
  const char* name;
  const char* summary;
  CommandFn run;
};
// All registered commands, sorted by name.
std::vector<const Command*> commands();

}  // namespace mgl::cli
