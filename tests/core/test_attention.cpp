// Oracles of spec §9.14–§9.17 and §9.19 for RoPE and chunked attention.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/modules/mega_layer.h"
#include "core/ops/attention.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using mgl::test::rel_err;
using torch::Tensor;

namespace {
// Dense causal attention written out with explicit loops over (b, h, i): the oracle.
Tensor dense_reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& allowed /*L×L*/, double scale) {
  auto qd = q.to(torch::kFloat64), kd = k.to(torch::kFloat64), vd = v.to(torch::kFloat64);
  const int64_t B = q.size(0), L = q.size(1), H = q.size(2);
  auto out = torch::zeros({B, L, H, v.size(3)}, torch::kFloat64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < L; ++i) {
        auto keys = allowed[i].nonzero().flatten();
        auto logits = (kd[b].select(1, h).index_select(0, keys) * qd[b][i][h]).sum(-1) * scale;
        auto p = torch::softmax(logits, 0);
        out[b][i][h] = (p.unsqueeze(-1) * vd[b].select(1, h).index_select(0, keys)).sum(0);
      }
  return out;
}
Tensor block_mask(int64_t L, int64_t C, bool causal) {
  auto i = torch::arange(L).view({L, 1}), j = torch::arange(L).view({1, L});
  auto same = (i.div(C, "floor") == j.div(C, "floor"));
  return causal ? same.logical_and(j <= i) : same;
}
MegalodonConfig tiny_cfg() {
  MegalodonConfig c;
  c.num_layers = 1;
  c.model_dim = 16;
  c.num_heads = 2;
  c.z_dim = 8;
  c.value_dim = 12;
  c.ffn_hidden_dim = 24;
  c.cema_ndim = 4;
  c.chunk_size = 8;
  c.norm_num_groups = 4;
  return c;
}
}  // namespace

TEST_CASE("chunked attention equals independent per-chunk attention and a block-diagonal mask (§9.14)", "[attn]") {
  torch::manual_seed(21);
  for (bool causal : {true, false}) {
    for (int64_t L : {12, 16, 19}) {  // multiples of C and a partial last chunk
      const int64_t B = 2, H = 2, d = 4, C = 4;
      auto q = torch::randn({B, L, H, d}), k = torch::randn({B, L, H, d}), v = torch::randn({B, L, H, 3});
      auto out = ops::chunked_attention(q, k, v, C, causal, 0.7, 0.0, false);
      CAPTURE(causal, L);
      REQUIRE(max_abs(out, dense_reference(q, k, v, block_mask(L, C, causal), 0.7)) <= 1e-6);
      // Each chunk alone gives the same outputs.
      for (int64_t s = 0; s < L; s += C) {
        const int64_t n = std::min(C, L - s);
        auto one = ops::chunked_attention(q.narrow(1, s, n), k.narrow(1, s, n), v.narrow(1, s, n), C, causal, 0.7, 0, false);
        REQUIRE(max_abs(out.narrow(1, s, n), one) <= 1e-6);
      }
    }
  }
}

TEST_CASE("perturbing chunk 0 leaves chunk 1 unchanged (§9.14)", "[attn]") {
  torch::manual_seed(22);
  const int64_t B = 1, L = 16, H = 1, d = 4, C = 8;
  auto q = torch::randn({B, L, H, d}), k = torch::randn({B, L, H, d}), v = torch::randn({B, L, H, d});
  auto base = ops::chunked_attention(q, k, v, C, true, 1.0, 0.0, false);
  auto q2 = q.clone(), k2 = k.clone(), v2 = v.clone();
  q2.narrow(1, 0, C).add_(5.0);
  k2.narrow(1, 0, C).mul_(-3.0);
  v2.narrow(1, 0, C).add_(1.0);
  auto pert = ops::chunked_attention(q2, k2, v2, C, true, 1.0, 0.0, false);
  REQUIRE(pert.narrow(1, C, C).equal(base.narrow(1, C, C)));
  REQUIRE(!pert.narrow(1, 0, C).equal(base.narrow(1, 0, C)));
}

