// Oracles of spec §9.1–§9.7 and §9.22 (EMA ablation) for the CEMA reference path.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/modules/cema.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using mgl::test::rel_err;
using torch::Tensor;

namespace {

// A CEMA module with §1.1 init, or with "long memory" (σ(α)σ(δ) ≈ 1e-3).
ComplexEMA make_cema(int64_t D, int64_t N, bool long_memory, torch::Dtype dt = torch::kFloat32,
                     EmaKind kind = EmaKind::cema) {
  ComplexEMA m(ComplexEMAOptions(D, N).kind(kind));
  if (long_memory) {
    torch::NoGradGuard g;
    const double logit = std::log(0.0316 / (1 - 0.0316));
    m->alpha.fill_(logit).add_(torch::randn_like(m->alpha) * 0.01);
    m->delta.fill_(logit).add_(torch::randn_like(m->delta) * 0.01);
  }
  m->to(dt);
  return m;
}

ops::EmaCoeffs to64(const ops::EmaCoeffs& c) {
  auto cd = c.is_complex() ? torch::kComplexDouble : torch::kFloat64;
  return {c.p.detach().to(torch::kFloat64), c.log_q.detach().to(cd), c.eta.detach().to(cd)};
}

// Direct sums with every power written out (D×N×L): the un-blocked formula of §1.4.
Tensor direct_kernel(const ops::EmaCoeffs& c, int64_t L) {
  auto j = torch::arange(L, torch::kFloat64);
  auto pw = torch::exp(c.log_q.unsqueeze(-1) * j);
  auto k = ((c.p * c.eta).unsqueeze(-1) * pw).sum(1);
  return k.is_complex() ? torch::real(k) : k;
}
Tensor direct_conv(const Tensor& x, const Tensor& k) {  // fp64, O(L²)
  const int64_t L = x.size(2);
  auto y = torch::zeros_like(x);
  for (int64_t t = 0; t < L; ++t) {
    auto ks = k.narrow(1, 0, t + 1).flip(1);                // k[t], ..., k[0]
    y.select(2, t).copy_((x.narrow(2, 0, t + 1) * ks).sum(2));
  }
  return y;
}
Tensor random_state(int64_t B, int64_t D, int64_t N, torch::Dtype cd) {
  auto re = torch::randn({B, D, N}, torch::kFloat64), im = torch::randn({B, D, N}, torch::kFloat64);
  return torch::complex(re, im).to(cd);
}

}  // namespace

TEST_CASE("CEMA kernel equals the direct power sum Re Σ p η q^j (§9.1)", "[cema]") {
  torch::manual_seed(1);
  for (int64_t N : {16, 7}) {
    for (bool long_mem : {false, true}) {
      auto m = make_cema(64, N, long_mem);
      for (int64_t L : {1, 17, 32, 100, 1000, 4096}) {
        CAPTURE(N, long_mem, L);
        auto c32 = m->coeffs();
        auto c64 = to64(c32);
        auto ref = direct_kernel(c64, L);
        // fp64 blocked product vs fp64 direct: same maths, different association.
        REQUIRE(max_abs(ops::ema_kernel(c64, L), ref) <= 1e-12 * ref.abs().max().item<double>() + 1e-14);
        // fp32 path vs fp64 oracle, the §9.1 tolerance.
        REQUIRE(max_abs(ops::ema_kernel(c32, L), ref) <= 1e-5 * ref.abs().max().item<double>() + 1e-7);
      }
    }
  }
  // The first taps by explicit complex multiplication q^j = q·q^(j−1).
  auto c = to64(make_cema(5, 3, false)->coeffs());
  auto q = torch::exp(c.log_q);
  auto pw = torch::ones_like(q);
  auto k = ops::ema_kernel(c, 6);
  for (int64_t j = 0; j < 6; ++j) {
    REQUIRE(max_abs(k.select(1, j), torch::real((c.p * c.eta * pw).sum(1))) < 1e-13);
    pw = pw * q;
  }
}

