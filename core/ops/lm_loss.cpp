#include "core/ops/lm_loss.h"

#include <c10/core/impl/LocalDispatchKeySet.h>

#include "core/cpu/softmax_rows.h"
#include "core/util/autocast_state.h"

namespace mgl::ops {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// fp32 logits on the CPU go through the fused row kernels (core/cpu/softmax_rows.h) unless the
// reference path is asked for; any other dtype or device through the LibTorch expressions beside
// them, which are also their oracle.
bool fused_rows(const Tensor& logits, bool plain) {
  return !plain && logits.device().is_cpu() && logits.scalar_type() == torch::kFloat32;
}

// buf[0:n] ← rows [r0, r0+n) of h2 times wᵀ, in the accumulation dtype; returns that view.
Tensor slice_logits(Tensor& buf, const Tensor& h2, const Tensor& w, int64_t r0, int64_t n, torch::Dtype acc) {
  Tensor hs = h2.narrow(0, r0, n);
  if (h2.scalar_type() != acc) return torch::mm(hs, w.t()).to(acc);
  if (!buf.defined()) buf = torch::empty({n, w.size(0)}, h2.options());
  Tensor out = buf.narrow(0, 0, n);
  torch::mm_out(out, hs, w.t());
  return out;
}

// lse_r = log Σ_v exp(logits_rv) and nll_r = lse_r − logits_{r,t_r}, written into lse and nll (t ≥ 0).
void lse_and_nll(const Tensor& logits, const Tensor& tc, Tensor lse, Tensor nll, bool plain) {
  if (!fused_rows(logits, plain)) {
    lse.copy_(torch::logsumexp(logits, -1));
    nll.copy_(lse - logits.gather(1, tc.unsqueeze(1)).squeeze(1));
    return;
  }
  cpu::lse_and_nll_rows(logits.data_ptr<float>(), logits.size(0), logits.size(1), tc.data_ptr<int64_t>(),
                        lse.data_ptr<float>(), nll.data_ptr<float>());
}

// logits ← g_r · (softmax(logits_r) − onehot(t_r)) = g_r · d nll_r / d logits_r, given lse.
void scaled_softmax_grad(Tensor& logits, const Tensor& lse, const Tensor& g, const Tensor& tc, bool plain) {
  if (!fused_rows(logits, plain)) {
    logits.sub_(lse.unsqueeze(1)).exp_().mul_(g.unsqueeze(1));
    logits.scatter_add_(1, tc.unsqueeze(1), -g.unsqueeze(1));
    return;
  }
  cpu::softmax_grad_rows(logits.data_ptr<float>(), logits.size(0), logits.size(1), tc.data_ptr<int64_t>(),
                         lse.data_ptr<float>(), g.data_ptr<float>());
}

// dh[r0:r0+n] = G·W and dw += Gᵀ·h[r0:r0+n] for one slice's G (n×V in the accumulation dtype).
void accumulate_grads(const Tensor& G, const Tensor& hm, const Tensor& wm, int64_t r0, Tensor& dh, Tensor& dw) {
  const int64_t n = G.size(0);
  Tensor gm = G.to(hm.scalar_type());
  if (dh.defined()) {
    Tensor out = dh.narrow(0, r0, n);
    torch::mm_out(out, gm, wm);
  }
  if (dw.defined()) {
    if (dw.scalar_type() == gm.scalar_type()) dw.addmm_(gm.t(), hm.narrow(0, r0, n));
    else dw.add_(torch::mm(gm.t(), hm.narrow(0, r0, n)).to(dw.scalar_type()));
  }
}

struct SlicedLinearNll : public torch::autograd::Function<SlicedLinearNll> {
  // h2: R×D and w: V×D in their own dtypes; mm: the matmul dtype; acc: logits dtype. eager_h/_w:
  // compute d Σ nll / dh and / dW here, while each slice's logits exist, instead of recomputing
  // them in the backward (see backward()).
  static Tensor forward(AutogradContext* ctx, const Tensor& h2, const Tensor& w, const Tensor& t, int64_t rows,
                        at::ScalarType mm, at::ScalarType acc, bool eager_h, bool eager_w, bool plain) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const int64_t R = h2.size(0);
    Tensor hm = h2.to(mm), wm = w.to(mm);
    Tensor lse = torch::empty({R}, h2.options().dtype(acc));
    Tensor nll = torch::empty({R}, h2.options().dtype(acc));
    Tensor tc = t.clamp_min(0);
    Tensor ones = eager_h || eager_w ? (t >= 0).to(acc) : Tensor();  // the gradient eager_* assume
    Tensor dh1 = eager_h ? torch::empty({R, h2.size(1)}, hm.options()) : Tensor();
    Tensor dw1 = eager_w ? torch::zeros(w.sizes(), w.options().dtype(grad_accumulation_dtype(mm))) : Tensor();
    Tensor buf;
    for (int64_t r0 = 0; r0 < R; r0 += rows) {
      const int64_t n = std::min(rows, R - r0);
      Tensor logits = slice_logits(buf, hm, wm, r0, n, acc);
      lse_and_nll(logits, tc.narrow(0, r0, n), lse.narrow(0, r0, n), nll.narrow(0, r0, n), plain);
      if (eager_h || eager_w) {
        scaled_softmax_grad(logits, lse.narrow(0, r0, n), ones.narrow(0, r0, n), tc.narrow(0, r0, n), plain);
        accumulate_grads(logits, hm, wm, r0, dh1, dw1);
      }
    }
    nll.masked_fill_(t < 0, 0.0);
    ctx->save_for_backward({h2, w, t, lse, dh1, dw1});
    ctx->saved_data["rows"] = rows;
    ctx->saved_data["mm"] = mm;
    ctx->saved_data["acc"] = acc;
    ctx->saved_data["plain"] = plain;
    return nll;
  }

