#include "core/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <cmath>

namespace mgl {

ConfigError::ConfigError(std::string key_, std::string detail_)
    : ConfigError(std::string(), std::move(key_), std::move(detail_)) {}
ConfigError::ConfigError(std::string where_, std::string key_, std::string detail_)
    : std::runtime_error(detail_), where(std::move(where_)), key(std::move(key_)), detail(std::move(detail_)) {
  compose();
}
void ConfigError::locate(const std::string& w) {
  if (!where.empty() || w.empty()) return;
  where = w;
  compose();
}
void ConfigError::compose() {
  message_ = detail;
  if (!key.empty()) message_ = fmt::format("{}: {}", key, message_);
  if (!where.empty()) message_ = fmt::format("{}: {}", where, message_);
}

namespace {
template <typename E>
struct Names;
template <>
struct Names<EmaKind> {
  static constexpr const char* v[] = {"cema", "ema"};
};
template <>
struct Names<NormKind> {
  static constexpr const char* v[] = {"timestep", "layer", "group", "sequence"};
};
template <>
struct Names<AttentionKind> {
  static constexpr const char* v[] = {"normalized", "plain"};
};
template <>
struct Names<ResidualKind> {
  static constexpr const char* v[] = {"two_hop", "prenorm"};
};
template <>
struct Names<UpdateGate> {
  static constexpr const char* v[] = {"none", "mega"};
};
template <>
struct Names<InitMode> {
  static constexpr const char* v[] = {"he", "gaussian", "bert", "xavier", "none"};
};

template <>
struct Names<KernelImpl> {
  static constexpr const char* v[] = {"reference", "fused", "auto"};
};

template <>
struct Names<BaselineAttention> {
  static constexpr const char* v[] = {"auto", "explicit", "blocked", "sdpa"};
};

template <typename E>
E parse_enum(const std::string& key, const std::string& value) {
  const auto& names = Names<E>::v;
  std::string all;
  for (size_t i = 0; i < std::size(names); ++i) {
    if (value == names[i]) return static_cast<E>(i);
    all += (i ? ", " : "") + std::string("\"") + names[i] + "\"";
  }
  throw ConfigError(key, fmt::format("got \"{}\", expected one of {}", value, all));
}

}  // namespace

template <typename E>
const std::vector<std::string>& names_of() {
  static const std::vector<std::string> names(std::begin(Names<E>::v), std::end(Names<E>::v));
  return names;
}
template <typename E>
E parse_switch(const std::string& key, const std::string& value) {
  return parse_enum<E>(key, value);
}
#define MGL_SWITCH(E)                                                     \
  template const std::vector<std::string>& names_of<E>();                 \
  template E parse_switch<E>(const std::string&, const std::string&);
MGL_SWITCH(EmaKind)
MGL_SWITCH(NormKind)
MGL_SWITCH(AttentionKind)
MGL_SWITCH(ResidualKind)
MGL_SWITCH(UpdateGate)
MGL_SWITCH(InitMode)
MGL_SWITCH(KernelImpl)
MGL_SWITCH(BaselineAttention)
#undef MGL_SWITCH

namespace {
void require(bool ok, const std::string& key, const std::string& what) {
  if (!ok) throw ConfigError(key, what);
}
}  // namespace

const char* to_string(EmaKind e) { return Names<EmaKind>::v[static_cast<int>(e)]; }
const char* to_string(NormKind e) { return Names<NormKind>::v[static_cast<int>(e)]; }
const char* to_string(AttentionKind e) { return Names<AttentionKind>::v[static_cast<int>(e)]; }
const char* to_string(ResidualKind e) { return Names<ResidualKind>::v[static_cast<int>(e)]; }
const char* to_string(UpdateGate e) { return Names<UpdateGate>::v[static_cast<int>(e)]; }
const char* to_string(InitMode e) { return Names<InitMode>::v[static_cast<int>(e)]; }
EmaKind parse_ema(const std::string& k, const std::string& v) { return parse_enum<EmaKind>(k, v); }
NormKind parse_norm(const std::string& k, const std::string& v) { return parse_enum<NormKind>(k, v); }
AttentionKind parse_attention(const std::string& k, const std::string& v) {
  return parse_enum<AttentionKind>(k, v);
}
ResidualKind parse_residual(const std::string& k, const std::string& v) {
  return parse_enum<ResidualKind>(k, v);
}
UpdateGate parse_update_gate(const std::string& k, const std::string& v) {
  return parse_enum<UpdateGate>(k, v);
}
InitMode parse_init_mode(const std::string& k, const std::string& v) { return parse_enum<InitMode>(k, v); }
const char* to_string(KernelImpl e) { return Names<KernelImpl>::v[static_cast<int>(e)]; }
KernelImpl parse_kernel_impl(const std::string& k, const std::string& v) { return parse_enum<KernelImpl>(k, v); }
const char* to_string(BaselineAttention e) { return Names<BaselineAttention>::v[static_cast<int>(e)]; }
BaselineAttention parse_baseline_attention(const std::string& k, const std::string& v) {
  return parse_enum<BaselineAttention>(k, v);
}

namespace {
void validate_adaptive(const std::vector<int64_t>& cutoffs, double factor, double dropout, int64_t vocab,
                       bool share_emb, const std::string& p) {
  if (cutoffs.empty()) return;
  const std::string key = p + ".adaptive_cutoffs";
  for (size_t i = 0; i < cutoffs.size(); ++i)
    require(cutoffs[i] > 0 && (i == 0 || cutoffs[i] > cutoffs[i - 1]), key,
            fmt::format("must be positive and increasing, got {}", fmt::join(cutoffs, ", ")));
  require(vocab <= 0 || cutoffs.back() < vocab, key,
          fmt::format("the last cutoff ({}) must be below vocab_size ({})", cutoffs.back(), vocab));
  require(factor >= 1, p + ".adaptive_factor", fmt::format("must be >= 1, got {}", factor));
  require(dropout >= 0 && dropout < 1, p + ".adaptive_softmax_dropout", "must be in [0, 1)");
  require(!share_emb, p + ".share_emb",
          "the adaptive input and softmax already share their weights; share_emb must be false");
}
}  // namespace

void MegalodonConfig::validate(const std::string& p) const {
  auto key = [&](const char* k) { return p + "." + k; };
  require(num_layers >= 1, key("num_layers"), fmt::format("must be >= 1, got {}", num_layers));
  require(model_dim >= 1, key("model_dim"), fmt::format("must be >= 1, got {}", model_dim));
  require(num_heads >= 1, key("num_heads"), fmt::format("must be >= 1, got {}", num_heads));
  require(z_dim >= 1 && z_dim % num_heads == 0, key("z_dim"),
          fmt::format("must be a positive multiple of num_heads={}, got {}", num_heads, z_dim));
  require(z_head_dim() % 2 == 0, key("z_dim"),
          fmt::format("z_dim/num_heads must be even for RoPE, got {}", z_head_dim()));
  require(value_dim >= 1 && value_dim % num_heads == 0, key("value_dim"),
          fmt::format("must be a positive multiple of num_heads={}, got {}", num_heads, value_dim));
  require(ffn_hidden_dim >= 1, key("ffn_hidden_dim"), "must be >= 1");
  require(cema_ndim >= 1, key("cema_ndim"), fmt::format("must be >= 1, got {}", cema_ndim));
  require(chunk_size >= 1, key("chunk_size"), fmt::format("must be >= 1, got {}", chunk_size));
  require(norm_num_groups >= 1 && model_dim % norm_num_groups == 0, key("norm_num_groups"),
          fmt::format("must divide model_dim={}, got {}", model_dim, norm_num_groups));
  require(norm_eps > 0, key("norm_eps"), "must be > 0");
  require(rope_base > 0, key("rope_base"), "must be > 0");
  for (auto [name, v] : {std::pair{"dropout", dropout}, std::pair{"hidden_dropout", hidden_dropout},
                         std::pair{"attention_dropout", attention_dropout}, std::pair{"drop_path", drop_path}})
    require(v >= 0 && v < 1, key(name), fmt::format("must be in [0, 1), got {}", v));
  require(prior_count >= 0, key("prior_count"), "must be >= 0");
  require(!(ema_mega_exact && ema != EmaKind::ema), key("ema_mega_exact"), "requires ema = \"ema\"");
  require(!(plain_mega_init && attention != AttentionKind::plain), key("plain_mega_init"),
          "requires attention = \"plain\"");
  require(!(share_emb && output_size > 0 && output_size != vocab_size), key("share_emb"),
          "a tied head needs output_size == vocab_size");
  validate_adaptive(adaptive_cutoffs, adaptive_factor, adaptive_softmax_dropout, vocab_size, share_emb, p);
  require(adaptive_cutoffs.empty() || output_size <= 0 || output_size == vocab_size, key("adaptive_cutoffs"),
          "the adaptive softmax predicts the vocabulary: output_size must be -1");
}

MegalodonConfig MegalodonConfig::preset(const std::string& name) {
  MegalodonConfig c;
  c.cema_ndim = 16;
  c.chunk_size = 2048;
  auto set = [&](int64_t layers, int64_t d, int64_t h, int64_t z, int64_t e, int64_t f, int64_t g,
                 bool swiglu) {
    c.num_layers = layers, c.model_dim = d, c.num_heads = h, c.z_dim = z, c.value_dim = e;
    c.ffn_hidden_dim = f, c.norm_num_groups = g, c.swiglu = swiglu;
  };
  if (name == "mega200M") {
    set(12, 1024, 1, 256, 2048, 2560, 32, false);
  } else if (name == "mega1.3B") {
    set(24, 2048, 2, 512, 4096, 4864, 64, false);
  } else if (name == "mega1.3B_pg19") {
    set(24, 2048, 2, 512, 4096, 3584, 64, true);
    c.scale_emb = c.share_emb = true;
  } else if (name == "mega7.1B") {
    set(32, 4096, 4, 1024, 8192, 11264, 64, false);
  } else if (name == "mega7.3B") {
    set(32, 4096, 4, 1024, 8192, 8192, 64, true);
  } else {
    std::string all;
    for (auto& n : preset_names()) all += (all.empty() ? "" : ", ") + n;
    throw ConfigError("model.preset", fmt::format("unknown preset \"{}\", expected one of {}", name, all));
  }
  return c;
}

std::vector<std::string> MegalodonConfig::preset_names() {
  return {"mega200M", "mega1.3B", "mega1.3B_pg19", "mega7.1B", "mega7.3B"};
}

void TransformerConfig::validate(const std::string& p) const {
  auto key = [&](const char* k) { return p + "." + k; };
  require(num_layers >= 1, key("num_layers"), "must be >= 1");
  require(num_heads >= 1 && model_dim % num_heads == 0, key("num_heads"),
          fmt::format("must divide model_dim={}, got {}", model_dim, num_heads));
  require(head_dim() % 2 == 0, key("num_heads"), "model_dim/num_heads must be even for RoPE");
  require(ffn_hidden_dim >= 1, key("ffn_hidden_dim"), "must be >= 1");
  require(norm_eps > 0, key("norm_eps"), "must be > 0");
  require(dropout >= 0 && dropout < 1, key("dropout"), "must be in [0, 1)");
  validate_adaptive(adaptive_cutoffs, adaptive_factor, adaptive_softmax_dropout, vocab_size, share_emb, p);
}

TransformerConfig TransformerConfig::matched(const MegalodonConfig& m) {
  TransformerConfig t;
  t.num_layers = m.num_layers;
  t.model_dim = m.model_dim;
  t.num_heads = std::max<int64_t>(1, m.model_dim / 64);
  while (m.model_dim % t.num_heads != 0 || (m.model_dim / t.num_heads) % 2 != 0) --t.num_heads;
  t.vocab_size = m.vocab_size;
  t.norm_eps = m.norm_eps;
  t.rope_base = m.rope_base;
  t.share_emb = m.share_emb;
  t.checkpoint_activations = m.checkpoint_activations;
  // Per-layer weights of the Megalodon block (ignoring the O(D) vectors):
  //   MEGA: wz D·Z + wv D·E + wr D·E + wh1 D·D + wh2 E·D ; FFN: (2 or 3)·D·F
  const double D = m.model_dim;
  const double mega = D * m.z_dim + 3.0 * D * m.value_dim + D * D;
  const double ffn = (m.swiglu ? 3.0 : 2.0) * D * m.ffn_hidden_dim;
  // Transformer layer: attention 4·D² + SwiGLU 3·D·F'.
  const double f = (mega + ffn - 4.0 * D * D) / (3.0 * D);
  t.ffn_hidden_dim = std::max<int64_t>(8, static_cast<int64_t>(std::llround(f / 8.0)) * 8);
  return t;
}

}  // namespace mgl