TEST_CASE("a fully masked attention row outputs zeros with finite gradients (§9.15)", "[attn]") {
  auto q = torch::randn({1, 1, 3, 4}, torch::kFloat64).set_requires_grad(true);
  auto k = torch::randn({1, 1, 5, 4}, torch::kFloat64), v = torch::randn({1, 1, 5, 2}, torch::kFloat64);
  auto mask = torch::zeros({3, 5}, torch::kBool);
  mask[1].fill_(true);
  auto out = ops::attention(q, k, v, mask, 1.0, 0.0, false);
  REQUIRE(out[0][0][1].abs().max().item<double>() == 0.0);
  out.sum().backward();
  REQUIRE(torch::isfinite(q.grad()).all().item<bool>());
}

TEST_CASE("RoPE: interleaved pairs, relative positions (§9.16)", "[attn][rope]") {
  torch::manual_seed(23);
  const int64_t d = 8;
  auto q = torch::randn({1, 1, 1, d}, torch::kFloat64), k = torch::randn({1, 1, 1, d}, torch::kFloat64);
  auto rot = [&](const Tensor& x, int64_t p) { return ops::apply_rope(x, torch::tensor({p}), 10000.0); };
  const double ref = (rot(q, 7) * rot(k, 3)).sum().item<double>();
  for (int64_t s : {1, 10, 100})
    REQUIRE(std::abs((rot(q, 7 + s) * rot(k, 3 + s)).sum().item<double>() - ref) <= 1e-5);
  // Pair (0, 1) rotates by angle pos·1; pair (2, 3) by pos·base^(−2/d): interleaved, not rotate-half.
  auto e = torch::zeros({1, 1, 1, d}, torch::kFloat64);
  e[0][0][0][0] = 1.0;
  e[0][0][0][2] = 1.0;
  auto r = rot(e, 2);
  REQUIRE(std::abs(r[0][0][0][0].item<double>() - std::cos(2.0)) < 1e-12);
  REQUIRE(std::abs(r[0][0][0][1].item<double>() - std::sin(2.0)) < 1e-12);
  const double a = 2.0 * std::pow(10000.0, -2.0 / d);
  REQUIRE(std::abs(r[0][0][0][2].item<double>() - std::cos(a)) < 1e-12);
  REQUIRE(std::abs(r[0][0][0][3].item<double>() - std::sin(a)) < 1e-12);
}

TEST_CASE("the MEGA layer uses chunk-local RoPE positions (§3.3)", "[attn][rope]") {
  torch::manual_seed(24);
  auto cfg = tiny_cfg();
  MovingAverageGatedAttention layer(cfg);
  layer->to(torch::kFloat64);
  const int64_t B = 1, L = 16, H = 2, d = 4, C = cfg.chunk_size;
  auto q = torch::randn({B, L, H, d}, torch::kFloat64), k = torch::randn({B, L, H, d}, torch::kFloat64);
  auto v = torch::randn({B, L, H, 6}, torch::kFloat64);
  auto out = layer->attend(q, k, v, nullptr, {});
  // Token t of chunk m gets position t − mC: chunk 1 behaves exactly like a chunk at the start.
  auto second = layer->attend(q.narrow(1, C, C), k.narrow(1, C, C), v.narrow(1, C, C), nullptr, {});
  REQUIRE(max_abs(out.narrow(1, C, C), second) < 1e-12);
}

TEST_CASE("normalised attention at init: q ≡ k and logits are cosines (§9.17)", "[attn]") {
  torch::manual_seed(25);
  auto cfg = tiny_cfg();
  MovingAverageGatedAttention layer(cfg);
  auto z = torch::randn({2, 10, cfg.z_dim}) * 3;
  const int64_t H = cfg.num_heads, dz = cfg.z_head_dim();
  auto zn = layer->znorm(z.view({2, 10, H, dz})).view({2, 10, cfg.z_dim});
  auto q = zn * ((layer->gamma[0] + 1.0) / std::sqrt(double(dz))) + layer->beta[0];
  auto k = zn * ((layer->gamma[1] + 1.0) / std::sqrt(double(dz))) + layer->beta[1];
  REQUIRE(q.equal(k));
  auto qh = q.view({2, 10, H, dz}), kh = k.view({2, 10, H, dz});
  auto logits = torch::einsum("bihd,bjhd->bhij", {qh, kh});
  REQUIRE(logits.abs().max().item<float>() <= 1.0f + 1e-6f);
  auto diag = logits.diagonal(0, 2, 3);
  REQUIRE((1.0 - diag).abs().max().item<float>() < 1e-4f);
}

