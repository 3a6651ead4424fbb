#include "core/models/transformer.h"

#include <torch/version.h>

#include <cmath>
#include <optional>

#include "core/init.h"
#include "core/modules/checkpoint.h"
#include "core/ops/attention.h"
#include "core/ops/blocked_attention.h"
#include "core/ops/lm_loss.h"

namespace mgl {

using torch::Tensor;
namespace F = torch::nn::functional;

BaselineAttention resolve_baseline_attention(BaselineAttention a) {
  if (a == BaselineAttention::auto_select) return ops::sdpa_available() ? BaselineAttention::sdpa : BaselineAttention::blocked;
  if (a == BaselineAttention::sdpa && !ops::sdpa_available())
    throw ConfigError("model.attention", std::string("\"sdpa\" needs LibTorch >= 2.0; this build has ") + TORCH_VERSION +
                                             " (use \"blocked\", the memory-efficient attention, or \"auto\")");
  return a;
}

namespace {
torch::nn::Linear linear(int64_t in, int64_t out) {
  torch::nn::Linear l(torch::nn::LinearOptions(in, out).bias(false));
  init_weight(l->weight, InitMode::he);
  return l;
}
Tensor drop(const Tensor& x, double p, bool train) {
  return (p > 0 && train) ? F::dropout(x, F::DropoutFuncOptions().p(p).training(true)) : x;
}
}  // namespace

TransformerAttentionImpl::TransformerAttentionImpl(const TransformerConfig& c) : cfg(c) {
  const int64_t D = c.model_dim;
  wq = register_module("wq", linear(D, D));
  wk = register_module("wk", linear(D, D));
  wv = register_module("wv", linear(D, D));
  wo = register_module("wo", linear(D, D));
}

Tensor TransformerAttentionImpl::forward(const Tensor& x, int64_t start_pos, Tensor* k_cache, Tensor* v_cache,
                                         const ops::DocumentPlan* documents) {
  const int64_t B = x.size(0), L = x.size(1), H = cfg.num_heads, hd = cfg.head_dim();
  if (documents) {
    // Document resets: the same-document causal mask over [cache, this call] (reference path).
    Tensor q = ops::apply_rope_rows(wq(x).view({B, L, H, hd}), documents->positions, cfg.rope_base);
    Tensor k = ops::apply_rope_rows(wk(x).view({B, L, H, hd}), documents->positions, cfg.rope_base);
    Tensor v = wv(x).view({B, L, H, hd});
    if (documents->cached > 0) {
      TORCH_CHECK(k_cache && k_cache->defined() && k_cache->size(1) == documents->cached,
                  "TransformerLM: the document plan expects ", documents->cached, " cached keys");
      k = torch::cat({*k_cache, k}, 1);
      v = torch::cat({*v_cache, v}, 1);
    }
    Tensor o = ops::segment_attention(q, k, v, *documents, 1.0 / std::sqrt(static_cast<double>(hd)), cfg.dropout,
                                      is_training());
    if (k_cache) {
      const int64_t S = k.size(1), keep = documents->keep;
      *k_cache = keep ? k.narrow(1, S - keep, keep) : Tensor();
      *v_cache = keep ? v.narrow(1, S - keep, keep) : Tensor();
    }
    return wo(o.reshape({B, L, H * hd}));
  }
  Tensor pos = torch::arange(start_pos, start_pos + L, torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
  const Tensor rot = ops::rope_rotation(pos, hd, cfg.rope_base,
                                       x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
  Tensor q = ops::apply_rope(wq(x).view({B, L, H, hd}), rot);
  Tensor k = ops::apply_rope(wk(x).view({B, L, H, hd}), rot);
  Tensor v = wv(x).view({B, L, H, hd});
  if (k_cache) {
    if (k_cache->defined()) {
      k = torch::cat({*k_cache, k}, 1);
      v = torch::cat({*v_cache, v}, 1);
    }
    *k_cache = k;
    *v_cache = v;
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const double p = is_training() ? cfg.dropout : 0.0;
  const BaselineAttention impl = resolve_baseline_attention(cfg.attention);
  Tensor o;
#if TORCH_VERSION_MAJOR >= 2
  // The fused SDPA kernels (flash / memory-efficient / cuDNN) whenever the mask is one SDPA can
  // express: no cache in front (top-left causal = ours), or a single new query after a cache (it
  // sees every key: no mask). Its default scale 1/sqrt(head_dim) is ours.
  if (impl == BaselineAttention::sdpa && (k.size(1) == L || L == 1)) {
    const bool causal = k.size(1) == L && L > 1;
    o = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), {}, p, causal)
            .transpose(1, 2);
  }
#endif
  // Memory-efficient attention in plain LibTorch (no attention dropout): the causal mask is
  // bottom-right aligned, so it also serves several new queries after a cache.
  if (!o.defined() && impl != BaselineAttention::explicit_softmax && p == 0.0) {
    ops::BlockedAttentionOptions bo;
    bo.causal = true;
    bo.scale = scale;
    o = ops::blocked_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), bo).transpose(1, 2);
  }
  // `explicit` (and attention dropout in training): the reference path, which materialises the
  // L×L probabilities.
  if (!o.defined()) o = ops::cached_attention(q, k, v, scale, p, is_training());
  return wo(o.reshape({B, L, H * hd}));
}

