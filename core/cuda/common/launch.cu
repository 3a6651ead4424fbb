// The CUDA-runtime side of launch.h (one definition for the whole kernel library).
#include <cuda_runtime.h>

#include "core/cuda/common/launch.h"

namespace mgl::cuda {

const char* launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

int device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

}  // namespace mgl::cuda
