// Torch-facing CUDA glue of the CEMA kernels: the fused scan (cema_scan.h) as a differentiable op,
// and the impulse response (cema_impulse_response.h). Compiled only against a CUDA LibTorch
// (MEGALODON_WITH_CUDA_GLUE); the module (core/modules/cema.cpp) chooses it with
// mgl::kernels::use_fused and the rules of mgl::kernels::cema_unsupported.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>

#include "core/ops/cema.h"

namespace mgl::cuda {

// Whether the fused scan takes these operands; when not, `why` says what it lacks. Taken: complex
// (CEMA) coefficients in fp32 with fp32 or bf16 activations, or fp64 with fp64; L ≥ 1; 1 ≤ N ≤
// 256; B·D < 2^31 (kernels::cema_unsupported); x, the coefficients, omega and h0 (when given) all
// on one CUDA device.
bool cema_scan_supports(const ops::EmaCoeffs& c, const torch::Tensor& x, const torch::Tensor& omega = {},
                        const torch::Tensor& h0 = {}, std::string* why = nullptr);

// One direction of the CEMA layer by the fused kernels:
//   y = fftconv(x, k) + bias(h0) + ω x  (x's dtype),   h_last = ema_hidden(x, c, h0)  (complex B×D×N)
// (spec §1.4–§1.6), with time reversed when `reverse` (the backward half of §1.8). omega (D
// elements) and h0 (complex B×D×N) may be undefined (no skip term / zero state). Differentiable
// with respect to x, the coefficients, omega and h0. Fails (c10::Error) on operands the scan does
// not take (cema_scan_supports).
std::pair<torch::Tensor, torch::Tensor> cema_scan(const torch::Tensor& x, const ops::EmaCoeffs& c,
                                                  const torch::Tensor& omega, const torch::Tensor& h0, bool reverse);

// The impulse response k of spec §1.4 by the CUDA kernel; same contract as ops::ema_kernel for
// complex coefficients on a CUDA device (forward only: no autograd).
torch::Tensor cema_impulse_response_cuda(const ops::EmaCoeffs& c, int64_t L);

}  // namespace mgl::cuda
