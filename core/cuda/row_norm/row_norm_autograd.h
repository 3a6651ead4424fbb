// The autograd Function over the fused per-token norms (row_norm.h), for any device: the CUDA glue
// (row_norm_glue.cpp) runs it on CUDA tensors under a CUDAGuard with the current CUDA stream; the
// SIMT executor's tests run the same code on CPU tensors (common/autograd.h). `Stream` is a
// stream policy (`static void* stream()`).
#pragma once
#include <torch/torch.h>

#include <algorithm>

#include "core/cuda/common/autograd.h"
#include "core/cuda/row_norm/row_norm.h"

namespace mgl::cuda {
namespace row_norm_autograd_detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Inputs x (R×D rows), weight, bias (each D, optional); the flag and eps are not differentiable.
template <class Stream>
class RowNormFunction : public torch::autograd::Function<RowNormFunction<Stream>> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor x, c10::optional<Tensor> weight_in,
                               c10::optional<Tensor> bias_in, bool subtract_mean, double eps) {
    const Tensor weight = weight_in.value_or(Tensor()), bias = bias_in.value_or(Tensor());
    const int64_t D = x.size(-1), R = x.numel() / std::max<int64_t>(D, 1);
    Tensor xr = x.reshape({R, D}).contiguous();
    Tensor w = weight.defined() ? weight.to(torch::kFloat32).contiguous() : Tensor();
    Tensor b = bias.defined() ? bias.to(torch::kFloat32).contiguous() : Tensor();
    const auto f32 = x.options().dtype(torch::kFloat32);
    Tensor y = torch::empty_like(xr), mean = torch::empty({R}, f32), rstd = torch::empty({R}, f32);
    auto launch = [&](auto tag) {
      using T = decltype(tag);
      row_norm_forward<T>(elem_ptr<T>(xr), ptr_or_null<float>(w), ptr_or_null<float>(b), R, D, subtract_mean,
                          static_cast<float>(eps), elem_ptr<T>(y), mean.data_ptr<float>(),
                          rstd.data_ptr<float>(), Stream::stream());
    };
    if (x.scalar_type() == torch::kBFloat16)
      launch(bf16{});
    else
      launch(0.0f);
    check_launch("row_norm_forward");
    // w may be undefined (no affine): save_for_backward keeps undefined tensors undefined on every
    // LibTorch version, unlike an IValue in saved_data.
    ctx->save_for_backward({xr, mean, rstd, w});
    ctx->saved_data["sub"] = subtract_mean;
    ctx->saved_data["has_bias"] = bias.defined();
    ctx->saved_data["weight_dtype"] =
        static_cast<int64_t>(weight.defined() ? weight.scalar_type() : torch::kFloat32);
    ctx->saved_data["bias_dtype"] =
        static_cast<int64_t>(bias.defined() ? bias.scalar_type() : torch::kFloat32);
    return {y.view(x.sizes())};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &xr = saved[0], &mean = saved[1], &rstd = saved[2], &w = saved[3];
    const bool sub = ctx->saved_data["sub"].toBool(), has_bias = ctx->saved_data["has_bias"].toBool();
    const int64_t R = xr.size(0), D = xr.size(1);
    const auto f32 = xr.options().dtype(torch::kFloat32);
    Tensor dy = grads[0].defined() ? grads[0].to(xr.scalar_type()).reshape({R, D}).contiguous()
                                   : torch::zeros_like(xr);
    Tensor dx = torch::empty_like(xr);
    Tensor dw = w.defined() ? torch::empty({D}, f32) : Tensor(),
           db = has_bias ? torch::empty({D}, f32) : Tensor();
    Tensor ws = torch::empty({static_cast<int64_t>(row_norm_backward_workspace_bytes(R, D))},
                             xr.options().dtype(torch::kUInt8));
    auto launch = [&](auto tag) {
      using T = decltype(tag);
      row_norm_backward<T>(elem_ptr<T>(xr), elem_ptr<T>(dy), ptr_or_null<float>(w), mean.data_ptr<float>(),
                           rstd.data_ptr<float>(), R, D, sub, elem_ptr<T>(dx), mut_ptr_or_null<float>(dw),
                           mut_ptr_or_null<float>(db), ws.data_ptr(), Stream::stream());
    };
    if (xr.scalar_type() == torch::kBFloat16)
      launch(bf16{});
    else
      launch(0.0f);
    check_launch("row_norm_backward");
    auto as = [&](const Tensor& t, const char* key) {
      return t.defined() ? t.to(static_cast<torch::ScalarType>(ctx->saved_data[key].toInt())) : Tensor();
    };
    return {dx.view(grads[0].defined() ? grads[0].sizes() : xr.sizes()), as(dw, "weight_dtype"),
            as(db, "bias_dtype"), Tensor(), Tensor()};
  }
};

}  // namespace row_norm_autograd_detail

// row_norm_cuda (row_norm_glue.h) for operands on one device: the shape checks and the Function.
template <class Stream>
torch::Tensor row_norm_run(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                           bool subtract_mean, double eps) {
  TORCH_CHECK(x.dim() >= 1, "row_norm: x must have a last dimension, got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
              "row_norm: x must be fp32 or bf16, got ", x.scalar_type());
  const int64_t D = x.size(-1);
  TORCH_CHECK(!weight.defined() || weight.numel() == D, "row_norm: weight must have D=", D, " elements, got ",
              weight.numel());
  TORCH_CHECK(!bias.defined() || bias.numel() == D, "row_norm: bias must have D=", D, " elements, got ",
              bias.numel());
  return row_norm_autograd_detail::RowNormFunction<Stream>::apply(
      x, optional_input(weight.defined() ? weight.reshape({D}) : weight),
      optional_input(bias.defined() ? bias.reshape({D}) : bias), subtract_mean, eps)[0];
}

}  // namespace mgl::cuda
