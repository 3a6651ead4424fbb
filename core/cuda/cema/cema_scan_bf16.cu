// Explicit instantiation of the fused CEMA scan for Bf16 activations (float state and coefficients).
#include "core/cuda/cema_scan.cuh"

namespace mgl::cuda {
template void cema_scan_forward<Bf16, float>(const Bf16*, const float*, const float*, const float*, const float*, const float*, Bf16*,
                                          float*, float*, int64_t, int64_t, int64_t, int64_t, bool, void*);
template void cema_scan_backward<Bf16, float>(const Bf16*, const float*, const Bf16*, const float*, const float*, const float*,
                                           const float*, const float*, Bf16*, float*, float*, float*, float*, float*, int64_t, int64_t,
                                           int64_t, int64_t, bool, void*);
}  // namespace mgl::cuda
