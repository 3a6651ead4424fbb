// Subcommands of the `megalodon` executable; each is a thin layer over the library. A subcommand
// registers itself from its own source file:
//   static const mgl::cli::Command kForward{"forward", "one-line summary", forward_main};
#pragma once
#include <exception>
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

// An error as a user sees it: without LibTorch's C++ backtrace (kept with --debug, which sets
// $MEGALODON_DEBUG).
std::string user_message(const std::exception& e);

}  // namespace mgl::cli
