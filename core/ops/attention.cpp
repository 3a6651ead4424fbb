#include "core/ops/attention.h"

#include "core/ops/blocked_attention.h"

#include <torch/version.h>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace mgl::ops {

using torch::Tensor;
namespace F = torch::nn::functional;

namespace {
torch::Dtype acc_dtype(const Tensor& x) {
  return x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}
// B×L×H×d → B×H×L×d and back.
Tensor heads_first(const Tensor& x) { return x.permute({0, 2, 1, 3}); }
}  // namespace

Tensor rope_rotation(const Tensor& positions, int64_t d, double base, torch::Dtype dtype) {
  TORCH_CHECK(positions.dim() == 1 && d % 2 == 0, "rope_rotation: need positions L and an even width, got ",
              positions.sizes(), " and ", d);
  TORCH_CHECK(dtype == torch::kFloat32 || dtype == torch::kFloat64, "rope_rotation: fp32 or fp64, got ", dtype);
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(positions.device());
  // inv_freq_i = base^(−2i/d); angles in fp64 then rounded, so large positions keep their accuracy.
  Tensor inv_freq = torch::pow(base, torch::arange(0, d, 2, opts) / static_cast<double>(d)).reciprocal();
  Tensor ang = torch::outer(positions.to(torch::kFloat64), inv_freq);  // L×d/2
  Tensor rot = torch::polar(torch::ones_like(ang), ang);
  return rot.to(dtype == torch::kFloat64 ? torch::kComplexDouble : torch::kComplexFloat);
}

Tensor apply_rope(const Tensor& x, const Tensor& rotation) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "apply_rope: x must be B×L×H×d with d even, got ", x.sizes());
  TORCH_CHECK(rotation.dim() == 2 && rotation.size(0) == x.size(1) && rotation.size(1) == x.size(3) / 2 &&
                  rotation.is_complex(),
              "apply_rope: need a complex L×d/2 rotation, got ", rotation.sizes());
  const auto ad = acc_dtype(x);
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2), half = x.size(3) / 2;
  // The pairs (x_2i, x_2i+1) are complex numbers in memory order: one complex product rotates them,
  // and autograd keeps only the rotation (the backward multiplies by its conjugate).
  Tensor z = torch::view_as_complex(x.to(ad).contiguous().view({B, L, H, half, 2}));
  Tensor rot = rotation.to(ad == torch::kFloat64 ? torch::kComplexDouble : torch::kComplexFloat).view({1, L, 1, half});
  return torch::view_as_real(z * rot).view({B, L, H, 2 * half}).to(x.scalar_type());
}

Tensor apply_rope(const Tensor& x, const Tensor& positions, double base) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "apply_rope: x must be B×L×H×d with d even, got ", x.sizes());
  TORCH_CHECK(positions.dim() == 1 && positions.size(0) == x.size(1), "apply_rope: need one position per token");
  return apply_rope(x, rope_rotation(positions, x.size(3), base, acc_dtype(x)));
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale,
                 double dropout, bool training) {
  const auto ad = acc_dtype(q);
  Tensor logits = torch::matmul(q.to(ad), k.to(ad).transpose(-1, -2));
  if (scale != 1.0) logits = logits * scale;
  Tensor dead;  // rows with no visible key
  if (mask.defined()) {
    logits = logits.masked_fill(mask, -std::numeric_limits<double>::infinity());
    dead = mask.all(-1, true);
    // A fully masked row would be softmax of −inf everywhere (NaN): give it finite logits, then
    // zero its probabilities, so forward and backward stay finite.
    logits = logits.masked_fill(dead, 0.0);
  }
  Tensor probs = torch::softmax(logits, -1);
  if (dead.defined()) probs = probs.masked_fill(dead, 0.0);
  probs = probs.to(v.scalar_type());
  if (dropout > 0.0 && training) probs = F::dropout(probs, F::DropoutFuncOptions().p(dropout).training(true));
  return torch::matmul(probs, v);
}

