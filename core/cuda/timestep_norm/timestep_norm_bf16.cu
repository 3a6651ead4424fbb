#include "core/cuda/timestep_norm/timestep_norm.cuh"

namespace mgl::cuda {
template void timestep_norm_forward<bf16>(const TimestepNormShape&, const bf16*, const float*, const float*, const bool*,
                                            const int64_t*, const float*, const float*, float, bf16*, float*,
                                            float*, float*, float*, void*, void*);
template void timestep_norm_backward<bf16>(const TimestepNormShape&, const bf16*, const bf16*, const float*,
                                             const bool*, const double*, const int64_t*, const float*,
                                             const int64_t*, const float*, const float*, const float*, const float*,
                                             const float*, bf16*, float*, float*, float*, float*, void*, void*);
}  // namespace mgl::cuda
