// CPU checks of the fused CEMA scan (core/cuda/cema/cema_scan*): its per-step arithmetic
// (core/cuda/cema/cema_scan_math.h, shared with the kernels) and a serial emulation of the kernels'
// blocking (chunks of G segments of S steps, segment totals chained per mode, rescans, the
// reverse-order adjoint), against the LibTorch reference path and its autograd in fp64.
// The kernels themselves run only on a GPU (tests/gpu/test_cema.cpp).
#include <catch2/catch.hpp>

#include <vector>

#include "core/cuda/cema/cema_scan_math.h"
#include "core/modules/cema.h"
#include "support/oracle.h"

using namespace mgl;
using namespace mgl::cuda;
using mgl::test::max_abs;
using torch::Tensor;

namespace {

// Row-level emulation of cema_scan_fwd_kernel: the same tables and phases in the same order, with
// the block's threads run one after another. x, y: L; p: N; lq, eta, h0, h_last: 2N (interleaved);
// states: num_chunks×N.
template <typename R>
void emulate_forward_row(const R* x, const R* p, const R* lq, const R* eta, R om, const R* h0, R* y, R* h_last,
                         std::vector<Cx<R>>& states, int N, int64_t L, bool reverse) {
  const CemaScanPlan pl = cema_scan_plan(N);
  const int C = pl.chunk, G = pl.groups, S = kCemaSeg;
  const int64_t nc = cema_num_chunks(L, pl);
  states.assign(static_cast<size_t>(nc * N), cx<R>(0, 0));
  std::vector<CxPow<R>> q(N);
  std::vector<Cx<double>> qS(N), carry(N);
  std::vector<Cx<R>> W(static_cast<size_t>(N) * S), V(static_cast<size_t>(N) * S);
  std::vector<R> kc(S);
  for (int n = 0; n < N; ++n) {
    q[n] = cema_pow<R>(lq[2 * n], lq[2 * n + 1], 1.0);
    qS[n] = cema_pow_wide<R>(lq[2 * n], lq[2 * n + 1], static_cast<double>(S));
    const Cx<double> qd = cema_pow_wide<R>(lq[2 * n], lq[2 * n + 1], 1.0);
    Cx<double> w = cx<double>(p[n], 0);
    for (int k = S - 1; k >= 0; --k) {
      W[n * S + k] = cema_narrow<R>(w);
      w = cmul(w, qd);
    }
    Cx<double> v = cx<double>(eta[2 * n], eta[2 * n + 1]);
    for (int k = 0; k < S; ++k) {
      v = cmul(v, qd);
      V[n * S + k] = cema_narrow<R>(v);
    }
    carry[n] = h0 ? cx<double>(h0[2 * n], h0[2 * n + 1]) : cx<double>(0, 0);
  }
  for (int j = 0; j < S; ++j) {
    double a = 0;
    for (int m = 0; m < N; ++m) {
      const Cx<double> qj = cema_pow_wide<R>(lq[2 * m], lq[2 * m + 1], static_cast<double>(j));
      a += static_cast<double>(p[m]) * (static_cast<double>(eta[2 * m]) * qj.re - static_cast<double>(eta[2 * m + 1]) * qj.im);
    }
    kc[j] = static_cast<R>(a);
  }
  std::vector<Cx<R>> seg_tot(G * N), seg_start(G * N);
  std::vector<R> xs(C);
  auto tpos = [&](int64_t pos) { return reverse ? L - 1 - pos : pos; };
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t base = c * C;
    const int len = static_cast<int>(std::min<int64_t>(C, L - base));
    for (int s = 0; s < C; ++s) xs[s] = s < len ? x[tpos(base + s)] : R(0);
    for (int g = 0; g < G; ++g)
      for (int n = 0; n < N; ++n) {
        const int s0 = g * S, sl = cema_seg_len(len, g);
        Cx<R> t = cx<R>(0, 0);
        if (sl == S) {
          for (int k = 0; k < S; ++k) {
            t.re += W[n * S + k].re * xs[s0 + k];
            t.im += W[n * S + k].im * xs[s0 + k];
          }
        } else {
          for (int k = 0; k < sl; ++k) t = cema_step(q[n], p[n], t, xs[s0 + k]);
        }
        seg_tot[g * N + n] = t;
      }
    for (int n = 0; n < N; ++n) {
      Cx<double> E = carry[n];
      states[c * N + n] = cema_narrow<R>(E);
      for (int g = 0; g < G; ++g) {
        const int lg = cema_seg_len(len, g);
        if (lg == 0) break;
        seg_start[g * N + n] = cema_narrow<R>(E);
        const Cx<double> f = lg == S ? qS[n] : cema_pow_wide<R>(lq[2 * n], lq[2 * n + 1], lg);
        E = cema_chain(f, E, seg_tot[g * N + n]);
      }
      carry[n] = E;
    }
    for (int s = 0; s < len; ++s) {
      const int gs = s / S, k = s % S;
      R acc = om * xs[s];
      for (int j = 0; j <= k; ++j) acc += kc[j] * xs[s - j];
      for (int m = 0; m < N; ++m) {
        const Cx<R> v = V[m * S + k], h = seg_start[gs * N + m];
        acc += v.re * h.re - v.im * h.im;
      }
      y[tpos(base + s)] = acc;
    }
  }
  for (int n = 0; n < N; ++n) {
    h_last[2 * n] = static_cast<R>(carry[n].re);
    h_last[2 * n + 1] = static_cast<R>(carry[n].im);
  }
}

