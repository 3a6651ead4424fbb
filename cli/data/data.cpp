// `megalodon data`: dispatches to the registered data tools.
#include "cli/data/data.h"

#include <fmt/format.h>

#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "datasets/idx.h"

namespace mgl::cli {
namespace {

CommandGroup& tools() {
  static CommandGroup t("data", "tool");
  return t;
}

int data_main(const std::vector<std::string>& args) { return tools().dispatch(args); }

// `idx-info`: what an IDX file holds (shape; for 1-D label files, the class histogram).
int idx_info(const std::vector<std::string>& args) {
  auto p = parse_args(args, {}, {"--help"});
  if (p.flag("--help") || p.positional.empty()) {
    std::fputs("usage: megalodon data idx-info <file.idx[.gz]> ...\n\nPrints the shape of each IDX file, "
               "and the label histogram of 1-D files.\n",
               p.flag("--help") ? stdout : stderr);
    return p.flag("--help") ? 0 : 2;
  }
  for (const auto& f : p.positional) {
    torch::Tensor t = datasets::read_idx_u8(f);
    std::string shape;
    for (auto s : t.sizes()) shape += (shape.empty() ? "" : "×") + std::to_string(s);
    std::printf("%s: uint8 %s\n", f.c_str(), shape.c_str());
    if (t.dim() == 1) {
      torch::Tensor h = torch::bincount(t.to(torch::kInt64));
      for (int64_t c = 0; c < h.size(0); ++c) std::printf("  label %lld: %lld\n", (long long)c, (long long)h[c].item<int64_t>());
    } else {
      std::printf("  pixel mean %.4f std %.4f (of 255)\n", t.to(torch::kFloat64).mean().item<double>() / 255.0,
                  t.to(torch::kFloat64).std().item<double>() / 255.0);
    }
  }
  return 0;
}

const Command kData{"data", "dataset preparation and generators (megalodon data --help lists them)", data_main};
const DataTool kIdxInfo{"idx-info", "shape and label histogram of IDX files (MNIST / Fashion-MNIST)", idx_info};

}  // namespace

DataTool::DataTool(const char* n, const char* s, CommandFn r) : Subcommand{n, s, r} { tools().add(this); }

}  // namespace mgl::cli