Tensor chunked_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk, bool causal,
                         double scale, double dropout, bool training, const Tensor& key_padding_mask, bool silu_v) {
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4 && v.size(1) == q.size(1),
              "chunked_attention: q, k must be B×L×H×d and v B×L×H×dv, got ", q.sizes(), k.sizes(), v.sizes());
  TORCH_CHECK(chunk >= 1, "chunked_attention: chunk must be >= 1");
  const int64_t B = q.size(0), L = q.size(1), H = q.size(2);
  const int64_t C = std::min(chunk, L);
  const int64_t nc = (L + C - 1) / C, pad = nc * C - L;
  auto to_chunks = [&](const Tensor& x) {  // B×L×H×d → B×nc×H×C×d
    Tensor xp = pad ? torch::constant_pad_nd(x, {0, 0, 0, 0, 0, pad}) : x;
    return xp.view({B, nc, C, H, x.size(3)}).permute({0, 1, 3, 2, 4});
  };
  auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(q.device());
  // Padded keys of the last chunk must be hidden from real queries unless causality already does.
  Tensor keymask;
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.sizes() == torch::IntArrayRef({B, L}), "chunked_attention: key_padding_mask must be B×L");
    keymask = key_padding_mask;
  }
  if (pad && !causal && !keymask.defined()) keymask = torch::zeros({B, L}, bool_opts);
  Tensor km;  // B×nc×1×C, true = hidden key
  if (keymask.defined()) km = torch::constant_pad_nd(keymask.to(torch::kUInt8), {0, pad}, 1).to(torch::kBool).view({B, nc, 1, C});
  Tensor out;
  if (dropout > 0.0 && training) {
    // Attention dropout needs the probabilities themselves: the explicit softmax.
    Tensor mask;
    if (causal) mask = torch::ones({C, C}, bool_opts).triu(1);
    if (km.defined()) mask = mask.defined() ? torch::logical_or(mask, km.unsqueeze(3)) : km.unsqueeze(3);
    out = attention(to_chunks(q), to_chunks(k), to_chunks(silu_v ? torch::silu(v) : v), mask, scale, dropout, training);
  } else {
    // Memory-efficient (issue 22): per chunk, blocks of 256 queries against every key they can see
    // (one tile: no online rescaling), and a backward that recomputes the tiles, so no C×C
    // probabilities are kept and the causal keys above each block are skipped. Equal to the
    // explicit softmax (tests/core/test_blocked_attention.cpp).
    BlockedAttentionOptions bo;
    bo.causal = causal;
    bo.scale = scale;
    bo.block_q = 256;
    bo.block_k = C;
    bo.silu_v = silu_v;
    out = blocked_attention(to_chunks(q), to_chunks(k), to_chunks(v), bo, km);
  }
  out = out.permute({0, 1, 3, 2, 4}).reshape({B, nc * C, H, v.size(3)});
  return pad ? out.narrow(1, 0, L) : out;
}

Tensor cached_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, double dropout,
                        bool training) {
  const int64_t Lq = q.size(1), Lk = k.size(1);
  TORCH_CHECK(Lk >= Lq, "cached_attention: fewer keys than queries");
  auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(q.device());
  Tensor mask = Lq > 1 ? torch::ones({Lq, Lk}, bool_opts).triu(Lk - Lq + 1) : Tensor();
  Tensor out = attention(heads_first(q), heads_first(k), heads_first(v), mask, scale, dropout, training);
  return heads_first(out);
}

namespace {
std::atomic<int> g_backend{-1};  // −1: not yet read from the environment
}

FusedAttentionBackend parse_fused_attention_backend(const std::string& s) {
  if (s == "kernel") return FusedAttentionBackend::kernel;
  if (s == "sdpa") return FusedAttentionBackend::sdpa;
  throw std::invalid_argument("fused attention backend: expected kernel or sdpa, got '" + s + "'");
}

const char* to_string(FusedAttentionBackend b) { return b == FusedAttentionBackend::sdpa ? "sdpa" : "kernel"; }

