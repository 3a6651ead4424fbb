// The CEMA kernels (core/cuda/cema/) run by the SIMT executor, through the very autograd Function
// the CUDA glue uses (cema_autograd.h), against the reference path (core/ops/cema: FFT convolution
// + carried-state bias + ω x, ema_hidden) and its autograd. Oracle: the reference path in fp64.
// Rule: the kernel's error ≤ 2 × the fp32 reference path's own + 1e-6 of the magnitude (fp32, bf16
// x); fp64 kernels against the fp64 reference to 1e-9 relative.
// Shapes: N = 1, 4 (the 32-segment cap), 7, 130 (the 256-thread block), 256; L = 1, within one
// segment, not a multiple of the segment, across chunk boundaries; both directions; with and without
// omega and h0 (streaming state in and out); bf16 and fp64 activations; the impulse response.
#include <fmt/format.h>

#include "core/cuda/cema/cema_autograd.h"
#include "core/modules/cema.h"
#include "simt/support.h"

using namespace mgl;
using mgl::simt_tests::check_2x;
using mgl::simt_tests::NoStream;
using torch::Tensor;

namespace {

struct Operands {
  ops::EmaCoeffs c;  // complex128
  Tensor omega, x, h0;
};

// Random CEMA operands in fp64 with both parts of η non-zero (the module's init has Im γ = 0).
Operands make_operands(int64_t B, int64_t D, int64_t N, int64_t L, bool long_memory) {
  ComplexEMA m(ComplexEMAOptions(D, N));
  {
    torch::NoGradGuard g;
    m->gamma.normal_(0.0, 1.0);
    if (long_memory) {  // σ(α)σ(δ) ≈ 1e-3: |q| close to 1
      const double logit = std::log(0.0316 / (1 - 0.0316));
      m->alpha.fill_(logit).add_(torch::randn_like(m->alpha) * 0.01);
      m->delta.fill_(logit).add_(torch::randn_like(m->delta) * 0.01);
    }
  }
  m->to(torch::kFloat64);
  auto c = m->coeffs();
  Operands o;
  o.c = {c.p.detach(), c.log_q.detach(), c.eta.detach()};
  o.omega = m->omega.detach().view({-1}).clone();
  o.x = torch::randn({B, D, L}, torch::kFloat64);
  o.h0 = torch::complex(torch::randn({B, D, N}, torch::kFloat64), torch::randn({B, D, N}, torch::kFloat64));
  return o;
}

using Fn = std::function<std::pair<Tensor, Tensor>(const Tensor&, const ops::EmaCoeffs&, const Tensor&,
                                                   const Tensor&)>;

// The reference path of one direction: fftconv(x, k) + bias(h0) + ω x and ema_hidden.
Fn reference(bool reverse) {
  return [reverse](const Tensor& x, const ops::EmaCoeffs& c, const Tensor& omega, const Tensor& h0) {
    const int64_t L = x.size(2);
    Tensor xa = x.to(c.p.scalar_type());
    Tensor xs = reverse ? xa.flip(-1) : xa;
    Tensor y = ops::causal_fftconv(xs, ops::ema_kernel(c, L));
    if (h0.defined()) y = y + ops::ema_bias(c, h0, L);
    if (omega.defined()) y = y + xs * omega.view({1, -1, 1});
    Tensor h = ops::ema_hidden(xs, c, h0);
    return std::make_pair((reverse ? y.flip(-1) : y).to(x.scalar_type()), h);
  };
}

Fn kernel(bool reverse) {
  return [reverse](const Tensor& x, const ops::EmaCoeffs& c, const Tensor& omega, const Tensor& h0) {
    return cuda::cema_scan_run<NoStream>(x, c, omega, h0, reverse);
  };
}

// Outputs y, h_last and the gradients (x, p, log q, η, ω, h0) of Σ y·gy + Re Σ h·conj(gh), in fp64.
std::vector<Tensor> evaluate(const Fn& f, const Operands& o, const Tensor& gy, const Tensor& gh,
                             torch::Dtype real, torch::Dtype xdt, bool with_omega, bool with_h0) {
  const torch::Dtype cplx = real == torch::kFloat64 ? torch::kComplexDouble : torch::kComplexFloat;
  auto leaf = [&](const Tensor& t) {
    return t.to(t.is_complex() ? cplx : real).detach().clone().requires_grad_(true);
  };
  Tensor x = o.x.to(xdt).detach().clone().requires_grad_(true);
  std::vector<Tensor> leaves = {x, leaf(o.c.p), leaf(o.c.log_q), leaf(o.c.eta)};
  Tensor om = with_omega ? leaf(o.omega) : Tensor(), h0 = with_h0 ? leaf(o.h0) : Tensor();
  if (with_omega) leaves.push_back(om);
  if (with_h0) leaves.push_back(h0);
  auto [y, h] = f(x, {leaves[1], leaves[2], leaves[3]}, om, h0);
  auto grads = torch::autograd::grad({y, h}, leaves, {gy.to(y.scalar_type()), gh.to(h.scalar_type())});
  std::vector<Tensor> out = {y.detach(), h.detach()};
  for (auto& g : grads) out.push_back(g);
  for (auto& t : out) t = mgl::simt_tests::f64(t);
  return out;
}

const char* kNames[] = {"y", "h_last", "grad x", "grad p", "grad log_q", "grad eta", "grad omega", "grad h0"};

void compare_case(int64_t B, int64_t D, int64_t N, int64_t L, bool reverse, bool with_state, bool long_mem,
                  torch::Dtype xdt) {
  Operands o = make_operands(B, D, N, L, long_mem);
  // Round the operands to fp32 once, so that every evaluation sees the same inputs.
  auto r32 = [](const Tensor& t) {
    return t.is_complex() ? t.to(torch::kComplexFloat).to(torch::kComplexDouble)
                          : t.to(torch::kFloat32).to(torch::kFloat64);
  };
  o.c = {r32(o.c.p), r32(o.c.log_q), r32(o.c.eta)};
  o.omega = r32(o.omega);
  o.h0 = r32(o.h0);
  o.x = xdt == torch::kBFloat16 ? o.x.to(torch::kBFloat16).to(torch::kFloat64) : r32(o.x);
  Tensor gy = r32(torch::randn({B, D, L}, torch::kFloat64));
  if (xdt == torch::kBFloat16) gy = gy.to(torch::kBFloat16).to(torch::kFloat64);
  Tensor gh =
      r32(torch::complex(torch::randn({B, D, N}, torch::kFloat64), torch::randn({B, D, N}, torch::kFloat64)));
  const auto oracle =
      evaluate(reference(reverse), o, gy, gh, torch::kFloat64, torch::kFloat64, with_state, with_state);
  const auto ref = evaluate(reference(reverse), o, gy, gh, torch::kFloat32, xdt, with_state, with_state);
  const auto ker = evaluate(kernel(reverse), o, gy, gh, torch::kFloat32, xdt, with_state, with_state);
  mgl::simt_tests::require_no_findings(fmt::format("N={} L={}", N, L));
  const std::string what =
      fmt::format("{} N={} B={} D={} L={}{}{}{}", xdt == torch::kBFloat16 ? "bf16" : "fp32", N, B, D, L,
                  reverse ? " reverse" : "", with_state ? " omega+h0" : "", long_mem ? " long-memory" : "");
  for (size_t i = 0; i < oracle.size(); ++i)
    check_2x(ker[i], ref[i], oracle[i], xdt == torch::kBFloat16 ? 1e-5 : 1e-6, what + " " + kNames[i]);
}

}  // namespace

