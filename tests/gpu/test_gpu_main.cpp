// GPU checks: the CUDA kernels against the reference path. Without a CUDA device (or without a
// CUDA LibTorch) this program prints why and exits 77, which ctest reports as "Skipped".
#include <torch/torch.h>

#include <cstdio>

#include "core/modules/cema.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include "core/cuda/ema_kernel_glue.h"
#endif

int main() {
#ifndef MEGALODON_WITH_CUDA_GLUE
  std::printf("SKIPPED: this LibTorch has no CUDA (the CUDA glue was not built)\n");
  return 77;
#else
  if (!mgl::cuda::kernels_available()) {
    std::printf("SKIPPED: no CUDA device present\n");
    return 77;
  }
  int failures = 0;
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
      auto ker = mgl::cuda::ema_kernel_cuda(c, L);
      const double e_ref = (ref32.to(torch::kFloat64) - ref64).abs().max().item<double>();
      const double e_ker = (ker.to(torch::kFloat64) - ref64).abs().max().item<double>();
      const double tol = std::max(2.0 * e_ref, 1e-6 * ref64.abs().max().item<double>());
      const bool ok = e_ker <= tol;
      failures += !ok;
      std::printf("%s ema_kernel N=%ld L=%ld: kernel err %.3g, reference err %.3g\n", ok ? "ok  " : "FAIL", N, L,
                  e_ker, e_ref);
    }
  }
  std::printf("%d passed, %d failed\n", 12 - failures, failures);
  return failures ? 1 : 0;
#endif
}
