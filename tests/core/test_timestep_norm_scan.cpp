// The fused timestep-norm kernels' arithmetic and scan structure, checked on the CPU through their
// emulation (core/cuda/timestep_norm/timestep_norm_emulate.h runs the kernels' own functions and block
// structure in fp32). Oracles: fp64 pooled moments, the reference path (core/ops/timestep_norm) in
// fp64, and autograd through it for the backward.
#include <catch2/catch.hpp>

#include <cstdio>

#include "core/cuda/row_norm/row_norm_math.h"
#include "core/cuda/timestep_norm/timestep_norm_emulate.h"
#include "core/ops/norms.h"
#include "core/ops/timestep_norm.h"

using namespace mgl::cuda::timestep_norm;
using torch::Tensor;

namespace {

double max_abs_d(const Tensor& a, const Tensor& b) { return emu::max_abs(a, b); }
double scale_of(const Tensor& t) { return std::max(1.0, t.abs().max().item<double>()); }

struct Case {
  int64_t B, L, D, G;
  bool state, mask;
};

// Inputs with an offset (cancellation is real) and, optionally, a carried state and a mask.
struct Inputs {
  Tensor x, w, b, count, mean, var, mask;
};
Inputs make_inputs(const Case& c) {
  Inputs in;
  in.x = torch::randn({c.B, c.L, c.D}) * 2 + 3;
  in.w = torch::randn({c.D}) * 0.2 + 1;
  in.b = torch::randn({c.D}) * 0.2;
  if (c.state) {
    in.count = torch::randint(1, 50, {c.B}, torch::kInt64);
    in.mean = torch::randn({c.B, c.G}) + 3;
    in.var = torch::rand({c.B, c.G}) * 4 + 0.5;
  } else {
    in.count = torch::zeros({c.B}, torch::kInt64);
    in.mean = torch::zeros({c.B, c.G});
    in.var = torch::ones({c.B, c.G});
  }
  if (c.mask) {
    in.mask = torch::rand({c.B, c.L}) < 0.2;
    if (c.B > 1) in.mask[1].fill_(true);  // a sequence with no valid step at all
  }
  return in;
}

}  // namespace

TEST_CASE("Chan merge and its compensated carry match fp64 pooled moments", "[tsn][kernel_math]") {
  torch::manual_seed(3);
  const int64_t n = 5000;
  Tensor gm = torch::randn({n}, torch::kFloat64) + 100, gv = torch::rand({n}, torch::kFloat64);
  // fp64 pooled over all: mean of gm, mean of gv + variance of gm (population).
  const double m64 = gm.mean().item<double>();
  const double v64 = (gv.mean() + (gm - m64).pow(2).mean()).item<double>();
  Moments pair = moments_identity();
  MomentsCarry carry = carry_init(moments_identity());
  Moments seq = moments_identity();
  for (int64_t i = 0; i < n; i += 7) {  // blocks of 7 merged into a running state
    Moments blk = moments_identity();
    for (int64_t j = i; j < std::min(n, i + 7); ++j)
      blk = combine(blk, observation(static_cast<float>(gm[j].item<double>()), static_cast<float>(gv[j].item<double>()), true));
    pair = combine(pair, blk);
    carry_absorb(carry, blk);
  }
  for (int64_t j = 0; j < n; ++j)
    seq = combine(seq, observation(static_cast<float>(gm[j].item<double>()), static_cast<float>(gv[j].item<double>()), true));
  CHECK(pair.n == n);
  CHECK(carry.s.n == n);
  CHECK(std::abs(carry.s.m - m64) <= 2e-7 * 100);
  CHECK(std::abs(carry.s.v - v64) <= 1e-5);
  CHECK(std::abs(seq.m - m64) <= 1e-4 * 100);  // plain sequential: looser, O(ε n) worst case
  // Identities: padded steps and an empty prior change nothing.
  const Moments a{3, 1.5f, 2.f};
  CHECK(combine(a, observation(9.f, 9.f, false)).m == a.m);
  CHECK(combine(Moments{0, 42.f, 7.f}, a).m == a.m);
  CHECK(combine(Moments{0, 42.f, 7.f}, a).v == a.v);
}

