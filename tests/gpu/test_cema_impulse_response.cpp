// The CEMA impulse response (the length-L EMA kernel k of spec §1.4) by the CUDA kernel against the
// reference path (ops::ema_kernel).
#include "gpu/gpu_check.h"

#ifdef MEGALODON_WITH_CUDA_GLUE
#include <fmt/format.h>

#include "core/cuda/cema/cema_glue.h"
#include "core/modules/cema.h"

MGL_GPU_CHECK("cema impulse_response") {
  torch::manual_seed(0);
  for (int64_t N : {16, 7}) {
    for (int64_t L : {1, 17, 32, 1000, 2048, 16384}) {
      mgl::ComplexEMA ema(mgl::ComplexEMAOptions(64, N));
      ema->to(torch::kCUDA);
      auto c = ema->coeffs();
      torch::NoGradGuard g;
      auto ref64 = mgl::ops::ema_kernel(
          {c.p.to(torch::kFloat64), c.log_q.to(torch::kComplexDouble), c.eta.to(torch::kComplexDouble)}, L);
      auto ref32 = mgl::ops::ema_kernel(c, L);
      auto ker = mgl::cuda::cema_impulse_response_cuda(c, L);
      const double e_ref = mgl::gpu_tests::max_abs_diff(ref32, ref64);
      const double tol = std::max(2.0 * e_ref, 1e-6 * ref64.abs().max().item<double>());
      report.expect_le(mgl::gpu_tests::max_abs_diff(ker, ref64), tol, fmt::format("impulse_response N={} L={}", N, L));
    }
  }
}
#endif
