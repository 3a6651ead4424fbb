// Explicit instantiation of the CEMA impulse response for fp64 coefficients.
#include "core/cuda/cema/cema_impulse_response.cuh"

namespace mgl::cuda {
template void cema_impulse_response_forward<double>(const double*, const double*, const double*, double*,
                                                    int64_t, int64_t, int64_t, void*);
}  // namespace mgl::cuda