TEST_CASE("CEMA bias with a carried state equals Re Σ η h0 q^(j+1) (§9.2)", "[cema]") {
  torch::manual_seed(2);
  for (int64_t B : {1, 3, 9}) {
    for (int64_t L : {1, 17, 1000}) {
      auto m = make_cema(16, 16, true);
      auto c32 = m->coeffs();
      auto c64 = to64(c32);
      auto h0 = random_state(B, 16, 16, torch::kComplexDouble);
      auto j = torch::arange(1, L + 1, torch::kFloat64);
      auto ref = torch::real((c64.eta * h0).unsqueeze(-1) * torch::exp(c64.log_q.unsqueeze(-1) * j)).sum(2);
      CAPTURE(B, L);
      REQUIRE(rel_err(ops::ema_bias(c64, h0, L), ref) < 1e-12);
      REQUIRE(rel_err(ops::ema_bias(c32, h0.to(torch::kComplexFloat), L), ref) < 1e-5);
    }
  }
}

TEST_CASE("causal FFT convolution equals the direct convolution at any length (§9.3)", "[cema]") {
  torch::manual_seed(3);
  for (int64_t L : {1, 2, 31, 32, 33, 100, 1000, 1025}) {
    auto x = torch::randn({2, 3, L}, torch::kFloat64);
    auto k = torch::randn({3, L}, torch::kFloat64) * torch::exp(-torch::arange(L, torch::kFloat64) / 50.0);
    auto ref = direct_conv(x, k);
    CAPTURE(L);
    REQUIRE(rel_err(ops::causal_fftconv(x, k), ref) < 1e-12);
    REQUIRE(rel_err(ops::causal_fftconv(x.to(torch::kFloat32), k.to(torch::kFloat32)), ref) < 1e-5);
  }
  REQUIRE(ops::fft_size(1) == 1);
  REQUIRE(ops::fft_size(32) == 32);
  REQUIRE(ops::fft_size(16385) == 32768);
}

TEST_CASE("CEMA equals the sequential complex recurrence, outputs and final state (§9.4, §9.5)", "[cema]") {
  torch::manual_seed(4);
  for (int64_t N : {16, 7}) {
    for (bool with_h0 : {false, true}) {
      const int64_t B = 3, D = 8, L = 300;
      auto m = make_cema(D, N, false, torch::kFloat64);  // fp32-representable parameters, held in fp64
      auto x = torch::randn({B, D, L});
      auto c64 = to64(m->coeffs());
      Tensor h0_64 = with_h0 ? random_state(B, D, N, torch::kComplexDouble) : Tensor();
      auto [rec_y, rec_h] = ops::ema_recurrence(x.to(torch::kFloat64), c64, h0_64);
      auto ref = rec_y + x.to(torch::kFloat64) * m->omega.detach().to(torch::kFloat64).view({1, -1, 1});
      CAPTURE(N, with_h0);
      // fp64 closed forms vs fp64 recurrence.
      {
        torch::NoGradGuard g;
        auto [y64, h64] = m->forward(x.to(torch::kFloat64), h0_64, true);
        REQUIRE(max_abs(y64, ref) < 1e-10);
        REQUIRE(rel_err(h64, rec_h) < 1e-10);
      }
      // fp32 module vs fp64 recurrence: §9.4 (≤ 1e-4 at output RMS ≈ 1) and §9.5 (≤ 1e-5 relative).
      m->to(torch::kFloat32);
      torch::NoGradGuard g;
      auto [y32, h32] = m->forward(x, with_h0 ? h0_64.to(torch::kComplexFloat) : Tensor(), true);
      const double rms = ref.pow(2).mean().sqrt().item<double>();
      REQUIRE(max_abs(y32, ref) <= 1e-4 * std::max(1.0, rms));
      REQUIRE(rel_err(h32, rec_h) < 1e-5);
    }
  }
}

