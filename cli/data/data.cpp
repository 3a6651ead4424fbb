// `megalodon data`: dispatches to the registered data tools.
#include "cli/data/data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "cli/args.h"
#include "cli/commands.h"
#include "datasets/idx.h"

namespace mgl::cli {
namespace {

std::vector<const DataTool*>& tools() {
  static std::vector<const DataTool*> t;
  return t;
}

void usage(FILE* out) {
  std::fprintf(out, "usage: megalodon data <tool> [options]   (megalodon data <tool> --help)\n\ntools:\n");
  auto all = tools();
  std::sort(all.begin(), all.end(), [](auto a, auto b) { return std::strcmp(a->name, b->name) < 0; });
  for (const auto* t : all) std::fprintf(out, "  %-16s %s\n", t->name, t->summary);
}

int data_main(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    usage(args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  for (const auto* t : tools())
    if (args[0] == t->name) return t->run(std::vector<std::string>(args.begin() + 1, args.end()));
  std::fprintf(stderr, "megalodon data: unknown tool '%s'\n", args[0].c_str());
  usage(stderr);
  return 2;
}

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

DataTool::DataTool(const char* n, const char* s, Fn r) : name(n), summary(s), run(r) { tools().push_back(this); }

}  // namespace mgl::cli
