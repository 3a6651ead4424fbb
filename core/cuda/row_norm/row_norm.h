// Fused per-token norms over the last dimension (RMSNorm §3.1, LayerNorm §4.1), forward and
// backward, for fp32 and bf16 rows with fp32 statistics. CUDA-free API over device pointers;
// implementation in row_norm.cuh, one instantiation per dtype in row_norm_{f32,bf16}.cu.
//
// x, y, dy, dx: R×D contiguous rows; weight (the effective scale w + 1) and bias: D fp32, either
// may be null (no affine / no bias). subtract_mean: LayerNorm (true) or RMSNorm (false).
// mean and rstd: R fp32 per-row statistics saved by the forward (mean is 0 for RMSNorm).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/cuda/common/bf16.h"

namespace mgl::cuda {

// Null when the kernels take R rows of D channels, else why not (checked by the glue and
// mgl::kernels::row_norm_unsupported before launching).
inline const char* row_norm_shape_error(int64_t R, int64_t D) {
  if (R < 0 || D < 0) return "negative dimensions";
  if (R > int64_t{2147483647} * 8) return "the row norms run one warp per row: R must be < 2^34";
  return nullptr;
}

template <typename T>
void row_norm_forward(const T* x, const float* weight, const float* bias, int64_t R, int64_t D, bool subtract_mean,
                      float eps, T* y, float* mean, float* rstd, void* stream);

size_t row_norm_backward_workspace_bytes(int64_t R, int64_t D);

// dweight and dbias may be null when the norm has no weight / no bias.
template <typename T>
void row_norm_backward(const T* x, const T* dy, const float* weight, const float* mean, const float* rstd, int64_t R,
                       int64_t D, bool subtract_mean, T* dx, float* dweight, float* dbias, void* workspace,
                       void* stream);

}  // namespace mgl::cuda
