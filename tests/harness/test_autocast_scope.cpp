// harness::AutocastScope (the trainer's and the benchmark's bf16 autocast): it switches CUDA autocast
// on with bf16 for its scope and off after, through the API of the LibTorch it is built against (the
// calls changed in 2.4; CI builds both spellings). Only thread-local autocast state is touched, so
// no GPU is needed. Oracle: LibTorch's own getters.
#include <ATen/autocast_mode.h>
#include <catch2/catch.hpp>
#include <torch/version.h>

#include "harness/train/autocast.h"

namespace {
bool cuda_autocast_on() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}
at::ScalarType cuda_autocast_dtype() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}
}  // namespace

TEST_CASE("AutocastScope turns CUDA bf16 autocast on for its scope only", "[autocast]") {
  REQUIRE_FALSE(cuda_autocast_on());
  {
    mgl::harness::AutocastScope off(false);
    CHECK_FALSE(cuda_autocast_on());
  }
  {
    mgl::harness::AutocastScope on(true);
    CHECK(cuda_autocast_on());
    CHECK(cuda_autocast_dtype() == at::kBFloat16);
  }
  CHECK_FALSE(cuda_autocast_on());
}