// Row-level emulation of cema_scan_bwd_kernel. Outputs dx (L), and this row's partials: dp (N),
// dlq, deta, dh0 (2N), dom.
template <typename R>
void emulate_backward_row(const R* gy, const R* gh, const R* x, const R* p, const R* lq, const R* eta, R om,
                          const std::vector<Cx<R>>& states, R* dx, R* dp, R* dlq, R* deta, R* dh0, R* dom, int N,
                          int64_t L, bool reverse) {
  const CemaScanPlan pl = cema_scan_plan(N);
  const int C = pl.chunk, G = pl.groups, S = kCemaSeg;
  const int64_t nc = cema_num_chunks(L, pl);
  std::vector<CxPow<R>> q(N);
  std::vector<Cx<double>> qS(N);
  for (int n = 0; n < N; ++n) {
    q[n] = cema_pow<R>(lq[2 * n], lq[2 * n + 1], 1.0);
    qS[n] = cema_pow_wide<R>(lq[2 * n], lq[2 * n + 1], static_cast<double>(S));
  }
  std::vector<Cx<R>> seg_tot(G * N), seg_start(G * N), hseg(static_cast<size_t>(G) * N * S);
  std::vector<Cx<double>> carry(N);
  for (int n = 0; n < N; ++n) carry[n] = gh ? cx<double>(gh[2 * n], -gh[2 * n + 1]) : cx<double>(0, 0);
  std::vector<CemaGradSum<R>> acc(G * N);
  R acc_om = 0, acc_om_c = 0;
  std::vector<R> xs(C), gs(C), red(static_cast<size_t>(C) * (N + 1));
  auto tpos = [&](int64_t pos) { return reverse ? L - 1 - pos : pos; };
  for (int64_t c = nc - 1; c >= 0; --c) {
    const int64_t base = c * C;
    const int len = static_cast<int>(std::min<int64_t>(C, L - base));
    for (int s = 0; s < C; ++s) {
      xs[s] = s < len ? x[tpos(base + s)] : R(0);
      gs[s] = s < len ? gy[tpos(base + s)] : R(0);
    }
    for (int g = 0; g < G; ++g)
      for (int n = 0; n < N; ++n) {
        Cx<R> l = cx<R>(0, 0);
        for (int k = 0; k < cema_seg_len(len, g); ++k) l = cema_step(q[n], p[n], l, xs[g * S + k]);
        seg_tot[g * N + n] = l;
      }
    for (int n = 0; n < N; ++n) {
      Cx<double> E = cx<double>(states[c * N + n].re, states[c * N + n].im);
      for (int g = 0; g < G; ++g) {
        const int lg = cema_seg_len(len, g);
        if (lg == 0) break;
        seg_start[g * N + n] = cema_narrow<R>(E);
        const Cx<double> f = lg == S ? qS[n] : cema_pow_wide<R>(lq[2 * n], lq[2 * n + 1], lg);
        E = cema_chain(f, E, seg_tot[g * N + n]);
      }
    }
    for (int g = 0; g < G; ++g)
      for (int n = 0; n < N; ++n) {
        const int sl = cema_seg_len(len, g);
        if (sl == 0) continue;
        Cx<R> h = seg_start[g * N + n];
        for (int k = 0; k < sl; ++k) {
          h = cema_step(q[n], p[n], h, xs[g * S + k]);
          hseg[(g * N + n) * S + k] = h;
        }
        Cx<R> m = cx<R>(0, 0);
        const Cx<R> en = cx<R>(eta[2 * n], eta[2 * n + 1]);
        for (int k = sl - 1; k >= 0; --k) m = cema_seg_mul(q[n], cema_adjoint(en, gs[g * S + k], m));
        seg_tot[g * N + n] = m;
      }
    for (int n = 0; n < N; ++n) {
      Cx<double> E = carry[n];
      for (int g = G - 1; g >= 0; --g) {
        const int lg = cema_seg_len(len, g);
        if (lg == 0) continue;
        seg_start[g * N + n] = cema_narrow<R>(E);
        const Cx<double> f = lg == S ? qS[n] : cema_pow_wide<R>(lq[2 * n], lq[2 * n + 1], lg);
        E = cema_chain(f, E, seg_tot[g * N + n]);
      }
      carry[n] = E;
    }
    for (int g = 0; g < G; ++g)
      for (int n = 0; n < N; ++n) {
        const int sl = cema_seg_len(len, g);
        if (sl == 0) continue;
        Cx<R> m = seg_start[g * N + n];
        const Cx<R> en = cx<R>(eta[2 * n], eta[2 * n + 1]);
        CemaGradAcc<R> part;
        for (int k = sl - 1; k >= 0; --k) {
          const int s = g * S + k;
          const Cx<R> mu = cema_adjoint(en, gs[s], m);
          cema_grad_step(part, hseg[(g * N + n) * S + k], mu, p[n], xs[s], gs[s]);
          red[s * (N + 1) + n] = p[n] * mu.re;
          m = cema_seg_mul(q[n], mu);
        }
        acc[g * N + n].add(part);
      }
    for (int s = 0; s < len; ++s) {
      R a = om * gs[s];
      for (int k = 0; k < N; ++k) a += red[s * (N + 1) + k];
      kahan_add(acc_om, acc_om_c, gs[s] * xs[s]);
      dx[tpos(base + s)] = a;
    }
  }
  for (int n = 0; n < N; ++n) {
    dh0[2 * n] = static_cast<R>(carry[n].re);
    dh0[2 * n + 1] = static_cast<R>(-carry[n].im);
    R sp = 0, e_re = 0, e_im = 0, m_re = 0, m_im = 0;
    for (int g = 0; g < G; ++g) {
      const auto& a = acc[g * N + n];
      sp += a.s[0];
      e_re += a.s[1];
      e_im += a.s[2];
      m_re += a.s[3];
      m_im += a.s[4];
    }
    dp[n] = sp;
    deta[2 * n] = e_re;
    deta[2 * n + 1] = e_im;
    dlq[2 * n] = m_re;
    dlq[2 * n + 1] = -m_im;
  }
  *dom = acc_om;
}

