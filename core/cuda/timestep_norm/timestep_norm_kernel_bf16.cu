#include "core/cuda/timestep_norm_kernel.cuh"

namespace mgl::cuda {
template void timestep_norm_forward<bf16_t>(const TsnShape&, const bf16_t*, const float*, const float*, const bool*,
                                            const int64_t*, const float*, const float*, float, bf16_t*, float*,
                                            float*, float*, float*, void*, void*);
template void timestep_norm_backward<bf16_t>(const TsnShape&, const bf16_t*, const bf16_t*, const float*,
                                             const bool*, const double*, const int64_t*, const float*,
                                             const int64_t*, const float*, const float*, const float*, const float*,
                                             const float*, bf16_t*, float*, float*, float*, float*, void*, void*);
}  // namespace mgl::cuda
