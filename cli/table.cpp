// `megalodon table`: the result table (Markdown + CSV) and curve plots of a finished sweep.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "harness/report/table.h"

namespace mgl::cli {
namespace {

const char* kTableHelp =
    "usage: megalodon table <sweep_dir> [--out DIR]\n"
    "Aggregates the runs of a sweep (sweep.json and each run's final.json / metrics.jsonl / run.json)\n"
    "over seeds and writes:\n"
    "  table.md                    variants x metrics as mean ± sample std, the paper's reference rows\n"
    "  table.csv                   the same numbers, one row per variant and per paper row\n"
    "  curves_<split>_<metric>.png one chart per entry of the sweep's table.curves (needs OpenCV)\n"
    "The Markdown table is also printed to stdout.\n\n"
    "  --out DIR                   where to write (default: the sweep directory)\n";

int table_main(const std::vector<std::string>& args) {
  std::filesystem::path sweep, out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kTableHelp, stdout);
      return 0;
    }
    if (a == "--out") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "megalodon table: --out needs a directory\n");
        return 2;
      }
      out = args[++i];
    } else if (a.rfind("--out=", 0) == 0) {
      out = a.substr(6);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "megalodon table: unknown option '%s'\n%s", a.c_str(), kTableHelp);
      return 2;
    } else if (sweep.empty()) {
      sweep = a;
    } else {
      std::fprintf(stderr, "megalodon table: one sweep directory expected, got '%s' as well\n", a.c_str());
      return 2;
    }
  }
  if (sweep.empty()) {
    std::fputs(kTableHelp, stderr);
    return 2;
  }
  if (out.empty()) out = sweep;
  const auto report = harness::write_sweep_report(sweep, out);
  std::fputs(report.markdown.c_str(), stdout);
  for (const auto& note : report.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  std::printf("\nwrote:\n");
  for (const auto& f : report.files) std::printf("  %s\n", f.string().c_str());
  return 0;
}

const Command kTable{"table", "result table (Markdown, CSV) and curve plots of a finished sweep", table_main};

}  // namespace
}  // namespace mgl::cli
