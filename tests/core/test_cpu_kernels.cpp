// The fused CPU kernels (core/cpu/) against their LibTorch expressions in fp64: the softmax rows of
// the LM loss (log-sum-exp, scaled softmax), at lengths around the 16-lane width and with the
// values that break naive kernels (huge, −inf, +inf, NaN); then the fp32 loss over slices that uses
// them, gradients included, against the fp64 oracle.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "core/cpu/softmax_rows.h"
#include "core/ops/lm_loss.h"
#include "support/oracle.h"

using torch::Tensor;

namespace {
const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
constexpr float kInf = std::numeric_limits<float>::infinity();
}  // namespace

TEST_CASE("cpu::logsumexp_row and exp_shifted_row equal torch::logsumexp and exp in fp64", "[cpu_kernels]") {
  torch::manual_seed(2301);
  for (int64_t n : {1, 3, 15, 16, 17, 31, 33, 100, 8192, 8199}) {
    for (double spread : {0.1, 3.0, 40.0}) {
      INFO("n " << n << " spread " << spread);
      Tensor x = (torch::randn({n}) * spread + 5).contiguous();
      const double ref = torch::logsumexp(x.to(torch::kFloat64), 0).item<double>();
      const float got = mgl::cpu::logsumexp_row(x.data_ptr<float>(), n);
      CHECK(std::abs(got - ref) <= 2e-6 * std::max(1.0, std::abs(ref)));
      // softmax × 0.5: the error at most twice LibTorch's own fp32 exp(x − shift)·0.5 (the fp32
      // subtraction dominates both when |x| is large), plus 1e-7 of the row's largest.
      Tensor y = x.clone();
      const float shift = static_cast<float>(ref);
      mgl::cpu::exp_shifted_row(y.data_ptr<float>(), n, shift, 0.5f);
      Tensor want = torch::exp(x.to(torch::kFloat64) - shift) * 0.5;
      const double torch_err = mgl::test::max_abs((torch::exp(x - shift) * 0.5f).to(torch::kFloat64), want);
      CHECK(mgl::test::max_abs(y.to(torch::kFloat64), want) <= 2 * torch_err + 1e-7 * want.max().item<double>());
      CHECK(std::abs(y.sum().item<double>() - 0.5) < 1e-5);
    }
  }
}

TEST_CASE("cpu::logsumexp_row: −inf entries, +inf, NaN and empty rows give what LibTorch gives", "[cpu_kernels]") {
  auto lse = [](std::vector<float> v) { return mgl::cpu::logsumexp_row(v.data(), static_cast<int64_t>(v.size())); };
  std::vector<float> row(40, -kInf);
  row[17] = 2.0f;
  CHECK(lse(row) == Approx(2.0f));  // the −inf entries add nothing
  row[3] = 2.0f;
  CHECK(lse(row) == Approx(2.0f + std::log(2.0f)));
  CHECK(lse(std::vector<float>(20, -kInf)) == -kInf);
  CHECK(lse({}) == -kInf);
  row[30] = kInf;
  CHECK(lse(row) == kInf);
  for (size_t at : {size_t{0}, size_t{5}, size_t{16}, size_t{39}}) {
    INFO("NaN at " << at);
    std::vector<float> r(40, 1.0f);
    r[at] = std::numeric_limits<float>::quiet_NaN();
    CHECK(std::isnan(lse(r)));
    r[7] = kInf;  // a +inf does not hide the NaN
    CHECK(std::isnan(lse(r)));
  }
  // Extreme but finite logits: no overflow, the maximum is taken out first.
  CHECK(lse({3e4f, 3e4f, -3e4f}) == Approx(3e4f + std::log(2.0f)));
  // exp underflows to ~0 far below the shift, as exp does.
  std::vector<float> e = {0.0f, -200.0f, -kInf};
  mgl::cpu::exp_shifted_row(e.data(), 3, 0.0f, 1.0f);
  CHECK(e[0] == Approx(1.0f));
  CHECK(e[1] < 1e-37f);
  CHECK(e[2] < 1e-37f);
}

