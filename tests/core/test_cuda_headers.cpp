// The host/device headers of core/cuda/ share one MGL_HD (core/cuda/common/host_device.h), which
// makes every function they define `inline`: this file includes them in an order that differs
// from core/kernels.cpp's (which links into the same binary), and uses a function from each. With
// a non-inline definition anywhere (the CEMA header once defined MGL_HD without `inline`) the test
// binary fails to link with multiple definitions.
#include <catch2/catch.hpp>

// clang-format off
#include "core/cuda/row_norm/row_norm_math.h"
#include "core/cuda/timestep_norm/timestep_norm_math.h"
#include "core/cuda/attention/attention_math.h"
#include "core/cuda/cema/cema_scan_math.h"
#include "core/cuda/common/bf16.h"
// clang-format on

TEST_CASE("core/cuda headers: one MGL_HD, inline definitions, any include order", "[kernels]") {
  using namespace mgl::cuda;
  CHECK(row_norm::apply(3.f, 1.f, 0.5f, 2.f, 1.f) == 3.f);
  CHECK(timestep_norm::combine(timestep_norm::Moments{1, 1.f, 0.f}, timestep_norm::Moments{1, 3.f, 0.f}).m ==
        2.f);
  CHECK(attention::inv_sum(4.f) == 0.25f);
  CHECK(cema_seg_len(20, 1) == 4);
  CHECK(bf16_to_float(float_to_bf16(1.5f)) == 1.5f);
  float s = 0.f, c = 0.f;
  kahan_add(s, c, 2.f);
  CHECK(s == 2.f);
}