TransformerBlockImpl::TransformerBlockImpl(const TransformerConfig& c, int64_t) : cfg(c) {
  attention_norm = register_module("attention_norm", RMSNorm(c.model_dim, true, c.norm_eps));
  attention = register_module("attention", TransformerAttention(c));
  ffn_norm = register_module("ffn_norm", RMSNorm(c.model_dim, true, c.norm_eps));
  w1 = register_module("w1", linear(c.model_dim, c.ffn_hidden_dim));
  w2 = register_module("w2", linear(c.ffn_hidden_dim, c.model_dim));
  w3 = register_module("w3", linear(c.model_dim, c.ffn_hidden_dim));
}

Tensor TransformerBlockImpl::forward(const Tensor& x, int64_t start_pos, Tensor* k_cache, Tensor* v_cache,
                                     const ops::DocumentPlan* documents) {
  const bool train = is_training();
  Tensor h = x + drop(attention(attention_norm(x), start_pos, k_cache, v_cache, documents), cfg.dropout, train);
  Tensor u = ffn_norm(h);
  return h + drop(w2(torch::silu(w1(u)) * w3(u)), cfg.dropout, train);
}

TransformerLMImpl::TransformerLMImpl(const TransformerConfig& c) : cfg(c) {
  cfg.validate();
  resolve_baseline_attention(cfg.attention);  // refuses sdpa without LibTorch >= 2 before anything runs
  TORCH_CHECK(cfg.vocab_size > 0, "model.vocab_size must be set (> 0) for a language model");
  if (cfg.adaptive_cutoffs.empty()) {
    tok_embeddings = register_module("tok_embeddings", torch::nn::Embedding(cfg.vocab_size, cfg.model_dim));
    init_weight(tok_embeddings->weight, InitMode::gaussian, cfg.model_dim);
  } else {
    adaptive_input = register_module(
        "adaptive_input", AdaptiveInput(cfg.vocab_size, cfg.model_dim, cfg.adaptive_cutoffs, cfg.adaptive_factor));
  }
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    blocks.emplace_back(cfg, i);
    layers->push_back(blocks.back());
  }
  norm = register_module("norm", RMSNorm(cfg.model_dim, true, cfg.norm_eps));
  if (adaptive_input) {
    adaptive_softmax =
        register_module("adaptive_softmax", AdaptiveSoftmax(adaptive_input, cfg.adaptive_softmax_dropout));
  } else if (!cfg.share_emb) {
    output = register_module("output",
                             torch::nn::Linear(torch::nn::LinearOptions(cfg.model_dim, cfg.vocab_size).bias(false)));
    init_weight(output->weight, InitMode::gaussian, cfg.model_dim);
  }
}

std::unique_ptr<StreamState> TransformerLMImpl::make_state(int64_t) const {
  auto s = std::make_unique<TransformerState>();
  s->k.resize(cfg.num_layers);
  s->v.resize(cfg.num_layers);
  return s;
}