TEST_CASE("simt cema scan: fp32 at the block-size switch, the segment cap and partial chunks", "[cema]") {
  torch::manual_seed(1);
  struct Case {
    int64_t N;
    std::vector<int64_t> Ls;
  };
  // Chunk lengths: N = 1 and 4 → 32 segments of 16 (512 steps); N = 7 → 18 (288); N ≥ 129 → 1 (16).
  const Case cases[] = {
      {1, {1, 17, 517}}, {4, {1, 33, 600}}, {7, {1, 19, 300}}, {130, {1, 17, 40}}, {256, {1, 23}}};
  int round = 0;
  for (const Case& c : cases)
    for (int64_t L : c.Ls) {
      const bool reverse = round % 2 == 1, with_state = round % 3 != 2;
      ++round;
      compare_case(2, 3, c.N, L, reverse, with_state, false, torch::kFloat32);
    }
}

TEST_CASE("simt cema scan: long memory (|q| near 1), bf16 activations", "[cema]") {
  torch::manual_seed(2);
  compare_case(2, 2, 16, 300, false, true, true, torch::kFloat32);
  compare_case(2, 3, 16, 150, false, true, false, torch::kBFloat16);
  compare_case(1, 2, 7, 40, true, false, false, torch::kBFloat16);
}

TEST_CASE("simt cema scan: fp64 against the fp64 reference path", "[cema]") {
  torch::manual_seed(3);
  for (bool reverse : {false, true}) {
    Operands o = make_operands(2, 3, 7, 100, false);
    Tensor gy = torch::randn({2, 3, 100}, torch::kFloat64);
    Tensor gh =
        torch::complex(torch::randn({2, 3, 7}, torch::kFloat64), torch::randn({2, 3, 7}, torch::kFloat64));
    const auto ref = evaluate(reference(reverse), o, gy, gh, torch::kFloat64, torch::kFloat64, true, true);
    const auto ker = evaluate(kernel(reverse), o, gy, gh, torch::kFloat64, torch::kFloat64, true, true);
    mgl::simt_tests::require_no_findings("fp64");
    for (size_t i = 0; i < ref.size(); ++i) {
      INFO(kNames[i] << (reverse ? " reverse" : ""));
      CHECK(mgl::simt_tests::max_abs_diff(ker[i], ref[i]) <=
            1e-9 * std::max(1.0, mgl::simt_tests::max_abs(ref[i])));
    }
  }
}

