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

TEST_CASE("sequence norm: GroupNorm over the whole unpadded sequence (§2.6)", "[norms][encoder]") {
  torch::manual_seed(33);
  auto x = torch::randn({3, 9, 12}, torch::kFloat64) * 1.5 + 0.7;
  SequenceNorm seq(NormKind::sequence, 12, 3, 1e-5);
  seq->to(torch::kFloat64);
  {
    torch::NoGradGuard g;
    seq->weight.uniform_(-0.5, 0.5);
    seq->bias.uniform_(-0.5, 0.5);
  }
  auto w = seq->weight + 1.0, b = seq->bias;
  // Oracle 1: torch's GroupNorm on B×D×L normalises each (b, group) over its channels and all steps.
  auto ref = torch::group_norm(x.transpose(1, 2), 3, w, b, 1e-5).transpose(1, 2);
  REQUIRE(max_abs(seq(x), ref) < 1e-12);
  // Oracle 2 (padding): the valid part alone gives the same outputs, and padded content is ignored.
  auto mask = torch::zeros({3, 9}, torch::kBool);
  mask[1].narrow(0, 5, 4).fill_(true);
  mask[2].narrow(0, 8, 1).fill_(true);
  auto x2 = x.clone();
  x2[1].narrow(0, 5, 4).normal_(0, 9);
  auto y = seq(x2, nullptr, mask);
  REQUIRE(max_abs(y[1].narrow(0, 0, 5), seq(x[1].narrow(0, 0, 5).unsqueeze(0))[0]) < 1e-12);
  REQUIRE(max_abs(y[2].narrow(0, 0, 8), seq(x[2].narrow(0, 0, 8).unsqueeze(0))[0]) < 1e-12);
  REQUIRE(max_abs(y[0], ref[0]) < 1e-12);
  // Its statistics are those of sequence_group_moments (the TimestepNorm oracle of §9.8).
  auto [mu, var] = ops::sequence_group_moments(x2, 3, mask);
  auto yg = ((x2.view({3, 9, 3, 4}) - mu.view({3, 1, 3, 1})) * torch::rsqrt(var.view({3, 1, 3, 1}) + 1e-5)).view({3, 9, 12});
  REQUIRE(max_abs(y, yg * w + b) < 1e-12);
  // Gradients by central differences in fp64 (through the masked statistics).
  auto m6 = mask.narrow(1, 0, 6).contiguous();
  auto r = mgl::test::gradcheck(
      [&](const std::vector<torch::Tensor>& in) { return ops::group_norm_sequence(in[0], 3, in[1], in[2], m6, 1e-5); },
      {x2.narrow(1, 0, 6).contiguous(), w.detach(), b.detach()});
  INFO(r.where);
  REQUIRE(r.ok);
}
