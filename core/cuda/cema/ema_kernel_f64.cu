#include "core/cuda/ema_kernel.cuh"

namespace mgl::cuda {
template void ema_kernel_forward<double>(const double*, const double*, const double*, double*, int64_t, int64_t,
                                         int64_t, void*);
}  // namespace mgl::cuda