Tensor TransformerLMImpl::features(const Tensor& tokens, StreamState* state, std::vector<Tensor>* layer_outputs,
                                   const Documents& documents) {
  TORCH_CHECK(tokens.dim() == 2, "TransformerLM: tokens must be B×L, got ", tokens.sizes());
  TransformerState* st = nullptr;
  if (state) {
    st = dynamic_cast<TransformerState*>(state);
    TORCH_CHECK(st && static_cast<int64_t>(st->k.size()) == cfg.num_layers,
                "TransformerLM: the state was not made by this model");
  }
  const int64_t start = st ? st->position : 0;
  // Document resets: one plan for every layer; a stream whose cache is in the document form keeps it.
  std::optional<ops::DocumentPlan> plan;
  if (documents.defined() || (st && st->kv_valid.defined())) {
    TORCH_CHECK(!documents.defined() || documents.starts.sizes() == tokens.sizes(),
                "TransformerLM: document starts must be B×L like the tokens, got ", documents.starts.sizes());
    ops::DocumentPlanOptions o;
    o.restart_positions = documents.restart_positions;
    if (st) {
      o.cached = st->k.empty() || !st->k[0].defined() ? 0 : st->k[0].size(1);
      o.cached_valid = st->kv_valid;
      o.stream_position = st->position;
    }
    plan = ops::plan_documents(documents.defined() ? documents.starts
                                                   : torch::zeros(tokens.sizes(), tokens.options().dtype(torch::kBool)),
                               o);
  }
  Tensor x = drop(adaptive_input ? adaptive_input(tokens) : tok_embeddings(tokens), cfg.dropout, is_training());
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (cfg.checkpoint_activations && !st) {  // stand-alone sequences only (a cache is state)
      TransformerBlock& b = blocks[i];
      const ops::DocumentPlan* docs = plan ? &*plan : nullptr;
      x = checkpoint([&b, start, docs](const Tensor& t) { return b(t, start, nullptr, nullptr, docs); }, x,
                     b->parameters());
    } else {
      x = blocks[i](x, start, st ? &st->k[i] : nullptr, st ? &st->v[i] : nullptr, plan ? &*plan : nullptr);
    }
    if (layer_outputs) layer_outputs->push_back(x);
  }
  if (st) st->position += tokens.size(1);
  if (st && plan) st->kv_valid = plan->keep_valid;
  return norm(x);
}

Tensor TransformerLMImpl::forward(const Tensor& tokens, StreamState* state, std::vector<Tensor>* layer_outputs,
                                  const Documents& documents) {
  Tensor h = features(tokens, state, layer_outputs, documents);
  if (adaptive_softmax) return adaptive_softmax->log_prob(h);
  Tensor logits = output ? output(h) : F::linear(h, tok_embeddings->weight);
  return logits.scalar_type() == torch::kFloat64 ? logits : logits.to(torch::kFloat32);
}

Tensor TransformerLMImpl::last_logits(const Tensor& tokens, StreamState* state) {
  const Tensor h = features(tokens, state, nullptr).narrow(1, tokens.size(1) - 1, 1);
  if (adaptive_softmax) return adaptive_softmax->log_prob(h).squeeze(1);
  const Tensor logits = (output ? output(h) : F::linear(h, tok_embeddings->weight)).squeeze(1);
  return logits.scalar_type() == torch::kFloat64 ? logits : logits.to(torch::kFloat32);
}

Tensor TransformerLMImpl::nll(const Tensor& tokens, const Tensor& targets, StreamState* state,
                              const Documents& documents) {
  Tensor h = features(tokens, state, nullptr, documents);
  if (adaptive_softmax) return adaptive_softmax->nll(h, targets);
  // The loss over slices of the rows: no B×L×V logits (issue 22).
  return ops::sliced_linear_nll(h, output ? output->weight : tok_embeddings->weight, targets);
}

double TransformerLMImpl::flops_per_token(int64_t context) const {
  const double D = cfg.model_dim, Fh = cfg.ffn_hidden_dim;
  const double ctx = (context + 1) / 2.0;
  const double head = adaptive_softmax ? adaptive_softmax->flops_per_row() : 2.0 * D * cfg.vocab_size;
  return cfg.num_layers * (2.0 * (4 * D * D + 3 * D * Fh) + 4.0 * ctx * D) + head;
}

}  // namespace mgl
