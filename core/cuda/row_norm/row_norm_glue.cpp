#include "core/cuda/row_norm/row_norm_glue.h"

#include "core/cuda/common/glue.h"
#include "core/cuda/row_norm/row_norm_autograd.h"
#include "core/kernels.h"

namespace mgl::cuda {

torch::Tensor row_norm_cuda(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                            bool subtract_mean, double eps) {
  TORCH_CHECK(x.defined() && x.is_cuda() && x.dim() >= 1,
              "row_norm_cuda: x must be a CUDA tensor with a last dimension, got ", x.sizes(), " on ",
              x.device());
  TORCH_CHECK((!weight.defined() || weight.device() == x.device()) &&
                  (!bias.defined() || bias.device() == x.device()),
              "row_norm_cuda: weight and bias must be on x's device ", x.device());
  const int64_t D = x.size(-1);
  const std::string why = kernels::row_norm_unsupported(D > 0 ? x.numel() / D : 0, D, x.scalar_type());
  TORCH_CHECK(why.empty(), "row_norm_cuda: ", why);
  const c10::cuda::CUDAGuard guard(x.device());
  return row_norm_run<CurrentCudaStream>(x, weight, bias, subtract_mean, eps);
}

}  // namespace mgl::cuda
