// `megalodon` — one executable, one subcommand per concern.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/util/memory.h"
#include "harness/util/thread_env.h"

#include <algorithm>

namespace mgl::cli {
namespace {
std::vector<const Command*>& registry() {
  static std::vector<const Command*> r;
  return r;
}
}  // namespace
Command::Command(const char* n, const char* s, CommandFn r) : name(n), summary(s), run(r) {
  registry().push_back(this);
}
std::vector<const Command*> commands() {
  auto out = registry();
  std::sort(out.begin(), out.end(), [](const Command* a, const Command* b) { return std::strcmp(a->name, b->name) < 0; });
  return out;
}

const Subcommand* CommandGroup::find(const std::string& name) const {
  for (const auto* e : entries_)
    if (name == e->name) return e;
  return nullptr;
}

void CommandGroup::usage(FILE* out) const {
  std::fprintf(out, "usage: megalodon %s <%s> [options]   (megalodon %s <%s> --help)\n\n%ss:\n", command_, kind_,
               command_, kind_, kind_);
  auto all = entries_;
  std::sort(all.begin(), all.end(), [](auto a, auto b) { return std::strcmp(a->name, b->name) < 0; });
  for (const auto* e : all) std::fprintf(out, "  %-16s %s\n", e->name, e->summary);
}

int CommandGroup::dispatch(const std::vector<std::string>& args) const {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    usage(args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (const Subcommand* e = find(args[0])) return e->run(std::vector<std::string>(args.begin() + 1, args.end()));
  std::fprintf(stderr, "megalodon %s: unknown %s '%s'\n", command_, kind_, args[0].c_str());
  usage(stderr);
  return 2;
}
}  // namespace mgl::cli

namespace {

void usage(FILE* out) {
  std::fprintf(out, "usage: megalodon <command> [options] [--debug]   (megalodon <command> --help for details;\n"
                   "       --debug: errors with LibTorch's C++ backtrace)\n\ncommands:\n");
  for (const auto* c : mgl::cli::commands()) std::fprintf(out, "  %-8s %s\n", c->name, c->summary);
}
}  // namespace

int main(int argc, char** argv) {
  // Idle OpenMP and OpenBLAS threads sleep soon instead of spinning against each other (issue 22).
  mgl::harness::restart_with_sleeping_idle_threads(argv);
  // LibTorch on the CPU allocates and frees large temporaries every step; with glibc's defaults
  // they go back to the kernel and are page-faulted in again each time. Keeping freed memory in
  // the heap measured +21% tokens/s for Megalodon forward+backward at 4K tokens on 2 cores.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);   // glibc's maximum; also stops the dynamic threshold
  mallopt(M_TRIM_THRESHOLD, 0x7fffffff);
  mallopt(M_TOP_PAD, 1 << 30);
  // Blocks above that threshold are mmap'd and page-faulted in at every step whatever the options:
  // the harness CPU allocator keeps them for reuse (core/util/memory.h; issue 22).
  mgl::tensor_memory::set_cache_large_blocks(true);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  // --debug (anywhere after the command): errors keep LibTorch's backtrace. Passed on to the
  // processes a sweep or launch starts through the environment.
  std::vector<std::string> args;
  bool debug = std::getenv("MEGALODON_DEBUG") != nullptr;
  for (int i = 2; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--debug")) {
      debug = true;
      continue;
    }
    args.emplace_back(argv[i]);
  }
  if (debug) setenv("MEGALODON_DEBUG", "1", 1);
  for (const auto* c : mgl::cli::commands()) {
    if (argv[1] == std::string(c->name)) {
      try {
        return c->run(args);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "megalodon %s: error: %s\n", c->name, mgl::cli::user_message(e).c_str());
        return 1;
      } catch (...) {
        std::fprintf(stderr, "megalodon %s: error: an exception that is not a std::exception\n", c->name);
        return 1;
      }
    }
  }
  std::fprintf(stderr, "megalodon: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
