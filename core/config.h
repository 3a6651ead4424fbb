// Model configuration: the fields of the official ModelConf (spec §5.1), the ablation switches
// (spec §8), and the Transformer baseline's configuration. Plain structs: the harness fills
// them from TOML, tests fill them directly.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace mgl {

// The one configuration error of the project, from the core's validation to the harness's TOML
// reader: which key is wrong (dotted, e.g. "model.z_dim"), what was expected, and where the value
// came from (file:line:col, "command line", a JSON file; empty while unknown). The core throws it
// with the key only; the harness adds the origin in one place (harness::with_origin) and rethrows
// the same error. what() is "where: key: detail" (the parts that are known).
struct ConfigError : std::runtime_error {
  ConfigError(std::string key, std::string detail);
  ConfigError(std::string where, std::string key, std::string detail);
  const char* what() const noexcept override { return message_.c_str(); }
  // Sets the origin if none is known yet.
  void locate(const std::string& where);
  std::string where, key, detail;

 private:
  void compose();
  std::string message_;
};

// ---- ablation axes (spec §8); each changes exactly one axis ----
enum class EmaKind { cema, ema };                   // complex EMA vs real EMA (θ≡0, real η)
// The norm before the MEGA layer and the final norm. `sequence` is the non-causal GroupNorm over the
// whole sequence (official `group_sequence_norm`, spec §2.6): the classification encoder's norm.
enum class NormKind { timestep, layer, group, sequence };
enum class AttentionKind { normalized, plain };     // normalised shared z vs Mega's silu(z), 1/sqrt(d)
enum class ResidualKind { two_hop, prenorm };       // FFN residual = block input vs the MEGA output
enum class UpdateGate { none, mega };               // optional Mega update gate u (not a paper axis)
enum class InitMode { he, gaussian, bert, xavier, none };
// Which implementation of an op runs (the fused CUDA kernels of core/cuda/ vs the LibTorch
// reference path of core/ops/). `reference`: always the reference path. `fused`: the kernel, and an
// error (naming the config key) where it cannot run (CPU tensors, no CUDA glue compiled in).
// `auto`: the kernel for CUDA tensors when it is compiled in, else the reference path. Changes no
// maths: only speed and rounding (tests bound the kernels' error against an fp64 oracle).
enum class KernelImpl { reference, fused, auto_select };
// How the Transformer baseline computes its causal attention (issue 22). `explicit`: the L×L softmax
// (ops::cached_attention; what the LibTorch 1.13 baseline did before); `blocked`: ops::blocked_attention,
// the memory-efficient online softmax in plain LibTorch; `sdpa`: LibTorch >= 2's
// scaled_dot_product_attention (PyTorch's own flash / memory-efficient kernels); `auto`: sdpa when this
// LibTorch has it, else blocked. Same maths: only memory, speed and rounding differ.
enum class BaselineAttention { auto_select, explicit_softmax, blocked, sdpa };

const char* to_string(EmaKind);
const char* to_string(NormKind);
const char* to_string(AttentionKind);
const char* to_string(ResidualKind);
const char* to_string(UpdateGate);
const char* to_string(InitMode);
const char* to_string(KernelImpl);
const char* to_string(BaselineAttention);
// The spellings of a switch's values in declaration order (config files, choice lists and errors
// use these): names_of<KernelImpl>() = {"reference", "fused", "auto"}.
template <typename E>
const std::vector<std::string>& names_of();
// Parse any switch by its type; throws ConfigError(key, "got ..., expected one of ...").
template <typename E>
E parse_switch(const std::string& key, const std::string& v);
// Parse a switch value; throws ConfigError(key, "expected one of ...").
EmaKind parse_ema(const std::string& key, const std::string& v);
NormKind parse_norm(const std::string& key, const std::string& v);
AttentionKind parse_attention(const std::string& key, const std::string& v);
ResidualKind parse_residual(const std::string& key, const std::string& v);
UpdateGate parse_update_gate(const std::string& key, const std::string& v);
InitMode parse_init_mode(const std::string& key, const std::string& v);
KernelImpl parse_kernel_impl(const std::string& key, const std::string& v);
BaselineAttention parse_baseline_attention(const std::string& key, const std::string& v);

