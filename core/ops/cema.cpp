#include "core/ops/cema.h"

#include <cmath>

namespace mgl::ops {
namespace {

using torch::Tensor;

// The real dtype matching the coefficients (float for complex64, double for complex128).
torch::Dtype real_dtype(const EmaCoeffs& c) { return c.p.scalar_type(); }

// exp(log_q ⊗ e) for a vector of exponents e (real, length K): D×N×K.
// The product j·log q is formed in fp64 and only the result is rounded: in fp32 the phase j·θ
// would carry an absolute error of j·θ·ε (≈ 4e-4 rad at j = 1000), which is what limits the
// official fp32 kernels at long L. With the √L blocking there are only O(D·N·√L) powers, so the
// fp64 exponentials cost nothing measurable.
Tensor powers(const Tensor& log_q, const Tensor& exponents) {
  const auto wide = log_q.is_complex() ? torch::kComplexDouble : torch::kFloat64;
  return torch::exp(log_q.to(wide).unsqueeze(-1) * exponents.to(torch::kFloat64)).to(log_q.scalar_type());
}

// Block length T ≈ √L and number of blocks A = ⌈L/T⌉.
std::pair<int64_t, int64_t> blocking(int64_t L) {
  int64_t T = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(L)))));
  return {T, (L + T - 1) / T};
}

Tensor real_part(const Tensor& t) { return t.is_complex() ? torch::real(t) : t; }

Tensor arange(int64_t n, const EmaCoeffs& c) {
  return torch::arange(n, torch::TensorOptions().dtype(real_dtype(c)).device(c.p.device()));
}

void check_coeffs(const EmaCoeffs& c) {
  TORCH_CHECK(c.p.dim() == 2 && c.log_q.sizes() == c.p.sizes() && c.eta.sizes() == c.p.sizes(),
              "EMA coefficients must all be D×N, got p ", c.p.sizes(), ", log_q ", c.log_q.sizes(), ", eta ",
              c.eta.sizes());
  TORCH_CHECK(c.is_complex() == c.eta.is_complex(), "log_q and eta must both be complex or both real");
}

}  // namespace

int64_t fft_size(int64_t L) {
  TORCH_CHECK(L >= 1, "fft_size: L must be >= 1, got ", L);
  int64_t n = 1;
  while (n < L) n <<= 1;
  return n;
}

Tensor ema_kernel(const EmaCoeffs& c, int64_t L) {
  check_coeffs(c);
  TORCH_CHECK(L >= 1, "ema_kernel: L must be >= 1, got ", L);
  const auto [T, A] = blocking(L);
  const int64_t D = c.dim();
  Tensor inner = powers(c.log_q, arange(T, c));                               // D×N×T : q^b
  Tensor outer = (c.p * c.eta).unsqueeze(-1) * powers(c.log_q, arange(A, c) * static_cast<double>(T));
  // D×A×N @ D×N×T → D×A×T, then flatten the (a, b) grid to j = aT + b. Only the real part is
  // wanted: Re(o·i) = Σ_n (Re o Re i − Im o Im i), one real product over 2N terms (half the work of
  // the complex product, and a real GEMM).
  Tensor k;
  if (c.is_complex()) {
    const int64_t N = c.ndim();
    Tensor o = torch::view_as_real(outer.transpose(1, 2).contiguous()).reshape({D, A, 2 * N});  // (n, re|im)
    Tensor i = torch::stack({torch::real(inner), -torch::imag(inner)}, 2).reshape({D, 2 * N, T});
    k = torch::matmul(o, i);
  } else {
    k = torch::matmul(outer.transpose(1, 2), inner);
  }
  return k.reshape({D, A * T}).narrow(1, 0, L).contiguous();
}

Tensor ema_bias(const EmaCoeffs& c, const Tensor& h0, int64_t L) {
  check_coeffs(c);
  TORCH_CHECK(h0.dim() == 3 && h0.size(1) == c.dim() && h0.size(2) == c.ndim(), "ema_bias: h0 must be B×",
              c.dim(), "×", c.ndim(), ", got ", h0.sizes());
  const auto [T, A] = blocking(L);
  const int64_t B = h0.size(0), D = c.dim();
  Tensor inner = powers(c.log_q, arange(T, c));                                       // D×N×T
  Tensor outer = (c.eta * h0).unsqueeze(-1) *                                          // B×D×N×A
                 powers(c.log_q, arange(A, c) * static_cast<double>(T) + 1.0);
  Tensor bias = torch::matmul(outer.transpose(-1, -2), inner);                          // B×D×A×T
  return real_part(bias.reshape({B, D, A * T}).narrow(2, 0, L)).contiguous();
}