// Random CEMA operands with both parts of η non-zero (the module's init has Im γ = 0).
struct Operands {
  ops::EmaCoeffs c;  // complex128
  Tensor omega, x, h0;
};
Operands make_operands(int64_t B, int64_t D, int64_t N, int64_t L, bool long_memory) {
  ComplexEMA m(ComplexEMAOptions(D, N));
  {
    torch::NoGradGuard g;
    m->gamma.normal_(0.0, 1.0);
    if (long_memory) {
      const double logit = std::log(0.0316 / (1 - 0.0316));
      m->alpha.fill_(logit).add_(torch::randn_like(m->alpha) * 0.01);
      m->delta.fill_(logit).add_(torch::randn_like(m->delta) * 0.01);
    }
  }
  m->to(torch::kFloat64);
  auto c = m->coeffs();
  Operands o;
  o.c = {c.p.detach(), c.log_q.detach(), c.eta.detach()};
  o.omega = m->omega.detach().view({-1});
  o.x = torch::randn({B, D, L}, torch::kFloat64);
  o.h0 = torch::complex(torch::randn({B, D, N}, torch::kFloat64), torch::randn({B, D, N}, torch::kFloat64));
  return o;
}

// Reference path of one direction: fftconv(x, k) + bias(h0) + ω x and ema_hidden.
std::pair<Tensor, Tensor> reference(const Tensor& x, const ops::EmaCoeffs& c, const Tensor& omega, const Tensor& h0,
                                    bool reverse) {
  Tensor xs = reverse ? x.flip(-1) : x;
  const int64_t L = x.size(2);
  Tensor y = ops::causal_fftconv(xs, ops::ema_kernel(c, L)) + ops::ema_bias(c, h0, L) + xs * omega.view({1, -1, 1});
  Tensor h = ops::ema_hidden(xs, c, h0);
  return {reverse ? y.flip(-1) : y, h};
}