TEST_CASE("the fp32 LM loss over slices (fused rows) equals the fp64 oracle, gradients too", "[cpu_kernels][lm_loss]") {
  torch::manual_seed(2302);
  const int64_t V = 203, D = 24;  // V: 12 full 16-lane groups and a tail
  Tensor h0 = torch::randn({2, 37, D}) * 2, w0 = torch::randn({V, D});
  Tensor t = torch::randint(V, {2, 37});
  t[0][5] = -1;
  t[1][36] = -100;
  auto oracle = [&](const Tensor& h, const Tensor& w, const Tensor& g) {
    Tensor lp = torch::log_softmax(torch::matmul(h, w.t()), -1);
    Tensor nll = torch::where(t >= 0, -lp.gather(-1, t.clamp_min(0).unsqueeze(-1)).squeeze(-1), torch::zeros_like(t, f64));
    auto grads = torch::autograd::grad({(nll * g).sum()}, {h, w});
    return std::vector<Tensor>{nll.detach(), grads[0], grads[1]};
  };
  // g uniform (a mean: the gradients the forward computed, rescaled), per-row (recomputed), and
  // every row ignored.
  for (int kind = 0; kind < 3; ++kind) {
    INFO("incoming gradient kind " << kind);
    Tensor tt = kind == 2 ? torch::full_like(t, -1) : t;
    Tensor g = kind == 1 ? torch::rand({2, 37}, f64) : torch::full({2, 37}, 1.0 / 74, f64);
    for (int64_t rows : {0, 5, 16}) {
      INFO("rows per slice " << rows);
      Tensor h = h0.clone().requires_grad_(), w = w0.clone().requires_grad_();
      Tensor a = mgl::ops::sliced_linear_nll(h, w, tt, rows);
      REQUIRE(a.scalar_type() == torch::kFloat32);
      auto got = torch::autograd::grad({(a * g.to(torch::kFloat32)).sum()}, {h, w});
      Tensor hd = h0.to(torch::kFloat64).requires_grad_(), wd = w0.to(torch::kFloat64).requires_grad_();
      const Tensor kept = t;
      t = tt;
      auto want = oracle(hd, wd, g);
      t = kept;
      CHECK(mgl::test::rel_err(a.to(torch::kFloat64), want[0]) < 1e-6);
      CHECK(mgl::test::rel_err(got[0].to(torch::kFloat64), want[1]) < 1e-5);
      CHECK(mgl::test::rel_err(got[1].to(torch::kFloat64), want[2]) < 1e-5);
      if (kind == 2) {
        CHECK(a.abs().max().item<float>() == 0.0f);
        CHECK(got[1].abs().max().item<float>() == 0.0f);
      }
    }
  }
}

TEST_CASE("the LM loss over slices: gradients for h alone, for W alone, and no work kept without grad mode",
          "[cpu_kernels][lm_loss]") {
  torch::manual_seed(2303);
  Tensor h0 = torch::randn({30, 8}), w0 = torch::randn({50, 8});
  Tensor t = torch::randint(50, {30});
  Tensor ref_h, ref_w;
  {
    Tensor h = h0.clone().requires_grad_(), w = w0.clone().requires_grad_();
    mgl::ops::sliced_linear_nll(h, w, t, 7).mean().backward();
    ref_h = h.grad().clone();
    ref_w = w.grad().clone();
  }
  Tensor h = h0.clone().requires_grad_();
  mgl::ops::sliced_linear_nll(h, w0, t, 7).mean().backward();
  CHECK(mgl::test::max_abs(h.grad(), ref_h) == 0.0);
  Tensor w = w0.clone().requires_grad_();
  mgl::ops::sliced_linear_nll(h0, w, t, 7).mean().backward();
  CHECK(mgl::test::max_abs(w.grad(), ref_w) == 0.0);
  torch::NoGradGuard no_grad;
  Tensor a = mgl::ops::sliced_linear_nll(h0.clone().requires_grad_(), w0, t, 7);
  CHECK_FALSE(a.requires_grad());
  CHECK(mgl::test::max_abs(a, torch::nn::functional::cross_entropy(
                                  torch::mm(h0, w0.t()), t,
                                  torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))) < 1e-5);
}