TEST_CASE("the emulated kernel forward matches the reference path (short and long scan paths)", "[tsn][kernel_math]") {
  torch::manual_seed(5);
  for (const Case c : {Case{3, 1, 24, 3, false, false}, Case{1, 17, 24, 24, true, false}, Case{3, 255, 24, 1, true, true},
                       Case{3, 256, 24, 3, false, true}, Case{9, 1000, 8, 2, true, false},
                       Case{3, 4097, 24, 3, true, true}, Case{1, 9000, 16, 4, false, false}}) {
    CAPTURE(c.B, c.L, c.D, c.G, c.state, c.mask);
    const Inputs in = make_inputs(c);
    auto ref = mgl::ops::timestep_norm(in.x.to(torch::kFloat64), c.G, in.w.to(torch::kFloat64), in.b.to(torch::kFloat64),
                                       {in.count, in.mean.to(torch::kFloat64), in.var.to(torch::kFloat64)}, in.mask, 1e-5);
    auto ref32 = mgl::ops::timestep_norm(in.x, c.G, in.w, in.b, {in.count, in.mean, in.var}, in.mask, 1e-5);
    auto ker = emu::forward(in.x, c.G, in.w, in.b, in.count, in.mean, in.var, in.mask, 1e-5f);
    const double e_ref = max_abs_d(ref32.y, ref.y), e_ker = max_abs_d(ker.y, ref.y);
    CAPTURE(e_ref, e_ker);
    CHECK(e_ker <= 2 * e_ref + 1e-6);
    CHECK(max_abs_d(ker.mean_out, ref.state.mean) <= 1e-5 * scale_of(ref.state.mean));
    CHECK(max_abs_d(ker.var_out, ref.state.var) <= 1e-5 * scale_of(ref.state.var));
    if (c.mask) CHECK(ker.y.masked_select(in.mask.unsqueeze(-1).expand_as(ker.y)).abs().max().item<double>() == 0.0);
  }
}

TEST_CASE("the emulated kernel backward matches autograd through the reference path", "[tsn][kernel_math]") {
  torch::manual_seed(8);
  for (const Case c : {Case{2, 1, 12, 3, true, false}, Case{3, 17, 12, 1, false, false}, Case{3, 300, 12, 4, true, true},
                       Case{2, 5000, 8, 2, true, false}, Case{1, 4500, 6, 6, true, true}}) {
    CAPTURE(c.B, c.L, c.D, c.G, c.state, c.mask);
    const Inputs in = make_inputs(c);
    Tensor dy = torch::randn({c.B, c.L, c.D}), dmo = torch::randn({c.B, c.G}), dvo = torch::randn({c.B, c.G});
    // fp64 autograd oracle.
    Tensor x = in.x.to(torch::kFloat64).requires_grad_(), w = in.w.to(torch::kFloat64).requires_grad_(),
           b = in.b.to(torch::kFloat64).requires_grad_(), pm = in.mean.to(torch::kFloat64).requires_grad_(),
           pv = in.var.to(torch::kFloat64).requires_grad_();
    auto ref = mgl::ops::timestep_norm(x, c.G, w, b, {in.count, pm, pv}, in.mask, 1e-5);
    Tensor loss = (ref.y * dy.to(torch::kFloat64)).sum() + (ref.state.mean * dmo.to(torch::kFloat64)).sum() +
                  (ref.state.var * dvo.to(torch::kFloat64)).sum();
    auto g = torch::autograd::grad({loss}, {x, w, b, pm, pv});
    auto fwd = emu::forward(in.x, c.G, in.w, in.b, in.count, in.mean, in.var, in.mask, 1e-5f);
    auto bwd = emu::backward(in.x, dy, c.G, in.w, in.count, in.mean, in.mask, fwd, dmo, dvo);
    auto rel = [](const Tensor& a, const Tensor& r) { return max_abs_d(a, r) / scale_of(r); };
    CHECK(rel(bwd.dx, g[0]) <= 1e-4);
    CHECK(rel(bwd.dweight, g[1]) <= 1e-4);
    CHECK(rel(bwd.dbias, g[2]) <= 1e-4);
    CHECK(rel(bwd.dprev_mean, g[3]) <= 1e-4);
    CHECK(rel(bwd.dprev_var, g[4]) <= 1e-4);
  }
}

