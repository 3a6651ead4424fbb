// The fused CPU kernels (core/cpu/) against their LibTorch expressions in fp64: the softmax rows of
// the LM loss (log-sum-exp, scaled softmax), at lengths around the 16-lane width and with the
// values that break naive kernels (huge, −inf, +inf, NaN), and the fp32 loss over slices that uses
// them, gradients included; the batched small GEMM against bmm in fp64, and the fp32 chunked EMA
// that uses it, gradients included.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "core/cpu/batched_gemm.h"
#include "core/cpu/ema_scan.h"
#include "core/cpu/softmax_rows.h"
#include "core/cpu/transpose.h"
#include "core/ops/cema.h"
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

TEST_CASE("cpu::batched_gemm equals bmm in fp64: shapes, A transposed, accumulation, batch strides", "[cpu_kernels]") {
  torch::manual_seed(2304);
  for (int64_t m : {1, 3, 4, 5, 17})
    for (int64_t n : {16, 48, 64, 80, 128})
      for (int64_t k : {1, 7, 64})
        for (bool a_t : {false, true})
          for (bool acc : {false, true}) {
            INFO("m " << m << " n " << n << " k " << k << " transposed " << a_t << " accumulate " << acc);
            const int64_t batch = 3;
            Tensor a = a_t ? torch::randn({batch, k, m}) : torch::randn({batch, m, k});
            Tensor b = torch::randn({batch, k, n}), c0 = torch::randn({batch, m, n});
            Tensor c = c0.clone();
            mgl::cpu::batched_gemm(a.data_ptr<float>(), b.data_ptr<float>(), c.data_ptr<float>(), batch, m, n, k, a_t, acc,
                                   m * k, k * n, m * n);
            Tensor ad = a.to(torch::kFloat64);
            Tensor want = torch::bmm(a_t ? ad.transpose(1, 2) : ad, b.to(torch::kFloat64));
            if (acc) want += c0.to(torch::kFloat64);
            CHECK(mgl::test::max_abs(c.to(torch::kFloat64), want) < 1e-5 * (k + 1) * (want.abs().max().item<double>() + 1));
          }
  CHECK(mgl::cpu::batched_gemm_takes(64));
  CHECK_FALSE(mgl::cpu::batched_gemm_takes(40));
}

TEST_CASE("ema_chunked in fp32 (batched GEMM kernel) equals the fp64 path, gradients too", "[cpu_kernels][cema]") {
  torch::manual_seed(2305);
  for (int64_t L : {64, 200, 1000}) {
    INFO("L " << L);
    const int64_t B = 2, D = 5, N = 8;  // 2N = 16 and chunk 64: the kernel takes every product
    Tensor p = torch::rand({D, N}, f64), lq = torch::complex(-torch::rand({D, N}, f64) * 0.2 - 0.01, torch::rand({D, N}, f64));
    Tensor eta = torch::complex(torch::randn({D, N}, f64), torch::randn({D, N}, f64)) * 0.5;
    Tensor x = torch::randn({B, L, D}, f64).transpose(1, 2), w = torch::randn({B, D, L}, f64);
    auto run = [&](torch::Dtype real, torch::Dtype cplx) {
      std::vector<Tensor> in{p.to(real).requires_grad_(), lq.to(cplx).requires_grad_(), eta.to(cplx).requires_grad_(),
                             x.to(real).requires_grad_()};
      mgl::ops::EmaCoeffs c{in[0], in[1], in[2]};
      Tensor y = mgl::ops::ema_chunked(in[3], c, 64);
      auto g = torch::autograd::grad({(y * w.to(real)).sum()}, in);
      g.insert(g.begin(), y);
      return g;
    };
    auto want = run(torch::kFloat64, torch::kComplexDouble), got = run(torch::kFloat32, torch::kComplexFloat);
    const char* names[] = {"y", "p", "log q", "eta", "x"};
    for (size_t i = 0; i < want.size(); ++i) {
      INFO(names[i]);
      Tensor g32 = got[i].is_complex() ? torch::view_as_real(got[i]) : got[i];
      Tensor g64 = want[i].is_complex() ? torch::view_as_real(want[i]) : want[i];
      CHECK(mgl::test::rel_err(g32.to(torch::kFloat64), g64) < 2e-5);
    }
  }
}

