// The fused CEMA scan (core/cuda/cema/cema_scan*, core/cuda/cema/cema_glue.h) against the reference path.
// Criterion: on fresh random inputs (η with both parts non-zero, random h0, x, upstream
// gradients), the kernel's max error against an fp64 evaluation of the reference path is at most
// twice the fp32 reference path's own error, plus 1e-6 of the fp64 result's magnitude.
// Covers forward y, the streaming state h_last, every gradient (x, p, log q, η, ω, h0), bf16
// activations, the reverse direction through the bidirectional module, and the module dispatch.
#include "gpu/gpu_check.h"

#ifdef MEGALODON_WITH_CUDA_GLUE
#include <fmt/format.h>

#include <string>
#include <vector>

#include "core/cuda/cema/cema_glue.h"
#include "core/modules/cema.h"

namespace {

using torch::Tensor;

struct Operands {
  mgl::ops::EmaCoeffs c;  // fp32 coefficients (complex64) on CUDA
  Tensor omega, x, h0;    // omega: D; x: B×D×L fp32; h0: complex64
};

Operands make_operands(int64_t B, int64_t D, int64_t N, int64_t L, bool long_memory) {
  mgl::ComplexEMA m(mgl::ComplexEMAOptions(D, N));
  {
    torch::NoGradGuard g;
    m->gamma.normal_(0.0, 1.0);  // Im γ non-zero too
    if (long_memory) {           // σ(α)σ(δ) ≈ 1e-3: |q| close to 1
      const double logit = std::log(0.0316 / (1 - 0.0316));
      m->alpha.fill_(logit).add_(torch::randn_like(m->alpha) * 0.01);
      m->delta.fill_(logit).add_(torch::randn_like(m->delta) * 0.01);
    }
  }
  m->to(torch::kCUDA);
  auto c = m->coeffs();
  auto opt = torch::TensorOptions().device(torch::kCUDA);
  Operands o;
  o.c = {c.p.detach(), c.log_q.detach(), c.eta.detach()};
  o.omega = m->omega.detach().view({-1}).clone();
  o.x = torch::randn({B, D, L}, opt);
  o.h0 = torch::complex(torch::randn({B, D, N}, opt), torch::randn({B, D, N}, opt));
  return o;
}

// The reference path of the module's causal forward, in the operands' precision.
std::pair<Tensor, Tensor> reference(const Tensor& x, const mgl::ops::EmaCoeffs& c, const Tensor& omega,
                                    const Tensor& h0) {
  const int64_t L = x.size(2);
  Tensor xa = x.to(c.p.scalar_type());
  Tensor y = mgl::ops::causal_fftconv(xa, mgl::ops::ema_kernel(c, L)) + mgl::ops::ema_bias(c, h0, L) +
             xa * omega.view({1, -1, 1});
  return {y.to(x.scalar_type()), mgl::ops::ema_hidden(xa, c, h0)};
}

Tensor f64(const Tensor& t) { return t.is_complex() ? t.to(torch::kComplexDouble) : t.to(torch::kFloat64); }
// Max |a − b| in fp64, complex-aware (modulus of the difference).
double max_abs_diff(const Tensor& a, const Tensor& b) { return (f64(a) - f64(b)).abs().max().item<double>(); }

// Forward outputs and all six gradients of one evaluation.
struct Eval {
  std::vector<Tensor> out;  // y, h_last, dx, dp, dlog_q, deta, domega, dh0
};
using Fn = std::function<std::pair<Tensor, Tensor>(const Tensor&, const mgl::ops::EmaCoeffs&, const Tensor&,
                                                   const Tensor&)>;
Eval evaluate(const Fn& f, const Operands& o, const Tensor& gy, const Tensor& gh, bool wide, torch::Dtype xdt) {
  auto leaf = [&](const Tensor& t) { return (wide ? f64(t) : t).detach().clone().requires_grad_(true); };
  Tensor x = (wide ? o.x.to(xdt).to(torch::kFloat64) : o.x.to(xdt)).detach().clone().requires_grad_(true);
  std::vector<Tensor> leaves = {x, leaf(o.c.p), leaf(o.c.log_q), leaf(o.c.eta), leaf(o.omega), leaf(o.h0)};
  auto [y, h] = f(leaves[0], {leaves[1], leaves[2], leaves[3]}, leaves[4], leaves[5]);
  auto grads = torch::autograd::grad({y, h}, leaves, {wide ? f64(gy) : gy.to(y.scalar_type()), wide ? f64(gh) : gh});
  Eval e;
  e.out = {y.detach(), h.detach()};
  for (auto& g : grads) e.out.push_back(g);
  return e;
}

const char* kNames[] = {"y", "h_last", "grad x", "grad p", "grad log_q", "grad eta", "grad omega", "grad h0"};

void compare(mgl::gpu_tests::Report& report, const Eval& ker, const Eval& ref, const Eval& ref64,
             const std::string& what) {
  for (size_t i = 0; i < ref64.out.size(); ++i) {
    const double scale = ref64.out[i].abs().max().item<double>();
    const double e_ref = max_abs_diff(ref.out[i], ref64.out[i]);
    const double e_ker = max_abs_diff(ker.out[i], ref64.out[i]);
    report.expect_le(e_ker, 2 * e_ref + 1e-6 * scale, fmt::format("{} {}", what, kNames[i]));
  }
}

}  // namespace

