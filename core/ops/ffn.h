// The NFFN's inner part as one differentiable op (issue 22): y = W2 · (silu(W1 u) [⊙ W3 u]) (spec
// §4.1; the bracket is the SwiGLU form). Autograd keeps u, W1 u, the activation (and W3 u) for the
// backward pass, 1 + 2·F/D (SwiGLU 1 + 3·F/D) times the input's size; this keeps u only and
// recomputes W1 u (and W3 u) in the backward pass: one (two) more u·Wᵀ products per step.
#pragma once
#include <torch/torch.h>

namespace mgl::ops {

// u: …×D; w1 (and w3): F×D; w2: D×F; all one dtype (fp32 or fp64). w3 undefined: silu form.
torch::Tensor silu_ffn(const torch::Tensor& u, const torch::Tensor& w1, const torch::Tensor& w2,
                       const torch::Tensor& w3 = {});

}  // namespace mgl::ops
