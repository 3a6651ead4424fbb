// The MEGA layer's gated output projection as one differentiable op (issue 22):
//   h2 = (o ⊙ silu(a)) Wᵀ      (spec §3.5: wh2(O ⊙ r) with r = silu(wr·mx))
// Autograd would keep r = silu(a) and the product o ⊙ r besides o and a; this keeps o, a and W and
// recomputes the product in the backward pass (elementwise work only, no extra matrix product).
#pragma once
#include <torch/torch.h>

namespace mgl::ops {

// o, a: …×E (same shape), weight: D×E → …×D, in o's dtype (fp32 or fp64; all three the same dtype).
torch::Tensor silu_gated_linear(const torch::Tensor& o, const torch::Tensor& a, const torch::Tensor& weight);

}  // namespace mgl::ops
