#include "core/models/megalodon.h"

#include <cmath>
#include <optional>

#include "core/init.h"
#include "core/modules/sequence_parallel.h"
#include "core/modules/checkpoint.h"
#include "core/ops/lm_loss.h"

namespace mgl {

using torch::Tensor;
namespace F = torch::nn::functional;

void MegalodonState::detach_() {
  for (auto& l : layers) {
    l.norm = l.norm.defined() ? l.norm.detach() : l.norm;
    if (l.hx.defined()) l.hx = l.hx.detach();
    if (l.k.defined()) l.k = l.k.detach(), l.v = l.v.detach();
  }
  if (final_norm.defined()) final_norm = final_norm.detach();
}

// ---- block ----------------------------------------------------------------------------------

MegaBlockImpl::MegaBlockImpl(const MegalodonConfig& c, int64_t layer_id) : cfg(c) {
  mega = register_module("mega", MovingAverageGatedAttention(c));
  nffn = register_module("nffn", NormalizedFeedForwardNetwork(c, layer_id));
  const double rate = c.num_layers > 1 ? c.drop_path * double(layer_id) / double(c.num_layers - 1) : c.drop_path;
  mega->drop_path_rate = rate;
  nffn->drop_path_rate = rate;
}

Tensor MegaBlockImpl::forward(const Tensor& x, MegaLayerState* state, const Tensor& padding_mask,
                              const ops::DocumentPlan* documents, SequenceExchange* exchange) {
  Tensor y = mega(x, state, padding_mask, documents, exchange);
  // Two-hop (§4.2): the FFN's residual is the block input x, so h reaches the stream only
  // through the FFN. Standard pre-norm adds the FFN to y instead.
  return nffn(y, cfg.residual == ResidualKind::two_hop ? x : y);
}

// ---- output layer -------------------------------------------------------------------------

MegaOutputLayerImpl::MegaOutputLayerImpl(const MegalodonConfig& c, Tensor embed_weight) : cfg(c) {
  final_norm = register_module("final_norm", SequenceNorm(c.norm, c.model_dim, c.norm_num_groups, c.norm_eps,
                                                          c.prior_count, true, c.kernel_timestep_norm));
  if (!c.adaptive_cutoffs.empty()) {
    // the adaptive softmax (owned by the LM) is the head
  } else if (c.share_emb) {
    tied_weight = embed_weight;
  } else {
    output = register_module("output",
                             torch::nn::Linear(torch::nn::LinearOptions(c.model_dim, c.out_size()).bias(false)));
    init_weight(output->weight, c.init_mode == InitMode::none ? InitMode::none : InitMode::gaussian, c.model_dim);
  }
}

Tensor MegaOutputLayerImpl::forward(const Tensor& x, ops::NormState* state) {
  return project(final_norm(x, state));
}

Tensor MegaOutputLayerImpl::project(const Tensor& h) {
  TORCH_CHECK(cfg.adaptive_cutoffs.empty(), "MegaOutputLayer: with an adaptive softmax the LM owns the head");
  Tensor logits = output ? output(h) : F::linear(h, tied_weight);
  // Logits in fp32 (fp64 when the model runs in fp64, as the oracle tests do).
  return logits.scalar_type() == torch::kFloat64 ? logits : logits.to(torch::kFloat32);
}

Tensor MegaOutputLayerImpl::nll(const Tensor& h, const Tensor& targets) {
  TORCH_CHECK(cfg.adaptive_cutoffs.empty(), "MegaOutputLayer: with an adaptive softmax the LM owns the head");
  return ops::sliced_linear_nll(h, output ? output->weight : tied_weight, targets);
}

// ---- LM -------------------------------------------------------------------------------------

MegalodonLMImpl::MegalodonLMImpl(const MegalodonConfig& c) : cfg(c) {
  cfg.validate();
  TORCH_CHECK(cfg.vocab_size > 0, "model.vocab_size must be set (> 0) for a language model");
  TORCH_CHECK(cfg.causal, "a language model needs the causal form (model.causal = true)");
  if (cfg.norm == NormKind::sequence)
    throw ConfigError("model.norm",
                      "'sequence' normalises with statistics of the whole sequence, which a causal language model "
                      "must not see; it is for the classification encoder");
  if (cfg.adaptive_cutoffs.empty()) {
    embed = register_module("embed", torch::nn::Embedding(cfg.vocab_size, cfg.model_dim));
    init_weight(embed->weight, cfg.init_mode == InitMode::none ? InitMode::none : InitMode::gaussian, cfg.model_dim);
  } else {
    adaptive_input = register_module(
        "adaptive_input", AdaptiveInput(cfg.vocab_size, cfg.model_dim, cfg.adaptive_cutoffs, cfg.adaptive_factor));
  }
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    blocks.emplace_back(cfg, i);
    layers->push_back(blocks.back());
  }
  output = register_module("output", MegaOutputLayer(cfg, embed ? embed->weight : Tensor()));
  if (adaptive_input)
    adaptive_softmax =
        register_module("adaptive_softmax", AdaptiveSoftmax(adaptive_input, cfg.adaptive_softmax_dropout));
}

