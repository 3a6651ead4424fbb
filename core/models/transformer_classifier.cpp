#include "core/models/transformer_classifier.h"

#include <fmt/format.h>

#include <cmath>

#include "core/config.h"
#include "core/init.h"
#include "core/modules/drop_path.h"

namespace mgl {

using torch::Tensor;
namespace F = torch::nn::functional;

namespace {
Tensor maybe_dropout(const Tensor& x, double p, bool training) {
  return (p > 0.0 && training) ? F::dropout(x, F::DropoutFuncOptions().p(p).training(true)) : x;
}
// timm's ViT initialisation: weights N(0, 0.02²) truncated at ±2σ, biases 0.
void init_vit_linear(const torch::nn::Linear& l) {
  torch::NoGradGuard g;
  trunc_normal_(l->weight, 0.02, -0.04, 0.04);
  if (l->bias.defined()) l->bias.zero_();
}
void require(bool ok, const std::string& key, const std::string& what) {
  if (!ok) throw ConfigError(key, what);
}
}  // namespace

void TransformerClassifierConfig::validate(const std::string& p) const {
  auto key = [&](const char* k) { return p + "." + k; };
  require(num_layers >= 1, key("num_layers"), "must be >= 1");
  require(model_dim >= 1, key("model_dim"), "must be >= 1");
  require(num_heads >= 1 && model_dim % num_heads == 0, key("num_heads"),
          fmt::format("must divide model_dim={}, got {}", model_dim, num_heads));
  require(ffn_hidden_dim >= 1, key("ffn_hidden_dim"), "must be >= 1");
  require(num_classes >= 2, key("num_classes"), "must be >= 2");
  require(vocab_size > 0 || input_dim >= 1, key("input_dim"), "must be >= 1");
  require(max_positions >= 1, key("max_positions"), "must be >= 1");
  for (auto [name, v] : {std::pair{"dropout", dropout}, std::pair{"attention_dropout", attention_dropout},
                         std::pair{"drop_path", drop_path}})
    require(v >= 0 && v < 1, key(name), fmt::format("must be in [0, 1), got {}", v));
  require(norm_eps > 0, key("norm_eps"), "must be > 0");
}

TransformerEncoderBlockImpl::TransformerEncoderBlockImpl(const TransformerClassifierConfig& c, double rate)
    : cfg(c), drop_path_rate(rate) {
  const int64_t D = c.model_dim;
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(c.norm_eps)); };
  norm1 = register_module("norm1", ln());
  qkv = register_module("qkv", torch::nn::Linear(D, 3 * D));
  proj = register_module("proj", torch::nn::Linear(D, D));
  norm2 = register_module("norm2", ln());
  fc1 = register_module("fc1", torch::nn::Linear(D, c.ffn_hidden_dim));
  fc2 = register_module("fc2", torch::nn::Linear(c.ffn_hidden_dim, D));
  for (auto* l : {&qkv, &proj, &fc1, &fc2}) init_vit_linear(*l);
}

Tensor TransformerEncoderBlockImpl::forward(const Tensor& x, const Tensor& key_padding) {
  const bool train = is_training();
  const int64_t B = x.size(0), L = x.size(1), H = cfg.num_heads, d = cfg.head_dim();
  Tensor t = qkv(norm1(x)).view({B, L, 3, H, d}).permute({2, 0, 3, 1, 4});  // 3×B×H×L×d
  Tensor q = t[0], k = t[1], v = t[2];
  Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(d));  // B×H×L×L
  if (key_padding.defined())
    scores = scores.masked_fill(key_padding.view({B, 1, 1, L}), -std::numeric_limits<float>::infinity());
  // Softmax in fp32 for half-precision inputs (fp64 stays fp64 for the oracle tests).
  const auto acc = q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  Tensor attn = maybe_dropout(torch::softmax(scores.to(acc), -1).to(q.scalar_type()), cfg.attention_dropout, train);
  Tensor o = torch::matmul(attn, v).transpose(1, 2).reshape({B, L, H * d});
  Tensor y = x + drop_path(maybe_dropout(proj(o), cfg.dropout, train), drop_path_rate, train);
  Tensor m = fc2(maybe_dropout(torch::gelu(fc1(norm2(y))), cfg.dropout, train));
  return y + drop_path(maybe_dropout(m, cfg.dropout, train), drop_path_rate, train);
}

