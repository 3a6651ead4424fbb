// Parameter initialisers of the official code (megalodon/utils.py get_init_fn, spec §4.5).
#pragma once
#include <torch/torch.h>

#include "core/config.h"

namespace mgl {

// In-place truncated normal N(0, std²) restricted to [a, b] (inverse-CDF sampling, exact).
void trunc_normal_(torch::Tensor t, double std, double a, double b);

// Weight init for a Linear weight of shape out×in by mode; the bias (if any) is zeroed.
//  he:       kaiming_normal_(a=√5)   → std = 1/√(3·fan_in)
//  gaussian: truncated N(0, 1/D) at ±3σ with D = `dim` (embedding and head)
//  bert:     N(0, 0.02²)
//  xavier:   xavier_uniform_
//  none:     LibTorch's default Linear init is kept
void init_linear(torch::nn::Linear& lin, InitMode mode, int64_t dim = -1);
void init_weight(torch::Tensor w, InitMode mode, int64_t dim = -1);

}  // namespace mgl
