// Helpers of the torch-facing CUDA glue (core/cuda/<op>/<op>_glue.cpp): compiled only against a
// LibTorch with CUDA (MEGALODON_WITH_CUDA_GLUE), or in the glue compile check against the CPU
// LibTorch's CUDA headers.
#pragma once
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include "core/cuda/common/autograd.h"
#include "core/cuda/common/launch.h"

namespace mgl::cuda {

// Stream policy of the autograd Functions (common/autograd.h): the current stream of the current
// device. The glue's entry points hold a c10::cuda::CUDAGuard on the operands' device, so that a
// tensor on another device than the current one is launched on its own device's stream.
struct CurrentCudaStream {
  static void* stream() { return c10::cuda::getCurrentCUDAStream().stream(); }
};

// True when the glue was compiled in and a CUDA device is present.
inline bool kernels_available() { return device_count() > 0 && torch::cuda::is_available(); }

}  // namespace mgl::cuda
