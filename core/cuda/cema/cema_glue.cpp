#include "core/cuda/cema/cema_glue.h"

#include "core/cuda/cema/cema_impulse_response.h"
#include "core/cuda/cema/cema_scan.h"
#include "core/cuda/common/glue.h"

namespace mgl::cuda {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Real data pointer of an fp32/fp64 tensor, or null for an undefined one.
template <typename R>
const R* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<R>() : nullptr;
}
template <typename R>
R* mut_ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<R>() : nullptr;
}

// Interleaved (re, im) view of a complex tensor, contiguous.
Tensor as_real(const Tensor& z) { return torch::view_as_real(z.contiguous()).contiguous(); }

template <typename X, typename R>
void launch_forward(const X* x, const Tensor& p, const Tensor& lq, const Tensor& eta, const Tensor& om,
                    const Tensor& h0, X* y, const Tensor& hl, const Tensor& states, int64_t B, int64_t D, int64_t N,
                    int64_t L, bool reverse) {
  cema_scan_forward<X, R>(x, p.data_ptr<R>(), lq.data_ptr<R>(), eta.data_ptr<R>(), ptr_or_null<R>(om),
                          ptr_or_null<R>(h0), y, hl.data_ptr<R>(), mut_ptr_or_null<R>(states), B, D, N, L, reverse,
                          c10::cuda::getCurrentCUDAStream().stream());
  check_launch("cema_scan_forward");
}

template <typename X, typename R>
void launch_backward(const X* gy, const Tensor& gh, const X* x, const Tensor& p, const Tensor& lq, const Tensor& eta,
                     const Tensor& om, const Tensor& states, X* dx, const Tensor& part_p, const Tensor& part_lq,
                     const Tensor& part_eta, const Tensor& part_om, const Tensor& dh0, int64_t B, int64_t D,
                     int64_t N, int64_t L, bool reverse) {
  cema_scan_backward<X, R>(gy, ptr_or_null<R>(gh), x, p.data_ptr<R>(), lq.data_ptr<R>(), eta.data_ptr<R>(),
                           ptr_or_null<R>(om), states.data_ptr<R>(), dx, part_p.data_ptr<R>(), part_lq.data_ptr<R>(),
                           part_eta.data_ptr<R>(), mut_ptr_or_null<R>(part_om), mut_ptr_or_null<R>(dh0), B, D, N, L,
                           reverse, c10::cuda::getCurrentCUDAStream().stream());
  check_launch("cema_scan_backward");
}

// The forward launch: y (x's dtype), h_last (complex B×D×N) and, when keep_states, the chunk
// start states the backward needs (else an undefined tensor and no writes).
struct Forward {
  Tensor y, h_last, states;
};
Forward run_forward(const Tensor& xc, const Tensor& pc, const Tensor& lq, const Tensor& er, const Tensor& om,
                    const Tensor& h0r, torch::ScalarType complex_dtype, bool reverse, bool keep_states) {
  const int64_t B = xc.size(0), D = xc.size(1), L = xc.size(2), N = pc.size(1);
  Forward f;
  f.y = torch::empty_like(xc);
  f.h_last = torch::empty({B, D, N}, pc.options().dtype(complex_dtype));
  Tensor hlr = torch::view_as_real(f.h_last);
  const int64_t nc = cema_num_chunks(L, cema_scan_plan(N));
  if (keep_states) f.states = torch::empty({B, D, nc, N, 2}, pc.options());
  if (xc.scalar_type() == torch::kFloat64) {
    launch_forward<double, double>(xc.data_ptr<double>(), pc, lq, er, om, h0r, f.y.data_ptr<double>(), hlr, f.states,
                                   B, D, N, L, reverse);
  } else if (xc.scalar_type() == torch::kBFloat16) {
    launch_forward<bf16, float>(reinterpret_cast<const bf16*>(xc.data_ptr<at::BFloat16>()), pc, lq, er, om, h0r,
                                reinterpret_cast<bf16*>(f.y.data_ptr<at::BFloat16>()), hlr, f.states, B, D, N, L,
                                reverse);
  } else {
    launch_forward<float, float>(xc.data_ptr<float>(), pc, lq, er, om, h0r, f.y.data_ptr<float>(), hlr, f.states, B,
                                 D, N, L, reverse);
  }
  return f;
}

