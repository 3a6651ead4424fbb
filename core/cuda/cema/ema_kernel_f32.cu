#include "core/cuda/ema_kernel.cuh"

namespace mgl::cuda {
template void ema_kernel_forward<float>(const float*, const float*, const float*, float*, int64_t, int64_t,
                                        int64_t, void*);
int device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}
}  // namespace mgl::cuda
