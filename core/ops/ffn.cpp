#include "core/ops/ffn.h"

namespace mgl::ops {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// With h1 = u W1ᵀ, s = silu(h1), h3 = u W3ᵀ, a = s ⊙ h3 (or s), y = a W2ᵀ:
//   gW2 = gyᵀ a;  ga = gy W2;  gh1 = ga [⊙ h3] ⊙ silu'(h1);  gh3 = ga ⊙ s;
//   gu = gh1 W1 [+ gh3 W3];  gW1 = gh1ᵀ u;  gW3 = gh3ᵀ u.
struct SiluFfn : public torch::autograd::Function<SiluFfn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& u, const Tensor& w1, const Tensor& w2,
                        const c10::optional<Tensor>& w3_opt) {
    const Tensor w3 = w3_opt.has_value() ? *w3_opt : Tensor();  // a Function's Tensor inputs must be defined
    Tensor a = torch::silu(torch::nn::functional::linear(u, w1));
    if (w3.defined()) a.mul_(torch::nn::functional::linear(u, w3));
    ctx->save_for_backward({u, w1, w2, w3});
    return torch::nn::functional::linear(a, w2);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &u = s[0], &w1 = s[1], &w2 = s[2], &w3 = s[3];
    const int64_t D = u.size(-1), F = w1.size(0);
    Tensor u2 = u.reshape({-1, D});
    Tensor gy = grads[0].reshape({-1, D});
    Tensor h1 = torch::mm(u2, w1.t());
    Tensor act = torch::silu(h1);
    Tensor h3 = w3.defined() ? torch::mm(u2, w3.t()) : Tensor();
    Tensor gw2 = ctx->needs_input_grad(2) ? torch::mm(gy.t(), h3.defined() ? act * h3 : act) : Tensor();
    Tensor ga = torch::mm(gy, w2);  // rows × F
    Tensor gh3 = h3.defined() ? ga * act : Tensor();
    // ⊙ silu'(h1) by LibTorch's fused silu_backward: one pass, instead of the seven of forming
    // σ (1 + h1 (1 − σ)) from a saved sigmoid (issue 22).
    Tensor gh1 = torch::silu_backward(h3.defined() ? ga.mul_(h3) : ga, h1);
    Tensor gu = torch::mm(gh1, w1);
    if (h3.defined()) gu.addmm_(gh3, w3);
    Tensor gw1 = ctx->needs_input_grad(1) ? torch::mm(gh1.t(), u2) : Tensor();
    Tensor gw3 = h3.defined() && ctx->needs_input_grad(3) ? torch::mm(gh3.t(), u2) : Tensor();
    (void)F;
    return {gu.view(u.sizes()), gw1, gw2, gw3};
  }
};

}  // namespace

Tensor silu_ffn(const Tensor& u, const Tensor& w1, const Tensor& w2, const Tensor& w3) {
  TORCH_CHECK(w1.dim() == 2 && w2.dim() == 2 && u.size(-1) == w1.size(1) && w2.size(1) == w1.size(0) &&
                  w2.size(0) == u.size(-1) && (!w3.defined() || w3.sizes() == w1.sizes()),
              "silu_ffn: expected u …×D, w1 (and w3) F×D, w2 D×F, got ", u.sizes(), ", ", w1.sizes(), ", ", w2.sizes());
  TORCH_CHECK(u.scalar_type() == w1.scalar_type() && u.scalar_type() == w2.scalar_type() &&
                  (!w3.defined() || w3.scalar_type() == u.scalar_type()),
              "silu_ffn: u and the weights must share a dtype");
  c10::optional<Tensor> w3_opt;
  if (w3.defined()) w3_opt = w3;
  return SiluFfn::apply(u, w1, w2, w3_opt);
}

}  // namespace mgl::ops
