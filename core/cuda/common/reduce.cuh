// Reductions shared by the kernel families (device code; included by their .cuh files).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda/common/host_device.h"
#include "core/cuda/common/launch.h"

namespace mgl::cuda::common {

// Sum over the 32 lanes of a warp (xor butterfly; every lane gets the total). All 32 lanes must
// call it together.
__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Deterministic reduction of per-row-block partial sums (R × D, row-major) over the R blocks, one
// thread per channel, in a fixed order with Kahan compensation: the dweight / dbias sums of the
// timestep norm and the row norms (no atomics, so results do not depend on scheduling).
// T only gives each dtype's .cu file its own symbol.
template <typename T>
__global__ void reduce_partials_kernel(const float* __restrict__ pw, const float* __restrict__ pb,
                                       float* __restrict__ dweight, float* __restrict__ dbias, int64_t R,
                                       int64_t D) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= D) return;
  float aw = 0.f, cw = 0.f, ab = 0.f, cb = 0.f;
  for (int64_t r = 0; r < R; ++r) {
    kahan_add(aw, cw, pw[r * D + c]);
    kahan_add(ab, cb, pb[r * D + c]);
  }
  dweight[c] = aw;
  dbias[c] = ab;
}

}  // namespace mgl::cuda::common
