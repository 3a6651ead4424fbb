// Subcommands of the `megalodon` executable; each is a thin layer over the library. A subcommand
// registers itself from its own source file:
//   static const mgl::cli::Command kForward{"forward", "one-line summary", forward_main};
// A subcommand with subcommands of its own (`megalodon data <tool>`, `megalodon bench <op>`) keeps
// them in a CommandGroup, which lists and dispatches them.
#pragma once
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "harness/util/user_message.h"

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

// The entries of one command's group, e.g. the data tools of `megalodon data`.
struct Subcommand {
  const char* name;
  const char* summary;
  CommandFn run;
};
class CommandGroup {
 public:
  // `command` as typed ("data"), `kind` what an entry is called ("tool").
  CommandGroup(const char* command, const char* kind) : command_(command), kind_(kind) {}
  void add(const Subcommand* entry) { entries_.push_back(entry); }
  const Subcommand* find(const std::string& name) const;  // nullptr when none has that name
  void usage(FILE* out) const;                             // usage line, then the entries by name
  // Runs the entry args[0] names with the rest. `--help`/`-h`: the list on stdout (0); no argument:
  // the list on stderr (2); an unknown name: an error and the list on stderr (2).
  int dispatch(const std::vector<std::string>& args) const;

 private:
  const char* command_;
  const char* kind_;
  std::vector<const Subcommand*> entries_;
};

// An error as a user sees it: without LibTorch's C++ backtrace (kept with --debug, which sets
// $MEGALODON_DEBUG).
using harness::user_message;

}  // namespace mgl::cli
