// Per-token norms with the official (weight + 1) parameterisation (spec §3.1, §4.1).
#pragma once
#include <torch/torch.h>

namespace mgl::ops {

// x · rsqrt(mean(x²) + eps) [· weight], the mean taken in fp32 (fp64 for fp64); weight is the
// effective scale (the module's w + 1) or undefined for no affine.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// LayerNorm over the last dimension, statistics in fp32 (fp64 for fp64).
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                         double eps);

}  // namespace mgl::ops
