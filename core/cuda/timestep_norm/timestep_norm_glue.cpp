#include "core/cuda/timestep_norm/timestep_norm_glue.h"

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "core/cuda/timestep_norm/timestep_norm.h"

namespace mgl::cuda {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

Tensor workspace(size_t bytes, const Tensor& like) {
  return torch::empty({static_cast<int64_t>(bytes > 0 ? bytes : 1)}, like.options().dtype(torch::kUInt8));
}

template <typename T>
const T* cptr(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// x's element pointer as the kernels' type (bf16 is storage-compatible with at::BFloat16).
template <typename K>
K* xptr(const Tensor& t);
template <>
float* xptr<float>(const Tensor& t) {
  return t.data_ptr<float>();
}
template <>
bf16* xptr<bf16>(const Tensor& t) {
  return reinterpret_cast<bf16*>(t.data_ptr<at::BFloat16>());
}

// Inputs (x, weight, bias, prev_mean, prev_var) differentiable; prev_count, mask and the group count
// and eps are not. Outputs (y, mean_out, var_out).
class TimestepNormFunction : public torch::autograd::Function<TimestepNormFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor weight, Tensor bias, Tensor prev_mean,
                               Tensor prev_var, Tensor prev_count, Tensor mask, Tensor count_out, int64_t G,
                               double eps) {
    const TimestepNormShape s{x.size(0), x.size(1), x.size(2), G};
    x = x.contiguous();
    const Tensor w = weight.to(torch::kFloat32).contiguous(), b = bias.to(torch::kFloat32).contiguous();
    const Tensor pm = prev_mean.to(torch::kFloat32).contiguous(), pv = prev_var.to(torch::kFloat32).contiguous();
    const auto f32 = x.options().dtype(torch::kFloat32);
    Tensor y = torch::empty_like(x);
    Tensor mean = torch::empty({s.B, G, s.L}, f32), rstd = torch::empty({s.B, G, s.L}, f32);
    Tensor mean_out = torch::empty({s.B, G}, f32), var_out = torch::empty({s.B, G}, f32);
    Tensor ws = workspace(timestep_norm_forward_workspace_bytes(s), x);
    const bool* mp = cptr<bool>(mask);
    if (x.scalar_type() == torch::kBFloat16) {
      timestep_norm_forward<bf16>(s, xptr<bf16>(x), w.data_ptr<float>(), b.data_ptr<float>(), mp,
                                    prev_count.data_ptr<int64_t>(), pm.data_ptr<float>(), pv.data_ptr<float>(),
                                    static_cast<float>(eps), xptr<bf16>(y), mean.data_ptr<float>(),
                                    rstd.data_ptr<float>(), mean_out.data_ptr<float>(), var_out.data_ptr<float>(),
                                    ws.data_ptr(), current_stream());
    } else {
      timestep_norm_forward<float>(s, xptr<float>(x), w.data_ptr<float>(), b.data_ptr<float>(), mp,
                                   prev_count.data_ptr<int64_t>(), pm.data_ptr<float>(), pv.data_ptr<float>(),
                                   static_cast<float>(eps), xptr<float>(y), mean.data_ptr<float>(),
                                   rstd.data_ptr<float>(), mean_out.data_ptr<float>(), var_out.data_ptr<float>(),
                                   ws.data_ptr(), current_stream());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();  // the launches of this call
    ctx->save_for_backward({x, w, pm, mean, rstd, mean_out});
    ctx->saved_data["prev_count"] = prev_count;
    ctx->saved_data["count_out"] = count_out;
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["G"] = G;
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    ctx->saved_data["prev_dtype"] = static_cast<int64_t>(prev_mean.scalar_type());
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.scalar_type());
    return {y, mean_out, var_out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &w = saved[1], &pm = saved[2], &mean = saved[3], &rstd = saved[4],
                 &mean_out = saved[5];
    const Tensor prev_count = ctx->saved_data["prev_count"].toTensor();
    const Tensor count_out = ctx->saved_data["count_out"].toTensor();
    const Tensor mask = ctx->saved_data["mask"].toTensor();
    const int64_t G = ctx->saved_data["G"].toInt();
    const TimestepNormShape s{x.size(0), x.size(1), x.size(2), G};
    const auto f32 = x.options().dtype(torch::kFloat32);
    Tensor dy = grads[0].defined() ? grads[0].to(x.scalar_type()).contiguous() : torch::zeros_like(x);
    Tensor dmean = grads[1].defined() ? grads[1].to(torch::kFloat32).contiguous() : Tensor();
    Tensor dvar = grads[2].defined() ? grads[2].to(torch::kFloat32).contiguous() : Tensor();
    // n_t with a mask: prev_count + valid steps up to t (fp64: exact far beyond 2^24 tokens).
    Tensor counts;
    if (mask.defined())
      counts = (prev_count.to(torch::kFloat64).unsqueeze(1) + mask.logical_not().to(torch::kFloat64).cumsum(1))
                   .contiguous();
    Tensor dx = torch::empty_like(x);
    Tensor dw = torch::empty({s.D}, f32), db = torch::empty({s.D}, f32);
    Tensor dpm = torch::empty({s.B, G}, f32), dpv = torch::empty({s.B, G}, f32);
    Tensor ws = workspace(timestep_norm_backward_workspace_bytes(s), x);
    if (x.scalar_type() == torch::kBFloat16) {
      timestep_norm_backward<bf16>(s, xptr<bf16>(x), xptr<bf16>(dy), w.data_ptr<float>(), cptr<bool>(mask),
                                     cptr<double>(counts), prev_count.data_ptr<int64_t>(), pm.data_ptr<float>(),
                                     count_out.data_ptr<int64_t>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
                                     mean_out.data_ptr<float>(), cptr<float>(dmean), cptr<float>(dvar),
                                     xptr<bf16>(dx), dw.data_ptr<float>(), db.data_ptr<float>(),
                                     dpm.data_ptr<float>(), dpv.data_ptr<float>(), ws.data_ptr(), current_stream());
    } else {
      timestep_norm_backward<float>(s, xptr<float>(x), xptr<float>(dy), w.data_ptr<float>(), cptr<bool>(mask),
                                    cptr<double>(counts), prev_count.data_ptr<int64_t>(), pm.data_ptr<float>(),
                                    count_out.data_ptr<int64_t>(), mean.data_ptr<float>(), rstd.data_ptr<float>(),
                                    mean_out.data_ptr<float>(), cptr<float>(dmean), cptr<float>(dvar),
                                    xptr<float>(dx), dw.data_ptr<float>(), db.data_ptr<float>(),
                                    dpm.data_ptr<float>(), dpv.data_ptr<float>(), ws.data_ptr(), current_stream());
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    auto as = [&](const Tensor& t, const char* key) {
      return t.to(static_cast<torch::ScalarType>(ctx->saved_data[key].toInt()));
    };
    return {dx, as(dw, "weight_dtype"), as(db, "bias_dtype"), as(dpm, "prev_dtype"), as(dpv, "prev_dtype"),
            Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

bool timestep_norm_dtype_supported(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }

ops::TimestepNormOutput timestep_norm_cuda(const Tensor& x, int64_t G, const Tensor& weight, const Tensor& bias,
                                           const ops::NormState& prev, const Tensor& padding_mask, double eps) {
  TORCH_CHECK(x.is_cuda() && x.dim() == 3, "timestep_norm_cuda: x must be a B×L×D CUDA tensor, got ",
              x.sizes(), " on ", x.device());
  TORCH_CHECK(timestep_norm_dtype_supported(x.scalar_type()),
              "timestep_norm_cuda: x must be fp32 or bf16 (other dtypes take the reference path), got ",
              x.scalar_type());
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  TORCH_CHECK(G >= 1 && D % G == 0, "timestep_norm_cuda: num_groups=", G, " must divide D=", D);
  TORCH_CHECK(weight.numel() == D && bias.numel() == D, "timestep_norm_cuda: weight and bias must have D=", D,
              " elements, got ", weight.numel(), " and ", bias.numel());
  TORCH_CHECK(prev.defined() && prev.count.sizes() == torch::IntArrayRef{B} &&
                  prev.mean.sizes() == torch::IntArrayRef({B, G}) && prev.var.sizes() == torch::IntArrayRef({B, G}),
              "timestep_norm_cuda: state must be count B, mean/var B×G with B=", B, " G=", G);
  TORCH_CHECK(!padding_mask.defined() || padding_mask.sizes() == torch::IntArrayRef({B, L}),
              "timestep_norm_cuda: padding_mask must be B×L=", B, "×", L, ", got ", padding_mask.sizes());
  const c10::cuda::CUDAGuard guard(x.device());
  const auto dev = x.device();
  Tensor count = prev.count.to(dev, torch::kInt64).contiguous();
  Tensor mask = padding_mask.defined() ? padding_mask.to(dev, torch::kBool).contiguous() : Tensor();
  Tensor count_out = count + (mask.defined() ? mask.logical_not().sum(1) : torch::full_like(count, L));
  auto outs = TimestepNormFunction::apply(x, weight.to(dev).reshape({D}), bias.to(dev).reshape({D}),
                                          prev.mean.to(dev), prev.var.to(dev), count, mask, count_out, G, eps);
  ops::TimestepNormOutput out;
  out.y = outs[0];
  out.state = {count_out, outs[1], outs[2]};
  return out;
}

}  // namespace mgl::cuda
