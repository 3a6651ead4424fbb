// The fused timestep norm (core/cuda/timestep_norm/) run by the SIMT executor, through the autograd
// Function the CUDA glue uses (timestep_norm_autograd.h), against the reference path
// (ops::timestep_norm) and its autograd; oracle: the reference path in fp64. Rule: kernel error ≤
// 2 × the reference path's own (fp32 or bf16) + a floor (the same floors as the GPU check).
// Shapes: L = 1, within a tile, across tiles (1025), above the single-block limit (4100 > 4096:
// the long path's reduce → carry → apply kernels); group sizes below, at and above the warp (5,
// 32, 64 channels); a carried state in and out; padding masks; fp32 and bf16.
#include <fmt/format.h>

#include "core/cuda/timestep_norm/timestep_norm_autograd.h"
#include "core/ops/timestep_norm.h"
#include "simt/support.h"

using namespace mgl;
using mgl::simt_tests::check_2x;
using mgl::simt_tests::NoStream;
using torch::Tensor;

namespace {

struct Grads {
  Tensor y, mean, var, dx, dw, db, dpm, dpv;
};

// Runs `fn` in dtype `dt` on fresh leaves; returns the outputs and the gradients of
// Σ y·dy + Σ mean_out·dmo + Σ var_out·dvo, all as fp64.
template <class Fn>
Grads run(Fn fn, torch::Dtype dt, const Tensor& x0, const Tensor& w0, const Tensor& b0, const Tensor& count,
          const Tensor& pm0, const Tensor& pv0, const Tensor& mask, const Tensor& dy, const Tensor& dmo,
          const Tensor& dvo, torch::Dtype state_dt) {
  Tensor x = x0.to(dt).requires_grad_(), w = w0.to(state_dt).requires_grad_(),
         b = b0.to(state_dt).requires_grad_();
  Tensor pm = pm0.to(state_dt).requires_grad_(), pv = pv0.to(state_dt).requires_grad_();
  ops::TimestepNormOutput out = fn(x, w, b, ops::NormState{count, pm, pv}, mask);
  Tensor loss = (out.y.to(torch::kFloat64) * dy).sum() + (out.state.mean.to(torch::kFloat64) * dmo).sum() +
                (out.state.var.to(torch::kFloat64) * dvo).sum();
  auto g = torch::autograd::grad({loss}, {x, w, b, pm, pv});
  auto d = [](const Tensor& t) { return t.detach().to(torch::kFloat64); };
  return {d(out.y), d(out.state.mean), d(out.state.var), d(g[0]), d(g[1]), d(g[2]), d(g[3]), d(g[4])};
}

void compare_case(int64_t B, int64_t L, int64_t D, int64_t G, bool state, bool masked) {
  Tensor x = torch::randn({B, L, D}, torch::kFloat64) * 2 + 3;
  Tensor w = torch::randn({D}, torch::kFloat64) * 0.2 + 1, b = torch::randn({D}, torch::kFloat64) * 0.2;
  Tensor count = state ? torch::randint(1, 100, {B}, torch::kInt64) : torch::zeros({B}, torch::kInt64);
  Tensor pm = state ? torch::randn({B, G}, torch::kFloat64) + 3 : torch::zeros({B, G}, torch::kFloat64);
  Tensor pv = state ? torch::rand({B, G}, torch::kFloat64) * 4 + 0.5 : torch::ones({B, G}, torch::kFloat64);
  Tensor mask = masked ? torch::rand({B, L}) < 0.2 : Tensor();
  if (masked)
    mask.index_put_({0, L - 1}, true);  // the last step padded: the final state is the step before's
  Tensor dy = torch::randn({B, L, D}, torch::kFloat64);
  Tensor dmo = torch::randn({B, G}, torch::kFloat64), dvo = torch::randn({B, G}, torch::kFloat64);
  auto reference = [&](const Tensor& xx, const Tensor& ww, const Tensor& bb, const ops::NormState& p,
                       const Tensor& m) {
    const bool low = xx.scalar_type() == torch::kBFloat16;  // the module's reference path: fp32 statistics
    auto o = ops::timestep_norm(low ? xx.to(torch::kFloat32) : xx, G, ww, bb, p, m, 1e-5);
    if (low) o.y = o.y.to(torch::kBFloat16);
    return o;
  };
  auto kernel = [&](const Tensor& xx, const Tensor& ww, const Tensor& bb, const ops::NormState& p,
                    const Tensor& m) { return cuda::timestep_norm_run<NoStream>(xx, G, ww, bb, p, m, 1e-5); };
  const Grads oracle =
      run(reference, torch::kFloat64, x, w, b, count, pm, pv, mask, dy, dmo, dvo, torch::kFloat64);
  for (torch::Dtype dt : {torch::kFloat32, torch::kBFloat16}) {
    const Grads ref = run(reference, dt, x, w, b, count, pm, pv, mask, dy, dmo, dvo, torch::kFloat32);
    const Grads ker = run(kernel, dt, x, w, b, count, pm, pv, mask, dy, dmo, dvo, torch::kFloat32);
    const std::string tag = fmt::format("{} B={} L={} D={} G={} state={} mask={}",
                                        dt == torch::kFloat32 ? "fp32" : "bf16", B, L, D, G, state, masked);
    mgl::simt_tests::require_no_findings(tag);
    const double f_y = dt == torch::kFloat32 ? 2e-6 : 1e-3, f_g = dt == torch::kFloat32 ? 2e-5 : 1e-2;
    check_2x(ker.y, ref.y, oracle.y, f_y, "y " + tag);
    check_2x(ker.mean, ref.mean, oracle.mean, 1e-6, "final mean " + tag);
    check_2x(ker.var, ref.var, oracle.var, 1e-6, "final var " + tag);
    check_2x(ker.dx, ref.dx, oracle.dx, f_g, "dx " + tag);
    check_2x(ker.dw, ref.dw, oracle.dw, f_g, "dweight " + tag);
    check_2x(ker.db, ref.db, oracle.db, f_g, "dbias " + tag);
    check_2x(ker.dpm, ref.dpm, oracle.dpm, f_g, "dprev_mean " + tag);
    check_2x(ker.dpv, ref.dpv, oracle.dpv, f_g, "dprev_var " + tag);
    if (masked) {
      Tensor mm = mask.unsqueeze(-1).expand_as(ker.y);
      CHECK(ker.y.masked_select(mm).abs().max().item<double>() == 0.0);
      CHECK(ker.dx.masked_select(mm).abs().max().item<double>() == 0.0);
    }
  }
}

}  // namespace