// The emulated kernels over all rows, in precision R (the operands are rounded to R first).
template <typename R>
struct Emulated {
  Tensor y, h_last, dx, dp, dlq, deta, domega, dh0;
};
template <typename R>
Emulated<R> emulate(const Operands& o, const Tensor& gy, const Tensor& gh, bool reverse) {
  const auto rt = std::is_same<R, double>::value ? torch::kFloat64 : torch::kFloat32;
  const int64_t B = o.x.size(0), D = o.x.size(1), L = o.x.size(2), N = o.c.ndim();
  auto cvt = [&](const Tensor& t) { return (t.is_complex() ? torch::view_as_real(t) : t).to(rt).contiguous(); };
  Tensor x = cvt(o.x), p = cvt(o.c.p), lq = cvt(o.c.log_q), eta = cvt(o.c.eta), om = cvt(o.omega), h0 = cvt(o.h0),
         g = cvt(gy), ghr = cvt(gh);
  Emulated<R> e;
  e.y = torch::empty({B, D, L}, rt);
  e.dx = torch::empty({B, D, L}, rt);
  Tensor hl = torch::empty({B, D, N, 2}, rt), dh0 = torch::empty({B, D, N, 2}, rt);
  Tensor dp = torch::zeros({B, D, N}, rt), dlq = torch::zeros({B, D, N, 2}, rt), deta = torch::zeros({B, D, N, 2}, rt),
         dom = torch::zeros({B, D}, rt);
  std::vector<Cx<R>> states;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t row = b * D + d;
      emulate_forward_row<R>(x.template data_ptr<R>() + row * L, p.template data_ptr<R>() + d * N, lq.template data_ptr<R>() + 2 * d * N,
                             eta.template data_ptr<R>() + 2 * d * N, om.template data_ptr<R>()[d], h0.template data_ptr<R>() + 2 * row * N,
                             e.y.template data_ptr<R>() + row * L, hl.template data_ptr<R>() + 2 * row * N, states, static_cast<int>(N),
                             L, reverse);
      emulate_backward_row<R>(g.template data_ptr<R>() + row * L, ghr.template data_ptr<R>() + 2 * row * N, x.template data_ptr<R>() + row * L,
                              p.template data_ptr<R>() + d * N, lq.template data_ptr<R>() + 2 * d * N, eta.template data_ptr<R>() + 2 * d * N,
                              om.template data_ptr<R>()[d], states, e.dx.template data_ptr<R>() + row * L, dp.template data_ptr<R>() + row * N,
                              dlq.template data_ptr<R>() + 2 * row * N, deta.template data_ptr<R>() + 2 * row * N,
                              dh0.template data_ptr<R>() + 2 * row * N, dom.template data_ptr<R>() + row, static_cast<int>(N), L,
                              reverse);
    }
  auto cplx = [](const Tensor& t) { return torch::view_as_complex(t.to(torch::kFloat64).contiguous()); };
  e.h_last = cplx(hl);
  e.dh0 = cplx(dh0);
  e.dp = dp.sum(0);
  e.dlq = cplx(dlq.sum(0));
  e.deta = cplx(deta.sum(0));
  e.domega = dom.sum(0);
  return e;
}

