#include "core/cuda/timestep_norm/timestep_norm_glue.h"

#include "core/cuda/common/glue.h"
#include "core/cuda/timestep_norm/timestep_norm_autograd.h"

namespace mgl::cuda {

ops::TimestepNormOutput timestep_norm_cuda(const torch::Tensor& x, int64_t num_groups,
                                           const torch::Tensor& weight, const torch::Tensor& bias,
                                           const ops::NormState& prev, const torch::Tensor& padding_mask,
                                           double eps) {
  TORCH_CHECK(x.defined() && x.is_cuda(), "timestep_norm_cuda: x must be a CUDA tensor, got one on ",
              x.defined() ? x.device().str() : std::string("(undefined)"));
  // The parameters and the state are moved to x's device (they are small); x decides the device.
  const c10::cuda::CUDAGuard guard(x.device());
  return timestep_norm_run<CurrentCudaStream>(x, num_groups, weight, bias, prev, padding_mask, eps);
}

}  // namespace mgl::cuda