struct MegalodonConfig {
  // ---- ModelConf (official defaults, spec §5.1) ----
  int64_t num_layers = 8;
  int64_t model_dim = 1024;       // D
  int64_t z_dim = 256;            // Z (shared q/k representation)
  int64_t value_dim = 2048;       // E
  int64_t num_heads = 1;          // H
  int64_t ffn_hidden_dim = 2048;  // F
  int64_t cema_ndim = 16;         // N
  int64_t chunk_size = 2048;      // C
  int64_t vocab_size = -1;        // V (LM); -1: set from the tokenizer
  int64_t output_size = -1;       // -1 means vocab_size
  int64_t norm_num_groups = 32;   // G
  bool norm_affine = true;
  double norm_eps = 1e-5;
  double rope_base = 10000.0;
  double dropout = 0.0;
  double hidden_dropout = 0.0;
  double attention_dropout = 0.0;
  // Stochastic depth (Huang et al. 2016; DeiT/Mega image recipes): the rate of the last block;
  // block i drops each residual branch (the MEGA layer's h and the FFN's output) of a whole example
  // with probability drop_path·i/(num_layers−1), timm's linear rule. 0 (the official default) = off.
  double drop_path = 0.0;
  bool swiglu = false;
  bool rescale_nffn = false;
  bool scale_emb = false;
  bool share_emb = false;
  InitMode init_mode = InitMode::he;
  int64_t prior_count = 0;  // TimestepNorm prior count (official: 0)
  // ---- adaptive input and adaptive softmax (Baevski & Auli 2019; the WikiText-103 setups) ----
  // Band edges of the vocabulary (ids sorted by frequency), e.g. {20000, 60000}; empty = a plain
  // embedding and head. Band i has width D/factor^i; input and output share every band's embedding
  // and projection ("tied weights and projections"). Not in the official ModelConf.
  std::vector<int64_t> adaptive_cutoffs;
  double adaptive_factor = 4.0;
  double adaptive_softmax_dropout = 0.0;  // on the head input and inside every tail (fairseq's 0.2 for WT103)

  // ---- ablation switches (spec §8) ----
  EmaKind ema = EmaKind::cema;
  bool ema_mega_exact = false;  // with ema=ema: add β, γ~N(0,1), ω~N(0,1) (shape D), silu(out)
  NormKind norm = NormKind::timestep;
  AttentionKind attention = AttentionKind::normalized;
  bool plain_mega_init = false;  // with attention=plain: γ~N(0,0.02) applied without +1
  ResidualKind residual = ResidualKind::two_hop;
  UpdateGate update_gate = UpdateGate::none;

  // ---- op implementations (not a model axis: same maths). The reference path is the default
  // until a kernel is verified on a GPU; see core/kernels.h.
  KernelImpl kernel_cema = KernelImpl::reference;           // CEMA kernel/bias/FFT conv/hidden state
  KernelImpl kernel_timestep_norm = KernelImpl::reference;  // timestep norm scan
  KernelImpl kernel_row_norm = KernelImpl::reference;       // fused RMSNorm / LayerNorm (row norms)
  KernelImpl kernel_attention = KernelImpl::reference;      // chunked attention

  // ---- encoder form (classification): bidirectional CEMA (§1.8) + non-causal chunk attention.
  bool causal = true;

  // ---- memory (issue 22; not a model axis: same maths) ----
  // Activation checkpointing per block: each block keeps only its input during the forward pass and
  // recomputes its activations in the backward pass (one block's activations alive at a time).
  // Applies to stand-alone training passes (no streaming state, no chunk parallelism).
  bool checkpoint_activations = false;

  int64_t z_head_dim() const { return z_dim / num_heads; }
  int64_t v_head_dim() const { return value_dim / num_heads; }
  int64_t out_size() const { return output_size > 0 ? output_size : vocab_size; }

  // Throws ConfigError naming the offending key ("model.z_dim" etc. with the given prefix).
  void validate(const std::string& prefix = "model") const;

  // Official presets (ModelStore in megalodon/model/mega.py, spec §5.2).
  static MegalodonConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
};

// Llama-style decoder used as the comparison row: RMSNorm pre-norm, RoPE, SwiGLU, full causal
// attention.
struct TransformerConfig {
  int64_t num_layers = 8;
  int64_t model_dim = 1024;
  int64_t num_heads = 16;
  int64_t ffn_hidden_dim = 2816;
  int64_t vocab_size = -1;
  double norm_eps = 1e-5;
  double rope_base = 10000.0;
  double dropout = 0.0;
  bool share_emb = false;
  // Adaptive input and softmax, as MegalodonConfig's (so the baseline row of WikiText-103 matches).
  std::vector<int64_t> adaptive_cutoffs;
  double adaptive_factor = 4.0;
  double adaptive_softmax_dropout = 0.0;
  BaselineAttention attention = BaselineAttention::auto_select;
  bool checkpoint_activations = false;  // as MegalodonConfig's, per Transformer block

  int64_t head_dim() const { return model_dim / num_heads; }
  void validate(const std::string& prefix = "model") const;
  // A baseline of matched width and depth for a Megalodon config: same D, layers, vocab; heads of
  // size 64 (at least one); SwiGLU width chosen so that the per-layer parameter count is close.
  static TransformerConfig matched(const MegalodonConfig& m);
};

}  // namespace mgl