MGL_GPU_CHECK("cema fwd/bwd vs reference (fp32)") {
  torch::manual_seed(0);
  const Fn kernel = [](const Tensor& x, const mgl::ops::EmaCoeffs& c, const Tensor& om, const Tensor& h0) {
    return mgl::cuda::cema_scan(x, c, om, h0, false);
  };
  const int64_t D = 32;
  for (int64_t N : {16, 7}) {
    for (int64_t B : {1, 3, 9}) {
      for (int64_t L : {1, 17, 32, 1000, 2048, 16384, 65536}) {
        for (bool long_mem : {false, true}) {
          if (long_mem && B != 3) continue;
          Operands o = make_operands(B, D, N, L, long_mem);
          Tensor gy = torch::randn_like(o.x);
          Tensor gh = torch::complex(torch::randn_like(torch::real(o.h0)), torch::randn_like(torch::real(o.h0)));
          auto r64 = evaluate(reference, o, gy, gh, true, torch::kFloat32);
          auto r32 = evaluate(reference, o, gy, gh, false, torch::kFloat32);
          auto ker = evaluate(kernel, o, gy, gh, false, torch::kFloat32);
          compare(report, ker, r32, r64, fmt::format("fp32 N={} B={} L={}{}", N, B, L, long_mem ? " long" : ""));
        }
      }
    }
  }
}

MGL_GPU_CHECK("cema fwd/bwd vs reference (bf16 x)") {
  torch::manual_seed(1);
  const Fn kernel = [](const Tensor& x, const mgl::ops::EmaCoeffs& c, const Tensor& om, const Tensor& h0) {
    return mgl::cuda::cema_scan(x, c, om, h0, false);
  };
  for (int64_t L : {17, 1000, 65536}) {
    Operands o = make_operands(3, 32, 16, L, false);
    Tensor gy = torch::randn_like(o.x);
    Tensor gh = torch::complex(torch::randn_like(torch::real(o.h0)), torch::randn_like(torch::real(o.h0)));
    // All three see the same bf16-rounded x; the fp64 oracle is computed from it exactly.
    auto r64 = evaluate(reference, o, gy, gh, true, torch::kBFloat16);
    auto r32 = evaluate(reference, o, gy, gh, false, torch::kBFloat16);
    auto ker = evaluate(kernel, o, gy, gh, false, torch::kBFloat16);
    compare(report, ker, r32, r64, fmt::format("bf16 L={}", L));
  }
}

