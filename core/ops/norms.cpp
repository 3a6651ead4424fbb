#include "core/ops/norms.h"

namespace mgl::ops {

using torch::Tensor;

namespace {
torch::Dtype norm_acc_dtype(const Tensor& x) {
  return x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}
}  // namespace

Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  Tensor xa = x.to(norm_acc_dtype(x));
  Tensor y = xa * torch::rsqrt(xa.pow(2).mean(-1, true) + eps);
  if (weight.defined()) y = y * weight.to(y.scalar_type());
  return y.to(x.scalar_type());
}

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  Tensor xa = x.to(norm_acc_dtype(x));
  Tensor mean = xa.mean(-1, true);
  Tensor var = (xa - mean).pow(2).mean(-1, true);
  Tensor y = (xa - mean) * torch::rsqrt(var + eps);
  if (weight.defined()) y = y * weight.to(y.scalar_type());
  if (bias.defined()) y = y + bias.to(y.scalar_type());
  return y.to(x.scalar_type());
}

namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// y = x · r · w with r = rsqrt(mean(x²) + eps) per row; dx = r (ĝ − x r² mean(ĝ x)), ĝ = gy ⊙ w.
struct RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const c10::optional<Tensor>& weight_opt, double eps) {
    const Tensor weight = weight_opt.has_value() ? *weight_opt : Tensor();  // a Function's Tensor inputs must be defined
    Tensor rstd = x.square().mean(-1, true).add_(eps).rsqrt_();
    Tensor y = x * rstd;
    if (weight.defined()) y.mul_(weight.to(y.scalar_type()));
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &x = s[0], &weight = s[1], &rstd = s[2];
    const Tensor& gy = grads[0];
    Tensor gw;
    if (weight.defined() && ctx->needs_input_grad(1)) {
      Tensor rows = (gy * x * rstd).reshape({-1, x.size(-1)});
      gw = rows.sum(0).to(weight.scalar_type());
    }
    Tensor gh = weight.defined() ? gy * weight.to(gy.scalar_type()) : gy;
    Tensor proj = (gh * x).mean(-1, true).mul_(rstd.square());
    Tensor dx = (gh - x * proj).mul_(rstd);
    return {dx, gw, Tensor()};
  }
};
}  // namespace

Tensor rms_norm_lowmem(const Tensor& x, const Tensor& weight, double eps) {
  Tensor xa = x.to(norm_acc_dtype(x));
  c10::optional<Tensor> w;
  if (weight.defined()) w = weight.to(xa.scalar_type());
  return RmsNormFunction::apply(xa, w, eps).to(x.scalar_type());
}

Tensor layer_norm_lowmem(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  if (x.scalar_type() != torch::kFloat32 && x.scalar_type() != torch::kFloat64) return layer_norm(x, weight, bias, eps);
  auto cast = [&](const Tensor& t) { return t.defined() ? t.to(x.scalar_type()) : t; };
  return torch::layer_norm(x, {x.size(-1)}, cast(weight), cast(bias), eps, /*cudnn_enable=*/true);
}

}  // namespace mgl::ops
