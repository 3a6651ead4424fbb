// Oracles of spec §9.8–§9.13 and §9.22 (group norm) for timestep normalisation.
#include <catch2/catch.hpp>

#include "core/modules/norms.h"
#include "core/ops/timestep_norm.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using mgl::test::rel_err;
using torch::Tensor;

namespace {

ops::NormState zero_state(int64_t B, int64_t G, torch::Dtype sd = torch::kFloat32) {
  return {torch::zeros({B}, torch::kInt64), torch::zeros({B, G}, sd), torch::ones({B, G}, sd)};
}

// Naive prefix reference (§9.9): stats of x[b, :t+1, group] from fp64 cumulative sums.
Tensor naive_tsn(const Tensor& x, int64_t G, const Tensor& w, const Tensor& b, double eps) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), g = D / G;
  auto xg = x.to(torch::kFloat64).view({B, L, G, g});
  auto cnt = torch::arange(1, L + 1, torch::kFloat64).view({1, L, 1}) * g;
  auto mean = xg.sum(-1).cumsum(1) / cnt;
  auto var = xg.pow(2).sum(-1).cumsum(1) / cnt - mean.pow(2);
  auto y = (xg - mean.unsqueeze(-1)) * torch::rsqrt(var + eps).unsqueeze(-1);
  return y.view({B, L, D}) * w.to(torch::kFloat64) + b.to(torch::kFloat64);
}

}  // namespace

TEST_CASE("timestep norm equals the naive prefix statistics at every step (§9.9)", "[tsn]") {
  torch::manual_seed(11);
  const int64_t B = 3, D = 16, G = 4;
  auto w = torch::randn({D}) * 0.1 + 1, b = torch::randn({D}) * 0.1;
  for (int64_t L : {1, 17, 255, 256, 1000, 4096}) {
    // A non-zero mean and a drift make the cancellation real.
    auto x = torch::randn({B, L, D}) * 2 + 3 + torch::linspace(0, 1, L).view({1, L, 1});
    auto out = ops::timestep_norm(x, G, w, b, zero_state(B, G), {}, 1e-5);
    CAPTURE(L);
    REQUIRE(max_abs(out.y, naive_tsn(x, G, w, b, 1e-5)) <= 1e-5);
  }
}

TEST_CASE("timestep norm stays accurate on long sequences", "[.slow][tsn]") {
  torch::manual_seed(12);
  const int64_t B = 1, D = 8, G = 2, L = 32768;
  auto x = torch::randn({B, L, D}) + 5;
  auto w = torch::ones({D}), b = torch::zeros({D});
  auto out = ops::timestep_norm(x, G, w, b, zero_state(B, G), {}, 1e-5);
  REQUIRE(max_abs(out.y, naive_tsn(x, G, w, b, 1e-5)) <= 5e-5);
}

TEST_CASE("the last step of timestep norm is the group statistics of the whole sequence (§9.8)", "[tsn]") {
  torch::manual_seed(13);
  const int64_t B = 2, L = 300, D = 12, G = 3;
  auto x = torch::randn({B, L, D}) + 1.5;
  auto w = torch::randn({D}), b = torch::randn({D});
  auto out = ops::timestep_norm(x, G, w, b, zero_state(B, G), {}, 1e-5);
  auto [mean, var] = ops::sequence_group_moments(x, G, {});
  REQUIRE(rel_err(out.state.mean, mean) <= 1e-6);
  REQUIRE(rel_err(out.state.var, var) <= 1e-6);
  REQUIRE(out.state.count.eq(L).all().item<bool>());
  auto xl = x.select(1, L - 1).to(torch::kFloat64).view({B, G, D / G});
  auto yl = ((xl - mean.unsqueeze(-1)) * torch::rsqrt(var + 1e-5).unsqueeze(-1)).view({B, D}) * w.to(torch::kFloat64) +
            b.to(torch::kFloat64);
  REQUIRE(max_abs(out.y.select(1, L - 1), yl) <= 1e-5);
}

