// Llama-style Transformer baseline behind the same CausalLM interface: RMSNorm pre-norm, RoPE
// (interleaved pairs, absolute positions), SwiGLU FFN, full causal softmax attention (by default
// memory-efficient: SDPA on LibTorch >= 2, ops::blocked_attention on 1.13; TransformerConfig::attention).
// It is the comparison row of every table and benchmark.
#pragma once
#include <torch/torch.h>

#include "core/config.h"
#include "core/models/lm.h"
#include "core/modules/adaptive.h"
#include "core/modules/norms.h"
#include "core/ops/documents.h"

namespace mgl {

// The attention a config asks for, as it will run here: `auto` becomes sdpa (LibTorch >= 2) or
// blocked; `sdpa` without LibTorch >= 2 throws ConfigError("model.attention").
BaselineAttention resolve_baseline_attention(BaselineAttention a);

class TransformerAttentionImpl : public torch::nn::Module {
 public:
  explicit TransformerAttentionImpl(const TransformerConfig& cfg);
  // x: B×L×D; cache: this layer's K/V so far (B×n×H×d, updated in place) or null.
  // documents: attention within each document, RoPE at the plan's positions, the cache trimmed to
  // each row's current document (core/ops/documents.h).
  torch::Tensor forward(const torch::Tensor& x, int64_t start_pos, torch::Tensor* k_cache,
                        torch::Tensor* v_cache, const ops::DocumentPlan* documents = nullptr);
  TransformerConfig cfg;
  torch::nn::Linear wq{nullptr}, wk{nullptr}, wv{nullptr}, wo{nullptr};
};
TORCH_MODULE(TransformerAttention);

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(const TransformerConfig& cfg, int64_t layer_id);
  torch::Tensor forward(const torch::Tensor& x, int64_t start_pos, torch::Tensor* k_cache, torch::Tensor* v_cache,
                        const ops::DocumentPlan* documents = nullptr);
  TransformerConfig cfg;
  RMSNorm attention_norm{nullptr}, ffn_norm{nullptr};
  TransformerAttention attention{nullptr};
  torch::nn::Linear w1{nullptr}, w2{nullptr}, w3{nullptr};  // feed_forward
};
TORCH_MODULE(TransformerBlock);

class TransformerLMImpl : public CausalLMImpl {
 public:
  explicit TransformerLMImpl(const TransformerConfig& cfg);
  torch::Tensor forward(const torch::Tensor& tokens, StreamState* state = nullptr,
                        std::vector<torch::Tensor>* layer_outputs = nullptr, const Documents& documents = {}) override;
  torch::Tensor nll(const torch::Tensor& tokens, const torch::Tensor& targets, StreamState* state = nullptr,
                    const Documents& documents = {}) override;
  torch::Tensor last_logits(const torch::Tensor& tokens, StreamState* state = nullptr) override;
  // The final-normed features B×L×D (what the head reads); advances the state like forward.
  torch::Tensor features(const torch::Tensor& tokens, StreamState* state = nullptr,
                         std::vector<torch::Tensor>* layer_outputs = nullptr, const Documents& documents = {});
  std::unique_ptr<StreamState> make_state(int64_t batch) const override;
  std::string name() const override { return "transformer"; }
  double flops_per_token(int64_t context) const override;

  TransformerConfig cfg;
  torch::nn::Embedding tok_embeddings{nullptr};  // absent with an adaptive input
  AdaptiveInput adaptive_input{nullptr};
  AdaptiveSoftmax adaptive_softmax{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<TransformerBlock> blocks;
  RMSNorm norm{nullptr};
  torch::nn::Linear output{nullptr};
};

}  // namespace mgl