TEST_CASE("cpu::transpose equals LibTorch's transposing copy: partial tiles, leading dims, batch strides",
          "[cpu_kernels]") {
  torch::manual_seed(2306);
  struct Case {
    int64_t batch, rows, cols;
  };
  // Sizes below, at and across the 32-element tile, and enough tiles to split over the threads.
  for (const Case& c : {Case{1, 1, 1}, Case{2, 31, 33}, Case{3, 64, 32}, Case{2, 257, 70}, Case{1, 5, 1000}}) {
    INFO("batch " << c.batch << " rows " << c.rows << " cols " << c.cols);
    // The source: rows of a wider matrix (leading dim cols + 3) in batches 7 elements apart.
    const int64_t src_ld = c.cols + 3, src_batch = c.rows * src_ld + 7;
    const int64_t dst_ld = c.rows + 5, dst_batch = c.cols * dst_ld + 2;
    for (auto dt : {torch::kFloat32, torch::kFloat64}) {
      Tensor src = torch::randn({c.batch * src_batch}, torch::TensorOptions().dtype(dt));
      Tensor dst = torch::full({c.batch * dst_batch}, -7.0, torch::TensorOptions().dtype(dt));
      if (dt == torch::kFloat32)
        mgl::cpu::transpose(src.data_ptr<float>(), dst.data_ptr<float>(), c.batch, c.rows, c.cols, src_ld, dst_ld,
                            src_batch, dst_batch);
      else
        mgl::cpu::transpose(src.data_ptr<double>(), dst.data_ptr<double>(), c.batch, c.rows, c.cols, src_ld, dst_ld,
                            src_batch, dst_batch);
      Tensor s = src.as_strided({c.batch, c.rows, c.cols}, {src_batch, src_ld, 1});
      Tensor d = dst.as_strided({c.batch, c.cols, c.rows}, {dst_batch, dst_ld, 1});
      CHECK(torch::equal(d, s.transpose(1, 2)));
      // Nothing outside the destination's matrices is written.
      Tensor touched = torch::zeros({c.batch * dst_batch}, torch::kBool);
      touched.as_strided({c.batch, c.cols, c.rows}, {dst_batch, dst_ld, 1}).fill_(true);
      CHECK((dst.masked_select(touched.logical_not()) == -7.0).all().item<bool>());
    }
  }
}

TEST_CASE("cpu::ema_carry_scan and its adjoint on fp32 storage equal the fp64 scan rounded to fp32", "[cpu_kernels][cema]") {
  torch::manual_seed(2307);
  const int64_t D = 3, B = 2, M = 9, N = 5;
  auto c128 = torch::TensorOptions().dtype(torch::kComplexDouble);
  Tensor q = torch::polar(torch::rand({D, N}, f64) * 0.5 + 0.45, torch::rand({D, N}, f64) * 3);
  // fp32 inputs, so that both runs see the same values.
  Tensor S = torch::randn({D, B, M, N}, torch::kComplexFloat), gH = torch::randn({D, B, M, N}, torch::kComplexFloat);
  auto cf = [](const Tensor& t) { return reinterpret_cast<std::complex<float>*>(t.data_ptr<c10::complex<float>>()); };
  auto cd = [](const Tensor& t) { return reinterpret_cast<std::complex<double>*>(t.data_ptr<c10::complex<double>>()); };
  Tensor H32 = torch::empty_like(S), Sd = S.to(torch::kComplexDouble), H64 = torch::empty_like(Sd);
  mgl::cpu::ema_carry_scan(cf(S), cd(q), cf(H32), D, B, M, N);
  mgl::cpu::ema_carry_scan(cd(Sd), cd(q), cd(H64), D, B, M, N);
  CHECK(torch::equal(H32, H64.to(torch::kComplexFloat)));
  CHECK(H64.abs().max().item<double>() > 0.5);  // the recurrence did run
  Tensor gS32 = torch::empty_like(S), gq32 = torch::empty({D, B, N}, c128);
  Tensor gS64 = torch::empty_like(Sd), gq64 = torch::empty({D, B, N}, c128);
  mgl::cpu::ema_carry_scan_adjoint(cf(gH), cf(H32), cd(q), cf(gS32), cd(gq32), D, B, M, N);
  mgl::cpu::ema_carry_scan_adjoint(cd(gH.to(torch::kComplexDouble)), cd(H32.to(torch::kComplexDouble)), cd(q), cd(gS64),
                                   cd(gq64), D, B, M, N);
  CHECK(torch::equal(gS32, gS64.to(torch::kComplexFloat)));
  CHECK(torch::equal(gq32, gq64));
}