// Inputs: x B×D×L (fp32/bf16/fp64), p D×N, log_q and eta D×N complex, omega D or undefined,
// h0 B×D×N complex or undefined. Outputs: y (x's dtype) and h_last (complex B×D×N).
struct CemaScanFn : public torch::autograd::Function<CemaScanFn> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor p, Tensor log_q, Tensor eta, Tensor omega,
                               Tensor h0, bool reverse) {
    const int64_t D = x.size(1);
    Tensor xc = x.contiguous(), pc = p.contiguous(), lq = as_real(log_q), er = as_real(eta);
    Tensor om = omega.defined() ? omega.reshape({D}).contiguous() : Tensor();
    Tensor h0r = h0.defined() ? as_real(h0) : Tensor();
    Forward f = run_forward(xc, pc, lq, er, om, h0r, log_q.scalar_type(), reverse, true);
    ctx->save_for_backward({xc, pc, lq, er, om, f.states});
    ctx->saved_data["reverse"] = reverse;
    ctx->saved_data["has_h0"] = h0.defined();
    ctx->saved_data["complex_dtype"] = static_cast<int64_t>(log_q.scalar_type());
    return {f.y, f.h_last};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &xc = saved[0], &pc = saved[1], &lq = saved[2], &er = saved[3], &om = saved[4], &states = saved[5];
    const bool reverse = ctx->saved_data["reverse"].toBool();
    const bool has_h0 = ctx->saved_data["has_h0"].toBool();
    const auto cdt = static_cast<torch::ScalarType>(ctx->saved_data["complex_dtype"].toInt());
    const int64_t B = xc.size(0), D = xc.size(1), L = xc.size(2), N = pc.size(1);
    Tensor gy = grads[0].defined() ? grads[0].to(xc.scalar_type()).contiguous() : torch::zeros_like(xc);
    Tensor gh = grads[1].defined() ? as_real(grads[1].to(cdt)) : Tensor();
    auto ropt = pc.options();
    Tensor dx = torch::empty_like(xc);
    Tensor part_p = torch::empty({B, D, N}, ropt), part_lq = torch::empty({B, D, N, 2}, ropt),
           part_eta = torch::empty({B, D, N, 2}, ropt);
    Tensor part_om = om.defined() ? torch::empty({B, D}, ropt) : Tensor();
    Tensor dh0 = has_h0 ? torch::empty({B, D, N}, ropt.dtype(cdt)) : Tensor();
    Tensor dh0r = has_h0 ? torch::view_as_real(dh0) : Tensor();
    if (xc.scalar_type() == torch::kFloat64) {
      launch_backward<double, double>(gy.data_ptr<double>(), gh, xc.data_ptr<double>(), pc, lq, er, om, states,
                                      dx.data_ptr<double>(), part_p, part_lq, part_eta, part_om, dh0r, B, D, N, L,
                                      reverse);
    } else if (xc.scalar_type() == torch::kBFloat16) {
      launch_backward<bf16, float>(reinterpret_cast<const bf16*>(gy.data_ptr<at::BFloat16>()), gh,
                                   reinterpret_cast<const bf16*>(xc.data_ptr<at::BFloat16>()), pc, lq, er, om, states,
                                   reinterpret_cast<bf16*>(dx.data_ptr<at::BFloat16>()), part_p, part_lq, part_eta,
                                   part_om, dh0r, B, D, N, L, reverse);
    } else {
      launch_backward<float, float>(gy.data_ptr<float>(), gh, xc.data_ptr<float>(), pc, lq, er, om, states,
                                    dx.data_ptr<float>(), part_p, part_lq, part_eta, part_om, dh0r, B, D, N, L,
                                    reverse);
    }
    // Batch reduction of the per-row partials (deterministic, unlike atomics).
    Tensor grad_p = part_p.sum(0);
    Tensor grad_lq = torch::view_as_complex(part_lq.sum(0).contiguous());
    Tensor grad_eta = torch::view_as_complex(part_eta.sum(0).contiguous());
    Tensor grad_om = om.defined() ? part_om.sum(0) : Tensor();
    return {dx, grad_p, grad_lq, grad_eta, grad_om, dh0, Tensor()};
  }
};

}  // namespace