std::unique_ptr<StreamState> MegalodonLMImpl::make_state(int64_t) const {
  auto s = std::make_unique<MegalodonState>();
  s->layers.resize(cfg.num_layers);  // undefined members = the initial state (prior, zero, empty)
  return s;
}

Tensor MegalodonLMImpl::forward(const Tensor& tokens, StreamState* state, std::vector<Tensor>* layer_outputs,
                                const Documents& documents) {
  Tensor h = features(tokens, state, layer_outputs, documents);
  return adaptive_softmax ? adaptive_softmax->log_prob(h) : output->project(h);
}

Tensor MegalodonLMImpl::last_logits(const Tensor& tokens, StreamState* state) {
  const Tensor h = features(tokens, state, nullptr).narrow(1, tokens.size(1) - 1, 1);
  return (adaptive_softmax ? adaptive_softmax->log_prob(h) : output->project(h)).squeeze(1);
}

Tensor MegalodonLMImpl::nll(const Tensor& tokens, const Tensor& targets, StreamState* state, const Documents& documents) {
  Tensor h = features(tokens, state, nullptr, documents);
  return adaptive_softmax ? adaptive_softmax->nll(h, targets) : output->nll(h, targets);
}

Tensor MegalodonLMImpl::features(const Tensor& tokens, StreamState* state, std::vector<Tensor>* layer_outputs,
                                 const Documents& documents) {
  TORCH_CHECK(tokens.dim() == 2, "MegalodonLM: tokens must be B×L, got ", tokens.sizes());
  MegalodonState* st = nullptr;
  if (state) {
    st = dynamic_cast<MegalodonState*>(state);
    TORCH_CHECK(st && static_cast<int64_t>(st->layers.size()) == cfg.num_layers,
                "MegalodonLM: the state was not made by this model");
  }
  // Document resets: one plan for every layer (they share the cache length and the positions). A
  // stream whose cache was left in the document form keeps using it even without new boundaries.
  std::optional<ops::DocumentPlan> plan;
  if (documents.defined() || (st && !st->layers.empty() && st->layers[0].kv_valid.defined())) {
    TORCH_CHECK(!documents.defined() || documents.starts.sizes() == tokens.sizes(),
                "MegalodonLM: document starts must be B×L like the tokens, got ", documents.starts.sizes());
    ops::DocumentPlanOptions o;
    o.chunk = cfg.chunk_size;
    o.restart_positions = documents.restart_positions;
    if (st && !st->layers.empty()) {
      o.cached = st->layers[0].cache_length();
      o.cached_valid = st->layers[0].kv_valid;
      o.stream_position = st->position;
    }
    plan = ops::plan_documents(documents.defined() ? documents.starts
                                                   : torch::zeros(tokens.sizes(), tokens.options().dtype(torch::kBool)),
                               o);
  }
  const ops::DocumentPlan* docs = plan ? &*plan : nullptr;
  Tensor x = adaptive_input ? adaptive_input(tokens) : embed(tokens);
  if (cfg.scale_emb) x = x * std::sqrt(static_cast<double>(cfg.model_dim));
  if (cfg.dropout > 0 && is_training()) x = F::dropout(x, F::DropoutFuncOptions().p(cfg.dropout).training(true));
  // Activation checkpointing: stand-alone sequences only (a streaming state is updated by the
  // forward pass and chunk parallelism exchanges with other ranks; neither may run twice).
  SequenceExchange* ex = st ? nullptr : exchange_;  // chunk parallelism (a streaming call never splits)
  const bool ckpt = cfg.checkpoint_activations && !st && !ex;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (ckpt) {
      MegaBlock& b = blocks[i];
      x = checkpoint([&b, docs](const Tensor& t) { return b(t, nullptr, Tensor(), docs); }, x, b->parameters());
    } else {
      x = blocks[i](x, st ? &st->layers[i] : nullptr, Tensor(), docs, ex);
    }
    if (layer_outputs) layer_outputs->push_back(x);
  }
  ops::NormState* final_state = st ? &st->final_norm : nullptr;
  ops::NormState incoming;  // chunk parallelism: the statistics of the earlier ranks' segments
  if (ex && cfg.norm == NormKind::timestep) {
    incoming = sequence_parallel::norm_incoming(*ex, x, cfg.norm_num_groups,
                                                output->final_norm->initial_state(x.size(0), x.device()));
    final_state = &incoming;
  }
  Tensor h = output->final_norm(x, final_state, Tensor(), docs);
  if (st) st->position += tokens.size(1);
  return h;
}