TEST_CASE("CEMA streaming over [1000, 1, 2047, 1048] equals one shot (§9.6)", "[cema]") {
  torch::manual_seed(5);
  const int64_t B = 2, D = 8, N = 16, L = 4096;
  auto m = make_cema(D, N, true);
  auto x = torch::randn({B, D, L});
  torch::NoGradGuard g;
  auto [y_full, h_full] = m->forward(x, Tensor(), true);
  Tensor h;
  std::vector<Tensor> ys;
  int64_t off = 0;
  for (int64_t len : {1000, 1, 2047, 1048}) {
    auto [y, hn] = m->forward(x.narrow(2, off, len), h, true);
    ys.push_back(y);
    h = hn;
    off += len;
  }
  REQUIRE(max_abs(torch::cat(ys, 2), y_full) <= 1e-5);
  REQUIRE(max_abs(h, h_full) <= 1e-5);
}

TEST_CASE("CEMA gradients match finite differences in fp64 (§9.7)", "[cema][grad]") {
  torch::manual_seed(6);
  const int64_t B = 2, D = 3, N = 4, L = 9;
  auto m = make_cema(D, N, false, torch::kFloat64);
  auto x = torch::randn({B, D, L}, torch::kFloat64);
  auto h0r = torch::randn({B, D, N, 2}, torch::kFloat64);
  // Module output (kernel, bias, FFT conv, skip) w.r.t. input, every parameter and the state.
  auto run = [&](const std::vector<Tensor>& in) {
    ComplexEMA mm(ComplexEMAOptions(D, N));
    mm->to(torch::kFloat64);
    mm->alpha = in[1], mm->delta = in[2], mm->theta = in[3], mm->gamma = in[4], mm->omega = in[5];
    auto [y, h] = mm->forward(in[0], torch::view_as_complex(in[6]), true);
    return torch::cat({y.flatten(), torch::view_as_real(h).flatten()});
  };
  auto r = test::gradcheck(run, {x, m->alpha, m->delta, m->theta, m->gamma, m->omega, h0r});
  INFO(r.where);
  REQUIRE(r.ok);
  // The real EMA (ablation) too.
  auto e = make_cema(D, N, false, torch::kFloat64, EmaKind::ema);
  auto run_e = [&](const std::vector<Tensor>& in) {
    ComplexEMA mm(ComplexEMAOptions(D, N).kind(EmaKind::ema));
    mm->to(torch::kFloat64);
    mm->alpha = in[1], mm->delta = in[2], mm->gamma = in[3], mm->omega = in[4];
    auto [y, h] = mm->forward(in[0], in[5], true);
    return torch::cat({y.flatten(), h.flatten()});
  };
  auto re = test::gradcheck(run_e, {x, e->alpha, e->delta, e->gamma, e->omega, torch::randn({B, D, N}, torch::kFloat64)});
  INFO(re.where);
  REQUIRE(re.ok);
}

TEST_CASE("EMA ablation equals CEMA with θ = 0 and Im η = 0 (§9.22)", "[cema][ablation]") {
  torch::manual_seed(7);
  const int64_t B = 2, D = 6, N = 5, L = 77;
  auto cema = make_cema(D, N, false, torch::kFloat64);
  auto ema = make_cema(D, N, false, torch::kFloat64, EmaKind::ema);
  {
    torch::NoGradGuard g;
    cema->theta.fill_(-1e4);            // σ(theta) = 0 exactly: no rotation
    cema->gamma.select(2, 1).zero_();   // Im η = 0
    ema->alpha.copy_(cema->alpha);
    ema->delta.copy_(cema->delta);
    ema->gamma.copy_(cema->gamma.select(2, 0));
    ema->omega.copy_(cema->omega);
  }
  REQUIRE(!ema->coeffs().is_complex());
  REQUIRE(ema->named_parameters().find("theta") == nullptr);
  auto x = torch::randn({B, D, L}, torch::kFloat64);
  auto h0 = torch::randn({B, D, N}, torch::kFloat64);
  torch::NoGradGuard g;
  auto [yc, hc] = cema->forward(x, torch::complex(h0, torch::zeros_like(h0)), true);
  auto [ye, he] = ema->forward(x, h0, true);
  REQUIRE(max_abs(yc, ye) < 1e-12);
  REQUIRE(max_abs(torch::real(hc), he) < 1e-12);
  REQUIRE(torch::imag(hc).abs().max().item<double>() < 1e-12);
}