MGL_GPU_CHECK("cema module dispatch: CEMA / real EMA / Mega's EMA, causal, streaming, bidirectional") {
  torch::manual_seed(2);
  const char* kinds[] = {"cema", "ema", "mega ema"};
  for (int kind = 0; kind < 3; ++kind)
  for (int64_t L : {17, 2048, 16384}) {
    for (bool bidir : {false, true}) {
      auto options = [&] {
        return mgl::ComplexEMAOptions(32, 16)
            .kind(kind == 0 ? mgl::EmaKind::cema : mgl::EmaKind::ema)
            .mega_exact(kind == 2)
            .bidirectional(bidir);
      };
      mgl::ComplexEMA ref(options());
      {
        torch::NoGradGuard g;
        ref->gamma.normal_(0.0, 1.0);
      }
      mgl::ComplexEMA fused(options().kernel(mgl::KernelImpl::fused));
      {
        torch::NoGradGuard g;
        for (auto& kv : ref->named_parameters()) fused->named_parameters()[kv.key()].copy_(kv.value());
      }
      mgl::ComplexEMA wide(options());
      {
        torch::NoGradGuard g;
        for (auto& kv : ref->named_parameters()) wide->named_parameters()[kv.key()].copy_(kv.value());
      }
      ref->to(torch::kCUDA);
      fused->to(torch::kCUDA);
      wide->to(torch::kCUDA, torch::kFloat64);
      Tensor x = torch::randn({3, 32, L}, torch::TensorOptions().device(torch::kCUDA));
      Tensor h0;
      if (!bidir)
        h0 = kind == 0 ? torch::complex(torch::randn({3, 32, 16}, x.options()), torch::randn({3, 32, 16}, x.options()))
                       : torch::randn({3, 32, 16}, x.options());
      Tensor gy = torch::randn_like(x);
      std::vector<double> errs;
      std::vector<std::string> names;
      auto run = [&](mgl::ComplexEMA& m, bool is_wide) {
        m->zero_grad();
        Tensor xi = (is_wide ? x.to(torch::kFloat64) : x).detach().requires_grad_(true);
        Tensor hi = h0.defined() ? (is_wide ? (h0.is_complex() ? h0.to(torch::kComplexDouble) : h0.to(torch::kFloat64)) : h0)
                                 : Tensor();
        auto [y, h] = m->forward(xi, hi, !bidir);
        Tensor loss = (y * (is_wide ? gy.to(torch::kFloat64) : gy)).sum();
        if (h.defined()) loss = loss + (h.is_complex() ? torch::real(h).sum() - 0.5 * torch::imag(h).sum() : h.sum());
        loss.backward();
        std::vector<Tensor> out = {y.detach(), xi.grad()};
        if (h.defined()) out.push_back(h.detach());
        for (auto& kv : m->named_parameters()) out.push_back(kv.value().grad());
        return out;
      };
      auto o64 = run(wide, true), o32 = run(ref, false), ok = run(fused, false);
      for (size_t i = 0; i < o64.size(); ++i) {
        const double scale = o64[i].abs().max().item<double>();
        report.expect_le(max_abs_diff(ok[i], o64[i]), 2 * max_abs_diff(o32[i], o64[i]) + 1e-6 * scale,
                         fmt::format("module {} L={} {} output/grad #{}", kinds[kind], L,
                                     bidir ? "bidirectional" : "causal", i));
      }
      if (!bidir) {
        // Streaming: two segments with the carried state equal the one-shot pass.
        torch::NoGradGuard g;
        const int64_t L1 = L / 3 + 1;
        auto [y_all, h_all] = fused->forward(x, h0, true);
        auto [y1, h1] = fused->forward(x.narrow(2, 0, L1), h0, true);
        auto [y2, h2] = fused->forward(x.narrow(2, L1, L - L1), h1, true);
        const double sy = y_all.abs().max().item<double>(), sh = h_all.abs().max().item<double>();
        report.expect_le(max_abs_diff(torch::cat({y1, y2}, 2), y_all), 1e-5 * sy, fmt::format("streaming {} y L={}", kinds[kind], L));
        report.expect_le(max_abs_diff(h2, h_all), 1e-5 * sh,
                         fmt::format("streaming {} state L={}", kinds[kind], L));
      }
    }
  }
}
#endif
