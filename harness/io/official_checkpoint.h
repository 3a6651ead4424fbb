// Converting a checkpoint of the official PyTorch code (github XuezheMax/megalodon) into our weights
// directory (model.safetensors + config.json, harness/io/weights.h).
//
// The official layout, as megalodon/reloading.py reads it (reload_config, load_consolidated_weights,
// get_consolidated_ckpt_path):
//   <dir>/config.json               the training config; the ModelConf fields are its "model" object
//                                   (reload_config_and_tokenizer: `ModelConf(**cfg["model"])`)
//   <dir>/consolidate_config.json   {"model_parallel_size": P, "dtype": "bf16" | "fp16" | "fp32", ...}
//   <dir>/consolidated.pth          torch.save of the model's state dict when P = 1, loaded with
//                                   `torch.load` straight into `model.load_state_dict` (no nesting,
//                                   no key prefix)
//   <dir>/consolidated.{r:02d}.pth  model-parallel rank r's shard when P > 1
// There is no params.json in the official code; a flat JSON object of ModelConf fields (what
// `config.json["model"]` holds) is accepted too, for hand-written configs.
//
// The state dict names are ours (weights.h), plus `rope.freqs` (the RotaryEmbedding buffer, checked
// against rope_base and dropped) and, with share_emb, `output.output.weight` (the embedding
// Parameter under its second name, checked bit-equal to embed.weight and dropped).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/models/megalodon.h"
#include "harness/io/weights.h"

namespace mgl::harness {

// Reads a state dict written by `torch.save` (the zip format of PyTorch >= 1.6): a dict of name ->
// tensor at the top level. Tensors land on the CPU in the file's dtype; tensors that shared a storage
// in Python share it here. Errors (std::runtime_error) name the file and what was found instead: not
// a zip, the legacy pre-1.6 format, a top level that is not a dict, a non-string key, a non-tensor
// value under key K, a Python object that is not part of a state dict.
// (torch::pickle_load cannot read such a file with LibTorch 1.13; the .cpp says why and how we do.)
// "float32", "bfloat16", "float16", "float64", "int64", else LibTorch's name.
std::string dtype_name(torch::ScalarType t);

std::map<std::string, torch::Tensor> read_torch_state_dict(const std::filesystem::path& file);

// The ModelConf of a params JSON (the official config.json with a "model" object, or a flat object of
// ModelConf fields) as a MegalodonConfig. Official names and defaults (spec §5.1): absent keys take
// ModelConf's defaults, rope_base null means 10000, output_size -1 means vocab_size; efficient_attn
// and layerwise_ckpt (kernel choice and activation checkpointing) are checked and ignored. A key that
// is not a ModelConf field is an error, as `ModelConf(**cfg["model"])` makes it in the official code;
// other sections of the training config (tokenizer, optim, ...) are ignored. vocab_size -1 (set from
// the tokenizer officially) needs `vocab_size` > 0 here; when both are given they must agree.
// Errors are harness::ConfigError naming `where` and the key.
mgl::MegalodonConfig official_model_config(const nlohmann::json& j, const std::string& where,
                                           int64_t vocab_size = -1);
mgl::MegalodonConfig read_official_params(const std::filesystem::path& file, int64_t vocab_size = -1);

// Checks `state` against the model (every missing, unexpected, mis-shaped or wrong-kind tensor is
// listed in one std::runtime_error that names `where`; rope.freqs must match rope_base, a tied head
// must equal embed.weight), then copies it into the model's parameters and buffers, converting to
// their dtype. Nothing is copied unless everything matches.
void load_official_state(mgl::MegalodonLMImpl& lm, const std::map<std::string, torch::Tensor>& state,
                         const std::string& where);

struct ConvertOptions {
  std::filesystem::path official_dir;
  std::filesystem::path params;            // empty: <dir>/config.json, else <dir>/params.json
  std::filesystem::path checkpoint;        // empty: <dir>/consolidated.pth
  int64_t vocab_size = -1;                 // for a params file whose vocab_size is -1
  std::optional<torch::ScalarType> dtype;  // none: keep the checkpoint's floating dtype
};

struct ConvertSummary {
  std::filesystem::path params, checkpoint, out;
  ModelSpec spec;
  torch::ScalarType source_dtype = torch::kFloat32;  // the checkpoint's floating dtype
  torch::ScalarType dtype = torch::kFloat32;         // written
  int64_t parameters = 0;                            // parameter elements (a tied head once)
  size_t tensors_read = 0, tensors_written = 0;
  std::vector<std::string> notes;  // what was checked and dropped, what was ignored
};

// Finds the files (refusing a model-parallel checkpoint, naming how many shards it found), reads the
// params and the state dict, checks and loads them into a fresh MegalodonLM, and writes
// <out>/model.safetensors and <out>/config.json through export_weights (each atomically). `out` must
// not be the official directory (its config.json would be overwritten).
ConvertSummary convert_official_checkpoint(const ConvertOptions& options, const std::filesystem::path& out);

}  // namespace mgl::harness
