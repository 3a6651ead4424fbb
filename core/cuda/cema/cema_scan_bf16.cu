// Explicit instantiation of the fused CEMA scan for bf16 activations (float state and coefficients).
#include "core/cuda/cema/cema_scan.cuh"

namespace mgl::cuda {
template void cema_scan_forward<bf16, float>(const bf16*, const float*, const float*, const float*, const float*, const float*, bf16*,
                                          float*, float*, int64_t, int64_t, int64_t, int64_t, bool, void*);
template void cema_scan_backward<bf16, float>(const bf16*, const float*, const bf16*, const float*, const float*, const float*,
                                           const float*, const float*, bf16*, float*, float*, float*, float*, float*, int64_t, int64_t,
                                           int64_t, int64_t, bool, void*);
}  // namespace mgl::cuda
