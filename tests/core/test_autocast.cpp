// Mixed precision (issue 3): under bf16 autocast, CEMA and the sequence norms must still compute
// in fp32. The CPU autocast key exercises the same exclusion guard as CUDA's. Oracle: the same
// module without autocast, and a control matmul that autocast does turn into bf16.
#include <ATen/autocast_mode.h>
#include <catch2/catch.hpp>
#include <torch/version.h>

#include "core/modules/cema.h"
#include "core/modules/norms.h"

namespace {
struct CpuAutocast {
  CpuAutocast() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
#else
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
#endif
  }
  ~CpuAutocast() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCPU, false);
#else
    at::autocast::set_cpu_enabled(false);
#endif
    at::autocast::clear_cache();
  }
};
}  // namespace

TEST_CASE("CEMA runs in fp32 under bf16 autocast (bit-identical to no autocast)", "[autocast]") {
  torch::manual_seed(0);
  for (auto kind : {mgl::EmaKind::cema, mgl::EmaKind::ema}) {
    for (bool bidir : {false, true}) {
      mgl::ComplexEMA ema(mgl::ComplexEMAOptions(8, 4).kind(kind).bidirectional(bidir));
      torch::Tensor x = torch::randn({2, 8, 40});
      torch::Tensor ref = ema->forward(x, {}, false).first;
      torch::Tensor y, control;
      {
        CpuAutocast on;
        y = ema->forward(x, {}, false).first;
        control = torch::matmul(x[0], x[0].t());
      }
      REQUIRE(control.scalar_type() == torch::kBFloat16);  // autocast really was on
      CHECK(y.scalar_type() == torch::kFloat32);
      CHECK(torch::equal(y, ref));
    }
  }
}

TEST_CASE("sequence norms take statistics in fp32 under autocast, also for bf16 inputs", "[autocast]") {
  torch::manual_seed(1);
  for (auto kind : {mgl::NormKind::timestep, mgl::NormKind::layer, mgl::NormKind::group}) {
    mgl::SequenceNorm norm(kind, 16, 4, 1e-5);
    // An offset large next to the spread: bf16 statistics would lose the spread entirely.
    torch::Tensor x = (torch::randn({2, 24, 16}) * 0.05 + 30.0).to(torch::kBFloat16);
    torch::Tensor ref = norm->forward(x.to(torch::kFloat32)).to(torch::kBFloat16);
    torch::Tensor y;
    {
      CpuAutocast on;
      y = norm->forward(x);
    }
    CHECK(y.scalar_type() == torch::kBFloat16);
    CHECK(torch::equal(y, ref));
  }
}
