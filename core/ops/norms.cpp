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

}  // namespace mgl::ops
