#include "core/kernels.h"

#include <fmt/format.h>

namespace mgl::kernels {

bool use_fused(KernelImpl impl, const torch::Tensor& x, const char* key) {
  switch (impl) {
    case KernelImpl::reference:
      return false;
    case KernelImpl::auto_select:
      return glue_compiled() && x.defined() && x.is_cuda();
    case KernelImpl::fused:
      if (!glue_compiled())
        throw ConfigError(key, "\"fused\" needs the CUDA kernels, but this build's LibTorch has no CUDA "
                               "(use \"reference\" or \"auto\")");
      if (!x.defined() || !x.is_cuda())
        throw ConfigError(key, fmt::format("\"fused\" runs on CUDA tensors only, got a {} tensor (use \"reference\" "
                                           "or \"auto\")",
                                           x.defined() ? c10::DeviceTypeName(x.device().type()) : "undefined"));
      return true;
  }
  return false;
}

}  // namespace mgl::kernels
