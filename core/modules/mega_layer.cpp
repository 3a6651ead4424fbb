#include "core/modules/mega_layer.h"


#include <cmath>

#include "core/init.h"
#include "core/kernels.h"
#include "core/modules/drop_path.h"
#include "core/ops/attention.h"
#include "core/ops/gates.h"
#include "core/util/autocast_state.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include "core/cuda/attention/attention_glue.h"
#endif

namespace mgl {

using torch::Tensor;
namespace F = torch::nn::functional;

namespace {
Tensor apply_dropout(const Tensor& x, double p, bool training) {
  return (p > 0.0 && training) ? F::dropout(x, F::DropoutFuncOptions().p(p).training(true)) : x;
}
torch::nn::LinearOptions lin(int64_t in, int64_t out, bool bias = true) {
  return torch::nn::LinearOptions(in, out).bias(bias);
}

// The fused chunked attention (model.kernel_attention = fused | auto on CUDA tensors), or an
// undefined tensor when it cannot take this call and the reference path must run:
//  - backend `kernel` (ops::fused_attention_backend): the IO-aware CUDA kernel has no attention
//    dropout, so training with attention_dropout > 0 falls back to the reference path (with a
//    one-time warning); calls outside its limits (fp64, fp16, d_z > 256, B·H > 65535) fall back
//    under `auto` and are refused with a ConfigError under `fused`;
//  - backend `sdpa`: scaled_dot_product_attention on the chunked view (LibTorch >= 2.0; dropout
//    supported); an error on older LibTorch.
Tensor fused_chunked_attention(KernelImpl impl, const Tensor& q, const Tensor& k, const Tensor& v, int64_t C,
                               bool causal, double scale, double p, bool training, const Tensor& key_padding_mask) {
  if (ops::fused_attention_backend() == ops::FusedAttentionBackend::sdpa)
    return ops::chunked_attention_sdpa(q, k, v, C, causal, scale, p, training, key_padding_mask);
  if (p > 0.0 && training) {
    TORCH_WARN_ONCE("model.kernel_attention: the attention kernel has no attention dropout; training with "
                    "attention_dropout > 0 uses the reference attention");
    return {};
  }
  // The kernel's limits (fp32/bf16, head dim ≤ 256, B·H ≤ 65535): `fused` refuses, `auto` falls back.
  if (!kernels::use_fused(impl, q, "model.kernel_attention", kernels::attention_unsupported(q, k, v, C, C, causal)))
    return {};
#ifdef MEGALODON_WITH_CUDA_GLUE
  return cuda::chunked_attention_cuda(q, k, v, C, causal, scale, key_padding_mask);
#else
  (void)scale, (void)key_padding_mask;
  return {};
#endif
}

// Same for the cached (decode) form: only the kernel backend has one (SDPA's causal mask is
// top-left aligned, and with one new query no mask is needed: the reference op is already cheap).
Tensor fused_cached_attention(KernelImpl impl, const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                              double p, bool training) {
  if (ops::fused_attention_backend() != ops::FusedAttentionBackend::kernel || (p > 0.0 && training)) return {};
  if (!kernels::use_fused(impl, q, "model.kernel_attention",
                          kernels::attention_unsupported(q, k, v, q.size(1), k.size(1), true)))
    return {};
#ifdef MEGALODON_WITH_CUDA_GLUE
  return cuda::cached_attention_cuda(q, k, v, scale);
#else
  (void)scale;
  return {};
#endif
}
}  // namespace

MovingAverageGatedAttentionImpl::MovingAverageGatedAttentionImpl(const MegalodonConfig& c) : cfg(c) {
  TORCH_CHECK(!(c.causal && c.norm == NormKind::sequence),
              "model.norm = 'sequence' uses whole-sequence statistics: only for the non-causal (encoder) form");
  const int64_t D = c.model_dim, Z = c.z_dim, E = c.value_dim;
  timenorm = register_module(sequence_norm_name(c.norm),
                             SequenceNorm(c.norm, D, c.norm_num_groups, c.norm_eps, c.prior_count, true,
                                          c.kernel_timestep_norm));
  cema = register_module("cema", ComplexEMA(ComplexEMAOptions(D, c.cema_ndim)
                                                .kind(c.ema)
                                                .mega_exact(c.ema_mega_exact)
                                                .bidirectional(!c.causal)
                                                .kernel(c.kernel_cema)));
  rmsnorm = register_module("rmsnorm", RMSNorm(D, c.norm_affine, c.norm_eps, c.kernel_row_norm));
  znorm = register_module("znorm", RMSNorm(c.z_head_dim(), false, c.norm_eps, c.kernel_row_norm));
  wv = register_module("wv", torch::nn::Linear(lin(D, E)));
  wz = register_module("wz", torch::nn::Linear(lin(D, Z)));
  wr = register_module("wr", torch::nn::Linear(lin(D, E)));
  wh1 = register_module("wh1", torch::nn::Linear(lin(D, D)));
  wh2 = register_module("wh2", torch::nn::Linear(lin(E, D, false)));
  if (c.update_gate == UpdateGate::mega) wu = register_module("wu", torch::nn::Linear(lin(D, D)));
  gamma = register_parameter("gamma", torch::zeros({2, Z}));
  beta = register_parameter("beta", torch::zeros({2, Z}));
  reset_parameters();
}

void MovingAverageGatedAttentionImpl::reset_parameters() {
  for (auto* l : {&wv, &wz, &wr, &wh1, &wh2}) init_linear(*l, cfg.init_mode);
  if (wu) init_linear(wu, cfg.init_mode);
  torch::NoGradGuard g;
  beta.zero_();
  if (cfg.plain_mega_init)
    gamma.normal_(0.0, 0.02);  // Mega: q = z·γ + β with γ ~ N(0, 0.02²), no +1
  else
    gamma.zero_();
}

Tensor MovingAverageGatedAttentionImpl::attend(const Tensor& q, const Tensor& k, const Tensor& v_in,
                                               MegaLayerState* state, const Tensor& padding_mask, bool silu_v) {
  const int64_t L = q.size(1), C = cfg.chunk_size;
  const int64_t c = state ? state->cache_length() : 0;
  const double scale = cfg.attention == AttentionKind::normalized ? 1.0 : 1.0 / std::sqrt(double(cfg.z_head_dim()));
  const double p = cfg.attention_dropout;
  // Chunk-local RoPE positions (§3.3): token i of this call sits at (cache + i) mod C.
  Tensor pos = (torch::arange(L, torch::TensorOptions().dtype(torch::kInt64).device(q.device())) + c) % C;
  const Tensor rot = ops::rope_rotation(pos, q.size(3), cfg.rope_base,
                                       q.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
  Tensor qr = ops::apply_rope(q, rot);
  Tensor kr = ops::apply_rope(k, rot);
  const bool fused = kernels::use_fused(cfg.kernel_attention, q, "model.kernel_attention");
  // Only the reference chunked attention of a whole sequence takes the pre-activation itself.
  const bool pre = silu_v && !fused && !state;
  const Tensor v = silu_v && !pre ? torch::silu(v_in) : v_in;
  auto chunked = [&](const Tensor& a, const Tensor& b, const Tensor& c, bool causal, const Tensor& kpm) {
    Tensor o = fused ? fused_chunked_attention(cfg.kernel_attention, a, b, c, C, causal, scale, p, is_training(), kpm)
                     : Tensor();
    return o.defined() ? o : ops::chunked_attention(a, b, c, C, causal, scale, p, is_training(), kpm, pre);
  };
  if (!state) return chunked(qr, kr, v, cfg.causal, cfg.causal ? Tensor() : padding_mask);

  TORCH_CHECK(cfg.causal, "streaming with a KV cache needs the causal (decoder) form");
  // The first `first` tokens complete the chunk the cache belongs to; the rest start new chunks.
  const int64_t first = std::min(L, C - c);
  auto head = [&](const Tensor& t) { return t.narrow(1, 0, first); };
  Tensor k1 = c ? torch::cat({state->k, head(kr)}, 1) : head(kr);
  Tensor v1 = c ? torch::cat({state->v, head(v)}, 1) : head(v);
  Tensor out = fused ? fused_cached_attention(cfg.kernel_attention, head(qr), k1, v1, scale, p, is_training()) : Tensor();
  if (!out.defined()) out = ops::cached_attention(head(qr), k1, v1, scale, p, is_training());
  if (L > first) {
    auto tail = [&](const Tensor& t) { return t.narrow(1, first, L - first); };
    out = torch::cat({out, chunked(tail(qr), tail(kr), tail(v), true, Tensor())}, 1);
  }
  // The cache keeps the tokens of the current, unfinished chunk: empty at every boundary (§7.1).
  const int64_t keep = (c + L) % C;
  if (keep == 0) {
    state->k = state->v = Tensor();
  } else if (keep <= L) {
    state->k = kr.narrow(1, L - keep, keep);
    state->v = v.narrow(1, L - keep, keep);
  } else {
    state->k = k1;
    state->v = v1;
  }
  return out;
}

Tensor MovingAverageGatedAttentionImpl::attend_documents(const Tensor& q, const Tensor& k, const Tensor& v,
                                                         MegaLayerState* state, const ops::DocumentPlan& plan) {
  TORCH_CHECK(cfg.kernel_attention != KernelImpl::fused,
              "model.kernel_attention = \"fused\": the attention kernels have no document masks "
              "(task.document_boundaries = \"reset\"); use \"auto\" or \"reference\"");
  const double scale = cfg.attention == AttentionKind::normalized ? 1.0 : 1.0 / std::sqrt(double(cfg.z_head_dim()));
  Tensor kr = ops::apply_rope_rows(k, plan.positions, cfg.rope_base);
  Tensor qr = ops::apply_rope_rows(q, plan.positions, cfg.rope_base);
  Tensor keys = kr, values = v;
  if (plan.cached > 0) {
    TORCH_CHECK(state && state->cache_length() == plan.cached, "MEGA layer: the document plan expects ", plan.cached,
                " cached keys, the state has ", state ? state->cache_length() : 0);
    keys = torch::cat({state->k, kr}, 1);
    values = torch::cat({state->v, v}, 1);
  }
  Tensor out = ops::segment_attention(qr, keys, values, plan, scale, cfg.attention_dropout, is_training());
  if (state) {
    // The keys of each row's unfinished segment (rows with fewer valid ones are masked by keep_valid).
    const int64_t S = keys.size(1);
    state->k = plan.keep ? keys.narrow(1, S - plan.keep, plan.keep) : Tensor();
    state->v = plan.keep ? values.narrow(1, S - plan.keep, plan.keep) : Tensor();
    state->kv_valid = plan.keep_valid;
  }
  return out;
}

Tensor MovingAverageGatedAttentionImpl::forward(const Tensor& x, MegaLayerState* state, const Tensor& padding_mask,
                                                const ops::DocumentPlan* documents, SequenceExchange* exchange) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == cfg.model_dim, "MEGA layer: x must be B×L×", cfg.model_dim,
              ", got ", x.sizes());
  const int64_t B = x.size(0), L = x.size(1), H = cfg.num_heads, dz = cfg.z_head_dim(), dv = cfg.v_head_dim();
  const bool train = is_training();