TEST_CASE("error growth with L: the kernel's scheme stays at fp32 rounding, a naive fp32 sum does not",
          "[tsn][kernel_math]") {
  torch::manual_seed(13);
  const int64_t D = 16;
  double naive_last = 0, kernel_last = 0;
  for (int64_t L : {1024, 16384, 65536, 262144}) {
    Tensor x = torch::randn({1, L, D}) + 10;  // offset 10, unit spread: Σx² cancels in the naive scheme
    Tensor oracle = emu::oracle_y(x);
    const double ek = emu::max_abs(emu::kernel_y(x), oracle), en = emu::max_abs(emu::naive_y(x), oracle);
    std::printf("tsn error growth L=%lld kernel %.3g naive %.3g\n", static_cast<long long>(L), ek, en);
    CHECK(ek <= 3e-6);  // flat in L: ~2 ulp of the |mean| = 10 data
    kernel_last = ek;
    naive_last = en;
  }
  CHECK(naive_last >= 10 * kernel_last);  // at L = 256K
}

// ---- the fused per-token norms' arithmetic (core/cuda/row_norm/row_norm_math.h) ----------------------------

TEST_CASE("the fused row-norm arithmetic matches autograd through ops::rms_norm / ops::layer_norm",
          "[norms][kernel_math]") {
  torch::manual_seed(21);
  for (bool layer : {false, true})
    for (int64_t D : {1, 7, 64, 300}) {
      CAPTURE(layer, D);
      const int64_t R = 9;
      Tensor x = torch::randn({R, D}, torch::kFloat64) * 2 + 1, w = torch::randn({D}, torch::kFloat64) * 0.2 + 1;
      Tensor b = torch::randn({D}, torch::kFloat64) * 0.2, dy = torch::randn({R, D}, torch::kFloat64);
      Tensor xg = x.clone().requires_grad_(), wg = w.clone().requires_grad_(), bg = b.clone().requires_grad_();
      Tensor y64 = layer ? mgl::ops::layer_norm(xg, wg, bg, 1e-5) : mgl::ops::rms_norm(xg, wg, 1e-5);
      std::vector<Tensor> in{xg, wg};
      if (layer) in.push_back(bg);
      auto g = torch::autograd::grad({(y64 * dy).sum()}, in);
      // The kernels' per-row arithmetic in fp32 (sums in a warp's order).
      Tensor xf = x.to(torch::kFloat32), wf = w.to(torch::kFloat32), bf = b.to(torch::kFloat32), df = dy.to(torch::kFloat32);
      Tensor y = torch::empty({R, D}), dx = torch::empty({R, D});
      std::vector<double> dw(D, 0.0), db(D, 0.0);
      const float* xp = xf.data_ptr<float>();
      const float* dp = df.data_ptr<float>();
      const float* wp = wf.data_ptr<float>();
      for (int64_t r = 0; r < R; ++r) {
        const float* row = xp + r * D;
        const float mu = layer ? emu::warp_row_sum(row, D) / static_cast<float>(D) : 0.f;
        std::vector<float> t(D), s1(D), s2(D);
        for (int64_t c = 0; c < D; ++c) t[c] = (row[c] - mu) * (row[c] - mu);
        const float rs = rstd_of(emu::warp_row_sum(t.data(), D) / static_cast<float>(D), 1e-5f);
        for (int64_t c = 0; c < D; ++c) {
          y.data_ptr<float>()[r * D + c] = mgl::cuda::row_norm::apply(row[c], mu, rs, wp[c], layer ? bf.data_ptr<float>()[c] : 0.f);
          s1[c] = dp[r * D + c] * wp[c];
          s2[c] = s1[c] * (row[c] - mu) * rs;
          dw[c] += dp[r * D + c] * (row[c] - mu) * rs;
          db[c] += dp[r * D + c];
        }
        const float m1 = layer ? emu::warp_row_sum(s1.data(), D) / static_cast<float>(D) : 0.f;
        const float m2 = emu::warp_row_sum(s2.data(), D) / static_cast<float>(D);
        for (int64_t c = 0; c < D; ++c)
          dx.data_ptr<float>()[r * D + c] = mgl::cuda::row_norm::dx(dp[r * D + c], row[c], wp[c], mu, rs, m1, m2);
      }
      auto rel = [](const Tensor& a, const Tensor& r) { return max_abs_d(a, r) / scale_of(r); };
      CHECK(rel(y, y64.detach()) <= 1e-5);
      CHECK(rel(dx, g[0]) <= 1e-4);
      CHECK(rel(torch::tensor(dw, torch::kFloat64), g[1]) <= 1e-5);
      if (layer) CHECK(rel(torch::tensor(db, torch::kFloat64), g[2]) <= 1e-5);
    }
}