TEST_CASE("timestep norm at t = 1 with prior count 0 is a per-token group norm (§9.10)", "[tsn]") {
  torch::manual_seed(14);
  const int64_t B = 4, D = 16, G = 4;
  auto x = torch::randn({B, 5, D}, torch::kFloat64);
  auto w = torch::randn({D}, torch::kFloat64), b = torch::randn({D}, torch::kFloat64);
  auto out = ops::timestep_norm(x, G, w, b, zero_state(B, G, torch::kFloat64), {}, 1e-5);
  auto gn = ops::group_norm_per_token(x, G, w, b, 1e-5);
  REQUIRE(max_abs(out.y.select(1, 0), gn.select(1, 0)) <= 1e-6);
  // The ablation's group norm equals TimestepNorm with its statistics reset at every token (§9.22).
  for (int64_t t = 0; t < 5; ++t) {
    auto one = ops::timestep_norm(x.narrow(1, t, 1), G, w, b, zero_state(B, G, torch::kFloat64), {}, 1e-5);
    REQUIRE(max_abs(one.y, gn.narrow(1, t, 1)) <= 1e-12);
  }
}

TEST_CASE("timestep norm streaming over [300, 1, 700] equals one shot (§9.11)", "[tsn]") {
  torch::manual_seed(15);
  const int64_t B = 3, D = 8, G = 2;
  SequenceNorm norm(NormKind::timestep, D, G, 1e-5);
  {
    torch::NoGradGuard g;
    norm->weight.normal_(0, 0.3);
    norm->bias.normal_(0, 0.3);
  }
  auto x = torch::randn({B, 1001, D}) * 3 - 2;
  torch::NoGradGuard g;
  ops::NormState full;
  auto y_full = norm(x, &full);
  ops::NormState s;
  std::vector<Tensor> ys;
  int64_t off = 0;
  for (int64_t len : {300, 1, 700}) {
    ys.push_back(norm(x.narrow(1, off, len), &s));
    off += len;
  }
  REQUIRE(max_abs(torch::cat(ys, 1), y_full) <= 1e-6);
  REQUIRE(max_abs(s.mean, full.mean) <= 1e-6);
  REQUIRE(max_abs(s.var, full.var) <= 1e-6);
  REQUIRE(s.count.equal(full.count));
  REQUIRE(s.mean.scalar_type() == torch::kFloat32);
}

TEST_CASE("timestep norm with padding skips the masked steps (§9.12)", "[tsn]") {
  torch::manual_seed(16);
  const int64_t B = 2, L = 20, D = 6, G = 2;
  auto x = torch::randn({B, L, D}, torch::kFloat64).set_requires_grad(true);
  auto mask = torch::rand({B, L}) < 0.3;
  auto w = torch::randn({D}, torch::kFloat64), b = torch::randn({D}, torch::kFloat64);
  auto out = ops::timestep_norm(x, G, w, b, zero_state(B, G, torch::kFloat64), mask, 1e-5);
  // y = 0 and dx = 0 at padded steps.
  REQUIRE(out.y.masked_select(mask.unsqueeze(-1).expand({B, L, D})).abs().max().item<double>() == 0.0);
  out.y.pow(2).sum().backward();
  REQUIRE(x.grad().masked_select(mask.unsqueeze(-1).expand({B, L, D})).abs().max().item<double>() == 0.0);
  // Statistics equal those of the sequence with the padded steps deleted.
  for (int64_t bi = 0; bi < B; ++bi) {
    auto keep = mask[bi].logical_not().nonzero().flatten();
    auto xs = x.detach()[bi].index_select(0, keep).unsqueeze(0);
    auto ref = ops::timestep_norm(xs, G, w, b, zero_state(1, G, torch::kFloat64), {}, 1e-5);
    REQUIRE(max_abs(out.y.detach()[bi].index_select(0, keep), ref.y[0]) < 1e-12);
    REQUIRE(max_abs(out.state.mean[bi], ref.state.mean[0]) < 1e-12);
    REQUIRE(out.state.count[bi].item<int64_t>() == keep.numel());
  }
}

