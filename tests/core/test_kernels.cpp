// Choosing the fused CUDA kernels vs the reference path (core/kernels.h).
#include <catch2/catch.hpp>

#include "core/kernels.h"
#include "core/modules/cema.h"

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

// ---- the kernels' limits (issue 19 §3): `auto` falls back exactly where a kernel would refuse,
// `fused` refuses with a ConfigError naming the key and the reason. The rules are CUDA-free
// (core/cuda/<op>/<op>.h), so they are checked here on CPU shapes; the glue checks the same rules.

namespace {
// The ConfigError of use_fused(fused, ...) for a call the kernels do not take: names the key and says why.
std::string fused_refusal(const std::string& why, const char* key) {
  try {
    mgl::kernels::use_fused(KernelImpl::fused, torch::zeros({1}), key, why);
  } catch (const mgl::ConfigError& e) {
    CHECK(e.key == key);
    return e.what();
  }
  FAIL("fused must refuse a call the kernels do not take");
  return {};
}
}  // namespace

TEST_CASE("kernel limits: auto falls back, fused refuses naming the key and the reason", "[kernels]") {
  using namespace mgl::kernels;
  CHECK_FALSE(use_fused(KernelImpl::auto_select, torch::zeros({1}), "model.kernel_cema", "N too large"));
  CHECK_FALSE(use_fused(KernelImpl::reference, torch::zeros({1}), "model.kernel_cema", "N too large"));
  // The reason comes first, so it is reported even on a CPU-only build.
  const std::string msg = fused_refusal(cema_unsupported(2, 8, 300, 64, torch::kFloat32, torch::kFloat32),
                                        "model.kernel_cema");
  CHECK(msg.find("model.kernel_cema") != std::string::npos);
  CHECK(msg.find("N <= 256") != std::string::npos);
  CHECK(msg.find("N=300") != std::string::npos);
}

TEST_CASE("kernel limits: the CEMA scan (N, L, dtypes, grid)", "[kernels]") {
  using mgl::kernels::cema_unsupported;
  const auto f32 = torch::kFloat32, f64 = torch::kFloat64, bf16 = torch::kBFloat16, f16 = torch::kFloat16;
  CHECK(cema_unsupported(2, 8, 16, 100, f32, f32).empty());
  CHECK(cema_unsupported(2, 8, 256, 1, f32, bf16).empty());
  CHECK(cema_unsupported(2, 8, 1, 7, f64, f64).empty());
  CHECK(cema_unsupported(0, 8, 16, 3, f32, f32).empty());  // an empty batch launches nothing
  CHECK_THAT(cema_unsupported(2, 8, 257, 100, f32, f32), Catch::Contains("N <= 256"));
  CHECK_THAT(cema_unsupported(2, 8, 0, 100, f32, f32), Catch::Contains("N <= 256"));
  CHECK_THAT(cema_unsupported(2, 8, 16, 0, f32, f32), Catch::Contains("L >= 1"));  // the kernel's TORCH_CHECK
  CHECK_THAT(cema_unsupported(int64_t{1} << 16, int64_t{1} << 16, 16, 4, f32, f32), Catch::Contains("B·D"));
  CHECK_THAT(cema_unsupported(2, 8, 16, 4, f16, f16), Catch::Contains("Half"));
  CHECK_THAT(cema_unsupported(2, 8, 16, 4, f64, f32), Catch::Contains("fp64 with fp64"));
  CHECK_THAT(cema_unsupported(2, 8, 16, 4, f32, f64), Catch::Contains("fp64 with fp64"));
}

TEST_CASE("kernel limits: the timestep norm and the row norms", "[kernels]") {
  using namespace mgl::kernels;
  CHECK(timestep_norm_unsupported(2, 5000, 64, 4, torch::kFloat32).empty());
  CHECK(timestep_norm_unsupported(2, 0, 64, 4, torch::kBFloat16).empty());
  CHECK_THAT(timestep_norm_unsupported(2, 10, 64, 4, torch::kFloat64), Catch::Contains("fp32 or bf16"));
  CHECK_THAT(timestep_norm_unsupported(2, 10, 64, 5, torch::kFloat32), Catch::Contains("divide D"));
  CHECK_THAT(timestep_norm_unsupported(1, int64_t{65536} * 4096, 4, 1, torch::kFloat32), Catch::Contains("65535"));
  CHECK(row_norm_unsupported(10, 64, torch::kBFloat16).empty());
  CHECK_THAT(row_norm_unsupported(10, 64, torch::kFloat64), Catch::Contains("fp32 or bf16"));
}

