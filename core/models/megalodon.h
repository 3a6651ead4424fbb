// Megalodon models (spec §0, §4): the block, the causal LM and the classification encoder.
#pragma once
#include <torch/torch.h>

#include "core/config.h"
#include "core/models/lm.h"
#include "core/modules/adaptive.h"
#include "core/modules/mega_layer.h"
#include "core/modules/nffn.h"

namespace mgl {

// One block: the MEGA sub-layer then the NFFN with the two-hop residual (§4.2):
//   y = x + h(x);  two_hop: x' = x + FFN(LN(y))   prenorm: x' = y + FFN(LN(y)).
class MegaBlockImpl : public torch::nn::Module {
 public:
  MegaBlockImpl(const MegalodonConfig& cfg, int64_t layer_id);
  torch::Tensor forward(const torch::Tensor& x, MegaLayerState* state = nullptr,
                        const torch::Tensor& padding_mask = {}, const ops::DocumentPlan* documents = nullptr,
                        SequenceExchange* exchange = nullptr);
  MegalodonConfig cfg;
  MovingAverageGatedAttention mega{nullptr};
  NormalizedFeedForwardNetwork nffn{nullptr};
};
TORCH_MODULE(MegaBlock);

// Final norm and head (MegaOutputLayer, §4.3): a TimestepNorm (or the ablation's norm), then a
// bias-free projection to V, optionally tied to the embedding. With an adaptive softmax the LM owns
// the head and this layer is the final norm only (forward returns the normed features).
class MegaOutputLayerImpl : public torch::nn::Module {
 public:
  MegaOutputLayerImpl(const MegalodonConfig& cfg, torch::Tensor embed_weight);
  torch::Tensor forward(const torch::Tensor& x, ops::NormState* state = nullptr);
  // The head alone on normed features (logits in fp32, fp64 for fp64).
  torch::Tensor project(const torch::Tensor& h);
  // −log softmax(project(h)) at the targets (< 0: ignored, 0), over slices of the rows so the B×L×V
  // logits never exist whole (ops::sliced_linear_nll).
  torch::Tensor nll(const torch::Tensor& h, const torch::Tensor& targets);
  MegalodonConfig cfg;
  SequenceNorm final_norm{nullptr};
  torch::nn::Linear output{nullptr};  // absent when share_emb
  torch::Tensor tied_weight;          // the embedding weight when share_emb (not re-registered)
};
TORCH_MODULE(MegaOutputLayer);

// With a sequence exchange bound (SegmentParallel; the trainer binds it around a training step
// with dist.chunk_parallel > 1), the calls without a streaming state run on this rank's segment of
// each sequence and pass the exchange to every layer and the final norm.
class MegalodonLMImpl : public CausalLMImpl, public SegmentParallel {
 public:
  explicit MegalodonLMImpl(const MegalodonConfig& cfg);
  torch::Tensor forward(const torch::Tensor& tokens, StreamState* state = nullptr,
                        std::vector<torch::Tensor>* layer_outputs = nullptr, const Documents& documents = {}) override;
  torch::Tensor nll(const torch::Tensor& tokens, const torch::Tensor& targets, StreamState* state = nullptr,
                    const Documents& documents = {}) override;
  torch::Tensor last_logits(const torch::Tensor& tokens, StreamState* state = nullptr) override;
  // The final-normed features B×L×D (what the head reads); advances the state like forward.
  torch::Tensor features(const torch::Tensor& tokens, StreamState* state = nullptr,
                         std::vector<torch::Tensor>* layer_outputs = nullptr, const Documents& documents = {});
  std::unique_ptr<StreamState> make_state(int64_t batch) const override;
  std::string name() const override { return "megalodon"; }
  double flops_per_token(int64_t context) const override;
  void set_sequence_exchange(SequenceExchange* exchange) override { exchange_ = exchange; }
  SequenceExchange* sequence_exchange() const override { return exchange_; }

  MegalodonConfig cfg;
  torch::nn::Embedding embed{nullptr};  // absent with an adaptive input
  torch::nn::ModuleList layers{nullptr};
  std::vector<MegaBlock> blocks;  // typed views of `layers`
  MegaOutputLayer output{nullptr};
  AdaptiveInput adaptive_input{nullptr};      // cfg.adaptive_cutoffs non-empty
  AdaptiveSoftmax adaptive_softmax{nullptr};

