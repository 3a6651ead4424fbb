#include "core/cuda/row_norm/row_norm.cuh"

namespace mgl::cuda {
template void row_norm_forward<bf16>(const bf16*, const float*, const float*, int64_t, int64_t, bool, float,
                                       bf16*, float*, float*, void*);
template void row_norm_backward<bf16>(const bf16*, const bf16*, const float*, const float*, const float*,
                                        int64_t, int64_t, bool, bf16*, float*, float*, void*, void*);
}  // namespace mgl::cuda
