// Torch-facing CUDA glue of the fused timestep norm (timestep_norm.h; the autograd Function is in
// timestep_norm_autograd.h). Compiled only against a CUDA LibTorch (MEGALODON_WITH_CUDA_GLUE); the
// module chooses it with mgl::kernels::use_fused and kernels::timestep_norm_unsupported.
#pragma once
#include <torch/torch.h>

#include "core/ops/timestep_norm.h"

namespace mgl::cuda {

// Same contract as ops::timestep_norm (spec §2) for CUDA tensors: x B×L×D fp32 or bf16 (y in
// x's dtype), weight = the effective scale (w + 1) and bias D, prev: count B int64, mean/var B×G;
// padding_mask B×L bool or undefined. The returned state is fp32. Differentiable in x, weight,
// bias, prev.mean and prev.var. x must be fp32 or bf16 (kernels::timestep_norm_unsupported).
ops::TimestepNormOutput timestep_norm_cuda(const torch::Tensor& x, int64_t num_groups, const torch::Tensor& weight,
                                           const torch::Tensor& bias, const ops::NormState& prev,
                                           const torch::Tensor& padding_mask, double eps);

}  // namespace mgl::cuda
