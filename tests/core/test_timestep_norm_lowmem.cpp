// The timestep norm with the hand-written backward (ops::timestep_norm_lowmem, what SequenceNorm
// runs) against the autograd reference ops::timestep_norm: fp64 outputs, output state and every
// gradient (x, weight, bias, the previous state, through y and through the output state), padding,
// a prior; finite differences; fp32 accuracy on a long sequence against the fp64 oracle.
#include <catch2/catch.hpp>

#include "core/modules/norms.h"
#include "core/ops/timestep_norm.h"
#include "core/ops/timestep_norm_lowmem.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using torch::Tensor;

namespace {
const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

struct Inputs {
  Tensor x, w, b, mean, var;
  Tensor count, pad;
};

// Runs one implementation and returns {y, state mean, state var, and the gradients of
// Σ wy·y + Σ wm·mean + Σ wv·var for x, w, b, prev mean, prev var}.
template <typename F>
std::vector<Tensor> run(F f, const Inputs& in, int64_t G, const Tensor& wy, const Tensor& wm, const Tensor& wv) {
  auto x = in.x.clone().requires_grad_(), w = in.w.clone().requires_grad_(), b = in.b.clone().requires_grad_();
  auto m = in.mean.clone().requires_grad_(), v = in.var.clone().requires_grad_();
  ops::NormState prev{in.count, m, v};
  auto out = f(x, G, w, b, prev, in.pad, 1e-5);
  Tensor loss = (out.y * wy).sum() + (out.state.mean * wm).sum() + (out.state.var * wv).sum();
  auto g = torch::autograd::grad({loss}, {x, w, b, m, v}, {}, false, false, true);
  std::vector<Tensor> r{out.y, out.state.mean, out.state.var, out.state.count};
  for (auto& t : g) r.push_back(t.defined() ? t : torch::zeros({1}, f64));
  return r;
}
}  // namespace

TEST_CASE("timestep norm (hand-written backward) equals the autograd reference in fp64", "[tsn][lowmem]") {
  torch::manual_seed(2221);
  const int64_t B = 3, L = 37, D = 12, G = 3;
  for (int variant = 0; variant < 4; ++variant) {
    // 0: fresh, 1: prior state with weight, 2: padding, 3: padding + prior and a fully padded row.
    Inputs in;
    in.x = torch::randn({B, L, D}, f64) * 2 + 0.5;
    in.w = torch::randn({D}, f64);
    in.b = torch::randn({D}, f64);
    in.mean = torch::randn({B, G}, f64);
    in.var = torch::rand({B, G}, f64) + 0.5;
    in.count = variant % 2 ? torch::tensor({0, 5, 100}, torch::kInt64) : torch::zeros({B}, torch::kInt64);
    if (variant >= 2) {
      in.pad = torch::rand({B, L}) < 0.3;
      if (variant == 3) in.pad[0].fill_(true);  // row 0: no valid step and no prior weight
    }
    Tensor wy = torch::randn({B, L, D}, f64), wm = torch::randn({B, G}, f64), wv = torch::randn({B, G}, f64);
    auto r = run(ops::timestep_norm, in, G, wy, wm, wv);
    for (bool cpu_kernel : {true, false}) {  // the CPU loops and the LibTorch expressions
      auto a = run(
          [&](const Tensor& x, int64_t g, const Tensor& w, const Tensor& b, const ops::NormState& prev,
              const Tensor& pad, double eps) { return ops::timestep_norm_lowmem(x, g, w, b, prev, pad, eps, cpu_kernel); },
          in, G, wy, wm, wv);
      const char* names[] = {"y", "mean", "var", "count", "dx", "dweight", "dbias", "dprev_mean", "dprev_var"};
      for (size_t i = 0; i < a.size(); ++i) {
        INFO("variant " << variant << ", cpu_kernel " << cpu_kernel << ", " << names[i]);
        REQUIRE(a[i].sizes() == r[i].sizes());
        CHECK(max_abs(a[i], r[i]) < 1e-10);
      }
    }
  }
}

TEST_CASE("timestep norm (hand-written backward) matches finite differences in fp64", "[tsn][lowmem][grad]") {
  torch::manual_seed(2222);
  const int64_t G = 2;
  Tensor count = torch::tensor({0, 3}, torch::kInt64);
  Tensor pad = torch::zeros({2, 5}, torch::kBool);
  pad[1][2] = true;
  auto fn = [&](const std::vector<Tensor>& in) {
    ops::NormState prev{count, in[3], in[4]};
    auto out = ops::timestep_norm_lowmem(in[0], G, in[1], in[2], prev, pad, 1e-5);
    return torch::cat({out.y.flatten(), out.state.mean.flatten(), out.state.var.flatten()});
  };
  auto r = test::gradcheck(fn, {torch::randn({2, 5, 4}, f64), torch::randn({4}, f64), torch::randn({4}, f64),
                                torch::randn({2, G}, f64), torch::rand({2, G}, f64) + 0.5});
  INFO(r.where);
  REQUIRE(r.ok);
}