bool cema_scan_supports(const ops::EmaCoeffs& c, const torch::Tensor& x, std::string* why) {
  auto no = [&](const char* reason) {
    if (why) *why = reason;
    return false;
  };
  if (!c.is_complex()) return no("the fused scan covers the complex CEMA only (real EMA coefficients given)");
  if (!x.is_cuda() || !c.p.is_cuda()) return no("the fused scan runs on CUDA tensors only");
  if (c.ndim() < 1 || c.ndim() > kCemaMaxN) return no("the fused scan needs 1 <= N <= 256");
  const auto rt = c.p.scalar_type(), xt = x.scalar_type();
  if (rt == torch::kFloat32 && (xt == torch::kFloat32 || xt == torch::kBFloat16)) return true;
  if (rt == torch::kFloat64 && xt == torch::kFloat64) return true;
  return no("the fused scan takes fp32 coefficients with fp32/bf16 x, or fp64 with fp64 x");
}

std::pair<Tensor, Tensor> cema_scan(const Tensor& x, const ops::EmaCoeffs& c, const Tensor& omega, const Tensor& h0,
                                    bool reverse) {
  std::string why;
  TORCH_CHECK(cema_scan_supports(c, x, &why), "cema_scan: ", why);
  TORCH_CHECK(x.dim() == 3 && x.size(1) == c.dim() && x.size(2) >= 1, "cema_scan: x must be B×", c.dim(),
              "×L with L >= 1, got ", x.sizes());
  TORCH_CHECK(c.log_q.sizes() == c.p.sizes() && c.eta.sizes() == c.p.sizes(),
              "cema_scan: p, log_q and eta must all be D×N, got ", c.p.sizes(), ", ", c.log_q.sizes(), ", ",
              c.eta.sizes());
  TORCH_CHECK(c.log_q.scalar_type() == c.eta.scalar_type(), "cema_scan: log_q and eta must have one dtype");
  TORCH_CHECK(!omega.defined() || omega.numel() == c.dim(), "cema_scan: omega must have D = ", c.dim(),
              " elements, got ", omega.sizes());
  TORCH_CHECK(!h0.defined() || (h0.is_complex() && h0.dim() == 3 && h0.size(0) == x.size(0) &&
                                h0.size(1) == c.dim() && h0.size(2) == c.ndim()),
              "cema_scan: h0 must be complex B×D×N = ", x.size(0), "×", c.dim(), "×", c.ndim(), ", got ",
              h0.defined() ? h0.sizes() : torch::IntArrayRef{});
  c10::cuda::CUDAGuard guard(x.device());
  const auto rt = c.p.scalar_type();
  Tensor om = omega.defined() ? omega.to(rt) : Tensor();
  Tensor h = h0.defined() ? h0.to(c.log_q.scalar_type()) : Tensor();
  const bool need_grad = torch::GradMode::is_enabled() &&
                         (x.requires_grad() || c.p.requires_grad() || c.log_q.requires_grad() ||
                          c.eta.requires_grad() || (om.defined() && om.requires_grad()) ||
                          (h.defined() && h.requires_grad()));
  if (!need_grad) {  // inference: no autograd node, no chunk states kept
    const int64_t D = x.size(1);
    Forward f = run_forward(x.contiguous(), c.p.contiguous(), as_real(c.log_q), as_real(c.eta),
                            om.defined() ? om.reshape({D}).contiguous() : Tensor(), h.defined() ? as_real(h) : Tensor(),
                            c.log_q.scalar_type(), reverse, false);
    return {f.y, f.h_last};
  }
  auto out = CemaScanFn::apply(x, c.p, c.log_q, c.eta, om, h, reverse);
  return {out[0], out[1]};
}

torch::Tensor cema_impulse_response_cuda(const ops::EmaCoeffs& c, int64_t L) {
  TORCH_CHECK(c.p.is_cuda() && c.is_complex(), "cema_impulse_response_cuda: complex coefficients on a CUDA device expected");
  auto p = c.p.contiguous();
  auto lq = torch::view_as_real(c.log_q.contiguous()).contiguous();
  auto eta = torch::view_as_real(c.eta.contiguous()).contiguous();
  auto k = torch::empty({c.dim(), L}, p.options());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  if (p.scalar_type() == torch::kFloat64) {
    cema_impulse_response_forward<double>(p.data_ptr<double>(), lq.data_ptr<double>(), eta.data_ptr<double>(),
                               k.data_ptr<double>(), c.dim(), c.ndim(), L, stream);
  } else {
    TORCH_CHECK(p.scalar_type() == torch::kFloat32, "cema_impulse_response_cuda: fp32 or fp64 coefficients expected");
    cema_impulse_response_forward<float>(p.data_ptr<float>(), lq.data_ptr<float>(), eta.data_ptr<float>(), k.data_ptr<float>(),
                              c.dim(), c.ndim(), L, stream);
  }
  return k;
}


}  // namespace mgl::cuda