double megalodon_block_flops(const MegalodonConfig& c, double keys) {
  const double D = c.model_dim, Z = c.z_dim, E = c.value_dim, Fh = c.ffn_hidden_dim;
  const double mats = D * Z + 2 * D * E + D * D + E * D + (c.swiglu ? 3 : 2) * D * Fh;
  return 2.0 * mats + 2.0 * keys * (Z + E);
}

double megalodon_classifier_flops(const MegalodonConfig& c, int64_t length) {
  const double keys = static_cast<double>(std::min<int64_t>(length, c.chunk_size));
  return static_cast<double>(length) * c.num_layers * megalodon_block_flops(c, keys);
}

double MegalodonLMImpl::flops_per_token(int64_t context) const {
  // Average visible keys per query in causal chunked attention: (min(L, C) + 1) / 2.
  const double keys = (std::min<int64_t>(context, cfg.chunk_size) + 1) / 2.0;
  const double head =
      adaptive_softmax ? adaptive_softmax->flops_per_row() : 2.0 * cfg.model_dim * cfg.out_size();
  return cfg.num_layers * megalodon_block_flops(cfg, keys) + head;
}

// ---- classifier -----------------------------------------------------------------------------

const char* to_string(ClassifierHead h) { return h == ClassifierHead::image ? "image" : "mlp"; }

ClassifierHead parse_classifier_head(const std::string& key, const std::string& v) {
  if (v == "mlp") return ClassifierHead::mlp;
  if (v == "image") return ClassifierHead::image;
  throw ConfigError(key, "expected one of mlp, image; got '" + v + "'");
}

MegalodonClassifierImpl::MegalodonClassifierImpl(MegalodonConfig c, const ClassifierOptions& o)
    : cfg(std::move(c)), options(o) {
  cfg.causal = false;
  cfg.validate();
  TORCH_CHECK(o.num_classes >= 2, "classifier.num_classes must be >= 2");
  TORCH_CHECK(o.num_documents == 1 || o.num_documents == 2, "classifier.num_documents must be 1 or 2");
  TORCH_CHECK(o.max_positions >= 0, "classifier.max_positions must be >= 0");
  TORCH_CHECK(o.head == ClassifierHead::mlp || o.num_documents == 1, "the image head takes one document");
  const int64_t D = cfg.model_dim;
  const int64_t hd = o.head_dim > 0 ? o.head_dim : (o.head == ClassifierHead::image ? D : 2 * D);
  if (cfg.vocab_size > 0) {
    embed = register_module("embed", torch::nn::Embedding(cfg.vocab_size, D));
    init_weight(embed->weight, InitMode::gaussian, D);
  } else {
    input_proj = register_module("input_proj", torch::nn::Linear(o.input_dim, D));
    init_linear(input_proj, cfg.init_mode);
  }
  if (o.max_positions > 0) {
    positions = register_parameter("positions", torch::empty({o.max_positions, D}));
    torch::NoGradGuard g;
    trunc_normal_(positions, 0.02, -0.04, 0.04);
  }
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    blocks.emplace_back(cfg, i);
    layers->push_back(blocks.back());
  }
  final_norm = register_module("final_norm", SequenceNorm(cfg.norm, D, cfg.norm_num_groups, cfg.norm_eps,
                                                          cfg.prior_count, true, cfg.kernel_timestep_norm));
  head_fc1 = register_module("head_fc1", torch::nn::Linear(o.num_documents * D, hd));
  head_fc2 = register_module(
      "head_fc2", torch::nn::Linear(torch::nn::LinearOptions(hd, o.num_classes).bias(o.head == ClassifierHead::image)));
  init_linear(head_fc1, cfg.init_mode);
  init_linear(head_fc2, cfg.init_mode);
}

