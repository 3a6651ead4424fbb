// Shared pieces of the SIMT executor's kernel tests (tests/simt/test_*.cpp): the stream policy of
// the autograd Functions on the executor, the findings check, and the comparison rule.
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "simt/simt.h"

namespace mgl::simt_tests {

// Stream policy (core/cuda/common/autograd.h) for the executor: it has one implicit stream.
struct NoStream {
  static void* stream() { return nullptr; }
};

// Everything the executor found since the last call must be nothing.
inline void require_no_findings(const std::string& what) {
  const auto f = ::simt::take_findings();
  INFO(what << "\n" << ::simt::describe(f));
  REQUIRE(f.empty());
}

inline torch::Tensor f64(const torch::Tensor& t) {
  return t.is_complex() ? t.to(torch::kComplexDouble) : t.to(torch::kFloat64);
}
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (f64(a) - f64(b)).abs().max().item<double>();
}
inline double max_abs(const torch::Tensor& a) { return a.numel() ? f64(a).abs().max().item<double>() : 0.0; }

// The project's rule for a kernel against the reference path (flash-attention's): the kernel's
// max error against an fp64 oracle is at most twice the reference path's own error in the same
// storage dtype, plus `floor_rel` of the oracle's magnitude (the kernels keep fp32 statistics
// where the reference path may keep fp64 ones; a floor far below the dtype's rounding).
inline void check_2x(const torch::Tensor& ker, const torch::Tensor& ref, const torch::Tensor& oracle,
                     double floor_rel, const std::string& what) {
  REQUIRE(ker.sizes() == oracle.sizes());
  const double scale = std::max(1.0, max_abs(oracle));
  const double e_ref = ref.defined() ? max_abs_diff(ref, oracle) : 0.0, e_ker = max_abs_diff(ker, oracle);
  INFO(what << ": kernel error " << e_ker << ", reference error " << e_ref << ", scale " << scale);
  CHECK(std::isfinite(e_ker));
  CHECK(e_ker <= 2 * e_ref + floor_rel * scale);
}

}  // namespace mgl::simt_tests
