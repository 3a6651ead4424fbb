// The autograd Function over the fused timestep norm (timestep_norm.h), for any device: the CUDA
// glue (timestep_norm_glue.cpp) runs it on CUDA tensors under a CUDAGuard with the current CUDA
// stream; the SIMT executor's tests run the same code on CPU tensors (common/autograd.h). `Stream`
// is a stream policy (`static void* stream()`).
#pragma once
#include <torch/torch.h>

#include "core/cuda/common/autograd.h"
#include "core/cuda/timestep_norm/timestep_norm.h"
#include "core/ops/timestep_norm.h"

namespace mgl::cuda {
namespace timestep_norm_autograd_detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

inline Tensor workspace(size_t bytes, const Tensor& like) {
  return torch::empty({static_cast<int64_t>(bytes > 0 ? bytes : 1)}, like.options().dtype(torch::kUInt8));
}

// Inputs (x, weight, bias, prev_mean, prev_var) differentiable; prev_count, mask (optional),
// count_out, the group count and eps are not. Outputs (y, mean_out, var_out).
template <class Stream>
class TimestepNormFunction : public torch::autograd::Function<TimestepNormFunction<Stream>> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor weight, Tensor bias, Tensor prev_mean,
                               Tensor prev_var, Tensor prev_count, c10::optional<Tensor> mask_in,
                               Tensor count_out, int64_t G, double eps) {
    const Tensor mask = mask_in.value_or(Tensor());
    const TimestepNormShape s{x.size(0), x.size(1), x.size(2), G};
    x = x.contiguous();
    const Tensor w = weight.to(torch::kFloat32).contiguous(), b = bias.to(torch::kFloat32).contiguous();
    const Tensor pm = prev_mean.to(torch::kFloat32).contiguous(),
                 pv = prev_var.to(torch::kFloat32).contiguous();
    const auto f32 = x.options().dtype(torch::kFloat32);
    Tensor y = torch::empty_like(x);
    Tensor mean = torch::empty({s.B, G, s.L}, f32), rstd = torch::empty({s.B, G, s.L}, f32);
    Tensor mean_out = torch::empty({s.B, G}, f32), var_out = torch::empty({s.B, G}, f32);
    Tensor ws = workspace(timestep_norm_forward_workspace_bytes(s), x);
    auto launch = [&](auto tag) {
      using T = decltype(tag);
      timestep_norm_forward<T>(s, elem_ptr<T>(x), w.data_ptr<float>(), b.data_ptr<float>(),
                               ptr_or_null<bool>(mask), prev_count.data_ptr<int64_t>(), pm.data_ptr<float>(),
                               pv.data_ptr<float>(), static_cast<float>(eps), elem_ptr<T>(y),
                               mean.data_ptr<float>(), rstd.data_ptr<float>(), mean_out.data_ptr<float>(),
                               var_out.data_ptr<float>(), ws.data_ptr(), Stream::stream());
    };
    if (x.scalar_type() == torch::kBFloat16)
      launch(bf16{});
    else
      launch(0.0f);
    check_launch("timestep_norm_forward");
    // The mask may be undefined: it goes through save_for_backward, which keeps undefined tensors
    // undefined on every LibTorch version (an undefined tensor in saved_data may come back as None).
    ctx->save_for_backward({x, w, pm, mean, rstd, mean_out, prev_count, mask, count_out});
    ctx->saved_data["G"] = G;
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    ctx->saved_data["prev_dtype"] = static_cast<int64_t>(prev_mean.scalar_type());
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.scalar_type());
    return {y, mean_out, var_out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &w = saved[1], &pm = saved[2], &mean = saved[3], &rstd = saved[4],
                 &mean_out = saved[5], &prev_count = saved[6], &mask = saved[7], &count_out = saved[8];
    const int64_t G = ctx->saved_data["G"].toInt();
    const TimestepNormShape s{x.size(0), x.size(1), x.size(2), G};
    const auto f32 = x.options().dtype(torch::kFloat32);
    Tensor dy = grads[0].defined() ? grads[0].to(x.scalar_type()).contiguous() : torch::zeros_like(x);
    Tensor dmean = grads[1].defined() ? grads[1].to(torch::kFloat32).contiguous() : Tensor();
    Tensor dvar = grads[2].defined() ? grads[2].to(torch::kFloat32).contiguous() : Tensor();
    // n_t with a mask: prev_count + valid steps up to t (fp64: exact far beyond 2^24 tokens).
    Tensor counts;
    if (mask.defined())
      counts =
          (prev_count.to(torch::kFloat64).unsqueeze(1) + mask.logical_not().to(torch::kFloat64).cumsum(1))
              .contiguous();
    Tensor dx = torch::empty_like(x);
    Tensor dw = torch::empty({s.D}, f32), db = torch::empty({s.D}, f32);
    Tensor dpm = torch::empty({s.B, G}, f32), dpv = torch::empty({s.B, G}, f32);
    Tensor ws = workspace(timestep_norm_backward_workspace_bytes(s), x);
    auto launch = [&](auto tag) {
      using T = decltype(tag);
      timestep_norm_backward<T>(
          s, elem_ptr<T>(x), elem_ptr<T>(dy), w.data_ptr<float>(), ptr_or_null<bool>(mask),
          ptr_or_null<double>(counts), prev_count.data_ptr<int64_t>(), pm.data_ptr<float>(),
          count_out.data_ptr<int64_t>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
          mean_out.data_ptr<float>(), ptr_or_null<float>(dmean), ptr_or_null<float>(dvar), elem_ptr<T>(dx),
          dw.data_ptr<float>(), db.data_ptr<float>(), dpm.data_ptr<float>(), dpv.data_ptr<float>(),
          ws.data_ptr(), Stream::stream());
    };
    if (x.scalar_type() == torch::kBFloat16)
      launch(bf16{});
    else
      launch(0.0f);
    check_launch("timestep_norm_backward");
    auto as = [&](const Tensor& t, const char* key) {
      return t.to(static_cast<torch::ScalarType>(ctx->saved_data[key].toInt()));
    };
    return {dx,
            as(dw, "weight_dtype"),
            as(db, "bias_dtype"),
            as(dpm, "prev_dtype"),
            as(dpv, "prev_dtype"),
            Tensor(),
            Tensor(),
            Tensor(),
            Tensor(),
            Tensor()};
  }
};

}  // namespace timestep_norm_autograd_detail

