// Explicit instantiation of the fused CEMA scan for float activations (float state and coefficients).
#include "core/cuda/cema/cema_scan.cuh"

namespace mgl::cuda {
template void cema_scan_forward<float, float>(const float*, const float*, const float*, const float*, const float*, const float*, float*,
                                          float*, float*, int64_t, int64_t, int64_t, int64_t, bool, void*);
template void cema_scan_backward<float, float>(const float*, const float*, const float*, const float*, const float*, const float*,
                                           const float*, const float*, float*, float*, float*, float*, float*, float*, int64_t, int64_t,
                                           int64_t, int64_t, bool, void*);
}  // namespace mgl::cuda