Tensor ema_hidden(const Tensor& x, const EmaCoeffs& c, const Tensor& h0) {
  check_coeffs(c);
  TORCH_CHECK(x.dim() == 3 && x.size(1) == c.dim(), "ema_hidden: x must be B×", c.dim(), "×L, got ",
              x.sizes());
  const int64_t B = x.size(0), D = c.dim(), L = x.size(2);
  const auto [T, A] = blocking(L);
  // Left-pad to A·T so that the last input sits at the end of the last block; index i of the
  // padded sequence then has power q^(A·T−1−i) = q^((A−1−a)T) · q^(T−1−b).
  Tensor xp = torch::constant_pad_nd(x.to(c.eta.scalar_type()), {A * T - L, 0});
  Tensor xr = xp.reshape({B, D, A, T});
  Tensor within = powers(c.log_q, arange(T, c).flip(0)).transpose(1, 2);              // D×T×N
  Tensor across = powers(c.log_q, arange(A, c).flip(0) * static_cast<double>(T));      // D×N×A
  Tensor partial = torch::matmul(xr, within);                                          // B×D×A×N
  Tensor h = c.p * (partial * across.transpose(1, 2)).sum(2);                          // B×D×N
  if (h0.defined()) h = h + powers(c.log_q, torch::full({1}, static_cast<double>(L), c.p.options())).squeeze(-1) * h0;
  return h;
}

namespace {
// y = x ⋆ k (causal) by zero-padded real FFTs of length n ≥ 2L, so nothing wraps around.
Tensor fft_convolve(const Tensor& x, const Tensor& k, int64_t n, int64_t L) {
  Tensor y = torch::fft::irfft(torch::fft::rfft(x, n, -1).mul_(torch::fft::rfft(k, n, -1)), n, -1);
  return y.narrow(-1, 0, L);
}

// The causal convolution with a hand-written backward (issue 22): autograd would keep both spectra
// (B×D×(n/2+1) and D×(n/2+1) complex, n = 2·fft_size(L): four floats per channel and step each);
// this keeps x and k and transforms them again. With y_t = Σ_j k_j x_{t−j}:
//   gx_s = Σ_j k_j gy_{s+j} = irfft(conj(K)·G)_s,   gk_j = Σ_b Σ_t gy_t x_{t−j} = Σ_b irfft(conj(X)·G)_j
// (G = rfft(gy) zero-padded to n; no wrap-around because n ≥ 2L).
struct CausalFftConv : public torch::autograd::Function<CausalFftConv> {
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& k) {
    const int64_t L = x.size(2), n = 2 * fft_size(L);
    ctx->save_for_backward({x, k});
    return fft_convolve(x, k, n, L);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &x = s[0], &k = s[1];
    const int64_t L = x.size(2), n = 2 * fft_size(L);
    Tensor g = torch::fft::rfft(grads[0], n, -1);
    Tensor gx, gk;
    if (ctx->needs_input_grad(0))
      gx = torch::fft::irfft(g * torch::fft::rfft(k, n, -1).conj(), n, -1).narrow(-1, 0, L);
    if (ctx->needs_input_grad(1))
      gk = torch::fft::irfft(g.mul_(torch::fft::rfft(x, n, -1).conj()), n, -1).narrow(-1, 0, L).sum(0);
    return {gx, gk};
  }
};
}  // namespace

Tensor causal_fftconv(const Tensor& x, const Tensor& k) {
  TORCH_CHECK(x.dim() == 3 && k.dim() == 2 && k.size(0) == x.size(1) && k.size(1) == x.size(2),
              "causal_fftconv: x must be B×D×L and k D×L, got ", x.sizes(), " and ", k.sizes());
  const auto cd = (x.scalar_type() == torch::kFloat64 || k.scalar_type() == torch::kFloat64) ? torch::kFloat64
                                                                                           : torch::kFloat32;
  return CausalFftConv::apply(x.to(cd), k.to(cd)).to(x.scalar_type());
}

