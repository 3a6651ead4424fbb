// Torch-facing CUDA glue of the fused per-token norms (row_norm.h; the autograd Function is in
// row_norm_autograd.h). Compiled only against a CUDA LibTorch (MEGALODON_WITH_CUDA_GLUE).
#pragma once
#include <torch/torch.h>

namespace mgl::cuda {

// RMSNorm (subtract_mean = false) or LayerNorm (true) over the last dimension of a CUDA tensor,
// same contract as ops::rms_norm / ops::layer_norm: weight is the effective scale (w + 1) or
// undefined, bias D or undefined; fp32 statistics; y in x's dtype. Differentiable in x, weight, bias.
// x must be fp32 or bf16 (kernels::row_norm_unsupported; the module sends other dtypes to the
// reference path).
torch::Tensor row_norm_cuda(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            bool subtract_mean, double eps);

}  // namespace mgl::cuda