  // Chunk parallelism (core/modules/sequence_parallel.h): this rank's segment starts from the
  // norm statistics and EMA state of the segments before it, like a streaming call.
  SequenceExchange* ex = state ? nullptr : exchange;
  if (documents) {
    TORCH_CHECK(cfg.causal && !padding_mask.defined(), "document resets are for the causal form on unpadded rows");
    TORCH_CHECK(!ex, "chunk parallelism (dist.chunk_parallel > 1) does not support document resets");
  }
  ops::NormState incoming;
  ops::NormState* norm_state = state ? &state->norm : nullptr;
  if (ex) {
    TORCH_CHECK(cfg.causal && !padding_mask.defined(),
                "chunk parallelism needs the causal form and unpadded sequences (a language model)");
    TORCH_CHECK(L % cfg.chunk_size == 0, "chunk parallelism: every rank's segment (", L,
                " tokens) must be a whole number of attention chunks (model.chunk_size = ", cfg.chunk_size, ")");
    if (cfg.norm == NormKind::timestep) {
      incoming = sequence_parallel::norm_incoming(*ex, x, cfg.norm_num_groups, timenorm->initial_state(B, x.device()));
      norm_state = &incoming;
    }
  }
  Tensor xt = timenorm(x, norm_state, padding_mask, documents);
  Tensor xe = padding_mask.defined() ? xt.masked_fill(padding_mask.unsqueeze(-1), 0.0) : xt;
  Tensor h0 = state ? state->hx : Tensor();
  if (ex) h0 = sequence_parallel::ema_incoming(*ex, xe.transpose(1, 2), cema->coeffs());
  auto [xc, hx] = cema(xe.transpose(1, 2), h0, state != nullptr, documents);
  if (state) state->hx = hx;
  Tensor mx = apply_dropout(rmsnorm(xc.transpose(1, 2)), cfg.hidden_dropout, train);

