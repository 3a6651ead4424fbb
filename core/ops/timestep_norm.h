// Reference (LibTorch) path of timestep normalisation, spec §2.
#pragma once
#include <torch/torch.h>

namespace mgl::ops {

// The carried statistics of a TimestepNorm: how many timesteps were seen and their pooled group
// mean and (population) variance. Kept in fp32 (fp64 for fp64 inputs) whatever x's dtype (§2.2).
struct NormState {
  torch::Tensor count;  // B, int64
  torch::Tensor mean;   // B×G
  torch::Tensor var;    // B×G
  bool defined() const { return count.defined(); }
  NormState detach() const { return {count, mean.detach(), var.detach()}; }
};

struct TimestepNormOutput {
  torch::Tensor y;  // B×L×D, x's dtype
  NormState state;  // after the last step
};

// Causal group normalisation (§2.1): at each step t the statistics are the pooled mean/variance
// of every element of the group over the non-padded steps 1..t, seeded with `prev` counted as
// prev.count observations.
//   x: B×L×D;  weight, bias: D (weight is the *effective* scale, i.e. the module's w + 1)
//   prev: state to continue from (count may be 0: then the prior mean/var get weight 0)
//   padding_mask: B×L bool (true = padded) or undefined; padded steps give y = 0, no update.
//
// Implementation: per-token group moments, then prefix sums of count, mean and second moment in
// fp64, centred on a per-(b, group) shift to avoid cancellation. Differentiable by autograd.
TimestepNormOutput timestep_norm(const torch::Tensor& x, int64_t num_groups, const torch::Tensor& weight,
                                 const torch::Tensor& bias, const NormState& prev,
                                 const torch::Tensor& padding_mask, double eps);

// Per-token group normalisation over G groups of the channel dimension (the "group" ablation and
// the classification norm): TimestepNorm with its statistics reset at every token.
torch::Tensor group_norm_per_token(const torch::Tensor& x, int64_t num_groups, const torch::Tensor& weight,
                                   const torch::Tensor& bias, double eps);

// GroupNorm over the whole sequence (the non-causal `group_sequence_norm` of §2.6; the paper's
// "Group Norm replaces Timestep Norm" for classification): each (b, group) is normalised with the
// mean and population variance of its elements at the valid (unpadded) positions. Padded positions
// are normalised with the same statistics (callers mask them). Stats in fp32 (fp64 for fp64 input);
// differentiable by autograd.
torch::Tensor group_norm_sequence(const torch::Tensor& x, int64_t num_groups, const torch::Tensor& weight,
                                  const torch::Tensor& bias, const torch::Tensor& padding_mask, double eps);

// Whole-sequence group statistics (the non-causal `sequence_norm` of §2.6), used as an oracle:
// mean and population variance of x[b, valid t, group]. Returns (mean, var), each B×G fp64.
std::pair<torch::Tensor, torch::Tensor> sequence_group_moments(const torch::Tensor& x, int64_t num_groups,
                                                               const torch::Tensor& padding_mask);

}  // namespace mgl::ops