TEST_CASE("kernel limits: the chunked attention (dtypes, head dim, B·H, causal key counts, chunks)", "[kernels]") {
  using mgl::kernels::attention_unsupported;
  auto t = [](int64_t B, int64_t L, int64_t H, int64_t d, torch::Dtype dt = torch::kFloat32) {
    return torch::empty({B, L, H, d}, torch::TensorOptions().dtype(dt));
  };
  CHECK(attention_unsupported(t(2, 40, 2, 80), t(2, 40, 2, 80), t(2, 40, 2, 96), 16, 16, true).empty());
  CHECK(attention_unsupported(t(1, 1, 2, 64), t(1, 9, 2, 64), t(1, 9, 2, 64), 1, 9, true).empty());  // decode
  CHECK_THAT(attention_unsupported(t(1, 8, 1, 300), t(1, 8, 1, 300), t(1, 8, 1, 8), 8, 8, true),
             Catch::Contains("<= 256"));
  CHECK_THAT(attention_unsupported(t(1, 8, 1, 8, torch::kFloat64), t(1, 8, 1, 8), t(1, 8, 1, 8), 8, 8, true),
             Catch::Contains("fp32 or bf16"));
  CHECK_THAT(attention_unsupported(t(1, 8, 1, 8), t(1, 8, 1, 8), t(1, 8, 1, 8, torch::kFloat64), 8, 8, true),
             Catch::Contains("fp32 or bf16"));
  CHECK_THAT(attention_unsupported(t(256, 2, 257, 8), t(256, 2, 257, 8), t(256, 2, 257, 8), 2, 2, false),
             Catch::Contains("B·H"));
  // Causal with fewer keys than queries in a chunk (the kernel's own check refused it under `auto`).
  CHECK_THAT(attention_unsupported(t(1, 9, 1, 8), t(1, 4, 1, 8), t(1, 4, 1, 8), 9, 4, true),
             Catch::Contains("at least as many keys"));
  CHECK(attention_unsupported(t(1, 9, 1, 8), t(1, 4, 1, 8), t(1, 4, 1, 8), 9, 4, false).empty());
  CHECK_THAT(attention_unsupported(t(1, 9, 1, 8), t(1, 9, 1, 8), t(1, 9, 1, 8), 4, 5, false),
             Catch::Contains("same number of chunks"));
}

TEST_CASE("kernel limits: the CEMA module refuses N > 256 under fused and falls back under auto", "[kernels]") {
  torch::manual_seed(3);
  mgl::ComplexEMA ref(mgl::ComplexEMAOptions(4, 260));
  mgl::ComplexEMA fused(mgl::ComplexEMAOptions(4, 260).kernel(KernelImpl::fused));
  mgl::ComplexEMA autod(mgl::ComplexEMAOptions(4, 260).kernel(KernelImpl::auto_select));
  torch::NoGradGuard g;
  for (auto* m : {&fused, &autod}) {
    auto src = ref->named_parameters();
    for (auto& p : (*m)->named_parameters()) p.value().copy_(src[p.key()]);
  }
  const auto x = torch::randn({2, 4, 9});
  try {
    fused->forward(x, torch::Tensor(), false);
    FAIL("fused must refuse N = 260");
  } catch (const mgl::ConfigError& e) {
    CHECK(e.key == "model.kernel_cema");
    CHECK_THAT(std::string(e.what()), Catch::Contains("N <= 256"));
  }
  CHECK(torch::equal(autod->forward(x, torch::Tensor(), false).first,
                     ref->forward(x, torch::Tensor(), false).first));
}
