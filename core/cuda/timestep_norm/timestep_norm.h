// Fused CUDA timestep normalisation (spec §2, §6.4), forward and backward. CUDA-free API over
// device pointers; implementation in timestep_norm.cuh, one instantiation per dtype in
// timestep_norm_{f32,bf16}.cu. Statistics are fp32 whatever the input dtype.
//
// Layouts: x, y, dy, dx: B×L×D (contiguous), D = G·g; weight (the effective scale w + 1) and bias:
// D fp32; mask: B×L bool (true = padded) or null; prev_count: B int64; prev_mean, prev_var: B×G
// fp32. The per-step statistics saved for backward, mean and rstd, are B×G×L fp32 (time
// contiguous per (b, group) column: the scan reads and writes them coalesced).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/cuda/common/bf16.h"
#include "core/cuda/timestep_norm/timestep_norm_scan.h"

namespace mgl::cuda {

struct TimestepNormShape {
  int64_t B, L, D, G;
};

// Null when the kernels take this shape, else why not. The glue and
// mgl::kernels::timestep_norm_unsupported check it before launching; the launchers assume it.
inline const char* timestep_norm_shape_error(const TimestepNormShape& s) {
  if (s.B < 0 || s.L < 0 || s.D < 0) return "negative dimensions";
  if (s.G < 1 || s.D % s.G != 0) return "the number of groups must divide D";
  if (s.B * s.G > 2147483647) return "the scan runs one block per (batch, group) column: B·G must be < 2^31";
  if (timestep_norm::num_chunks(s.L) > 65535) return "L must be <= 65535·4096 (the long scan's chunks are grid.y)";
  if (s.B * s.L * s.G > int64_t{2147483647} * 8) return "B·L·G must be < 2^34 (one warp per (b, t, group))";
  return nullptr;
}

// Scratch memory (device) the calls need; the caller allocates it (any alignment ≥ 256 bytes).
size_t timestep_norm_forward_workspace_bytes(const TimestepNormShape& s);
size_t timestep_norm_backward_workspace_bytes(const TimestepNormShape& s);

// Forward. Writes y, mean/rstd (B×G×L) and the final state mean_out/var_out (B×G; the count is
// prev_count + the number of valid steps, which the caller computes).
template <typename T>
void timestep_norm_forward(const TimestepNormShape& s, const T* x, const float* weight, const float* bias, const bool* mask,
                           const int64_t* prev_count, const float* prev_mean, const float* prev_var, float eps,
                           T* y, float* mean, float* rstd, float* mean_out, float* var_out, void* workspace,
                           void* stream);

// Backward. counts: B×L fp64, n_t = prev_count + valid steps up to t (needed only with a mask;
// null without one, then n_t = prev_count + t + 1). count_out: B int64 (the final count).
// dmean_out, dvar_out: gradients of the final state (B×G; null = 0). Writes dx, dweight and dbias
// (D), dprev_mean and dprev_var (B×G).
template <typename T>
void timestep_norm_backward(const TimestepNormShape& s, const T* x, const T* dy, const float* weight, const bool* mask,
                            const double* counts, const int64_t* prev_count, const float* prev_mean,
                            const int64_t* count_out, const float* mean, const float* rstd, const float* mean_out,
                            const float* dmean_out, const float* dvar_out, T* dx, float* dweight, float* dbias,
                            float* dprev_mean, float* dprev_var, void* workspace, void* stream);

}  // namespace mgl::cuda
