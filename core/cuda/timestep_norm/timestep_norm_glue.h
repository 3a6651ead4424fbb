// Torch-facing glue of the fused timestep norm (timestep_norm.h): a custom autograd
// Function over the forward and backward kernels. Compiled only against a CUDA LibTorch
// (MEGALODON_WITH_CUDA_GLUE); the module chooses it with mgl::kernels::use_fused.
#pragma once
#include <torch/torch.h>

#include "core/ops/timestep_norm.h"

namespace mgl::cuda {

// Whether the kernels take this input dtype (fp32, bf16); others go to the reference path.
bool timestep_norm_dtype_supported(torch::ScalarType t);

// Same contract as ops::timestep_norm (spec §2) for CUDA tensors: x B×L×D fp32 or bf16 (y in
// x's dtype), weight = the effective scale (w + 1) and bias D, prev: count B int64, mean/var B×G;
// padding_mask B×L bool or undefined. The returned state is fp32. Differentiable in x, weight,
// bias, prev.mean and prev.var.
ops::TimestepNormOutput timestep_norm_cuda(const torch::Tensor& x, int64_t num_groups, const torch::Tensor& weight,
                                           const torch::Tensor& bias, const ops::NormState& prev,
                                           const torch::Tensor& padding_mask, double eps);

}  // namespace mgl::cuda
