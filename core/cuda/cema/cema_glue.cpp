#include "core/cuda/cema/cema_glue.h"

#include "core/cuda/cema/cema_autograd.h"
#include "core/cuda/common/glue.h"
#include "core/kernels.h"

namespace mgl::cuda {

bool cema_scan_supports(const ops::EmaCoeffs& c, const torch::Tensor& x, const torch::Tensor& omega,
                        const torch::Tensor& h0, std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why) *why = reason;
    return false;
  };
  if (!c.is_complex()) return no("the fused scan covers the complex CEMA only (real EMA coefficients given)");
  if (!x.defined() || !x.is_cuda()) return no("the fused scan runs on CUDA tensors only");
  const auto dev = x.device();
  for (const torch::Tensor* t : {&c.p, &c.log_q, &c.eta, &omega, &h0})
    if (t->defined() && t->device() != dev)
      return no("x, the coefficients, omega and h0 must be on one device (x on " + dev.str() +
                ", an operand on " + t->device().str() + ")");
  const int64_t B = x.dim() == 3 ? x.size(0) : 0, L = x.dim() == 3 ? x.size(2) : 0;
  const std::string rule =
      kernels::cema_unsupported(B, c.dim(), c.ndim(), L, c.p.scalar_type(), x.scalar_type());
  if (!rule.empty()) return no(rule);
  return true;
}

std::pair<torch::Tensor, torch::Tensor> cema_scan(const torch::Tensor& x, const ops::EmaCoeffs& c,
                                                  const torch::Tensor& omega, const torch::Tensor& h0,
                                                  bool reverse) {
  std::string why;
  TORCH_CHECK(cema_scan_supports(c, x, omega, h0, &why), "cema_scan: ", why);
  const c10::cuda::CUDAGuard guard(x.device());
  return cema_scan_run<CurrentCudaStream>(x, c, omega, h0, reverse);
}

torch::Tensor cema_impulse_response_cuda(const ops::EmaCoeffs& c, int64_t L) {
  TORCH_CHECK(c.p.is_cuda() && c.log_q.device() == c.p.device() && c.eta.device() == c.p.device(),
              "cema_impulse_response_cuda: coefficients on one CUDA device expected");
  const c10::cuda::CUDAGuard guard(c.p.device());
  return cema_impulse_response_run<CurrentCudaStream>(c, L);
}

}  // namespace mgl::cuda
