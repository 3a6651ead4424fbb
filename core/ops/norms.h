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

// The same two norms with less kept for the backward pass (issue 22), what the modules run; the
// functions above are their oracles. rms_norm_lowmem: a hand-written backward that keeps x and one
// rsqrt per row (autograd keeps x, the normalised x and more); layer_norm_lowmem: LibTorch's fused
// layer norm (keeps x, mean and rstd per row) for fp32/fp64 input, else layer_norm.
torch::Tensor rms_norm_lowmem(const torch::Tensor& x, const torch::Tensor& weight, double eps);
torch::Tensor layer_norm_lowmem(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                double eps);

}  // namespace mgl::ops
