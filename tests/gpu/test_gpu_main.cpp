// Runs the registered GPU checks (tests/gpu/gpu_check.h). Usage: megalodon_gpu_tests [name-filter]
// Exit 0: all passed; 1: a check failed; 77: skipped (no CUDA glue in this build, or no device).
#include <torch/torch.h>

#include <cstdio>
#include <exception>
#include <string>

#include "gpu/gpu_check.h"

int main(int argc, char** argv) {
#ifndef MEGALODON_WITH_CUDA_GLUE
  (void)argc;
  (void)argv;
  std::printf("SKIPPED: this LibTorch has no CUDA (the CUDA glue was not built)\n");
  return 77;
#else
  if (!torch::cuda::is_available()) {
    std::printf("SKIPPED: no CUDA device present\n");
    return 77;
  }
  const std::string filter = argc > 1 ? argv[1] : "";
  mgl::gpu_tests::Report total;
  for (const auto& c : mgl::gpu_tests::registry()) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    std::printf("== %s\n", c.name.c_str());
    mgl::gpu_tests::Report r;
    try {
      c.fn(r);
    } catch (const std::exception& e) {
      std::printf("FAIL %s threw: %s\n", c.name.c_str(), e.what());
      r.failed++;
    }
    total.passed += r.passed;
    total.failed += r.failed;
  }
  std::printf("%d passed, %d failed\n", total.passed, total.failed);
  return total.failed ? 1 : 0;
#endif
}
