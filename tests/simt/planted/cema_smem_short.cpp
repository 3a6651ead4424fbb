// Planted bug: see planted.h (cema_backward_smem_short). The included cema_scan.cuh is the
// generated scratch copy.
#include <cuda_runtime.h>

#include "simt/planted/planted.h"

#define mgl mgl_planted_cema_smem_short
#include "planted/cema_smem_short/cema_scan.cuh"
#undef mgl

void planted::cema_backward_smem_short(const float* grad_y, const float* grad_h_last, const float* x,
                                       const float* p, const float* log_q, const float* eta,
                                       const float* omega, const float* states, float* grad_x, float* part_p,
                                       float* part_log_q, float* part_eta, float* part_omega, float* grad_h0,
                                       int64_t B, int64_t D, int64_t N, int64_t L) {
  mgl_planted_cema_smem_short::cuda::cema_scan_backward<float, float>(
      grad_y, grad_h_last, x, p, log_q, eta, omega, states, grad_x, part_p, part_log_q, part_eta, part_omega,
      grad_h0, B, D, N, L, false, nullptr);
}
