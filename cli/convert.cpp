// `megalodon convert`: an official PyTorch checkpoint (consolidated.pth + the params JSON) to our
// weights directory (model.safetensors + config.json). The checks are in harness/io/official_checkpoint.h.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "harness/config/model.h"
#include "harness/io/official_checkpoint.h"

namespace mgl::cli {
namespace {

namespace fs = std::filesystem;

const char* kConvertHelp =
    "usage: megalodon convert --official DIR [--params FILE] [--checkpoint FILE] [--vocab-size N]\n"
    "                         [--dtype keep|float32|bfloat16] --out OUTDIR\n"
    "Converts a checkpoint of the official Megalodon code (github XuezheMax/megalodon) into "
    "OUTDIR/model.safetensors\n"
    "and OUTDIR/config.json, the weights directory that `forward`, `eval` and import_weights read.\n\n"
    "  --official DIR      the official checkpoint directory: config.json (the training config, ModelConf "
    "under\n"
    "                      \"model\"), consolidated.pth (torch.save of the state dict), "
    "consolidate_config.json\n"
    "  --params FILE       the ModelConf JSON (default DIR/config.json, else DIR/params.json); a flat object "
    "of\n"
    "                      ModelConf fields is accepted too. Unknown fields are errors\n"
    "  --checkpoint FILE   the state dict (default DIR/consolidated.pth). Model-parallel shards\n"
    "                      (consolidated.NN.pth) are refused\n"
    "  --vocab-size N      the vocabulary when the params say -1 (officially set from the tokenizer)\n"
    "  --dtype D           keep (default: the checkpoint's dtype), float32 or bfloat16\n"
    "  --out OUTDIR        where to write (not DIR: its config.json would be overwritten)\n\n"
    "Checked: every parameter and buffer of the model that the params describe is present with its shape, "
    "and\n"
    "nothing else is; rope.freqs matches rope_base; with share_emb, output.output.weight equals "
    "embed.weight.\n"
    "Exit status: 0 converted, 1 bad data (files, params, tensors), 2 bad usage.\n";

int usage_error(const std::string& what) {
  std::fprintf(stderr, "megalodon convert: %s (see megalodon convert --help)\n", what.c_str());
  return 2;
}

int convert_main(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kConvertHelp, stdout);
      return 0;
    }
  harness::ConvertOptions o;
  fs::path out;
  try {
    const ParsedArgs p =
        parse_args(args, {"--official", "--params", "--checkpoint", "--vocab-size", "--dtype", "--out"}, {});
    if (!p.positional.empty() || !p.overrides.empty())
      throw std::invalid_argument("unexpected argument '" +
                                  (p.positional.empty() ? p.overrides.front() : p.positional.front()) + "'");
    o.official_dir = p.option("--official");
    o.params = p.option("--params");
    o.checkpoint = p.option("--checkpoint");
    o.vocab_size = p.int_option("--vocab-size", -1, 1);
    out = p.option("--out");
    if (o.official_dir.empty()) throw std::invalid_argument("--official DIR is required");
    if (out.empty()) throw std::invalid_argument("--out OUTDIR is required");
    const std::string dtype = p.option("--dtype", "keep");
    if (dtype == "float32")
      o.dtype = torch::kFloat32;
    else if (dtype == "bfloat16")
      o.dtype = torch::kBFloat16;
    else if (dtype != "keep")
      throw std::invalid_argument("--dtype must be keep, float32 or bfloat16, got '" + dtype + "'");
  } catch (const std::invalid_argument& e) {
    return usage_error(e.what());
  }

  const harness::ConvertSummary s = harness::convert_official_checkpoint(o, out);
  const MegalodonConfig& c = s.spec.model;
  std::printf("converted %s\n  params     %s\n", s.checkpoint.string().c_str(), s.params.string().c_str());
  std::printf(
      "  model      %ld layers, D %ld, Z %ld, E %ld, H %ld, F %ld%s, N %ld, C %ld, G %ld, V %ld, out "
      "%ld%s%s\n",
      long(c.num_layers), long(c.model_dim), long(c.z_dim), long(c.value_dim), long(c.num_heads),
      long(c.ffn_hidden_dim), c.swiglu ? " (SwiGLU)" : "", long(c.cema_ndim), long(c.chunk_size),
      long(c.norm_num_groups), long(c.vocab_size), long(c.out_size()), c.share_emb ? ", tied head" : "",
      c.scale_emb ? ", scaled embedding" : "");
  std::printf("  parameters %ld\n  dtype      %s (checkpoint %s)\n  tensors    %zu read, %zu written\n",
              long(s.parameters), harness::dtype_name(s.dtype).c_str(), harness::dtype_name(s.source_dtype).c_str(), s.tensors_read,
              s.tensors_written);
  for (const auto& note : s.notes) std::printf("  note       %s\n", note.c_str());
  std::printf("wrote %s and %s\n", (s.out / "model.safetensors").string().c_str(),
              (s.out / "config.json").string().c_str());
  return 0;
}

}  // namespace

static const Command kConvert{
    "convert", "official checkpoint (consolidated.pth + params JSON) -> safetensors weights", convert_main};

}  // namespace mgl::cli
