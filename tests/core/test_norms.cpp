// The (weight + 1) per-token norms and the norm ablation module.
#include <catch2/catch.hpp>

#include "core/modules/norms.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using mgl::test::rel_err;

TEST_CASE("RMSNorm and LayerNorm use the (weight + 1) parameterisation", "[norms]") {
  torch::manual_seed(31);
  auto x = torch::randn({3, 5, 8}, torch::kFloat64) * 2 + 1;
  RMSNorm rms(8, true, 1e-5);
  LayerNorm ln(8, true, 1e-5);
  rms->to(torch::kFloat64);
  ln->to(torch::kFloat64);
  // At init the effective scale is 1 and the bias 0.
  auto rms_ref = x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-5);
  REQUIRE(max_abs(rms(x), rms_ref) < 1e-12);
  REQUIRE(max_abs(ln(x), torch::layer_norm(x, {8}, {}, {}, 1e-5)) < 1e-12);
  {
    torch::NoGradGuard g;
    rms->weight.fill_(0.5);
    ln->weight.fill_(-0.25);
    ln->bias.fill_(0.1);
  }
  REQUIRE(max_abs(rms(x), rms_ref * 1.5) < 1e-12);
  REQUIRE(max_abs(ln(x), torch::layer_norm(x, {8}, {}, {}, 1e-5) * 0.75 + 0.1) < 1e-12);
  RMSNorm plain(4, false, 1e-5);
  REQUIRE(plain->parameters().empty());
}

TEST_CASE("the norm ablation module: layer and group are per-token and stateless", "[norms][ablation]") {
  torch::manual_seed(32);
  auto x = torch::randn({2, 7, 12}, torch::kFloat64);
  SequenceNorm layer(NormKind::layer, 12, 3, 1e-5), group(NormKind::group, 12, 3, 1e-5);
  layer->to(torch::kFloat64);
  group->to(torch::kFloat64);
  REQUIRE(max_abs(layer(x), torch::layer_norm(x, {12}, {}, {}, 1e-5)) < 1e-12);
  REQUIRE(max_abs(group(x), torch::group_norm(x.reshape({14, 12}), 3, {}, {}, 1e-5).view({2, 7, 12})) < 1e-12);
  REQUIRE(layer->named_buffers().find("prior_count") == nullptr);
  REQUIRE_THROWS(layer->initial_state(2, torch::kCPU));
}