TEST_CASE("Mega-exact EMA follows fairseq's MultiHeadEMA formula (§1.9)", "[cema][ablation]") {
  torch::manual_seed(8);
  const int64_t B = 2, D = 4, N = 6, L = 50;
  ComplexEMA m(ComplexEMAOptions(D, N).kind(EmaKind::ema).mega_exact(true));
  m->to(torch::kFloat64);
  // Mega names: delta is the input rate, beta the expansion, omega of shape D.
  REQUIRE(m->beta.sizes() == torch::IntArrayRef({D, N, 1}));
  REQUIRE(m->omega.sizes() == torch::IntArrayRef({D}));
  auto x = torch::randn({B, D, L}, torch::kFloat64);
  torch::NoGradGuard g;
  auto p = torch::sigmoid(m->delta);                       // D×N×1
  auto q = 1.0 - p * torch::sigmoid(m->alpha);
  auto l = torch::arange(L, torch::kFloat64);
  auto k = (p * m->beta * torch::pow(q, l) * m->gamma.unsqueeze(-1) * std::sqrt(1.0 / N)).sum(1);  // D×L
  auto ref = torch::silu(direct_conv(x, k) + x * m->omega.view({1, -1, 1}));
  REQUIRE(max_abs(m->forward(x).first, ref) < 1e-10);
}

TEST_CASE("bidirectional CEMA adds a causal and an anti-causal kernel (§1.8)", "[cema]") {
  torch::manual_seed(9);
  const int64_t B = 2, D = 3, N = 4, L = 40;
  ComplexEMA m(ComplexEMAOptions(D, N).bidirectional(true));
  m->to(torch::kFloat64);
  REQUIRE(m->alpha.size(0) == 2 * D);
  REQUIRE(m->omega.size(0) == D);
  auto x = torch::randn({B, D, L}, torch::kFloat64);
  torch::NoGradGuard g;
  auto k1 = ops::ema_kernel(m->coeffs(0), L), k2 = ops::ema_kernel(m->coeffs(1), L);
  auto ref = direct_conv(x, k1) + direct_conv(x.flip(2), k2).flip(2) + x * m->omega.view({1, -1, 1});
  REQUIRE(max_abs(m->forward(x).first, ref) < 1e-10);
  REQUIRE_THROWS(m->forward(x, Tensor(), true));
}

TEST_CASE("CEMA initialisation follows §1.1–§1.2", "[cema]") {
  torch::manual_seed(10);
  const int64_t D = 256, N = 16;
  ComplexEMA m(ComplexEMAOptions(D, N));
  torch::NoGradGuard g;
  // σ(theta) is a permutation of f_k = D^(−k/D), k = 1..D.
  auto f = std::get<0>(torch::sigmoid(m->theta.to(torch::kFloat64).flatten()).sort(0));
  auto k = torch::arange(1, D + 1, torch::kFloat64);
  auto expect = std::get<0>(torch::exp(-k * std::log(double(D)) / D).sort(0));
  REQUIRE(max_abs(f, expect) < 1e-6);
  REQUIRE(m->gamma.select(2, 1).abs().max().item<float>() == 0.0f);  // Im γ = 0
  REQUIRE(m->omega.abs().max().item<float>() <= 1.0f);               // truncated on [−1, 1]
  REQUIRE(std::abs(m->alpha.std().item<float>() - 0.2f) < 0.02f);
  // |q| < 1 always: the recurrence is stable.
  REQUIRE(torch::real(m->coeffs().log_q).max().item<float>() < 0.0f);
}
