#include "core/modules/cema.h"

#include <cmath>

#include "core/init.h"
#include "core/kernels.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include "core/cuda/cema/cema_glue.h"
#endif

namespace mgl {

using torch::Tensor;

#ifdef MEGALODON_WITH_CUDA_GLUE
namespace {
// The module's forward by the fused CUDA scan (y and the carried state in one pass per direction),
// for a call kernels::cema_unsupported has accepted. The real EMA (§1.9,
// Mega's form included) runs as a CEMA whose log q, η and state have zero imaginary parts (the
// autograd of torch::complex / torch::real maps the gradients back to the real parameters);
// Mega's output silu is applied after the scan, before rounding to x's dtype.
std::pair<Tensor, Tensor> forward_fused(const ComplexEMAImpl& m, const Tensor& x, const Tensor& h0, bool want_state) {
  const auto& o = m.options;
  auto as_complex = [](ops::EmaCoeffs c) {
    if (!c.is_complex()) {
      c.log_q = torch::complex(c.log_q, torch::zeros_like(c.log_q));
      c.eta = torch::complex(c.eta, torch::zeros_like(c.eta));
    }
    return c;
  };
  ops::EmaCoeffs c = m.coeffs(0);
  const bool real_ema = !c.is_complex();
  c = as_complex(c);
  const auto cd = c.p.scalar_type();
  // bf16 activations go to the kernel as they are (fp32 coefficients, fp32 accumulation) when y
  // needs no further fp32 work: the bidirectional sum and Mega's silu are formed in fp32 so that
  // y is rounded to bf16 once, as on the reference path.
  const bool keep_bf16 =
      x.scalar_type() == torch::kBFloat16 && cd == torch::kFloat32 && !o.bidirectional() && !o.mega_exact();
  Tensor xa = keep_bf16 ? x : x.to(cd);
  Tensor om = m.omega.view({-1});
  Tensor y, h;
  if (o.bidirectional()) {
    TORCH_CHECK(!h0.defined() && !want_state, "a bidirectional EMA has no carried state (encoder only)");
    y = cuda::cema_scan(xa, c, om, Tensor(), false).first +
        cuda::cema_scan(xa, as_complex(m.coeffs(1)), Tensor(), Tensor(), true).first;
  } else {
    Tensor hc = h0;
    if (h0.defined() && !h0.is_complex()) hc = torch::complex(h0.to(cd), torch::zeros_like(h0.to(cd)));
    auto out = cuda::cema_scan(xa, c, om, hc, false);
    y = out.first;
    if (want_state) h = real_ema ? torch::real(out.second) : out.second;
  }
  if (o.mega_exact()) y = torch::silu(y);
  return {y.to(x.scalar_type()), h};
}
}  // namespace
#endif

ComplexEMAImpl::ComplexEMAImpl(const ComplexEMAOptions& o) : options(o) {
  const int64_t D = o.dim(), N = o.ndim(), K = o.bidirectional() ? 2 * D : D;
  TORCH_CHECK(!(o.mega_exact() && o.kind() != EmaKind::ema), "mega_exact requires the real EMA");
  scale = std::sqrt(1.0 / static_cast<double>(N));
  const bool cema = o.kind() == EmaKind::cema;
  if (o.mega_exact()) {
    // Mega's registration order and names (fairseq MultiHeadEMA).
    delta = register_parameter("delta", torch::empty({K, N, 1}));
    alpha = register_parameter("alpha", torch::empty({K, N, 1}));
    beta = register_parameter("beta", torch::empty({K, N, 1}));
    gamma = register_parameter("gamma", torch::empty({K, N}));
    omega = register_parameter("omega", torch::empty({D}));
  } else {
    alpha = register_parameter("alpha", torch::empty({K, N, 1}));
    delta = register_parameter("delta", torch::empty({K, N, 1}));
    if (cema) theta = register_parameter("theta", torch::empty({K, 1, 1}));
    gamma = register_parameter("gamma", cema ? torch::empty({K, N, 2}) : torch::empty({K, N}));
    omega = register_parameter("omega", torch::empty({D, 1}));
  }
  reset_parameters();
}

void ComplexEMAImpl::reset_parameters() {
  torch::NoGradGuard g;
  alpha.normal_(0.0, 0.2);
  delta.normal_(0.0, 0.2);
  if (options.mega_exact()) {
    // β = [1, −1, 1, −1, …] + N(0, 0.02²); γ ~ N(0, 1); ω ~ N(0, 1).
    auto signs = torch::ones({options.ndim()});
    signs.index_put_({torch::indexing::Slice(1, torch::indexing::None, 2)}, -1.0);
    beta.copy_(signs.view({1, -1, 1}).expand_as(beta) + torch::randn_like(beta) * 0.02);
    gamma.normal_(0.0, 1.0);
    omega.normal_(0.0, 1.0);
    return;
  }
  if (theta.defined()) {
    // §1.2: f_k = D^(−k/D), k = 1..D, randomly permuted across channels, θ = logit(f).
    const int64_t K = theta.size(0);
    const double Dg = static_cast<double>(options.dim());
    auto k = torch::arange(1, K + 1, torch::kFloat64);
    auto f = torch::exp(-k * std::log(Dg) / Dg);
    f = f.index_select(0, torch::randperm(K));
    theta.copy_(torch::log(f / (1.0 - f)).view({K, 1, 1}));
    gamma.zero_();
    gamma.select(2, 0).normal_(0.0, 1.0);  // re ~ N(0, 1), im = 0
  } else {
    gamma.normal_(0.0, 1.0);
  }
  trunc_normal_(omega, 0.25, -1.0, 1.0);
}

ops::EmaCoeffs ComplexEMAImpl::coeffs(int direction) const {
  const int64_t D = options.dim();
  TORCH_CHECK(direction == 0 || (direction == 1 && options.bidirectional()), "bad EMA direction");
  auto rows = [&](const Tensor& t) {
    Tensor r = options.bidirectional() ? t.narrow(0, direction * D, D) : t;
    // Coefficients are always computed in at least fp32 (§1.3).
    return r.scalar_type() == torch::kFloat64 ? r : r.to(torch::kFloat32);
  };
  Tensor a = torch::sigmoid(rows(alpha).squeeze(-1));  // D×N
  Tensor dl = torch::sigmoid(rows(delta).squeeze(-1));
  ops::EmaCoeffs c;
  if (options.mega_exact()) {
    // Mega: p = σ(delta)·β (input weight), q = 1 − σ(delta)·σ(alpha).
    c.p = dl * rows(beta).squeeze(-1);
    c.log_q = torch::log1p(-dl * a);
    c.eta = rows(gamma) * scale;
  } else if (options.kind() == EmaKind::ema) {
    c.p = a;
    c.log_q = torch::log1p(-a * dl);
    c.eta = rows(gamma) * scale;
  } else {
    // q = (1 − σ(α)σ(δ))·e^{iθ_n},  θ_n = (n+1)·σ(theta)·2π/N  → log q = log|q| + iθ_n.
    const int64_t N = options.ndim();
    Tensor base = torch::sigmoid(rows(theta).squeeze(-1)) * (2.0 * M_PI / static_cast<double>(N));  // D×1
    Tensor wavelets = torch::arange(1, N + 1, base.options());
    Tensor angle = base * wavelets;                                                                // D×N
    c.p = a;
    c.log_q = torch::complex(torch::log1p(-a * dl), angle);
    Tensor gm = rows(gamma);
    c.eta = torch::complex(gm.select(2, 0), gm.select(2, 1)) * scale;
  }
  return c;
}

std::pair<Tensor, Tensor> ComplexEMAImpl::forward(const Tensor& x, const Tensor& h0, bool want_state,
                                                  const ops::DocumentPlan* documents) {
  TORCH_CHECK(x.dim() == 3 && x.size(1) == options.dim(), "ComplexEMA: x must be B×", options.dim(),
              "×L, got ", x.sizes());
  const int64_t L = x.size(2);
  // Under bf16 autocast the EMA still runs in its coefficients' precision (fp32 or fp64): the
  // complex powers q^j lose all accuracy in 8 mantissa bits. Autocast is switched off here and
  // the result is cast back to the input's dtype.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  if (documents) return forward_documents(x, h0, want_state, *documents);
  // The fused scan's limits (N ≤ 256, L ≥ 1, fp32/fp64 coefficients): `auto` falls back to the
  // reference path below where it cannot run, `fused` refuses with the reason.
  const auto cd_param = alpha.scalar_type();
  if (kernels::use_fused(options.kernel(), x, "model.kernel_cema",
                         kernels::cema_unsupported(x.size(0), options.dim(), options.ndim(), L, cd_param, cd_param))) {
#ifdef MEGALODON_WITH_CUDA_GLUE
    return forward_fused(*this, x, h0, want_state);
#endif
  }
  ops::EmaCoeffs c = coeffs(0);
  const auto cd = c.p.scalar_type();
  Tensor xa = x.to(cd);
  // The convolution with the EMA kernel: a chunked scan on the CPU (GEMMs, linear in L), FFTs
  // elsewhere; both keep only x and the coefficients for the backward pass (issue 22).
  auto conv = [](const Tensor& in, const ops::EmaCoeffs& k) {
    return in.is_cpu() ? ops::ema_chunked(in, k) : ops::ema_convolve(in, k);
  };
  Tensor y;
  if (options.bidirectional()) {
    TORCH_CHECK(!h0.defined() && !want_state, "a bidirectional EMA has no carried state (encoder only)");
    // Mega's bidirectional form (§1.8): a causal and an anti-causal convolution; each as one op that
    // keeps x and the coefficients only (ops::ema_convolve).
    y = conv(xa, c) + conv(xa.flip(-1), coeffs(1)).flip(-1);
  } else {
    y = conv(xa, c);
    if (h0.defined()) y = y + ops::ema_bias(c, h0, L);
  }
  y = y + xa * omega.to(cd).view({1, -1, 1});
  if (options.mega_exact()) y = torch::silu(y);
  Tensor h = want_state ? ops::ema_hidden(xa, c, h0) : Tensor();
  return {y.to(x.scalar_type()), h};
}

std::pair<Tensor, Tensor> ComplexEMAImpl::forward_documents(const Tensor& x, const Tensor& h0, bool want_state,
                                                            const ops::DocumentPlan& plan) {
  TORCH_CHECK(!options.bidirectional(), "document resets are for the causal EMA (a language model)");
  TORCH_CHECK(options.kernel() != KernelImpl::fused,
              "model.kernel_cema = \"fused\": the fused scan has no document resets (task.document_boundaries = "
              "\"reset\"); use \"auto\" or \"reference\"");
  const int64_t L = x.size(2);
  ops::EmaCoeffs c = coeffs(0);
  const auto cd = c.p.scalar_type();
  Tensor xa = x.to(cd);
  // Every segment its own convolution (from a zero state); the carried state adds its closed-form
  // response (§1.7) to the first segment only, when that segment continues it.
  Tensor y = ops::segmented_causal_fftconv(xa, ops::ema_kernel(c, L), plan);
  if (h0.defined()) y = y + ops::ema_bias(c, h0, L) * plan.continues.to(cd).unsqueeze(1);
  y = y + xa * omega.to(cd).view({1, -1, 1});
  if (options.mega_exact()) y = torch::silu(y);
  Tensor h;
  if (want_state) {
    // The state after the call is that of the last segment alone: its inputs (the earlier ones
    // zeroed) and h0 only where that segment continues the carried state.
    Tensor last = plan.last_segment.to(cd).unsqueeze(1);
    Tensor h0_last = h0.defined() ? h0 * plan.last_continues.to(cd).view({-1, 1, 1}) : Tensor();
    h = ops::ema_hidden(xa * last, c, h0_last);
  }
  return {y.to(x.scalar_type()), h};
}

}  // namespace mgl