  // Shared representation z → q, k (§3.2; the plain variant is §8.3).
  Tensor z = wz(mx);
  Tensor q, k;
  if (cfg.attention == AttentionKind::normalized) {
    Tensor zn = znorm(z.view({B, L, H, dz})).view({B, L, H * dz});
    const double s = 1.0 / std::sqrt(static_cast<double>(dz));
    q = zn * ((gamma[0] + 1.0) * s) + beta[0];
    k = zn * ((gamma[1] + 1.0) * s) + beta[1];
  } else {
    z = torch::silu(z);
    const double one = cfg.plain_mega_init ? 0.0 : 1.0;
    q = z * (gamma[0] + one) + beta[0];
    k = z * (gamma[1] + one) + beta[1];
  }
  // v = silu(W_v xt), from the norm output, not the EMA output (§3.5). Without document resets the
  // attention applies the silu itself and keeps only W_v xt for the backward (issue 22).
  Tensor vp = wv(xt);
  Tensor ra = wr(mx);  // r = silu(ra)
  Tensor o = (documents ? attend_documents(q.view({B, L, H, dz}), k.view({B, L, H, dz}),
                                           torch::silu(vp).view({B, L, H, dv}), state, *documents)
                        : attend(q.view({B, L, H, dz}), k.view({B, L, H, dz}), vp.view({B, L, H, dv}), state,
                                 padding_mask, /*silu_v=*/true))
                 .reshape({B, L, H * dv});

  // wh2(O ⊙ r) as one op that keeps O and ra only (issue 22); the plain form where dropout sits
  // between the gate and wh2, or autocast picks the matmul dtype.
  const bool fuse_gate = !(cfg.hidden_dropout > 0.0 && train) && !(o.is_cuda() && cuda_autocast_enabled()) &&
                         o.scalar_type() == wh2->weight.scalar_type() && ra.scalar_type() == o.scalar_type();
  Tensor gated = fuse_gate ? ops::silu_gated_linear(o, ra, wh2->weight)
                           : wh2(apply_dropout(o * torch::silu(ra), cfg.hidden_dropout, train));
  Tensor hidden = wh1(mx) + gated;
  if (cfg.update_gate == UpdateGate::mega) {
    // Mega (§8.5): u = σ(W_u mx + b), h = silu(·), y = x + u ⊙ (h − x).
    Tensor u = torch::sigmoid(wu(mx));
    return x + drop_path(u * (apply_dropout(torch::silu(hidden), cfg.dropout, train) - x), drop_path_rate, train);
  }
  return x + drop_path(apply_dropout(hidden, cfg.dropout, train), drop_path_rate, train);
}

}  // namespace mgl
