// Helpers of the torch-facing glue (core/cuda/<op>/<op>_glue.cpp): compiled only against a LibTorch
// with CUDA (MEGALODON_WITH_CUDA_GLUE), or in the glue compile check against the CPU LibTorch's CUDA
// headers.
#pragma once
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include "core/cuda/common/launch.h"

namespace mgl::cuda {

// The current stream of the current device as the kernels' `void* stream`.
inline void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Fails with `what` and the runtime's message when the last launch did not start.
inline void check_launch(const char* what) {
  const char* e = launch_error();
  TORCH_CHECK(e == nullptr, what, ": CUDA kernel launch failed: ", e ? e : "");
}

// True when the glue was compiled in and a CUDA device is present.
inline bool kernels_available() { return device_count() > 0 && torch::cuda::is_available(); }

}  // namespace mgl::cuda
