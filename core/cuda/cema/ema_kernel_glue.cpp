#include "core/cuda/ema_kernel_glue.h"

#include <c10/cuda/CUDAStream.h>

#include "core/cuda/ema_kernel.h"

namespace mgl::cuda {

bool kernels_available() { return device_count() > 0 && torch::cuda::is_available(); }

torch::Tensor ema_kernel_cuda(const ops::EmaCoeffs& c, int64_t L) {
  TORCH_CHECK(c.p.is_cuda() && c.is_complex(), "ema_kernel_cuda: complex coefficients on a CUDA device expected");
  auto p = c.p.contiguous();
  auto lq = torch::view_as_real(c.log_q.contiguous()).contiguous();
  auto eta = torch::view_as_real(c.eta.contiguous()).contiguous();
  auto k = torch::empty({c.dim(), L}, p.options());
  void* stream = c10::cuda::getCurrentCUDAStream().stream();
  if (p.scalar_type() == torch::kFloat64) {
    ema_kernel_forward<double>(p.data_ptr<double>(), lq.data_ptr<double>(), eta.data_ptr<double>(),
                               k.data_ptr<double>(), c.dim(), c.ndim(), L, stream);
  } else {
    TORCH_CHECK(p.scalar_type() == torch::kFloat32, "ema_kernel_cuda: fp32 or fp64 coefficients expected");
    ema_kernel_forward<float>(p.data_ptr<float>(), lq.data_ptr<float>(), eta.data_ptr<float>(), k.data_ptr<float>(),
                              c.dim(), c.ndim(), L, stream);
  }
  return k;
}

}  // namespace mgl::cuda