 private:
  SequenceExchange* exchange_ = nullptr;
};

// The classifier head. mlp: mean pool → Linear(n·D→hd) → dropout → GELU → Linear(hd→classes, no
// bias) (Mega's LRA / speech heads). image: Linear(D→hd) + SiLU at every position → mean pool →
// dropout → Linear(hd→classes) (Mega's ImageNet model: final norm → Linear + SiLU → pool → head).
enum class ClassifierHead { mlp, image };
const char* to_string(ClassifierHead);
ClassifierHead parse_classifier_head(const std::string& key, const std::string& v);

struct ClassifierOptions {
  int64_t num_classes = 2;
  int64_t input_dim = 1;    // real-valued inputs: features per position (used when vocab_size <= 0)
  int64_t head_dim = -1;    // hidden width of the head; -1 = 2·D (Mega's LRA heads)
  double head_dropout = 0.0;
  int64_t num_documents = 1;  // 2: two sequences through the same encoder, [rep1; rep2] into the head (LRA Retrieval)
  // > 0: learned absolute position embeddings for up to this many positions, added to the input
  // embedding (ViT / Mega ImageNet: one per patch), initialised N(0, 0.02²) truncated at ±2σ.
  int64_t max_positions = 0;
  ClassifierHead head = ClassifierHead::mlp;  // head_dim -1 means 2·D for mlp, D for image
};

// Encoder for classification (§2.1 of the benchmarks doc): token embedding or a linear embedding of
// real inputs, blocks in encoder form (bidirectional CEMA, non-causal chunk attention; the norm is
// cfg.norm — the paper replaces TimestepNorm by Group Norm for classification, which a config
// selects with norm = "group"), a final norm, mean pooling over the valid positions and a head
// Linear(n·D→2D) + dropout → GELU → Linear(2D→classes, no bias), n = options.num_documents.
// Forward FLOPs of one Megalodon block per position (2 per multiply-add of its projections and FFN,
// plus attention scores and values against `keys` keys on average); MFU figures use it.
double megalodon_block_flops(const MegalodonConfig& c, double keys);
// Forward FLOPs of the encoder per example of length L (non-causal: every key of a chunk).
double megalodon_classifier_flops(const MegalodonConfig& c, int64_t length);

class MegalodonClassifierImpl : public torch::nn::Module {
 public:
  // cfg.causal is forced to false. vocab_size > 0 selects a token embedding.
  MegalodonClassifierImpl(MegalodonConfig cfg, const ClassifierOptions& options);
  // inputs: B×L int64 tokens, or B×L (×input_dim) floats; padding_mask: B×L bool (true = pad).
  // If layer_outputs is given, it receives each block's output (B×L×D), as the LM's does.
  torch::Tensor forward(const torch::Tensor& inputs, const torch::Tensor& padding_mask = {},
                        std::vector<torch::Tensor>* layer_outputs = nullptr);
  double flops_per_example(int64_t length) const { return megalodon_classifier_flops(cfg, length); }
  // Two documents (num_documents = 2): each is encoded by the same encoder and mean-pooled; the
  // head sees the concatenation [rep(a); rep(b)] (Mega's Retrieval head, not LRA's [u, v, u·v, u−v]).
  torch::Tensor forward_pair(const torch::Tensor& a, const torch::Tensor& mask_a, const torch::Tensor& b,
                             const torch::Tensor& mask_b);
  // The head on pooled representations (B × n·D).
  torch::Tensor head(const torch::Tensor& pooled);
  // The pooled representation (B×D) before the head, e.g. for two-document tasks.
  torch::Tensor encode(const torch::Tensor& inputs, const torch::Tensor& padding_mask = {},
                       std::vector<torch::Tensor>* layer_outputs = nullptr);

  MegalodonConfig cfg;
  ClassifierOptions options;
  torch::nn::Embedding embed{nullptr};
  torch::nn::Linear input_proj{nullptr};
  torch::Tensor positions;  // max_positions×D learned position embeddings (when max_positions > 0)
  torch::nn::ModuleList layers{nullptr};
  std::vector<MegaBlock> blocks;
  SequenceNorm final_norm{nullptr};
  torch::nn::Linear head_fc1{nullptr}, head_fc2{nullptr};
};
TORCH_MODULE(MegalodonClassifier);

}  // namespace mgl