TEST_CASE("simt cema scan: inference (no autograd node, no chunk states) equals the differentiable forward",
          "[cema]") {
  torch::manual_seed(4);
  Operands o = make_operands(2, 2, 16, 200, false);
  ops::EmaCoeffs c{o.c.p.to(torch::kFloat32), o.c.log_q.to(torch::kComplexFloat),
                   o.c.eta.to(torch::kComplexFloat)};
  Tensor x = o.x.to(torch::kFloat32), h0 = o.h0.to(torch::kComplexFloat), om = o.omega.to(torch::kFloat32);
  std::pair<Tensor, Tensor> inf;
  {
    torch::NoGradGuard g;
    inf = cuda::cema_scan_run<NoStream>(x, c, om, h0, false);
  }
  auto trained = cuda::cema_scan_run<NoStream>(x.clone().requires_grad_(true), c, om, h0, false);
  mgl::simt_tests::require_no_findings("inference");
  CHECK(torch::equal(inf.first, trained.first.detach()));
  CHECK(torch::equal(inf.second, trained.second.detach()));
  const auto want = reference(false)(x.to(torch::kFloat64), o.c, o.omega, o.h0);
  check_2x(inf.first, reference(false)(x, c, om, h0).first, want.first, 1e-6, "inference y");
}

TEST_CASE("simt cema impulse response: fp32 and fp64 against ops::ema_kernel", "[cema]") {
  torch::manual_seed(5);
  for (int64_t N : {7, 16})
    for (int64_t L : {1, 40, 300}) {
      Operands o = make_operands(1, 5, N, 1, false);
      const Tensor oracle = ops::ema_kernel(o.c, L);
      ops::EmaCoeffs c32{o.c.p.to(torch::kFloat32), o.c.log_q.to(torch::kComplexFloat),
                         o.c.eta.to(torch::kComplexFloat)};
      check_2x(cuda::cema_impulse_response_run<NoStream>(c32, L), ops::ema_kernel(c32, L), oracle, 1e-6,
               fmt::format("impulse response fp32 N={} L={}", N, L));
      const Tensor k64 = cuda::cema_impulse_response_run<NoStream>(o.c, L);
      CHECK(mgl::simt_tests::max_abs_diff(k64, oracle) <=
            1e-12 * std::max(1.0, mgl::simt_tests::max_abs(oracle)));
      mgl::simt_tests::require_no_findings(fmt::format("impulse response N={} L={}", N, L));
    }
}
