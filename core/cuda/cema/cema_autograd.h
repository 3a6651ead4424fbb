// The autograd Function over the fused CEMA scan (cema_scan.h), and the impulse response
// (cema_impulse_response.h), for any device: the CUDA glue (cema_glue.cpp) runs them on CUDA
// tensors after its device checks, under a CUDAGuard, with the current CUDA stream; the SIMT
// executor's tests run the same code on CPU tensors (common/autograd.h). `Stream` is a stream
// policy (`static void* stream()`).
#pragma once
#include <torch/torch.h>

#include <utility>

#include "core/cuda/cema/cema_impulse_response.h"
#include "core/cuda/cema/cema_scan.h"
#include "core/cuda/common/autograd.h"
#include "core/ops/cema.h"

namespace mgl::cuda {
namespace cema_autograd_detail {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Interleaved (re, im) view of a complex tensor, contiguous.
inline Tensor as_real(const Tensor& z) { return torch::view_as_real(z.contiguous()).contiguous(); }

// The forward launch: y (x's dtype), h_last (complex B×D×N) and, when keep_states, the chunk
// start states the backward needs (else an undefined tensor and no writes).
struct Forward {
  Tensor y, h_last, states;
};
template <class Stream>
Forward run_forward(const Tensor& xc, const Tensor& pc, const Tensor& lq, const Tensor& er, const Tensor& om,
                    const Tensor& h0r, torch::ScalarType complex_dtype, bool reverse, bool keep_states) {
  const int64_t B = xc.size(0), D = xc.size(1), L = xc.size(2), N = pc.size(1);
  Forward f;
  f.y = torch::empty_like(xc);
  f.h_last = torch::empty({B, D, N}, pc.options().dtype(complex_dtype));
  Tensor hlr = torch::view_as_real(f.h_last);
  const int64_t nc = cema_num_chunks(L, cema_scan_plan(N));
  if (keep_states) f.states = torch::empty({B, D, nc, N, 2}, pc.options());
  auto launch = [&](auto* x, auto* y, auto r) {
    using R = decltype(r);
    cema_scan_forward(x, pc.data_ptr<R>(), lq.data_ptr<R>(), er.data_ptr<R>(), ptr_or_null<R>(om),
                      ptr_or_null<R>(h0r), y, hlr.data_ptr<R>(), mut_ptr_or_null<R>(f.states), B, D, N, L,
                      reverse, Stream::stream());
  };
  if (xc.scalar_type() == torch::kFloat64)
    launch(static_cast<const double*>(elem_ptr<double>(xc)), elem_ptr<double>(f.y), 0.0);
  else if (xc.scalar_type() == torch::kBFloat16)
    launch(static_cast<const bf16*>(elem_ptr<bf16>(xc)), elem_ptr<bf16>(f.y), 0.0f);
  else
    launch(static_cast<const float*>(elem_ptr<float>(xc)), elem_ptr<float>(f.y), 0.0f);
  check_launch("cema_scan_forward");
  return f;
}

// Inputs: x B×D×L (fp32/bf16/fp64), p D×N, log_q and eta D×N complex, omega D and h0 B×D×N
// complex (both optional). Outputs: y (x's dtype) and h_last (complex B×D×N).
template <class Stream>
struct CemaScanFunction : public torch::autograd::Function<CemaScanFunction<Stream>> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor p, Tensor log_q, Tensor eta,
                               c10::optional<Tensor> omega_in, c10::optional<Tensor> h0_in, bool reverse) {
    const Tensor omega = omega_in.value_or(Tensor()), h0 = h0_in.value_or(Tensor());
    const int64_t D = x.size(1);
    Tensor xc = x.contiguous(), pc = p.contiguous(), lq = as_real(log_q), er = as_real(eta);
    Tensor om = omega.defined() ? omega.reshape({D}).contiguous() : Tensor();
    Tensor h0r = h0.defined() ? as_real(h0) : Tensor();
    Forward f = run_forward<Stream>(xc, pc, lq, er, om, h0r, log_q.scalar_type(), reverse, true);
    // Undefined tensors (no omega) go through save_for_backward, which keeps them undefined on
    // every LibTorch version; only plain values go to saved_data.
    ctx->save_for_backward({xc, pc, lq, er, om, f.states});
    ctx->saved_data["reverse"] = reverse;
    ctx->saved_data["has_h0"] = h0.defined();
    ctx->saved_data["complex_dtype"] = static_cast<int64_t>(log_q.scalar_type());
    return {f.y, f.h_last};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &xc = saved[0], &pc = saved[1], &lq = saved[2], &er = saved[3], &om = saved[4],
                 &states = saved[5];
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
    auto launch = [&](auto* gyp, auto* xp, auto* dxp, auto r) {
      using R = decltype(r);
      cema_scan_backward(gyp, ptr_or_null<R>(gh), xp, pc.data_ptr<R>(), lq.data_ptr<R>(), er.data_ptr<R>(),
                         ptr_or_null<R>(om), states.data_ptr<R>(), dxp, part_p.data_ptr<R>(),
                         part_lq.data_ptr<R>(), part_eta.data_ptr<R>(), mut_ptr_or_null<R>(part_om),
                         mut_ptr_or_null<R>(dh0r), B, D, N, L, reverse, Stream::stream());
    };
    if (xc.scalar_type() == torch::kFloat64)
      launch(static_cast<const double*>(elem_ptr<double>(gy)),
             static_cast<const double*>(elem_ptr<double>(xc)), elem_ptr<double>(dx), 0.0);
    else if (xc.scalar_type() == torch::kBFloat16)
      launch(static_cast<const bf16*>(elem_ptr<bf16>(gy)), static_cast<const bf16*>(elem_ptr<bf16>(xc)),
             elem_ptr<bf16>(dx), 0.0f);
    else
      launch(static_cast<const float*>(elem_ptr<float>(gy)), static_cast<const float*>(elem_ptr<float>(xc)),
             elem_ptr<float>(dx), 0.0f);
    check_launch("cema_scan_backward");
    // Batch reduction of the per-row partials (deterministic, unlike atomics).
    Tensor grad_p = part_p.sum(0);
    Tensor grad_lq = torch::view_as_complex(part_lq.sum(0).contiguous());
    Tensor grad_eta = torch::view_as_complex(part_eta.sum(0).contiguous());
    Tensor grad_om = om.defined() ? part_om.sum(0) : Tensor();
    return {dx, grad_p, grad_lq, grad_eta, grad_om, dh0, Tensor()};
  }
};

}  // namespace cema_autograd_detail