TransformerClassifierImpl::TransformerClassifierImpl(const TransformerClassifierConfig& c) : cfg(c) {
  cfg.validate();
  const int64_t D = c.model_dim;
  torch::NoGradGuard g;
  if (c.vocab_size > 0) {
    embed = register_module("embed", torch::nn::Embedding(c.vocab_size, D));
    trunc_normal_(embed->weight, 0.02, -0.04, 0.04);
  } else {
    input_proj = register_module("input_proj", torch::nn::Linear(c.input_dim, D));
    init_vit_linear(input_proj);
  }
  if (c.cls_token) {
    cls_token = register_parameter("cls_token", torch::empty({1, 1, D}));
    trunc_normal_(cls_token, 0.02, -0.04, 0.04);
  }
  positions = register_parameter("positions", torch::empty({c.max_positions + (c.cls_token ? 1 : 0), D}));
  trunc_normal_(positions, 0.02, -0.04, 0.04);
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const double rate = c.num_layers > 1 ? c.drop_path * double(i) / double(c.num_layers - 1) : c.drop_path;
    blocks.emplace_back(c, rate);
    layers->push_back(blocks.back());
  }
  final_norm = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(c.norm_eps)));
  head = register_module("head", torch::nn::Linear(D, c.num_classes));
  init_vit_linear(head);
}

Tensor TransformerClassifierImpl::forward(const Tensor& inputs, const Tensor& mask) {
  Tensor x;
  if (embed) {
    TORCH_CHECK(inputs.dim() == 2, "transformer classifier: token inputs must be B×L");
    x = embed(inputs);
  } else {
    Tensor in = inputs.dim() == 2 ? inputs.unsqueeze(-1) : inputs;
    TORCH_CHECK(in.dim() == 3 && in.size(2) == cfg.input_dim, "transformer classifier: real inputs must be B×L×",
                cfg.input_dim, ", got ", inputs.sizes());
    x = input_proj(in.to(input_proj->weight.scalar_type()));
  }
  const int64_t B = x.size(0), L = x.size(1);
  TORCH_CHECK(L <= cfg.max_positions, "transformer classifier: ", L, " positions but max_positions = ",
              cfg.max_positions);
  Tensor key_padding = mask;
  if (cfg.cls_token) {
    x = torch::cat({cls_token.expand({B, 1, cfg.model_dim}).to(x.scalar_type()), x}, 1);
    if (mask.defined()) key_padding = torch::cat({torch::zeros({B, 1}, mask.options()), mask}, 1);
  }
  x = x + positions.narrow(0, 0, x.size(1)).to(x.scalar_type());
  x = maybe_dropout(x, cfg.dropout, is_training());
  for (auto& b : blocks) x = b(x, key_padding);
  x = final_norm(x);
  Tensor pooled;
  if (cfg.cls_token) {
    pooled = x.select(1, 0);
  } else if (!mask.defined()) {
    pooled = x.mean(1);
  } else {
    Tensor valid = mask.logical_not().unsqueeze(-1).to(x.scalar_type());
    pooled = (x * valid).sum(1) / valid.sum(1).clamp_min(1.0);
  }
  return head(pooled);
}

double transformer_classifier_flops(const TransformerClassifierConfig& cfg, int64_t length) {
  const double D = cfg.model_dim, Fh = cfg.ffn_hidden_dim, L = double(length + (cfg.cls_token ? 1 : 0));
  const double per_token = 2.0 * (4 * D * D + 2 * D * Fh) + 2.0 * 2.0 * L * D;  // matmuls + QK^T and AV
  return cfg.num_layers * per_token * L;
}

}  // namespace mgl
