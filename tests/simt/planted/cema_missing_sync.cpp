// Planted bug: see planted.h (cema_forward_missing_sync). The included cema_scan.cuh is the generated scratch
// copy.
#include <cuda_runtime.h>

#include "simt/planted/planted.h"

#define mgl mgl_planted_cema_missing_sync
#include "planted/cema_missing_sync/cema_scan.cuh"
#undef mgl

void planted::cema_forward_missing_sync(const float* x, const float* p, const float* log_q, const float* eta,
                                        const float* omega, const float* h0, float* y, float* h_last,
                                        float* states, int64_t B, int64_t D, int64_t N, int64_t L) {
  mgl_planted_cema_missing_sync::cuda::cema_scan_forward<float, float>(x, p, log_q, eta, omega, h0, y, h_last,
                                                                       states, B, D, N, L, false, nullptr);
}