TEST_CASE("KV-cache decoding token by token equals the one-shot chunk (§9.19)", "[attn][stream]") {
  torch::manual_seed(26);
  auto cfg = tiny_cfg();
  MovingAverageGatedAttention layer(cfg);
  const int64_t B = 2, L = 20, H = 2, d = 4, C = cfg.chunk_size;
  auto q = torch::randn({B, L, H, d}), k = torch::randn({B, L, H, d}), v = torch::randn({B, L, H, 6});
  torch::NoGradGuard g;
  auto full = layer->attend(q, k, v, nullptr, {});
  MegaLayerState st;
  std::vector<Tensor> outs;
  for (int64_t t = 0; t < L; ++t) {
    outs.push_back(layer->attend(q.narrow(1, t, 1), k.narrow(1, t, 1), v.narrow(1, t, 1), &st, {}));
    REQUIRE(st.cache_length() == (t + 1) % C);  // empty at every chunk boundary
  }
  REQUIRE(max_abs(torch::cat(outs, 1), full) <= 1e-5);
  // Segments that straddle boundaries: [3, 9, 1, 7].
  MegaLayerState s2;
  outs.clear();
  int64_t off = 0;
  for (int64_t n : {3, 9, 1, 7}) {
    outs.push_back(layer->attend(q.narrow(1, off, n), k.narrow(1, off, n), v.narrow(1, off, n), &s2, {}));
    off += n;
    REQUIRE(s2.cache_length() == off % C);
  }
  REQUIRE(max_abs(torch::cat(outs, 1), full) <= 1e-5);
}

TEST_CASE("non-causal chunked attention ignores padded keys", "[attn]") {
  torch::manual_seed(27);
  const int64_t B = 2, L = 10, H = 1, d = 4, C = 4;
  auto q = torch::randn({B, L, H, d}), k = torch::randn({B, L, H, d}), v = torch::randn({B, L, H, d});
  auto mask = torch::zeros({B, L}, torch::kBool);
  mask.narrow(1, 7, 3).fill_(true);
  auto out = ops::chunked_attention(q, k, v, C, false, 1.0, 0.0, false, mask);
  auto k2 = k.clone(), v2 = v.clone();
  k2.narrow(1, 7, 3).normal_();
  v2.narrow(1, 7, 3).normal_();
  auto out2 = ops::chunked_attention(q, k2, v2, C, false, 1.0, 0.0, false, mask);
  REQUIRE(max_abs(out.narrow(1, 0, 7), out2.narrow(1, 0, 7)) < 1e-6);
}

TEST_CASE("attention gradients match finite differences in fp64 (§9.7)", "[attn][grad]") {
  torch::manual_seed(28);
  for (bool causal : {true, false}) {
    auto run = [&](const std::vector<Tensor>& in) {
      return ops::chunked_attention(in[0], in[1], in[2], 4, causal, 0.8, 0.0, false).flatten();
    };
    auto r = test::gradcheck(run, {torch::randn({1, 6, 2, 4}, torch::kFloat64), torch::randn({1, 6, 2, 4}, torch::kFloat64),
                                   torch::randn({1, 6, 2, 3}, torch::kFloat64)});
    INFO(r.where);
    REQUIRE(r.ok);
  }
  auto rope = [&](const std::vector<Tensor>& in) {
    return ops::apply_rope(in[0], torch::tensor({0, 3, 5}), 10000.0).flatten();
  };
  REQUIRE(test::gradcheck(rope, {torch::randn({1, 3, 1, 4}, torch::kFloat64)}).ok);
}
