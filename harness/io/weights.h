// Model weights in and out of the project: a directory holding `model.safetensors` (the state dict
// under the official PyTorch names) and `config.json` (what to build). This is how a model trained
// here is evaluated by the official code and how official weights are checked against ours.
//
// Names. Our module tree mirrors megalodon/model/mega.py (spec §0), so a parameter's LibTorch name
// is its official state-dict name for every official configuration:
//   embed.weight
//   layers.{i}.mega.timenorm.{weight,bias,prior_count,prior_mean,prior_logv}        (§2.2)
//   layers.{i}.mega.cema.{alpha,delta,theta,gamma,omega}                            (§1.1)
//   layers.{i}.mega.rmsnorm.weight, layers.{i}.mega.{wz,wv,wr,wh1}.{weight,bias}, layers.{i}.mega.wh2.weight,
//   layers.{i}.mega.{gamma,beta}                                                     (§3.1)
//   layers.{i}.nffn.norm.{weight,bias}, layers.{i}.nffn.fc{1,2,3}.weight, layers.{i}.nffn.alpha   (§4.1)
//   output.final_norm.{weight,bias,prior_count,prior_mean,prior_logv}, output.output.weight     (§4.3)
// Two entries of the official state dict have no module here and are synthesised on export:
//   rope.freqs            — the RotaryEmbedding buffer 1/base^(2i/d_z) (fp32, d_z/2), which we
//                           compute from rope_base (§3.3);
//   output.output.weight  — with share_emb the official head *is* the embedding Parameter
//                           (`self.output.weight = embed_weight`, §4.3), so PyTorch's state_dict lists
//                           it under both names; we store no head and reuse embed.weight.
// On import both are optional (a file saved with shared tensors de-duplicated lacks them) but, when
// present, must agree: rope.freqs with rope_base, the tied head with embed.weight, bit for bit.
// prior_count is written as int64 as the official buffer is, whatever dtype the model was cast to.
// Ablation-only modules (norm=layer/group, ema=ema, update_gate, the classifier's input_proj and head)
// have no official counterpart and keep our names.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/config.h"
#include "core/models/megalodon.h"

namespace mgl::harness {

inline constexpr const char* kModelSpecFormat = "megalodon-harness/1";

// What to build: "megalodon_lm" (MegalodonLM) or "megalodon_classifier" (MegalodonClassifier).
struct ModelSpec {
  std::string architecture = "megalodon_lm";
  mgl::MegalodonConfig model;
  mgl::ClassifierOptions classifier;  // used by the classifier only
};

// {"format": "megalodon-harness/1", "architecture": ..., "model": {official ModelConf names},
//  "classifier": {num_classes, input_dim, head_dim, head_dropout}} — classifier only for the classifier.
nlohmann::json to_json(const ModelSpec& spec);
// Strict: unknown keys, a wrong format or architecture, wrong types are harness::ConfigError naming
// `where` (the file) and the key.
ModelSpec model_spec_from_json(const nlohmann::json& j, const std::string& where);
ModelSpec read_model_spec(const std::filesystem::path& config_json);

// A freshly initialised model of the spec (MegalodonLMImpl or MegalodonClassifierImpl).
std::shared_ptr<torch::nn::Module> build_model(const ModelSpec& spec);

// The state dict under the official names (see above): parameters and buffers of `m` (sharing their
// storage), plus rope.freqs and, with share_emb, output.output.weight for a MegalodonLM.
std::map<std::string, torch::Tensor> model_state(const torch::nn::Module& m);

// The official rope.freqs buffer of a config (fp32, d_z/2), bit-equal to RotaryEmbedding's.
torch::Tensor rope_freqs(const mgl::MegalodonConfig& c);

// Writes dir/model.safetensors and dir/config.json, each atomically; creates dir. Refuses a module
// whose type or configuration is not that of `spec`.
void export_weights(const torch::nn::Module& m, const ModelSpec& spec, const std::filesystem::path& dir);

// Copies the tensors of a safetensors file into the module's parameters and buffers (converting the
// dtype, onto the module's device), under NoGradGuard. Strict: every missing, unexpected or
// mis-shaped tensor is listed in one std::runtime_error naming the file and each tensor; nothing is
// copied unless all of them match.
void import_weights(torch::nn::Module& m, const std::filesystem::path& safetensors_file);

}  // namespace mgl::harness
