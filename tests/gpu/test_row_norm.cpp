// The fused per-token norms (core/cuda/row_norm/: RMSNorm §3.1, LayerNorm §4.1) against the reference
// path (core/ops/norms), both against an fp64 oracle; forward and backward, fp32 and bf16, with and
// without affine parameters, contiguous and transposed (the RMSNorm after CEMA) inputs.
// Pass: kernel error ≤ 2 × the reference path's own + a floor.
#include "gpu/gpu_check.h"

#ifdef MEGALODON_WITH_CUDA_GLUE
#include <fmt/format.h>

#include "core/cuda/row_norm/row_norm_glue.h"
#include "core/ops/norms.h"

MGL_GPU_CHECK("row_norm") {
  using torch::Tensor;
  using mgl::gpu_tests::max_abs_diff;
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA).dtype(torch::kFloat64);
  for (bool layer : {false, true}) {
    for (int64_t D : {1, 31, 64, 1000, 4096}) {
      for (int64_t R : {1, 17, 4099}) {
        for (bool affine : {true, false}) {
          for (bool transposed : {false, true}) {
            // x as B×L×D; "transposed" builds it as a B×D×L tensor viewed back (CEMA's output layout).
            Tensor x = transposed ? (torch::randn({1, D, R}, cuda) * 2 + 1).transpose(1, 2)
                                  : torch::randn({1, R, D}, cuda) * 2 + 1;
            Tensor w = affine ? torch::randn({D}, cuda) * 0.2 + 1 : Tensor();
            Tensor b = affine && layer ? torch::randn({D}, cuda) * 0.2 : Tensor();
            Tensor dy = torch::randn({1, R, D}, cuda);
            auto run = [&](bool kernel, torch::Dtype dt) {
              Tensor xx = x.detach().to(dt).requires_grad_();
              Tensor ww = w.defined() ? w.detach().to(dt == torch::kFloat64 ? dt : torch::kFloat32).requires_grad_() : w;
              Tensor bb = b.defined() ? b.detach().to(dt == torch::kFloat64 ? dt : torch::kFloat32).requires_grad_() : b;
              Tensor y = kernel ? mgl::cuda::row_norm_cuda(xx, ww, bb, layer, 1e-5)
                                : (layer ? mgl::ops::layer_norm(xx, ww, bb, 1e-5) : mgl::ops::rms_norm(xx, ww, 1e-5));
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
              const double floor = dt == torch::kFloat32 ? 1e-5 : 1e-2;
              const char* names[] = {"y", "dx", "dweight", "dbias"};
              for (size_t i = 0; i < oracle.size(); ++i) {
                const double scale = std::max(1.0, oracle[i].abs().max().item<double>());
                const double e_ref = max_abs_diff(ref[i], oracle[i]), e_ker = max_abs_diff(ker[i], oracle[i]);
                report.expect_le(e_ker, 2 * e_ref + floor * scale,
                                 fmt::format("{} {} {} D={} R={} affine={} transposed={}", layer ? "layernorm" : "rmsnorm",
                                             names[i], dt == torch::kFloat32 ? "fp32" : "bf16", D, R, affine, transposed));
              }
            }
          }
        }
      }
    }
  }
}
#endif
