#include "core/ops/gates.h"

namespace mgl::ops {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// gu = gy W;  gW = gyᵀ (o ⊙ silu(a));  go = gu ⊙ silu(a);  ga = gu ⊙ o ⊙ silu'(a),
// silu'(a) = σ(a) (1 + a (1 − σ(a))).
struct SiluGatedLinear : public torch::autograd::Function<SiluGatedLinear> {
  static Tensor forward(AutogradContext* ctx, const Tensor& o, const Tensor& a, const Tensor& w) {
    ctx->save_for_backward({o, a, w});
    return torch::nn::functional::linear(o * torch::silu(a), w);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &o = s[0], &a = s[1], &w = s[2];
    const int64_t E = o.size(-1), D = w.size(0);
    Tensor gy = grads[0].reshape({-1, D});
    Tensor r = torch::silu(a);
    Tensor gw;
    if (ctx->needs_input_grad(2)) gw = torch::mm(gy.t(), (o * r).reshape({-1, E}));
    Tensor gu = torch::mm(gy, w).view(o.sizes());
    Tensor go = ctx->needs_input_grad(0) ? gu * r : Tensor();
    Tensor ga;
    // ⊙ silu'(a) by LibTorch's fused silu_backward (one pass; issue 22).
    if (ctx->needs_input_grad(1)) ga = torch::silu_backward(gu.mul_(o), a);
    return {go, ga, gw};
  }
};

}  // namespace

Tensor silu_gated_linear(const Tensor& o, const Tensor& a, const Tensor& weight) {
  TORCH_CHECK(o.sizes() == a.sizes() && weight.dim() == 2 && weight.size(1) == o.size(-1),
              "silu_gated_linear: o and a must be …×E of one shape and weight D×E, got ", o.sizes(), ", ", a.sizes(),
              ", ", weight.sizes());
  TORCH_CHECK(o.scalar_type() == a.scalar_type() && o.scalar_type() == weight.scalar_type(),
              "silu_gated_linear: o, a and weight must share a dtype, got ", o.scalar_type(), ", ", a.scalar_type(),
              ", ", weight.scalar_type());
  return SiluGatedLinear::apply(o, a, weight);
}

}  // namespace mgl::ops
