#include "harness/config/model.h"

#include <fmt/format.h>

#include <algorithm>

namespace mgl::harness {

namespace {

int64_t as_int(const Value& v, const std::string& key) {
  if (auto p = std::get_if<int64_t>(&v)) return *p;
  throw ConfigError("", key, "expected an integer");
}
double as_float(const Value& v, const std::string& key) {
  if (auto p = std::get_if<double>(&v)) return *p;
  if (auto p = std::get_if<int64_t>(&v)) return double(*p);
  throw ConfigError("", key, "expected a float");
}
bool as_bool(const Value& v, const std::string& key) {
  if (auto p = std::get_if<bool>(&v)) return *p;
  throw ConfigError("", key, "expected a boolean");
}
std::vector<int64_t> as_ints(const Value& v, const std::string& key) {
  if (auto p = std::get_if<std::vector<int64_t>>(&v)) return *p;
  // An empty TOML array carries no element type: whatever list type it was read as, it is [].
  if (auto p = std::get_if<std::vector<double>>(&v); p && p->empty()) return {};
  if (auto p = std::get_if<std::vector<std::string>>(&v); p && p->empty()) return {};
  throw ConfigError("", key, "expected a list of integers");
}
std::string as_str(const Value& v, const std::string& key) {
  if (auto p = std::get_if<std::string>(&v)) return *p;
  throw ConfigError("", key, "expected a string");
}

#define MGL_INT(name, doc, range)                                                                     \
  ModelField{#name, ValueType::Int, doc, {}, [](const MegalodonConfig& c) { return Value{c.name}; }, \
             [](MegalodonConfig& c, const Value& v, const std::string& k) { c.name = as_int(v, k); }, range}
#define MGL_FLOAT(name, doc, range)                                                                     \
  ModelField{#name, ValueType::Float, doc, {}, [](const MegalodonConfig& c) { return Value{c.name}; }, \
             [](MegalodonConfig& c, const Value& v, const std::string& k) { c.name = as_float(v, k); }, range}
#define MGL_BOOL(name, doc)                                                                            \
  ModelField{#name, ValueType::Bool, doc, {}, [](const MegalodonConfig& c) { return Value{c.name}; }, \
             [](MegalodonConfig& c, const Value& v, const std::string& k) { c.name = as_bool(v, k); }}
#define MGL_INTS(name, doc, range)                                                                       \
  ModelField{#name, ValueType::IntList, doc, {}, [](const MegalodonConfig& c) { return Value{c.name}; }, \
             [](MegalodonConfig& c, const Value& v, const std::string& k) { c.name = as_ints(v, k); }, range}
// A switch: its choices and parser come from the core's spellings of the field's enum (core/config.h).
#define MGL_ENUM(name, doc)                                                                              \
  ModelField{#name, ValueType::String, doc, names_of<decltype(MegalodonConfig::name)>(),                \
             [](const MegalodonConfig& c) { return Value{std::string(to_string(c.name))}; },             \
             [](MegalodonConfig& c, const Value& v, const std::string& k) {                              \
               c.name = parse_switch<decltype(MegalodonConfig::name)>(k, as_str(v, k));                  \
             }}

}  // namespace

const std::vector<ModelField>& megalodon_fields() {
  static const std::vector<ModelField> fields = {
      MGL_INT(num_layers, "number of Megalodon blocks", Range::at_least(1)),
      MGL_INT(model_dim, "D, the model width", Range::at_least(1)),
      MGL_INT(z_dim, "Z, the shared query/key width", Range::at_least(1)),
      MGL_INT(value_dim, "E, the value width", Range::at_least(1)),
      MGL_INT(num_heads, "H, attention heads", Range::at_least(1)),
      MGL_INT(ffn_hidden_dim, "F, the FFN hidden width", Range::at_least(1)),
      MGL_INT(cema_ndim, "N, CEMA dimensions per channel", Range::at_least(1)),
      MGL_INT(chunk_size, "C, the attention chunk length", Range::at_least(1)),
      MGL_INT(vocab_size, "V for token inputs; -1 = set by the task", Range::at_least(1).or_value(-1)),
      MGL_INT(output_size, "LM output size; -1 = vocab_size", Range::at_least(1).or_value(-1)),
      MGL_INT(norm_num_groups, "G, timestep/group norm groups", Range::at_least(1)),
      MGL_BOOL(norm_affine, "learnable norm scale and bias"),
      MGL_FLOAT(norm_eps, "norm epsilon", Range::above(0)),
      MGL_FLOAT(rope_base, "RoPE base", Range::above(0)),
      MGL_FLOAT(dropout, "dropout on block outputs", Range::dropout()),
      MGL_FLOAT(hidden_dropout, "dropout inside the FFN and MEGA layer", Range::dropout()),
      MGL_FLOAT(attention_dropout, "dropout on attention weights", Range::dropout()),
      MGL_FLOAT(drop_path, "stochastic depth of the last block (block i: drop_path·i/(L−1)); 0 = off", Range::dropout()),
      MGL_BOOL(swiglu, "SwiGLU FFN instead of SiLU"),
      MGL_BOOL(rescale_nffn, "learnable FFN output scale (layer scale)"),
      MGL_BOOL(scale_emb, "scale embeddings by sqrt(D)"),
      MGL_BOOL(share_emb, "tie input and output embeddings"),
      MGL_ENUM(init_mode, "linear-layer initialisation"),
      MGL_INT(prior_count, "timestep-norm prior count (official 0)", Range::at_least(0)),
      MGL_INTS(adaptive_cutoffs, "adaptive input/softmax band edges over frequency-sorted ids, e.g. [20000, 60000]; [] = off", Range::at_least(1)),
      MGL_FLOAT(adaptive_factor, "adaptive band i has width D/factor^i", Range::at_least(1)),
      MGL_FLOAT(adaptive_softmax_dropout, "dropout on the adaptive softmax input and inside its tails", Range::dropout()),
      MGL_ENUM(ema, "ablation: complex EMA or real EMA"),
      MGL_BOOL(ema_mega_exact, "with ema=ema: Mega's exact EMA layer (beta, gamma, omega, silu)"),
      MGL_ENUM(norm, "ablation: timestep, layer, group (per token) or sequence (GroupNorm over the whole sequence; "
                     "classification only) norm"),
      MGL_ENUM(attention, "ablation: normalized or plain (Mega) attention"),
      MGL_BOOL(plain_mega_init, "with attention=plain: Mega's gamma init"),
      MGL_ENUM(residual, "ablation: two-hop or standard pre-norm residual"),
      MGL_ENUM(update_gate, "optional Mega update gate (not a paper axis)"),
      MGL_ENUM(kernel_cema, "CEMA implementation: LibTorch reference path, fused CUDA kernel, or auto (kernel on CUDA when built)"),
      MGL_ENUM(kernel_timestep_norm, "timestep-norm implementation (as kernel_cema)"),
      MGL_ENUM(kernel_row_norm,
               "fused RMSNorm / LayerNorm implementation (as kernel_cema); before this key existed "
               "kernel_timestep_norm also switched these: set both for that behaviour"),
      MGL_ENUM(kernel_attention, "chunked-attention implementation (as kernel_cema)"),
      MGL_BOOL(causal, "causal (LM) or encoder form; classifiers force false"),
      MGL_BOOL(checkpoint_activations,
               "recompute each block's activations in the backward pass (keeps one block's activations; "
               "stand-alone sequences only: not with a streaming state or chunk parallelism)"),
  };
  return fields;
}

void add_megalodon_schema(Schema& schema, const std::string& prefix) {
  const MegalodonConfig def;
  std::vector<std::string> presets = MegalodonConfig::preset_names();
  presets.insert(presets.begin(), "");
  schema.add_string(prefix + ".preset", "", "official configuration to start from (explicit keys override it)",
                    presets);
  for (const auto& f : megalodon_fields())
    schema.add(KeySpec{prefix + "." + f.key, f.type, f.get(def), f.doc, f.choices, f.range});
}

MegalodonConfig megalodon_config_from(const Config& cfg, const std::string& prefix) {
  const std::string preset = cfg.has(prefix + ".preset") ? cfg.get_string(prefix + ".preset") : "";
  MegalodonConfig m = preset.empty() ? MegalodonConfig{} : MegalodonConfig::preset(preset);
  for (const auto& f : megalodon_fields()) {
    const std::string key = prefix + "." + f.key;
    // Without a preset every value counts (defaults equal MegalodonConfig's); with one, only the
    // keys set explicitly override it.
    if (!cfg.has(key) || (!preset.empty() && !cfg.is_set(key))) continue;
    with_origin(cfg, [&] { f.set(m, cfg.get(key), key); });
  }
  with_origin(cfg, [&] { m.validate(prefix); });
  return m;
}

nlohmann::json to_json(const MegalodonConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : megalodon_fields()) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double> || std::is_same_v<T, bool> ||
                        std::is_same_v<T, std::string> || std::is_same_v<T, std::vector<int64_t>>)
            j[f.key] = x;
        },
        f.get(c));
  }
  return j;
}

MegalodonConfig megalodon_config_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw ConfigError(where, "", "the model config must be a JSON object");
  MegalodonConfig m;
  for (const auto& [k, v] : j.items()) {
    const ModelField* field = nullptr;
    for (const auto& f : megalodon_fields())
      if (f.key == k) field = &f;
    if (!field) throw ConfigError(where, k, "unknown model config key");
    Value val;
    if (v.is_boolean()) val = v.get<bool>();
    else if (v.is_number_integer()) val = v.get<int64_t>();
    else if (v.is_number()) val = v.get<double>();
    else if (v.is_string()) val = v.get<std::string>();
    else if (v.is_array() && std::all_of(v.begin(), v.end(), [](const auto& e) { return e.is_number_integer(); }))
      val = v.get<std::vector<int64_t>>();
    else throw ConfigError(where, k, fmt::format("expected a {}", to_string(field->type)));
    try {
      field->set(m, val, k);
    } catch (ConfigError& e) {
      e.locate(where);
      throw;
    }
  }
  try {
    m.validate("model");
  } catch (ConfigError& e) {
    e.locate(where);
    throw;
  }
  return m;
}

}  // namespace mgl::harness
