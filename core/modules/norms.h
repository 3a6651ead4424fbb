// Norm modules with the official (weight + 1) parameterisation; weights start at 0.
#pragma once
#include <torch/torch.h>

#include "core/config.h"
#include "core/ops/documents.h"
#include "core/ops/timestep_norm.h"

namespace mgl {

// RMSNorm (§3.1): `weight` stores w − 1; no parameters when affine = false (the per-head znorm).
// kernel: `model.kernel_row_norm`: on CUDA fp32/bf16 inputs the fused row-norm kernel (core/cuda/row_norm/row_norm_glue.h) or the reference path.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, bool affine, double eps, KernelImpl kernel = KernelImpl::reference);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
  KernelImpl kernel;
};
TORCH_MODULE(RMSNorm);

// LayerNorm (§4.1): affine weight (stored w − 1) and bias; kernel as for RMSNorm.
class LayerNormImpl : public torch::nn::Module {
 public:
  LayerNormImpl(int64_t dim, bool affine, double eps, KernelImpl kernel = KernelImpl::reference);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  double eps;
  KernelImpl kernel;
};
TORCH_MODULE(LayerNorm);

// The norm that feeds the MEGA layer and the final norm, switched by the `norm` ablation (§8.2):
//   timestep: causal TimestepNorm with carried state (§2) — parameters weight, bias, prior_*;
//   layer:    per-token LayerNorm(D);
//   group:    per-token GroupNorm(G) (= TimestepNorm with statistics reset every token);
//   sequence: GroupNorm(G) over the whole (unpadded) sequence — non-causal, for classification.
// One class so the parameters keep their official names (weight, bias, prior_count, ...).
class SequenceNormImpl : public torch::nn::Module {
 public:
  // kernel: `model.kernel_timestep_norm` — whether a timestep norm on CUDA runs the fused kernel
  // (core/cuda/timestep_norm/timestep_norm_glue.h) or the reference path (core/ops/timestep_norm.h).
  SequenceNormImpl(NormKind kind, int64_t dim, int64_t num_groups, double eps, int64_t prior_count = 0,
                   bool affine = true, KernelImpl kernel = KernelImpl::reference);
  // state: the carried TimestepNorm state, updated in place (ignored by layer/group; may be null).
  // documents: packed documents (core/ops/documents.h): a timestep norm restarts its statistics
  // from the prior at every document start (reference path); layer and group norms are per token.
  torch::Tensor forward(const torch::Tensor& x, ops::NormState* state = nullptr,
                        const torch::Tensor& padding_mask = {}, const ops::DocumentPlan* documents = nullptr);
  // The state before any token: (prior_count, prior_mean, exp(prior_logv)) expanded over B.
  ops::NormState initial_state(int64_t batch, const torch::Device& device) const;
  NormKind kind;
  KernelImpl kernel;
  int64_t num_groups;
  double eps;
  torch::Tensor weight, bias, prior_count, prior_mean, prior_logv;
};
TORCH_MODULE(SequenceNorm);

// Module name used for a SequenceNorm of a kind ("timenorm" as in the official state dict).
const char* sequence_norm_name(NormKind kind);

}  // namespace mgl