// timestep_norm_cuda (timestep_norm_glue.h) for operands on x's device: the shape checks, the
// final count and the Function.
template <class Stream>
ops::TimestepNormOutput timestep_norm_run(const torch::Tensor& x, int64_t G, const torch::Tensor& weight,
                                          const torch::Tensor& bias, const ops::NormState& prev,
                                          const torch::Tensor& padding_mask, double eps) {
  TORCH_CHECK(x.dim() == 3, "timestep_norm: x must be B×L×D, got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
              "timestep_norm: x must be fp32 or bf16 (other dtypes take the reference path), got ",
              x.scalar_type());
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  TORCH_CHECK(G >= 1 && D % G == 0, "timestep_norm: num_groups=", G, " must divide D=", D);
  TORCH_CHECK(weight.numel() == D && bias.numel() == D, "timestep_norm: weight and bias must have D=", D,
              " elements, got ", weight.numel(), " and ", bias.numel());
  TORCH_CHECK(prev.defined() && prev.count.sizes() == torch::IntArrayRef{B} &&
                  prev.mean.sizes() == torch::IntArrayRef({B, G}) &&
                  prev.var.sizes() == torch::IntArrayRef({B, G}),
              "timestep_norm: state must be count B, mean/var B×G with B=", B, " G=", G);
  TORCH_CHECK(!padding_mask.defined() || padding_mask.sizes() == torch::IntArrayRef({B, L}),
              "timestep_norm: padding_mask must be B×L=", B, "×", L, ", got ", padding_mask.sizes());
  const char* bad = timestep_norm_shape_error(TimestepNormShape{B, L, D, G});
  TORCH_CHECK(bad == nullptr, "timestep_norm: ", bad ? bad : "");
  const auto dev = x.device();
  torch::Tensor count = prev.count.to(dev, torch::kInt64).contiguous();
  torch::Tensor mask =
      padding_mask.defined() ? padding_mask.to(dev, torch::kBool).contiguous() : torch::Tensor();
  torch::Tensor count_out = count + (mask.defined() ? mask.logical_not().sum(1) : torch::full_like(count, L));
  auto outs = timestep_norm_autograd_detail::TimestepNormFunction<Stream>::apply(
      x, weight.to(dev).reshape({D}), bias.to(dev).reshape({D}), prev.mean.to(dev), prev.var.to(dev), count,
      optional_input(mask), count_out, G, eps);
  ops::TimestepNormOutput out;
  out.y = outs[0];
  out.state = {count_out, outs[1], outs[2]};
  return out;
}

}  // namespace mgl::cuda
