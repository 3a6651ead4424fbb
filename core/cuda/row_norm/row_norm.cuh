// Implementation of the fused per-token norms (row_norm.h); instantiated per dtype in
// row_norm_{f32,bf16}.cu.
//   forward:  one warp per row: mean (LayerNorm), then the centred second moment (two passes over
//             the row, the second from L1), y = x̂ w + b; saves the row's mean and rstd.
//   backward: one warp per row for dx (row means of dy·w and dy·w·x̂, then dx); a channel-tiled
//             kernel for the dweight/dbias partial sums over row blocks (Kahan), reduced in a fixed
//             order (deterministic), as in the timestep norm's backward (common/reduce.cuh).
// Bytes: forward 2·N·s (+ the second read of x when the row is not in L1), backward 5·N·s.
#pragma once
#include <cuda_runtime.h>

#include "core/cuda/common/bf16.h"
#include "core/cuda/common/launch.h"
#include "core/cuda/common/reduce.cuh"
#include "core/cuda/row_norm/row_norm.h"
#include "core/cuda/row_norm/row_norm_math.h"

namespace mgl::cuda {
namespace row_norm_detail {

using common::warp_sum;

template <typename T>
__global__ void fwd_kernel(const T* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                           int64_t R, int64_t D, bool sub, float eps, T* __restrict__ y, float* __restrict__ mean,
                           float* __restrict__ rstd) {
  const int64_t r = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (r >= R) return;  // whole warps
  const T* xr = x + r * D;
  float mu = 0.f;
  if (sub) {
    float s = 0.f;
    for (int64_t c = lane; c < D; c += 32) s += to_float(xr[c]);
    mu = warp_sum(s) / static_cast<float>(D);
  }
  float q = 0.f;
  for (int64_t c = lane; c < D; c += 32) {
    const float d = to_float(xr[c]) - mu;
    q += d * d;
  }
  const float rs = rsqrtf(warp_sum(q) / static_cast<float>(D) + eps);
  for (int64_t c = lane; c < D; c += 32)
    y[r * D + c] = from_float<T>(row_norm::apply(to_float(xr[c]), mu, rs, w ? w[c] : 1.f, b ? b[c] : 0.f));
  if (lane == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <typename T>
__global__ void dx_kernel(const T* __restrict__ x, const T* __restrict__ dy, const float* __restrict__ w,
                          const float* __restrict__ mean, const float* __restrict__ rstd, int64_t R, int64_t D,
                          bool sub, T* __restrict__ dx) {
  const int64_t r = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (r >= R) return;
  const T* xr = x + r * D;
  const T* dr = dy + r * D;
  const float mu = mean[r], rs = rstd[r];
  float s1 = 0.f, s2 = 0.f;
  for (int64_t c = lane; c < D; c += 32) {
    const float g = to_float(dr[c]) * (w ? w[c] : 1.f);
    s1 += g;
    s2 += g * (to_float(xr[c]) - mu) * rs;
  }
  const float m1 = sub ? warp_sum(s1) / static_cast<float>(D) : 0.f;
  const float m2 = warp_sum(s2) / static_cast<float>(D);
  for (int64_t c = lane; c < D; c += 32)
    dx[r * D + c] = from_float<T>(row_norm::dx(to_float(dr[c]), to_float(xr[c]), w ? w[c] : 1.f, mu, rs, m1, m2));
}

// grid (⌈D/256⌉, NB): thread = channel; partial Σ dy x̂ and Σ dy over a block of rows.
template <typename T>
__global__ void wb_partial_kernel(const T* __restrict__ x, const T* __restrict__ dy, const float* __restrict__ mean,
                                  const float* __restrict__ rstd, int64_t R, int64_t rows_per_block, int64_t D,
                                  float* __restrict__ pw, float* __restrict__ pb) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= D) return;
  const int64_t r0 = int64_t{blockIdx.y} * rows_per_block;
  const int64_t r1 = r0 + rows_per_block < R ? r0 + rows_per_block : R;
  float aw = 0.f, cw = 0.f, ab = 0.f, cb = 0.f;
  for (int64_t r = r0; r < r1; ++r) {
    const float d = to_float(dy[r * D + c]);
    kahan_add(aw, cw, d * (to_float(x[r * D + c]) - mean[r]) * rstd[r]);
    kahan_add(ab, cb, d);
  }
  pw[int64_t{blockIdx.y} * D + c] = aw;
  pb[int64_t{blockIdx.y} * D + c] = ab;
}

inline int64_t row_blocks(int64_t R, int64_t D) {
  int64_t nb = 2048 / ((D + 255) / 256);
  if (nb < 1) nb = 1;
  return nb < R ? nb : (R > 0 ? R : 1);
}

}  // namespace row_norm_detail

template <typename T>
void row_norm_forward(const T* x, const float* weight, const float* bias, int64_t R, int64_t D, bool subtract_mean,
                      float eps, T* y, float* mean, float* rstd, void* stream) {
  if (R == 0 || D == 0) return;
  MGL_LAUNCH(row_norm_detail::fwd_kernel<T>, static_cast<unsigned>((R * 32 + 255) / 256), 256, 0, static_cast<cudaStream_t>(stream))(
      x, weight, bias, R, D, subtract_mean, eps, y, mean, rstd);
}

template <typename T>
void row_norm_backward(const T* x, const T* dy, const float* weight, const float* mean, const float* rstd, int64_t R,
                       int64_t D, bool subtract_mean, T* dx, float* dweight, float* dbias, void* workspace,
                       void* stream) {
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (D == 0) return;
  if (R > 0)
    MGL_LAUNCH(row_norm_detail::dx_kernel<T>, static_cast<unsigned>((R * 32 + 255) / 256), 256, 0, st)(x, dy, weight, mean, rstd,
                                                                                               R, D, subtract_mean, dx);
  if (dweight == nullptr && dbias == nullptr) return;
  const int64_t nb = row_norm_detail::row_blocks(R, D), rpb = R > 0 ? (R + nb - 1) / nb : 0;
  float* pw = static_cast<float*>(workspace);
  float* pb = pw + nb * D;
  float* scratch = pb + nb * D;  // 2·D: the output nobody asked for
  if (R == 0) {
    cudaMemsetAsync(pw, 0, 2 * nb * D * sizeof(float), st);
  } else {
    MGL_LAUNCH(row_norm_detail::wb_partial_kernel<T>, dim3(static_cast<unsigned>((D + 255) / 256), static_cast<unsigned>(nb)), 256,
                                          0, st)(x, dy, mean, rstd, R, rpb, D, pw, pb);
  }
  MGL_LAUNCH(common::reduce_partials_kernel<T>, static_cast<unsigned>((D + 255) / 256), 256, 0, st)(
      pw, pb, dweight ? dweight : scratch, dbias ? dbias : scratch + D, nb, D);
}

}  // namespace mgl::cuda
