// Per-element arithmetic of the fused per-token norms (RMSNorm §3.1, LayerNorm §4.1) as
// __host__ __device__ functions shared by the CUDA kernels (row_norm.cuh) and the CPU tests.
// Compiles with g++.
#pragma once
#include "core/cuda/common/host_device.h"

namespace mgl::cuda::row_norm {

// y = x̂ w + b with x̂ = (x − μ) r (LayerNorm; μ = 0 for RMSNorm, r = rsqrt(mean(x²) + eps)).
MGL_HD float apply(float x, float mean, float rstd, float w, float b) { return (x - mean) * rstd * w + b; }

// dx of either norm, from the row means m1 = mean_c(dy w) (LayerNorm only; 0 for RMSNorm) and
// m2 = mean_c(dy w x̂):   dx = r (dy w − m1 − x̂ m2).
MGL_HD float dx(float dy, float x, float w, float mean, float rstd, float m1, float m2) {
  const float xhat = (x - mean) * rstd;
  return rstd * (dy * w - m1 - xhat * m2);
}

}  // namespace mgl::cuda::row_norm
