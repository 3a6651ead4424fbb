// Explicit instantiation of the CEMA impulse response for fp32 coefficients.
#include "core/cuda/cema/cema_impulse_response.cuh"

namespace mgl::cuda {
template void cema_impulse_response_forward<float>(const float*, const float*, const float*, float*, int64_t,
                                                   int64_t, int64_t, void*);
}  // namespace mgl::cuda