namespace {
// Σ_j g[d, j] q[d, n]^j and Σ_j j g[d, j] q[d, n]^j (j < L) for real g (D×L): the adjoint of the
// kernel's power sum, blocked as j = aT + b like the forward (O(D·N·√L) powers, one batched GEMM each).
std::pair<Tensor, Tensor> adjoint_power_sums(const Tensor& log_q, const Tensor& g, int64_t L) {
  const auto [T, A] = blocking(L);
  const int64_t D = g.size(0);
  const auto cd = log_q.scalar_type();
  auto ar = [&](int64_t n) { return torch::arange(n, g.options()); };
  Tensor gp = torch::constant_pad_nd(g, {0, A * T - L}).view({D, A, T});          // D×A×T, real
  Tensor inner = powers(log_q, ar(T)).transpose(1, 2);                             // D×T×N: q^b
  Tensor outer = powers(log_q, ar(A) * static_cast<double>(T)).transpose(1, 2);    // D×A×N: q^(aT)
  // Real g times complex powers: one real GEMM on the (re, im) pairs.
  auto real_times = [&](const Tensor& r) {
    if (!inner.is_complex()) return torch::matmul(r, inner);
    const int64_t N = inner.size(2);
    Tensor ri = torch::view_as_real(inner.contiguous()).reshape({D, T, 2 * N});
    return torch::view_as_complex(torch::matmul(r, ri).view({D, A, N, 2}));
  };
  Tensor u = real_times(gp);                                                       // Σ_b g q^b
  Tensor ub = real_times(gp * ar(T));                                              // Σ_b b g q^b
  Tensor s0 = (u * outer).sum(1);
  Tensor at = (ar(A) * static_cast<double>(T)).to(cd).view({1, A, 1});
  Tensor s1 = ((u * at + ub) * outer).sum(1);
  return {s0, s1};
}

Tensor conj_if_complex(const Tensor& t) { return t.is_complex() ? t.conj().resolve_conj() : t; }

struct EmaConvolve : public torch::autograd::Function<EmaConvolve> {
  // x: B×D×L (fp32/fp64, the real dtype of the coefficients); c = p·η and log_q: D×N.
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& x, const Tensor& c, const Tensor& log_q) {
    const int64_t L = x.size(2), n = 2 * fft_size(L);
    const EmaCoeffs k_of{torch::ones_like(real_part(c)), log_q, c};
    ctx->save_for_backward({x, c, log_q});
    return fft_convolve(x, ema_kernel(k_of, L), n, L);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &x = s[0], &c = s[1], &log_q = s[2];
    const int64_t L = x.size(2), n = 2 * fft_size(L);
    const EmaCoeffs k_of{torch::ones_like(real_part(c)), log_q, c};
    Tensor g = torch::fft::rfft(grads[0], n, -1);
    Tensor gx;
    if (ctx->needs_input_grad(0))
      gx = torch::fft::irfft(g * torch::fft::rfft(ema_kernel(k_of, L), n, -1).conj(), n, -1).narrow(-1, 0, L);
    Tensor gc, glq;
    if (ctx->needs_input_grad(1) || ctx->needs_input_grad(2)) {
      Tensor gk = torch::fft::irfft(g.mul_(torch::fft::rfft(x, n, -1).conj()), n, -1).narrow(-1, 0, L).sum(0);
      auto [s0, s1] = adjoint_power_sums(log_q, gk.contiguous(), L);
      gc = conj_if_complex(s0);
      glq = conj_if_complex(c * s1);
    }
    return {gx, gc, glq};
  }
};
}  // namespace

Tensor ema_convolve(const Tensor& x, const EmaCoeffs& c) {
  check_coeffs(c);
  TORCH_CHECK(x.dim() == 3 && x.size(1) == c.dim(), "ema_convolve: x must be B×", c.dim(), "×L, got ", x.sizes());
  return EmaConvolve::apply(x.to(real_dtype(c)), c.p * c.eta, c.log_q).to(x.scalar_type());
}

Tensor bidirectional_fftconv(const Tensor& x, const Tensor& k_fwd, const Tensor& k_bwd) {
  return causal_fftconv(x, k_fwd) + causal_fftconv(x.flip(-1), k_bwd).flip(-1);
}

std::pair<Tensor, Tensor> ema_recurrence(const Tensor& x, const EmaCoeffs& c, const Tensor& h0) {
  check_coeffs(c);
  const int64_t B = x.size(0), D = c.dim(), N = c.ndim(), L = x.size(2);
  Tensor q = torch::exp(c.log_q);
  Tensor h = h0.defined() ? h0 : torch::zeros({B, D, N}, c.eta.options());
  std::vector<Tensor> ys;
  ys.reserve(L);
  Tensor xs = x.to(c.eta.scalar_type());
  for (int64_t t = 0; t < L; ++t) {
    h = c.p * xs.select(2, t).unsqueeze(-1) + q * h;
    ys.push_back(real_part((c.eta * h).sum(-1)));
  }
  return {torch::stack(ys, 2), h};
}

}  // namespace mgl::ops