// cema_scan (cema_glue.h) once the operands are known to be on one device the kernels can read:
// the shape checks, the dtype casts of omega and h0, and the Function (or, without gradients, the
// forward launch alone, keeping no chunk states).
template <class Stream>
std::pair<torch::Tensor, torch::Tensor> cema_scan_run(const torch::Tensor& x, const ops::EmaCoeffs& c,
                                                      const torch::Tensor& omega, const torch::Tensor& h0,
                                                      bool reverse) {
  using namespace cema_autograd_detail;
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
  const auto rt = c.p.scalar_type();
  Tensor om = omega.defined() ? omega.to(rt) : Tensor();
  Tensor h = h0.defined() ? h0.to(c.log_q.scalar_type()) : Tensor();
  const bool need_grad =
      torch::GradMode::is_enabled() &&
      (x.requires_grad() || c.p.requires_grad() || c.log_q.requires_grad() || c.eta.requires_grad() ||
       (om.defined() && om.requires_grad()) || (h.defined() && h.requires_grad()));
  if (!need_grad) {  // inference: no autograd node, no chunk states kept
    const int64_t D = x.size(1);
    Forward f =
        run_forward<Stream>(x.contiguous(), c.p.contiguous(), as_real(c.log_q), as_real(c.eta),
                            om.defined() ? om.reshape({D}).contiguous() : Tensor(),
                            h.defined() ? as_real(h) : Tensor(), c.log_q.scalar_type(), reverse, false);
    return {f.y, f.h_last};
  }
  auto out =
      CemaScanFunction<Stream>::apply(x, c.p, c.log_q, c.eta, optional_input(om), optional_input(h), reverse);
  return {out[0], out[1]};
}

// cema_impulse_response_cuda (cema_glue.h) for operands on one device.
template <class Stream>
torch::Tensor cema_impulse_response_run(const ops::EmaCoeffs& c, int64_t L) {
  TORCH_CHECK(c.is_complex(), "cema_impulse_response: complex (CEMA) coefficients expected");
  TORCH_CHECK(L >= 0, "cema_impulse_response: L must be >= 0, got ", L);
  auto p = c.p.contiguous();
  auto lq = torch::view_as_real(c.log_q.contiguous()).contiguous();
  auto eta = torch::view_as_real(c.eta.contiguous()).contiguous();
  auto k = torch::empty({c.dim(), L}, p.options());
  if (p.scalar_type() == torch::kFloat64) {
    cema_impulse_response_forward<double>(p.data_ptr<double>(), lq.data_ptr<double>(), eta.data_ptr<double>(),
                                          k.data_ptr<double>(), c.dim(), c.ndim(), L, Stream::stream());
  } else {
    TORCH_CHECK(p.scalar_type() == torch::kFloat32,
                "cema_impulse_response: fp32 or fp64 coefficients expected, got ", p.scalar_type());
    cema_impulse_response_forward<float>(p.data_ptr<float>(), lq.data_ptr<float>(), eta.data_ptr<float>(),
                                         k.data_ptr<float>(), c.dim(), c.ndim(), L, Stream::stream());
  }
  check_launch("cema_impulse_response_forward");
  return k;
}

}  // namespace mgl::cuda
