// Choosing the fused CUDA kernels vs the reference path (core/kernels.h).
#include <catch2/catch.hpp>

#include "core/kernels.h"

using mgl::KernelImpl;

TEST_CASE("kernel choice: reference never, auto only on CUDA with the glue, fused or a named error", "[kernels]") {
  auto cpu = torch::zeros({2});
  CHECK_FALSE(mgl::kernels::use_fused(KernelImpl::reference, cpu, "model.kernel_cema"));
  CHECK_FALSE(mgl::kernels::use_fused(KernelImpl::auto_select, cpu, "model.kernel_cema"));
  try {
    mgl::kernels::use_fused(KernelImpl::fused, cpu, "model.kernel_attention");
    FAIL("fused on a CPU tensor must be refused");
  } catch (const mgl::ConfigError& e) {
    CHECK(e.key == "model.kernel_attention");
    CHECK(std::string(e.what()).find("fused") != std::string::npos);
  }
  CHECK(mgl::parse_kernel_impl("k", "auto") == KernelImpl::auto_select);
  CHECK(std::string(mgl::to_string(KernelImpl::fused)) == "fused");
  CHECK_THROWS_AS(mgl::parse_kernel_impl("model.kernel_cema", "fast"), mgl::ConfigError);
  mgl::MegalodonConfig def;
  CHECK(def.kernel_cema == KernelImpl::reference);  // unverified kernels are never the default
  CHECK(def.kernel_timestep_norm == KernelImpl::reference);
  CHECK(def.kernel_attention == KernelImpl::reference);
}