FusedAttentionBackend fused_attention_backend() {
  int b = g_backend.load();
  if (b < 0) {
    const char* env = std::getenv("MEGALODON_FUSED_ATTENTION");
    b = static_cast<int>(env && *env ? parse_fused_attention_backend(env) : FusedAttentionBackend::kernel);
    g_backend.store(b);
  }
  return static_cast<FusedAttentionBackend>(b);
}

void set_fused_attention_backend(FusedAttentionBackend b) { g_backend.store(static_cast<int>(b)); }

bool sdpa_available() { return TORCH_VERSION_MAJOR >= 2; }

Tensor chunked_attention_sdpa(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk, bool causal,
                              double scale, double dropout, bool training, const Tensor& key_padding_mask) {
#if TORCH_VERSION_MAJOR >= 2
  TORCH_CHECK(q.dim() == 4 && k.sizes() == q.sizes() && v.dim() == 4 && v.size(1) == q.size(1),
              "chunked_attention_sdpa: q, k must be B×L×H×d and v B×L×H×dv, got ", q.sizes(), k.sizes(), v.sizes());
  TORCH_CHECK(chunk >= 1, "chunked_attention_sdpa: chunk must be >= 1");
  const int64_t B = q.size(0), L = q.size(1), H = q.size(2), d = q.size(3);
  const int64_t C = std::min(chunk, L);
  const int64_t nc = (L + C - 1) / C, pad = nc * C - L;
  auto to_chunks = [&](const Tensor& x) {  // B×L×H×d → (B·nc)×H×C×d
    Tensor xp = pad ? torch::constant_pad_nd(x, {0, 0, 0, 0, 0, pad}) : x;
    return xp.reshape({B * nc, C, H, x.size(3)}).transpose(1, 2);
  };
  // Keys SDPA may attend (true = attend: the opposite of our masks). Causal with square chunks
  // hides the padded tail keys from every real query; otherwise they are masked explicitly.
  Tensor allow, dead;
  if (!causal && (pad || key_padding_mask.defined())) {
    auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(q.device());
    Tensor km = key_padding_mask.defined() ? key_padding_mask.to(torch::kBool) : torch::zeros({B, L}, bool_opts);
    TORCH_CHECK(km.sizes() == torch::IntArrayRef({B, L}), "chunked_attention_sdpa: key_padding_mask must be B×L");
    km = torch::constant_pad_nd(km.to(torch::kUInt8), {0, pad}, 1).to(torch::kBool).view({B * nc, 1, 1, C});
    // A chunk whose keys are all padded would give NaN rows: let it see key 0 and zero its output
    // afterwards (the reference outputs zeros there), which keeps forward and backward finite.
    dead = km.all(-1, true);
    Tensor first = torch::zeros({1, 1, 1, C}, bool_opts);
    first.index_put_({0, 0, 0, 0}, true);
    allow = torch::logical_not(km).logical_or(torch::logical_and(dead, first));
  }
  Tensor qc = to_chunks(q), kc = to_chunks(k), vc = to_chunks(v);
  const double p = training ? dropout : 0.0;
  // No mask must be passed as nullopt (an undefined tensor inside the optional is not "no mask").
  c10::optional<Tensor> mask;
  if (allow.defined()) mask = allow;
  Tensor out;
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1
  out = at::scaled_dot_product_attention(qc, kc, vc, mask, p, causal, scale);
#else
  // 2.0 has no `scale` argument: it always uses 1/sqrt(d), so pre-scale q.
  out = at::scaled_dot_product_attention(qc * (scale * std::sqrt(static_cast<double>(d))), kc, vc, mask, p, causal);
#endif
  (void)d;
  if (dead.defined()) out = out.masked_fill(dead, 0.0);
  out = out.transpose(1, 2).reshape({B, nc * C, H, v.size(3)});
  return pad ? out.narrow(1, 0, L) : out;
#else
  (void)q, (void)k, (void)v, (void)chunk, (void)causal, (void)scale, (void)dropout, (void)training,
      (void)key_padding_mask;
  TORCH_CHECK(false, "scaled_dot_product_attention needs LibTorch >= 2.0; this build has ", TORCH_VERSION,
              " (use the kernel or the reference attention)");
#endif
}

}  // namespace mgl::ops
