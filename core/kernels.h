// Choosing between the fused CUDA kernels (core/cuda/) and the LibTorch reference path
// (core/ops/) for one op call. The reference path is the oracle and runs everywhere; a kernel runs
// only on CUDA tensors, in a build whose LibTorch has CUDA (MEGALODON_WITH_CUDA_GLUE).
#pragma once
#include <torch/torch.h>

#include "core/config.h"

namespace mgl::kernels {

// True when the torch-facing CUDA glue was compiled into this build.
constexpr bool glue_compiled() {
#ifdef MEGALODON_WITH_CUDA_GLUE
  return true;
#else
  return false;
#endif
}

// Whether the call on `x` takes the fused kernel under `impl`:
//   reference → false;  auto → x is a CUDA tensor and the glue is compiled in;
//   fused     → true when it can run, else a ConfigError naming `key` (e.g. "model.kernel_cema")
//               and why (CPU tensor, no CUDA glue in this build).
bool use_fused(KernelImpl impl, const torch::Tensor& x, const char* key);

}  // namespace mgl::kernels
