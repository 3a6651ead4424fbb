#include "core/cuda/row_norm/row_norm.cuh"

namespace mgl::cuda {
template void row_norm_forward<float>(const float*, const float*, const float*, int64_t, int64_t, bool, float, float*,
                                      float*, float*, void*);
template void row_norm_backward<float>(const float*, const float*, const float*, const float*, const float*, int64_t,
                                       int64_t, bool, float*, float*, float*, void*, void*);
// Dtype-independent: defined once, here.
size_t row_norm_backward_workspace_bytes(int64_t R, int64_t D) {
  return static_cast<size_t>(2 * row_norm_detail::row_blocks(R, D) * D + 2 * D) * sizeof(float);
}
}  // namespace mgl::cuda
