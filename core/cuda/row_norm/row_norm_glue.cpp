#include "core/cuda/row_norm/row_norm_glue.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "core/cuda/row_norm/row_norm.h"

namespace mgl::cuda {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

const float* fptr(const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }
float* fptr_mut(const Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }

// Inputs x (R×D rows), weight, bias (each D or undefined); the flag and eps are not differentiable.
class RowNormFunction : public torch::autograd::Function<RowNormFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor weight, Tensor bias, bool subtract_mean,
                               double eps) {
    const int64_t D = x.size(-1), R = x.numel() / std::max<int64_t>(D, 1);
    Tensor xr = x.reshape({R, D}).contiguous();
    Tensor w = weight.defined() ? weight.to(torch::kFloat32).contiguous() : Tensor();
    Tensor b = bias.defined() ? bias.to(torch::kFloat32).contiguous() : Tensor();
    const auto f32 = x.options().dtype(torch::kFloat32);
    Tensor y = torch::empty_like(xr), mean = torch::empty({R}, f32), rstd = torch::empty({R}, f32);
    if (x.scalar_type() == torch::kBFloat16) {
      row_norm_forward<bf16>(reinterpret_cast<const bf16*>(xr.data_ptr<at::BFloat16>()), fptr(w), fptr(b), R, D,
                               subtract_mean, static_cast<float>(eps),
                               reinterpret_cast<bf16*>(y.data_ptr<at::BFloat16>()), mean.data_ptr<float>(),
                               rstd.data_ptr<float>(), current_stream());
    } else {
      row_norm_forward<float>(xr.data_ptr<float>(), fptr(w), fptr(b), R, D, subtract_mean, static_cast<float>(eps),
                              y.data_ptr<float>(), mean.data_ptr<float>(), rstd.data_ptr<float>(), current_stream());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();  // the launches of this call
    ctx->save_for_backward({xr, mean, rstd});
    ctx->saved_data["w"] = w;
    ctx->saved_data["sub"] = subtract_mean;
    ctx->saved_data["has_bias"] = bias.defined();
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.defined() ? weight.scalar_type() : torch::kFloat32);
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.defined() ? bias.scalar_type() : torch::kFloat32);
    return {y.view(x.sizes())};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &xr = saved[0], &mean = saved[1], &rstd = saved[2];
    const Tensor w = ctx->saved_data["w"].toTensor();
    const bool sub = ctx->saved_data["sub"].toBool(), has_bias = ctx->saved_data["has_bias"].toBool();
    const int64_t R = xr.size(0), D = xr.size(1);
    const auto f32 = xr.options().dtype(torch::kFloat32);
    Tensor dy = grads[0].defined() ? grads[0].to(xr.scalar_type()).reshape({R, D}).contiguous() : torch::zeros_like(xr);
    Tensor dx = torch::empty_like(xr);
    Tensor dw = w.defined() ? torch::empty({D}, f32) : Tensor(), db = has_bias ? torch::empty({D}, f32) : Tensor();
    Tensor ws = torch::empty({static_cast<int64_t>(row_norm_backward_workspace_bytes(R, D))}, xr.options().dtype(torch::kUInt8));
    if (xr.scalar_type() == torch::kBFloat16) {
      row_norm_backward<bf16>(reinterpret_cast<const bf16*>(xr.data_ptr<at::BFloat16>()),
                                reinterpret_cast<const bf16*>(dy.data_ptr<at::BFloat16>()), fptr(w),
                                mean.data_ptr<float>(), rstd.data_ptr<float>(), R, D, sub,
                                reinterpret_cast<bf16*>(dx.data_ptr<at::BFloat16>()), fptr_mut(dw), fptr_mut(db),
                                ws.data_ptr(), current_stream());
    } else {
      row_norm_backward<float>(xr.data_ptr<float>(), dy.data_ptr<float>(), fptr(w), mean.data_ptr<float>(),
                               rstd.data_ptr<float>(), R, D, sub, dx.data_ptr<float>(), fptr_mut(dw), fptr_mut(db),
                               ws.data_ptr(), current_stream());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    auto as = [&](const Tensor& t, const char* key) {
      return t.defined() ? t.to(static_cast<torch::ScalarType>(ctx->saved_data[key].toInt())) : Tensor();
    };
    return {dx.view(grads[0].defined() ? grads[0].sizes() : xr.sizes()), as(dw, "weight_dtype"), as(db, "bias_dtype"),
            Tensor(), Tensor()};
  }
};

}  // namespace

bool row_norm_dtype_supported(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }

Tensor row_norm_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, bool subtract_mean, double eps) {
  TORCH_CHECK(x.is_cuda() && x.dim() >= 1, "row_norm_cuda: x must be a CUDA tensor with a last dimension, got ",
              x.sizes(), " on ", x.device());
  TORCH_CHECK(row_norm_dtype_supported(x.scalar_type()), "row_norm_cuda: x must be fp32 or bf16, got ",
              x.scalar_type());
  const int64_t D = x.size(-1);
  TORCH_CHECK(!weight.defined() || weight.numel() == D, "row_norm_cuda: weight must have D=", D, " elements, got ",
              weight.numel());
  TORCH_CHECK(!bias.defined() || bias.numel() == D, "row_norm_cuda: bias must have D=", D, " elements, got ",
              bias.numel());
  const c10::cuda::CUDAGuard guard(x.device());
  return RowNormFunction::apply(x, weight.defined() ? weight.reshape({D}) : weight,
                                bias.defined() ? bias.reshape({D}) : bias, subtract_mean, eps)[0];
}

}  // namespace mgl::cuda
