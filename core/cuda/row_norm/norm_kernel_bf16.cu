#include "core/cuda/norm_kernel.cuh"

namespace mgl::cuda {
template void row_norm_forward<bf16_t>(const bf16_t*, const float*, const float*, int64_t, int64_t, bool, float,
                                       bf16_t*, float*, float*, void*);
template void row_norm_backward<bf16_t>(const bf16_t*, const bf16_t*, const float*, const float*, const float*,
                                        int64_t, int64_t, bool, bf16_t*, float*, float*, void*, void*);
}  // namespace mgl::cuda