TEST_CASE("timestep norm with a prior equals virtual prefix tokens (§9.13)", "[tsn]") {
  torch::manual_seed(17);
  const int64_t B = 2, L = 30, D = 8, G = 2, g = D / G, k = 3;
  SequenceNorm norm(NormKind::timestep, D, G, 1e-5, k);
  norm->to(torch::kFloat64);
  {
    torch::NoGradGuard ng;
    norm->prior_mean.copy_(torch::tensor({0.5, -1.0}, torch::kFloat64));
    norm->prior_logv.copy_(torch::tensor({0.3, -0.4}, torch::kFloat64));
  }
  REQUIRE(norm->named_parameters().find("prior_mean") != nullptr);  // learnable when prior_count > 0
  auto x = torch::randn({B, L, D}, torch::kFloat64);
  torch::NoGradGuard ng;
  auto y = norm(x);
  // A virtual token with group moments (μ, σ²): values μ ± σ over the group's g channels.
  auto sd = norm->prior_logv.exp().sqrt();
  auto sign = torch::tensor({1.0, -1.0}, torch::kFloat64).repeat({g / 2});
  auto tok = (norm->prior_mean.view({G, 1}) + sd.view({G, 1}) * sign.view({1, g})).view({1, 1, D});
  auto xp = torch::cat({tok.expand({B, k, D}), x}, 1);
  auto ref = ops::timestep_norm(xp, G, torch::ones({D}, torch::kFloat64), torch::zeros({D}, torch::kFloat64),
                                zero_state(B, G, torch::kFloat64), {}, 1e-5);
  REQUIRE(max_abs(y, ref.y.narrow(1, k, L)) < 1e-10);
}

TEST_CASE("timestep norm gradients match finite differences in fp64 (§9.7)", "[tsn][grad]") {
  torch::manual_seed(18);
  const int64_t B = 2, L = 9, D = 6, G = 2;
  auto mask = torch::zeros({B, L}, torch::kBool);
  mask[1][7] = true;
  mask[1][8] = true;
  mask[0][0] = true;
  auto count = torch::tensor({0, 4}, torch::kInt64);
  auto run = [&](const std::vector<Tensor>& in) {
    ops::NormState prev{count, in[3], in[4]};
    auto out = ops::timestep_norm(in[0], G, in[1], in[2], prev, mask, 1e-5);
    return torch::cat({out.y.flatten(), out.state.mean.flatten(), out.state.var.flatten()});
  };
  auto r = test::gradcheck(run, {torch::randn({B, L, D}, torch::kFloat64), torch::randn({D}, torch::kFloat64),
                                 torch::randn({D}, torch::kFloat64), torch::randn({B, G}, torch::kFloat64),
                                 torch::rand({B, G}, torch::kFloat64) + 0.5});
  INFO(r.where);
  REQUIRE(r.ok);
}

TEST_CASE("timestep norm in bf16 keeps fp32 statistics and tracks the fp32 path", "[tsn]") {
  torch::manual_seed(19);
  const int64_t B = 2, L = 500, D = 16, G = 4;
  auto x = torch::randn({B, L, D}) * 2 + 1;
  auto w = torch::ones({D}), b = torch::zeros({D});
  auto o32 = ops::timestep_norm(x, G, w, b, zero_state(B, G), {}, 1e-5);
  auto o16 = ops::timestep_norm(x.to(torch::kBFloat16), G, w.to(torch::kBFloat16), b.to(torch::kBFloat16),
                                zero_state(B, G), {}, 1e-5);
  REQUIRE(o16.y.scalar_type() == torch::kBFloat16);
  REQUIRE(o16.state.mean.scalar_type() == torch::kFloat32);
  REQUIRE(rel_err(o16.y, o32.y) < 2e-2);
}

TEST_CASE("SequenceNorm rejects a group count that does not divide the width", "[tsn]") {
  REQUIRE_THROWS_WITH(SequenceNorm(NormKind::timestep, 10, 3, 1e-5), Catch::Contains("must divide"));
}