  // d nll_r / d logits_r = softmax(logits_r) − onehot(t_r), scaled by the incoming gradient g_r (0
  // for ignored rows); dh = G·W and dW = Gᵀ·h. What the forward computed with g = 1 is rescaled:
  // dh row by row, dW only when g is the same on every counted row (a sum or mean of the loss, the
  // usual case). Anything else recomputes each slice's logits.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto saved = ctx->get_saved_variables();
    const Tensor &h2 = saved[0], &w = saved[1], &t = saved[2], &lse = saved[3], &dh1 = saved[4], &dw1 = saved[5];
    const int64_t rows = ctx->saved_data["rows"].toInt();
    const auto mm = ctx->saved_data["mm"].toScalarType(), acc = ctx->saved_data["acc"].toScalarType();
    const bool plain = ctx->saved_data["plain"].toBool();
    const int64_t R = h2.size(0);
    Tensor g = grads[0].to(acc).masked_fill(t < 0, 0.0).contiguous();
    const bool need_h = ctx->needs_input_grad(0), need_w = ctx->needs_input_grad(1);
    Tensor dh, dw;
    if (need_h && dh1.defined()) dh = dh1 * g.unsqueeze(1).to(dh1.scalar_type());
    if (need_w && dw1.defined()) {
      Tensor counted = g.masked_select(t >= 0);
      if (counted.numel() == 0) dw = torch::zeros_like(dw1);
      else if (counted.eq(counted[0]).all().item<bool>()) dw = dw1 * counted[0];
    }
    Tensor redo_h = need_h && !dh.defined() ? torch::empty({R, h2.size(1)}, h2.options().dtype(mm)) : Tensor();
    Tensor redo_w =
        need_w && !dw.defined() ? torch::zeros(w.sizes(), w.options().dtype(grad_accumulation_dtype(mm))) : Tensor();
    if (redo_h.defined() || redo_w.defined()) {
      Tensor hm = h2.to(mm), wm = w.to(mm), tc = t.clamp_min(0), buf;
      for (int64_t r0 = 0; r0 < R; r0 += rows) {
        const int64_t n = std::min(rows, R - r0);
        Tensor logits = slice_logits(buf, hm, wm, r0, n, acc);
        scaled_softmax_grad(logits, lse.narrow(0, r0, n), g.narrow(0, r0, n), tc.narrow(0, r0, n), plain);
        accumulate_grads(logits, hm, wm, r0, redo_h, redo_w);
      }
      if (redo_h.defined()) dh = redo_h;
      if (redo_w.defined()) dw = redo_w;
    }
    return {need_h ? dh.to(h2.scalar_type()) : Tensor(), need_w ? dw.to(w.scalar_type()) : Tensor(), Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }

  // dW accumulates over the slices: in fp32 at least, whatever the matmul dtype.
  static at::ScalarType grad_accumulation_dtype(at::ScalarType mm) {
    return mm == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  }
};

}  // namespace

Tensor sliced_linear_nll(const Tensor& h, const Tensor& weight, const Tensor& targets, int64_t rows_per_slice,
                         bool plain) {
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
  // On the CPU the gradients are computed in the forward, saving the backward's logits product (a
  // quarter of the head's matmul FLOPs); on CUDA rescaling dW would cost a device sync.
  const bool eager = !plain && torch::GradMode::is_enabled() && h.device().is_cpu();
  return SlicedLinearNll::apply(h2, weight, t, rows, mm, acc, eager && h.requires_grad(), eager && weight.requires_grad(),
                                plain)
      .view(targets.sizes());
}

}  // namespace mgl::ops
