#include "core/ops/lm_loss.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include "core/util/autocast_state.h"

namespace mgl::ops {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// h2: R×D, w: V×D (both already in the matmul dtype), t: R int64; returns R×V logits of rows
// [r0, r0+n) in the accumulation dtype.
Tensor slice_logits(const Tensor& h2, const Tensor& w, int64_t r0, int64_t n, torch::Dtype acc) {
  return torch::mm(h2.narrow(0, r0, n), w.t()).to(acc);
}

struct SlicedLinearNll : public torch::autograd::Function<SlicedLinearNll> {
  // h2: R×D and w: V×D in their own dtypes; mm: the matmul dtype; acc: logits dtype.
  static Tensor forward(AutogradContext* ctx, const Tensor& h2, const Tensor& w, const Tensor& t, int64_t rows,
                        at::ScalarType mm, at::ScalarType acc) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const int64_t R = h2.size(0);
    Tensor hm = h2.to(mm), wm = w.to(mm);
    Tensor lse = torch::empty({R}, h2.options().dtype(acc));
    Tensor nll = torch::empty({R}, h2.options().dtype(acc));
    Tensor tc = t.clamp_min(0);
    for (int64_t r0 = 0; r0 < R; r0 += rows) {
      const int64_t n = std::min(rows, R - r0);
      Tensor logits = slice_logits(hm, wm, r0, n, acc);
      Tensor l = torch::logsumexp(logits, -1);
      Tensor picked = logits.gather(1, tc.narrow(0, r0, n).unsqueeze(1)).squeeze(1);
      lse.narrow(0, r0, n).copy_(l);
      nll.narrow(0, r0, n).copy_(l - picked);
    }
    nll.masked_fill_(t < 0, 0.0);
    ctx->save_for_backward({h2, w, t, lse});
    ctx->saved_data["rows"] = rows;
    ctx->saved_data["mm"] = mm;
    ctx->saved_data["acc"] = acc;
    return nll;
  }

  // d nll_r / d logits_r = softmax(logits_r) − onehot(t_r); scaled by the incoming gradient (0 for
  // ignored rows), then dh = G·W and dW = Gᵀ·h, slice by slice.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto saved = ctx->get_saved_variables();
    const Tensor &h2 = saved[0], &w = saved[1], &t = saved[2], &lse = saved[3];
    const int64_t rows = ctx->saved_data["rows"].toInt();
    const auto mm = ctx->saved_data["mm"].toScalarType(), acc = ctx->saved_data["acc"].toScalarType();
    const int64_t R = h2.size(0);
    Tensor hm = h2.to(mm), wm = w.to(mm);
    Tensor g = grads[0].to(acc).masked_fill(t < 0, 0.0);
    Tensor tc = t.clamp_min(0);
    const bool need_h = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);
    Tensor dh = need_h ? torch::empty({R, h2.size(1)}, hm.options()) : Tensor();
    // dW accumulates over the slices: in fp32 at least, whatever the matmul dtype.
    const auto wacc = mm == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    Tensor dw = need_w ? torch::zeros(w.sizes(), w.options().dtype(wacc)) : Tensor();
    for (int64_t r0 = 0; r0 < R; r0 += rows) {
      const int64_t n = std::min(rows, R - r0);
      Tensor gs = slice_logits(hm, wm, r0, n, acc).sub_(lse.narrow(0, r0, n).unsqueeze(1)).exp_();  // softmax
      Tensor gn = g.narrow(0, r0, n).unsqueeze(1);
      gs.scatter_add_(1, tc.narrow(0, r0, n).unsqueeze(1), torch::full({n, 1}, -1.0, gs.options()));
      gs.mul_(gn);
      Tensor gm = gs.to(mm);
      if (need_h) dh.narrow(0, r0, n).copy_(torch::mm(gm, wm));
      if (need_w) {
        if (wacc == mm) dw.addmm_(gm.t(), hm.narrow(0, r0, n));
        else dw.add_(torch::mm(gm.t(), hm.narrow(0, r0, n)).to(wacc));
      }
    }
    return {need_h ? dh.to(h2.scalar_type()) : Tensor(), need_w ? dw.to(w.scalar_type()) : Tensor(), Tensor(),
            Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

Tensor sliced_linear_nll(const Tensor& h, const Tensor& weight, const Tensor& targets, int64_t rows_per_slice) {
  TORCH_CHECK(weight.dim() == 2 && h.dim() >= 1 && h.size(-1) == weight.size(1),
              "sliced_linear_nll: h must be …×D and weight V×D with the same D, got ", h.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(targets.scalar_type() == torch::kInt64 && targets.sizes() == h.sizes().slice(0, h.dim() - 1),
              "sliced_linear_nll: targets must be int64 of shape ", h.sizes().slice(0, h.dim() - 1), ", got ",
              targets.scalar_type(), " ", targets.sizes());
  const int64_t V = weight.size(0), D = weight.size(1);
  if (targets.numel() > 0) {
    const int64_t tmax = targets.max().item<int64_t>();
    TORCH_CHECK(tmax < V, "sliced_linear_nll: target id ", tmax, " is outside the head's ", V, " outputs");
  }
  const bool f64 = h.scalar_type() == torch::kFloat64 || weight.scalar_type() == torch::kFloat64;
  const auto acc = f64 ? torch::kFloat64 : torch::kFloat32;
  // The dtype the head's matmul has on the plain path: autocast's on CUDA, else the common dtype.
  at::ScalarType mm = torch::promote_types(h.scalar_type(), weight.scalar_type());
  if (h.is_cuda() && cuda_autocast_enabled() && !f64) mm = cuda_autocast_dtype();
  const int64_t rows = rows_per_slice > 0 ? rows_per_slice : std::max<int64_t>(64, (int64_t{1} << 22) / std::max<int64_t>(1, V));
  Tensor h2 = h.reshape({-1, D}), t = targets.reshape({-1});
  return SlicedLinearNll::apply(h2, weight, t, rows, mm, acc).view(targets.sizes());
}

}  // namespace mgl::ops