Tensor MegalodonClassifierImpl::encode(const Tensor& inputs, const Tensor& mask,
                                       std::vector<Tensor>* layer_outputs) {
  Tensor x;
  if (embed) {
    TORCH_CHECK(inputs.dim() == 2, "classifier: token inputs must be B×L");
    x = embed(inputs);
  } else {
    Tensor in = inputs.dim() == 2 ? inputs.unsqueeze(-1) : inputs;
    TORCH_CHECK(in.dim() == 3 && in.size(2) == options.input_dim, "classifier: real inputs must be B×L×",
                options.input_dim);
    x = input_proj(in.to(input_proj->weight.scalar_type()));
  }
  if (positions.defined()) {
    TORCH_CHECK(x.size(1) <= positions.size(0), "classifier: ", x.size(1), " positions but max_positions = ",
                positions.size(0));
    x = x + positions.narrow(0, 0, x.size(1)).to(x.scalar_type());
  }
  if (cfg.dropout > 0 && is_training()) x = F::dropout(x, F::DropoutFuncOptions().p(cfg.dropout).training(true));
  for (auto& b : blocks) {
    if (cfg.checkpoint_activations)
      x = checkpoint([&b, mask](const Tensor& t) { return b(t, nullptr, mask); }, x, b->parameters());
    else
      x = b(x, nullptr, mask);
    if (layer_outputs) layer_outputs->push_back(x);
  }
  Tensor h = final_norm(x, nullptr, mask);
  if (options.head == ClassifierHead::image) h = torch::silu(head_fc1(h));
  if (!mask.defined()) return h.mean(1);
  Tensor valid = mask.logical_not().unsqueeze(-1).to(h.scalar_type());
  return (h * valid).sum(1) / valid.sum(1).clamp_min(1.0);
}

Tensor MegalodonClassifierImpl::head(const Tensor& pooled) {
  if (options.head == ClassifierHead::image) {
    Tensor h = pooled;  // head_fc1 + SiLU were applied per position before pooling
    if (options.head_dropout > 0 && is_training())
      h = F::dropout(h, F::DropoutFuncOptions().p(options.head_dropout).training(true));
    return head_fc2(h);
  }
  Tensor h = head_fc1(pooled);
  if (options.head_dropout > 0 && is_training())
    h = F::dropout(h, F::DropoutFuncOptions().p(options.head_dropout).training(true));
  return head_fc2(torch::gelu(h));
}

Tensor MegalodonClassifierImpl::forward(const Tensor& inputs, const Tensor& mask,
                                        std::vector<Tensor>* layer_outputs) {
  TORCH_CHECK(options.num_documents == 1, "classifier: this head takes two documents; call forward_pair");
  return head(encode(inputs, mask, layer_outputs));
}

Tensor MegalodonClassifierImpl::forward_pair(const Tensor& a, const Tensor& mask_a, const Tensor& b,
                                             const Tensor& mask_b) {
  TORCH_CHECK(options.num_documents == 2, "classifier: forward_pair needs num_documents = 2");
  return head(torch::cat({encode(a, mask_a), encode(b, mask_b)}, -1));
}

}  // namespace mgl