double scale_of(const Tensor& t) { return t.abs().max().item<double>(); }

}  // namespace

TEST_CASE("fused CEMA scan: plan and shared memory fit every supported N", "[cema_kernel]") {
  for (int64_t N = 1; N <= kCemaMaxN; ++N) {
    CAPTURE(N);
    const auto pl = cema_scan_plan(N);
    REQUIRE(pl.groups >= 1);
    REQUIRE(pl.groups * N <= pl.threads);  // every (n, g) has a thread
    REQUIRE(pl.chunk == pl.groups * kCemaSeg);
    REQUIRE(cema_red_stride(N) % 2 == 1);
    REQUIRE(cema_red_stride(N) >= N);
    REQUIRE(pl.chunk * cema_red_stride(N) >= pl.groups * N);  // the reduction scratch fits in `red`
    REQUIRE(cema_scan_smem<double>(N, pl, true) <= 48 * 1024);  // no opt-in needed
  }
  REQUIRE(cema_num_chunks(1, cema_scan_plan(16)) == 1);
  REQUIRE(cema_num_chunks(129, cema_scan_plan(16)) == 2);
}

TEST_CASE("fused CEMA scan: compensated powers and bf16 conversion", "[cema_kernel]") {
  // q^e = exp(e·log q) with hi + lo reproducing the fp64 value far below fp32 rounding.
  for (double e : {1.0, 16.0, 7.0}) {
    const double lr = -0.001234, li = 2.345;
    const auto w = cema_pow<float>(static_cast<float>(lr), static_cast<float>(li), e);
    const double lrf = static_cast<float>(lr), lif = static_cast<float>(li);
    const double re = std::exp(e * lrf) * std::cos(e * lif), im = std::exp(e * lrf) * std::sin(e * lif);
    REQUIRE(std::abs(double(w.hi.re) + double(w.lo.re) - re) < 1e-13);
    REQUIRE(std::abs(double(w.hi.im) + double(w.lo.im) - im) < 1e-13);
  }
  // bf16 round-to-nearest-even as LibTorch does it.
  auto v = torch::randn({4096}, torch::kFloat32) * 100;
  auto ref = v.to(torch::kBFloat16).to(torch::kFloat32);
  for (int64_t i = 0; i < v.numel(); ++i) {
    bf16 b{};
    cema_store(v[i].item<float>(), &b);
    REQUIRE(cema_load(b) == ref[i].item<float>());
  }
}

TEST_CASE("fused CEMA scan (CPU emulation of the blocking) equals the reference path, fwd and bwd", "[cema_kernel]") {
  torch::manual_seed(7);
  const int64_t B = 2, D = 3;
  for (int64_t N : {16, 7, 130}) {
    for (int64_t L : {1, 17, 128, 129, 300, 1000}) {
      for (bool reverse : {false, true}) {
        for (bool long_mem : {false, true}) {
          if (N == 130 && L > 300) continue;
          CAPTURE(N, L, reverse, long_mem);
          Operands o = make_operands(B, D, N, L, long_mem);
          // Reference forward and its autograd gradients, all in fp64.
          std::vector<Tensor> leaves = {o.x.clone().requires_grad_(true), o.c.p.clone().requires_grad_(true),
                                        o.c.log_q.clone().requires_grad_(true), o.c.eta.clone().requires_grad_(true),
                                        o.omega.clone().requires_grad_(true), o.h0.clone().requires_grad_(true)};
          auto [y, h] = reference(leaves[0], {leaves[1], leaves[2], leaves[3]}, leaves[4], leaves[5], reverse);
          Tensor gy = torch::randn_like(y);
          Tensor gh = torch::complex(torch::randn({B, D, N}, torch::kFloat64), torch::randn({B, D, N}, torch::kFloat64));
          auto grads = torch::autograd::grad({y, h}, leaves, {gy, gh});

          auto e = emulate<double>(o, gy, gh, reverse);
          const double tol = 1e-10;
          REQUIRE(max_abs(e.y, y) <= tol * scale_of(y));
          REQUIRE(max_abs(e.h_last, h) <= tol * scale_of(h));
          REQUIRE(max_abs(e.dx, grads[0]) <= tol * scale_of(grads[0]));
          REQUIRE(max_abs(e.dp, grads[1]) <= tol * scale_of(grads[1]));
          REQUIRE(max_abs(e.dlq, grads[2]) <= tol * scale_of(grads[2]));
          REQUIRE(max_abs(e.deta, grads[3]) <= tol * scale_of(grads[3]));
          REQUIRE(max_abs(e.domega, grads[4]) <= tol * scale_of(grads[4]));
          REQUIRE(max_abs(e.dh0, grads[5]) <= tol * scale_of(grads[5]));
        }
      }
    }
  }
}

