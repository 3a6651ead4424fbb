// The fused RMSNorm / LayerNorm (core/cuda/row_norm/) run by the SIMT executor, through the autograd
// Function the CUDA glue uses (row_norm_autograd.h), against ops::rms_norm / ops::layer_norm and
// their autograd; oracle: the reference path in fp64. Rule: kernel error ≤ 2 × the reference
// path's own (fp32 or bf16) + a floor (the GPU check's). Shapes: rows shorter than, equal to and
// longer than a warp (1, 31, 64, 300 channels), one row, a partial block of rows and a multi-block
// grid (1, 17, 70 rows), with and without weight and bias (the undefined-tensor save path),
// contiguous and transposed input.
#include <fmt/format.h>

#include "core/cuda/row_norm/row_norm_autograd.h"
#include "core/ops/norms.h"
#include "simt/support.h"

using namespace mgl;
using mgl::simt_tests::check_2x;
using mgl::simt_tests::NoStream;
using torch::Tensor;

TEST_CASE("simt row norms: RMSNorm and LayerNorm, fwd/bwd, fp32 and bf16", "[row_norm]") {
  torch::manual_seed(0);
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  int round = 0;
  for (bool layer : {false, true})
    for (int64_t D : {1, 31, 64, 300})
      for (int64_t R : {1, 17, 70}) {
        const bool affine = round % 2 == 0, transposed = round % 3 == 1;
        ++round;
        Tensor x = transposed ? (torch::randn({1, D, R}, f64) * 2 + 1).transpose(1, 2)
                              : torch::randn({1, R, D}, f64) * 2 + 1;
        Tensor w = affine ? torch::randn({D}, f64) * 0.2 + 1 : Tensor();
        Tensor b = affine && layer ? torch::randn({D}, f64) * 0.2 : Tensor();
        Tensor dy = torch::randn({1, R, D}, f64);
        auto run = [&](bool kernel, torch::Dtype dt) {
          Tensor xx = x.detach().to(dt).requires_grad_();
          const auto pdt = dt == torch::kFloat64 ? dt : torch::kFloat32;
          Tensor ww = w.defined() ? w.detach().to(pdt).requires_grad_() : w;
          Tensor bb = b.defined() ? b.detach().to(pdt).requires_grad_() : b;
          Tensor y = kernel ? cuda::row_norm_run<NoStream>(xx, ww, bb, layer, 1e-5)
                            : (layer ? ops::layer_norm(xx, ww, bb, 1e-5) : ops::rms_norm(xx, ww, 1e-5));
          std::vector<Tensor> in{xx};
          if (ww.defined()) in.push_back(ww);
          if (bb.defined()) in.push_back(bb);
          auto g = torch::autograd::grad({(y.to(torch::kFloat64) * dy).sum()}, in);
          std::vector<Tensor> out{y.detach().to(torch::kFloat64)};
          for (auto& t : g) out.push_back(t.to(torch::kFloat64));
          return out;
        };
        const auto oracle = run(false, torch::kFloat64);
        for (torch::Dtype dt : {torch::kFloat32, torch::kBFloat16}) {
          const auto ref = run(false, dt), ker = run(true, dt);
          const std::string tag =
              fmt::format("{} {} D={} R={} affine={} transposed={}", layer ? "layernorm" : "rmsnorm",
                          dt == torch::kFloat32 ? "fp32" : "bf16", D, R, affine, transposed);
          mgl::simt_tests::require_no_findings(tag);
          const double floor = dt == torch::kFloat32 ? 1e-5 : 1e-2;
          const char* names[] = {"y", "dx", "dweight", "dbias"};
          REQUIRE(ker.size() == oracle.size());
          for (size_t i = 0; i < oracle.size(); ++i)
            check_2x(ker[i], ref[i], oracle[i], floor, std::string(names[i]) + " " + tag);
        }
      }
}

TEST_CASE("simt row norms: no kernel reads workspace it did not write (initcheck)", "[row_norm][race]") {
  REQUIRE(::simt::race_detector_enabled());
  torch::manual_seed(1);
  for (int64_t R : {0, 5, 70}) {
    const int64_t D = 40;
    Tensor x = torch::randn({R, D}), w = torch::ones({D}), dy = torch::randn({R, D});
    Tensor y = torch::empty_like(x), mean = torch::empty({R}), rstd = torch::empty({R});
    Tensor dx = torch::empty_like(x), dw = torch::empty({D}), db = torch::empty({D});
    Tensor ws =
        torch::empty({static_cast<int64_t>(cuda::row_norm_backward_workspace_bytes(R, D))}, torch::kUInt8);
    for (const Tensor* t : {&y, &mean, &rstd, &dx, &dw, &db, &ws})
      ::simt::track_uninitialized(t->data_ptr(), t->nbytes());
    cuda::row_norm_forward<float>(x.data_ptr<float>(), w.data_ptr<float>(), nullptr, R, D, true, 1e-5f,
                                  y.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
                                  nullptr);
    cuda::row_norm_backward<float>(x.data_ptr<float>(), dy.data_ptr<float>(), w.data_ptr<float>(),
                                   mean.data_ptr<float>(), rstd.data_ptr<float>(), R, D, true,
                                   dx.data_ptr<float>(), dw.data_ptr<float>(), db.data_ptr<float>(),
                                   ws.data_ptr(), nullptr);
    ::simt::untrack_all();
    mgl::simt_tests::require_no_findings(fmt::format("R={}", R));
    if (R == 0) {
      CHECK(dw.abs().max().item<float>() == 0.f);
      CHECK(db.abs().max().item<float>() == 0.f);
    }
  }
}
