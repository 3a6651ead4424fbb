#include "core/cuda/timestep_norm/timestep_norm.cuh"

namespace mgl::cuda {
template void timestep_norm_forward<float>(const TimestepNormShape&, const float*, const float*, const float*, const bool*,
                                           const int64_t*, const float*, const float*, float, float*, float*, float*,
                                           float*, float*, void*, void*);
template void timestep_norm_backward<float>(const TimestepNormShape&, const float*, const float*, const float*, const bool*,
                                            const double*, const int64_t*, const float*, const int64_t*, const float*,
                                            const float*, const float*, const float*, const float*, float*, float*,
                                            float*, float*, float*, void*, void*);

// The workspace sizes do not depend on the dtype: defined once, here.
size_t timestep_norm_forward_workspace_bytes(const TimestepNormShape& s) { return timestep_norm_detail::fwd_layout(s, nullptr, nullptr); }
size_t timestep_norm_backward_workspace_bytes(const TimestepNormShape& s) { return timestep_norm_detail::bwd_layout(s, nullptr, nullptr); }
}  // namespace mgl::cuda