TEST_CASE("fused CEMA scan in fp32 (CPU emulation) is as accurate as the fp32 reference path", "[cema_kernel]") {
  // The GPU checks' criterion, predicted on the CPU: error vs fp64 ≤ 2 × the fp32 reference
  // path's own error (plus 1e-6 of the magnitude), for y, h_last and every gradient.
  torch::manual_seed(11);
  const int64_t B = 2, D = 4;
  const char* names[] = {"y", "h_last", "dx", "dp", "dlog_q", "deta", "domega", "dh0"};
  for (int64_t N : {16, 7})
  for (int64_t L : {1000, 4096, 16384}) {
    for (bool long_mem : {false, true}) {
      Operands o = make_operands(B, D, N, L, long_mem);
      // Round the operands to fp32 once, so that all evaluations see the same inputs.
      auto r32 = [](const Tensor& t) {
        return t.is_complex() ? t.to(torch::kComplexFloat).to(torch::kComplexDouble) : t.to(torch::kFloat32).to(torch::kFloat64);
      };
      o.c = {r32(o.c.p), r32(o.c.log_q), r32(o.c.eta)};
      o.omega = r32(o.omega);
      o.x = r32(o.x);
      o.h0 = r32(o.h0);
      Tensor gy = r32(torch::randn({B, D, L}, torch::kFloat64));
      Tensor gh = r32(torch::complex(torch::randn({B, D, N}, torch::kFloat64), torch::randn({B, D, N}, torch::kFloat64)));
      auto run_ref = [&](bool wide) {
        auto cast = [&](const Tensor& t) {
          return (wide ? t : (t.is_complex() ? t.to(torch::kComplexFloat) : t.to(torch::kFloat32))).clone().requires_grad_(true);
        };
        std::vector<Tensor> lv = {cast(o.x), cast(o.c.p), cast(o.c.log_q), cast(o.c.eta), cast(o.omega), cast(o.h0)};
        auto [y, h] = reference(lv[0], {lv[1], lv[2], lv[3]}, lv[4], lv[5], false);
        auto g = torch::autograd::grad({y, h}, lv, {wide ? gy : gy.to(torch::kFloat32), wide ? gh : gh.to(torch::kComplexFloat)});
        std::vector<Tensor> out = {y.detach(), h.detach()};
        for (auto& t : g) out.push_back(t);
        return out;
      };
      auto ref64 = run_ref(true), ref32 = run_ref(false);
      auto e = emulate<float>(o, gy, gh, false);
      std::vector<Tensor> emu = {e.y, e.h_last, e.dx, e.dp, e.dlq, e.deta, e.domega, e.dh0};
      for (size_t i = 0; i < emu.size(); ++i) {
        CAPTURE(N, L, long_mem, names[i]);
        const double e_ref = max_abs(ref32[i], ref64[i]), e_emu = max_abs(emu[i], ref64[i]);
        CAPTURE(e_ref, e_emu);
        CHECK(e_emu <= 2 * e_ref + 1e-6 * scale_of(ref64[i]));
      }
    }
  }
}
