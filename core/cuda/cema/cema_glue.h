// Torch-facing glue of the CEMA kernels: the fused scan (cema_scan.h), a custom autograd Function
// over its forward and backward kernels, and the impulse response (cema_impulse_response.h). Compiled only against a CUDA LibTorch
// (MEGALODON_WITH_CUDA_GLUE); the dispatch lives in core/modules/cema.cpp.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>

#include "core/ops/cema.h"

namespace mgl::cuda {

// Whether the fused scan covers these operands; when not, `why` says what it lacks. Covered:
// complex (CEMA) coefficients in fp32 with fp32 or bf16 activations, or fp64 with fp64; any L ≥ 1;
// N ≤ 256; all tensors on one CUDA device.
bool cema_scan_supports(const ops::EmaCoeffs& c, const torch::Tensor& x, std::string* why = nullptr);

// One direction of the CEMA layer by the fused kernels:
//   y = fftconv(x, k) + bias(h0) + ω x  (x's dtype),   h_last = ema_hidden(x, c, h0)  (complex B×D×N)
// (spec §1.4–§1.6), with time reversed when `reverse` (the backward half of §1.8). omega (D
// elements) and h0 (complex B×D×N) may be undefined (no skip term / zero state). Differentiable
// with respect to x, the coefficients, omega and h0.
std::pair<torch::Tensor, torch::Tensor> cema_scan(const torch::Tensor& x, const ops::EmaCoeffs& c,
                                                  const torch::Tensor& omega, const torch::Tensor& h0, bool reverse);

// The impulse response k of spec §1.4 by the CUDA kernel; same contract as ops::ema_kernel for
// complex coefficients on a CUDA device (forward only: no autograd).
torch::Tensor cema_impulse_response_cuda(const ops::EmaCoeffs& c, int64_t L);

}  // namespace mgl::cuda