TEST_CASE("timestep norm (hand-written backward) in fp32 stays accurate on a long sequence", "[tsn][lowmem]") {
  torch::manual_seed(2223);
  const int64_t L = 8192, D = 16, G = 4;
  // An offset mean and a drifting scale: what makes naive fp32 prefix sums fail.
  Tensor x = torch::randn({1, L, D}) * (1 + torch::linspace(0, 3, L).view({1, L, 1})) + 30;
  Tensor w = torch::randn({D}), b = torch::randn({D});
  ops::NormState prev{torch::zeros({1}, torch::kInt64), torch::zeros({1, G}), torch::ones({1, G})};
  ops::NormState prev64{prev.count, prev.mean.to(torch::kFloat64), prev.var.to(torch::kFloat64)};
  auto ref = ops::timestep_norm(x.to(torch::kFloat64), G, w.to(torch::kFloat64), b.to(torch::kFloat64), prev64, {}, 1e-5);
  auto xd = x.to(torch::kFloat64).requires_grad_();
  Tensor gy = torch::randn({1, L, D});
  ops::timestep_norm(xd, G, w.to(torch::kFloat64), b.to(torch::kFloat64), prev64, {}, 1e-5).y.backward(gy.to(torch::kFloat64));
  for (bool cpu_kernel : {true, false}) {
    INFO("cpu_kernel " << cpu_kernel);
    auto fast = ops::timestep_norm_lowmem(x, G, w, b, prev, {}, 1e-5, cpu_kernel);
    CHECK(fast.y.scalar_type() == torch::kFloat32);
    CHECK(max_abs(fast.y, ref.y) < 1e-4);
    CHECK(test::rel_err(fast.state.var, ref.state.var) < 1e-6);
    // Gradients in fp32 against the fp64 reference's.
    auto xf = x.clone().requires_grad_();
    ops::timestep_norm_lowmem(xf, G, w, b, prev, {}, 1e-5, cpu_kernel).y.backward(gy);
    CHECK(test::rel_err(xf.grad(), xd.grad()) < 1e-5);
  }
}

TEST_CASE("timestep norm: the CPU loops equal the LibTorch expressions in fp32 (padding, prior, several rows)",
          "[tsn][lowmem]") {
  torch::manual_seed(2225);
  // More tokens than one parallel task and groups split between the threads; rows with a prior.
  const int64_t B = 3, L = 300, D = 48, G = 6;
  Tensor x = torch::randn({B, L, D}) * 3 + 1, w = torch::randn({D}), b = torch::randn({D});
  Tensor pad = torch::rand({B, L}) < 0.2;
  Tensor count = torch::tensor({0, 7, 0}, torch::kInt64);
  Tensor m0 = torch::randn({B, G}), v0 = torch::rand({B, G}) + 0.5;
  Tensor gy = torch::randn({B, L, D}), wm = torch::randn({B, G}), wv = torch::randn({B, G});
  std::vector<std::vector<Tensor>> got;
  for (bool cpu_kernel : {true, false}) {
    auto xx = x.clone().requires_grad_(), ww = w.clone().requires_grad_(), bb = b.clone().requires_grad_();
    auto mm = m0.clone().requires_grad_(), vv = v0.clone().requires_grad_();
    auto out = ops::timestep_norm_lowmem(xx, G, ww, bb, ops::NormState{count, mm, vv}, pad, 1e-5, cpu_kernel);
    ((out.y * gy).sum() + (out.state.mean * wm).sum() + (out.state.var * wv).sum()).backward();
    got.push_back({out.y, out.state.mean, out.state.var, xx.grad(), ww.grad(), bb.grad(), mm.grad(), vv.grad()});
  }
  const char* names[] = {"y", "mean", "var", "dx", "dweight", "dbias", "dprev_mean", "dprev_var"};
  for (size_t i = 0; i < got[0].size(); ++i) {
    INFO(names[i]);
    CHECK(test::rel_err(got[0][i], got[1][i]) < 2e-5);
  }
  CHECK((got[0][0].masked_select(pad.unsqueeze(-1)) == 0).all().item<bool>());
}

TEST_CASE("SequenceNorm (timestep) runs the hand-written backward and streams like the reference", "[tsn][lowmem]") {
  torch::manual_seed(2224);
  SequenceNorm norm(NormKind::timestep, 8, 2, 1e-5, /*prior*/ 4);
  norm->to(torch::kFloat64);
  {
    torch::NoGradGuard g;
    for (auto& p : norm->parameters()) p.normal_(0, 0.3);
  }
  Tensor x = torch::randn({2, 30, 8}, f64);
  ops::NormState st;
  Tensor y1 = norm(x.narrow(1, 0, 11), &st), y2 = norm(x.narrow(1, 11, 19), &st);
  ops::NormState prev = norm->initial_state(2, x.device());
  Tensor w = norm->weight + 1.0;
  auto ref = ops::timestep_norm(x, 2, w, norm->bias, prev, {}, 1e-5);
  CHECK(max_abs(torch::cat({y1, y2}, 1), ref.y) < 1e-12);
  // The prior's parameters get the reference's gradients through both segments.
  auto params = norm->parameters();
  auto ga = torch::autograd::grad({torch::cat({y1, y2}, 1).sum()}, params, {}, true, false, true);
  auto gr = torch::autograd::grad({ref.y.sum()}, params, {}, true, false, true);
  for (size_t i = 0; i < params.size(); ++i)
    if (gr[i].defined()) CHECK(max_abs(ga[i], gr[i]) < 1e-10);
}
