// Timestep normalisation (spec §2) with a hand-written backward (issue 22): the same maths as
// ops::timestep_norm, which stays the autograd reference it is tested against, but the forward
// keeps only x and two statistics per (step, group) — the running mean and variance in fp64 —
// instead of autograd's chain of D-wide fp64 temporaries. fp64 is used where accuracy needs it:
// the prefix sums (around a per-group shift, as the reference) and the statistics; the D-wide work
// (per-token moments, normalisation, gradients) runs in x's dtype.
//
// The backward, for y_tc = (x_tc − μ_t) r_t w_c + b_c with μ_t = s + S1_t/n_t and
// var_t = S2_t/n_t − (S1_t/n_t)² (S1, S2: prefix sums of the shifted per-token moments):
//   ĝ = gy ⊙ w;  gμ_t = −r_t Σ_c ĝ_tc;  gvar_t = −½ r_t³ Σ_c ĝ_tc (x_tc − μ_t)
//   gS1_t = (gμ_t − 2 (μ_t − s) gvar_t) / n_t;  gS2_t = gvar_t / n_t
//   dx_uc = r_u ĝ_uc + (v_u / g) (Σ_{t≥u} gS1_t + 2 (x_uc − s) Σ_{t≥u} gS2_t)
// i.e. two suffix sums over the steps, per group; the prior's gradients are n0 times the full sums.
#pragma once
#include <torch/torch.h>

#include "core/ops/timestep_norm.h"

namespace mgl::ops {

// Same contract as ops::timestep_norm (x: B×L×D in fp32 or fp64; weight = the effective scale;
// padding_mask true = padded), including the differentiable output state (mean, var) and the
// gradients of the previous state. On the CPU the forward and backward run as three loops each
// (core/cpu/timestep_norm); cpu_kernel = false keeps the LibTorch expressions there too (what runs
// on CUDA without the fused kernel), which the tests compare the loops with.
TimestepNormOutput timestep_norm_lowmem(const torch::Tensor& x, int64_t num_groups, const torch::Tensor& weight,
                                        const torch::Tensor& bias, const NormState& prev,
                                        const torch::Tensor& padding_mask, double eps, bool cpu_kernel = true);

}  // namespace mgl::ops
