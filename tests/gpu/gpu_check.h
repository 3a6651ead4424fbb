// GPU checks: the CUDA kernels against the reference path and an fp64 oracle. Each check is a
// function registered with MGL_GPU_CHECK in its own tests/gpu/*.cpp file; test_gpu_main.cpp runs
// them all (or those whose name contains argv[1]). Without a CUDA device, or in a build without the
// CUDA glue, the program prints why and exits 77, which ctest reports as "Skipped".
#pragma once
#include <torch/torch.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace mgl::gpu_tests {

// A check reports each comparison through `Report`; it fails when any comparison failed.
struct Report {
  int passed = 0;
  int failed = 0;
  // Records and prints one comparison: ok when err <= tol.
  bool expect_le(double err, double tol, const std::string& what) {
    const bool ok = err <= tol;
    (ok ? passed : failed)++;
    std::printf("%s %s: err %.3g (tolerance %.3g)\n", ok ? "ok  " : "FAIL", what.c_str(), err, tol);
    return ok;
  }
  bool expect(bool ok, const std::string& what) {
    (ok ? passed : failed)++;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
    return ok;
  }
};

struct Check {
  std::string name;
  std::function<void(Report&)> fn;
};
inline std::vector<Check>& registry() {
  static std::vector<Check> checks;
  return checks;
}
struct Registrar {
  Registrar(const char* name, std::function<void(Report&)> fn) { registry().push_back({name, std::move(fn)}); }
};

// Max |a − b| over all elements, in fp64.
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace mgl::gpu_tests

#define MGL_GPU_CAT2(a, b) a##b
#define MGL_GPU_CAT(a, b) MGL_GPU_CAT2(a, b)
#define MGL_GPU_CHECK(name)                                                                       \
  static void MGL_GPU_CAT(mgl_gpu_check_, __LINE__)(::mgl::gpu_tests::Report&);                  \
  static ::mgl::gpu_tests::Registrar MGL_GPU_CAT(mgl_gpu_reg_, __LINE__)(name, &MGL_GPU_CAT(mgl_gpu_check_, __LINE__)); \
  static void MGL_GPU_CAT(mgl_gpu_check_, __LINE__)(::mgl::gpu_tests::Report & report)
