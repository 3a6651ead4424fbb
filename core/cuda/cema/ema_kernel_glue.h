// Torch-facing glue of the CUDA kernel library (compiled only against a CUDA LibTorch).
#pragma once
#include <torch/torch.h>

#include "core/ops/cema.h"

namespace mgl::cuda {
// True when the glue was compiled in and a CUDA device is present.
bool kernels_available();
// ema_kernel (spec §1.4) computed by the CUDA kernel; same contract as ops::ema_kernel for
// complex coefficients on a CUDA device (forward only: no autograd).
torch::Tensor ema_kernel_cuda(const ops::EmaCoeffs& c, int64_t L);
}  // namespace mgl::cuda
