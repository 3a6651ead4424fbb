// The Transformer baseline for classification: a pre-norm encoder in the ViT / DeiT form (Dosovitskiy
// et al. 2021; Touvron et al. 2021). Inputs are embedded (tokens, or a linear map of real features
// such as flattened image patches), a class token is prepended (or the outputs are mean-pooled),
// learned absolute positions are added, and each block is
//   x = x + drop_path(Attn(LN(x)));  x = x + drop_path(MLP(LN(x)))
// with full bidirectional softmax attention (qkv with bias, 1/sqrt(d) scaling) and a GELU MLP; a
// final LayerNorm and a linear head on the class token (or the pooled outputs). DeiT-B is 12 layers,
// d 768, 12 heads, MLP 3072 (86M parameters at 224² with 16² patches).
#pragma once
#include <torch/torch.h>

#include <string>

namespace mgl {

struct TransformerClassifierConfig {
  int64_t num_layers = 12;
  int64_t model_dim = 768;
  int64_t num_heads = 12;
  int64_t ffn_hidden_dim = 3072;
  int64_t num_classes = 1000;
  int64_t vocab_size = -1;  // > 0: token inputs; otherwise real inputs of input_dim features
  int64_t input_dim = 1;
  int64_t max_positions = 196;  // positions excluding the class token
  bool cls_token = true;        // false: mean pooling over the valid positions
  double dropout = 0.0;         // after the embedding and on the attention / MLP outputs
  double attention_dropout = 0.0;
  double drop_path = 0.0;  // rate of the last block; block i: drop_path·i/(L−1)
  double norm_eps = 1e-6;
  int64_t head_dim() const { return model_dim / num_heads; }
  // Throws mgl::ConfigError naming "<prefix>.<field>".
  void validate(const std::string& prefix = "model") const;
};

// Forward FLOPs of the matmuls per example at input length L (for MFU figures).
double transformer_classifier_flops(const TransformerClassifierConfig& cfg, int64_t length);

class TransformerEncoderBlockImpl : public torch::nn::Module {
 public:
  TransformerEncoderBlockImpl(const TransformerClassifierConfig& cfg, double drop_path_rate);
  // x: B×L×D; key_padding: B×L bool (true = padding) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding = {});
  TransformerClassifierConfig cfg;
  double drop_path_rate;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(TransformerEncoderBlock);

class TransformerClassifierImpl : public torch::nn::Module {
 public:
  explicit TransformerClassifierImpl(const TransformerClassifierConfig& cfg);
  // inputs: B×L tokens or B×L(×input_dim) reals; padding_mask: B×L bool (true = pad). Returns the
  // B×num_classes logits.
  torch::Tensor forward(const torch::Tensor& inputs, const torch::Tensor& padding_mask = {});
  double flops_per_example(int64_t length) const { return transformer_classifier_flops(cfg, length); }

  TransformerClassifierConfig cfg;
  torch::nn::Embedding embed{nullptr};
  torch::nn::Linear input_proj{nullptr};
  torch::Tensor cls_token, positions;
  torch::nn::ModuleList layers{nullptr};
  std::vector<TransformerEncoderBlock> blocks;
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(TransformerClassifier);

}  // namespace mgl