TEST_CASE("simt timestep norm: short path (one block per column), tiles, groups vs the warp",
          "[timestep_norm]") {
  torch::manual_seed(0);
  struct Shape {
    int64_t D, G;
  };
  const Shape shapes[] = {{16, 4}, {96, 3}, {64, 1}, {40, 8}};
  int round = 0;
  for (int64_t L : {1, 17, 255, 1025})
    for (int64_t B : {1, 3}) {
      const Shape sh = shapes[round % 4];
      compare_case(B, L, sh.D, sh.G, round % 2 == 1, round % 3 == 2);
      ++round;
    }
}

TEST_CASE("simt timestep norm: long path (L above the 4096-step single-block limit)", "[timestep_norm]") {
  torch::manual_seed(1);
  compare_case(1, 4100, 8, 2, true, true);
  compare_case(2, 4097, 6, 1, false, false);
}

TEST_CASE("simt timestep norm: L = 0 passes the state through", "[timestep_norm]") {
  Tensor x = torch::zeros({2, 0, 8});
  ops::NormState prev{torch::tensor({3, 5}, torch::kInt64), torch::randn({2, 2}), torch::rand({2, 2}) + 1};
  auto out = cuda::timestep_norm_run<NoStream>(x, 2, torch::ones({8}), torch::zeros({8}), prev, {}, 1e-5);
  mgl::simt_tests::require_no_findings("L = 0");
  CHECK(out.y.numel() == 0);
  CHECK(torch::equal(out.state.mean, prev.mean));
  CHECK(torch::equal(out.state.var, prev.var));
  CHECK(torch::equal(out.state.count, prev.count));
}

// Reads of workspace bytes nothing wrote (the race-detector build tracks them, like
// compute-sanitizer's initcheck): every kernel of the long path, forward and backward.
TEST_CASE("simt timestep norm: no kernel reads workspace it did not write (initcheck)",
          "[timestep_norm][race]") {
  REQUIRE(::simt::race_detector_enabled());
  torch::manual_seed(2);
  const int64_t B = 1, L = 4100, D = 8, G = 2;
  const cuda::TimestepNormShape s{B, L, D, G};
  Tensor x = torch::randn({B, L, D}), w = torch::ones({D}), b = torch::zeros({D});
  Tensor count = torch::zeros({B}, torch::kInt64), pm = torch::zeros({B, G}), pv = torch::ones({B, G});
  Tensor y = torch::empty_like(x), mean = torch::empty({B, G, L}), rstd = torch::empty({B, G, L});
  Tensor mo = torch::empty({B, G}), vo = torch::empty({B, G});
  Tensor ws =
      torch::empty({static_cast<int64_t>(cuda::timestep_norm_forward_workspace_bytes(s))}, torch::kUInt8);
  for (const Tensor* t : {&ws, &y, &mean, &rstd, &mo, &vo})
    ::simt::track_uninitialized(t->data_ptr(), t->nbytes());
  cuda::timestep_norm_forward<float>(
      s, x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), nullptr, count.data_ptr<int64_t>(),
      pm.data_ptr<float>(), pv.data_ptr<float>(), 1e-5f, y.data_ptr<float>(), mean.data_ptr<float>(),
      rstd.data_ptr<float>(), mo.data_ptr<float>(), vo.data_ptr<float>(), ws.data_ptr(), nullptr);
  ::simt::untrack_all();
  mgl::simt_tests::require_no_findings("forward");
  Tensor dy = torch::randn_like(x), dx = torch::empty_like(x), dw = torch::empty({D}), db = torch::empty({D});
  Tensor dpm = torch::empty({B, G}), dpv = torch::empty({B, G}), cout = count + L;
  Tensor wsb =
      torch::empty({static_cast<int64_t>(cuda::timestep_norm_backward_workspace_bytes(s))}, torch::kUInt8);
  for (const Tensor* t : {&wsb, &dx, &dw, &db, &dpm, &dpv})
    ::simt::track_uninitialized(t->data_ptr(), t->nbytes());
  cuda::timestep_norm_backward<float>(s, x.data_ptr<float>(), dy.data_ptr<float>(), w.data_ptr<float>(),
                                      nullptr, nullptr, count.data_ptr<int64_t>(), pm.data_ptr<float>(),
                                      cout.data_ptr<int64_t>(), mean.data_ptr<float>(),
                                      rstd.data_ptr<float>(), mo.data_ptr<float>(), nullptr, nullptr,
                                      dx.data_ptr<float>(), dw.data_ptr<float>(), db.data_ptr<float>(),
                                      dpm.data_ptr<float>(), dpv.data_ptr<float>(), wsb.data_ptr(), nullptr);
  ::simt::untrack_all();
  mgl::simt_tests::require_no_findings("backward");
}
