// The memory-efficient attention (core/ops/blocked_attention.h) against the explicit softmax
// (ops::attention, which materialises the probabilities): fp64, causal and not, key padding, blocks
// that do not divide the lengths, forward and gradients; finite differences for the custom backward;
// and the two users: the MEGA layer's chunked attention and the Transformer baseline.
#include <catch2/catch.hpp>

#include "core/models/factory.h"
#include "core/ops/attention.h"
#include "core/ops/blocked_attention.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using torch::Tensor;

namespace {
const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

// The explicit oracle with the same mask convention: causal bottom-right aligned, key padding.
Tensor explicit_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale,
                          const Tensor& pad) {
  const int64_t Lq = q.size(-2), Lk = k.size(-2);
  Tensor mask;
  if (causal) mask = torch::ones({Lq, Lk}, torch::kBool).triu(Lk - Lq + 1);
  if (pad.defined()) {
    Tensor pm = pad.unsqueeze(-2);
    mask = mask.defined() ? mask.logical_or(pm) : pm;
  }
  return ops::attention(q, k, v, mask, scale, 0.0, false);
}

// Forward and input gradients of both implementations under the same random output weights.
void compare(const Tensor& q0, const Tensor& k0, const Tensor& v0, const ops::BlockedAttentionOptions& o,
             const Tensor& pad, double tol) {
  auto q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
  auto qr = q0.clone().requires_grad_(), kr = k0.clone().requires_grad_(), vr = v0.clone().requires_grad_();
  Tensor out = ops::blocked_attention(q, k, v, o, pad);
  Tensor ref = explicit_attention(qr, kr, vr, o.causal, o.scale, pad);
  REQUIRE(out.sizes() == ref.sizes());
  CHECK(max_abs(out, ref) < tol);
  Tensor w = torch::randn(ref.sizes(), ref.options());
  (out * w).sum().backward();
  (ref * w).sum().backward();
  CHECK(max_abs(q.grad(), qr.grad()) < tol);
  CHECK(max_abs(k.grad(), kr.grad()) < tol);
  CHECK(max_abs(v.grad(), vr.grad()) < tol);
}
}  // namespace

TEST_CASE("blocked attention equals the explicit softmax in fp64, forward and gradients", "[attn][blocked]") {
  torch::manual_seed(2201);
  for (bool causal : {true, false})
    for (auto blocks : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {5, 3}, {1, 7}, {64, 64}, {8, 16}}) {
      INFO("causal " << causal << ", blocks " << blocks.first << "×" << blocks.second);
      ops::BlockedAttentionOptions o;
      o.causal = causal;
      o.scale = 0.7;
      o.block_q = blocks.first;
      o.block_k = blocks.second;
      // Two leading dims (batch, heads), 23 queries and keys, value width ≠ key width.
      compare(torch::randn({2, 3, 23, 6}, f64), torch::randn({2, 3, 23, 6}, f64), torch::randn({2, 3, 23, 5}, f64), o,
              {}, 1e-12);
    }
}

TEST_CASE("blocked attention: a KV cache in front (bottom-right causal) and large logits", "[attn][blocked]") {
  torch::manual_seed(2202);
  ops::BlockedAttentionOptions o;
  o.causal = true;
  o.block_q = 3;
  o.block_k = 4;
  // 9 new queries after 11 cached keys; logits of size ~100 test the running-maximum rescaling.
  compare(torch::randn({2, 9, 4}, f64) * 10, torch::randn({2, 20, 4}, f64) * 10, torch::randn({2, 20, 3}, f64), o, {},
          1e-10);
  o.causal = false;
  compare(torch::randn({2, 9, 4}, f64) * 10, torch::randn({2, 20, 4}, f64) * 10, torch::randn({2, 20, 3}, f64), o, {},
          1e-10);
}

TEST_CASE("blocked attention: key padding, fully masked rows give zeros and finite gradients", "[attn][blocked]") {
  torch::manual_seed(2203);
  for (bool causal : {false, true}) {
    ops::BlockedAttentionOptions o;
    o.causal = causal;
    o.block_q = 4;
    o.block_k = 3;
    // Leading dims (batch 3, heads 2); the padding is per batch row, broadcast over heads.
    Tensor pad = torch::zeros({3, 1, 10}, torch::kBool);
    pad[0].narrow(-1, 6, 4).fill_(true);  // a padded tail
    pad[1].narrow(-1, 0, 3).fill_(true);  // padded head: under causality rows 0–2 see nothing
    pad[2].fill_(true);                   // every key padded: every row dead
    Tensor q = torch::randn({3, 2, 10, 4}, f64), k = torch::randn({3, 2, 10, 4}, f64), v = torch::randn({3, 2, 10, 5}, f64);
    INFO("causal " << causal);
    compare(q, k, v, o, pad, 1e-12);
    Tensor qg = q.clone().requires_grad_();
    Tensor out = ops::blocked_attention(qg, k, v, o, pad);
    CHECK(out[2].abs().max().item<double>() == 0.0);
    out.sum().backward();
    CHECK(torch::isfinite(qg.grad()).all().item<bool>());
    CHECK(qg.grad()[2].abs().max().item<double>() == 0.0);
  }
}

TEST_CASE("blocked attention's custom backward matches finite differences in fp64", "[attn][blocked][grad]") {
  torch::manual_seed(2204);
  for (bool causal : {true, false}) {
    ops::BlockedAttentionOptions o;
    o.causal = causal;
    o.scale = 0.9;
    o.block_q = 3;
    o.block_k = 2;
    Tensor pad = torch::zeros({2, 7}, torch::kBool);
    pad[1][5] = true;
    auto run = [&](const std::vector<Tensor>& in) { return ops::blocked_attention(in[0], in[1], in[2], o, pad); };
    auto r = test::gradcheck(run, {torch::randn({2, 7, 3}, f64), torch::randn({2, 7, 3}, f64), torch::randn({2, 7, 2}, f64)});
    INFO(r.where);
    REQUIRE(r.ok);
  }
}

TEST_CASE("blocked attention in fp32 stays close to the fp64 explicit softmax", "[attn][blocked]") {
  torch::manual_seed(2205);
  ops::BlockedAttentionOptions o;
  o.causal = true;
  o.scale = 0.125;
  o.block_q = 64;
  o.block_k = 128;
  Tensor q = torch::randn({1, 4, 700, 64}), k = torch::randn({1, 4, 700, 64}), v = torch::randn({1, 4, 700, 64});
  Tensor ref = explicit_attention(q.to(torch::kFloat64), k.to(torch::kFloat64), v.to(torch::kFloat64), true, 0.125, {});
  Tensor fast = ops::blocked_attention(q, k, v, o);
  Tensor expl = explicit_attention(q, k, v, true, 0.125, {});
  REQUIRE(fast.scalar_type() == torch::kFloat32);
  // The flash-attention rule: at most twice the explicit fp32 path's own error (plus a floor).
  CHECK(test::rel_err(fast, ref) <= 2 * test::rel_err(expl, ref) + 1e-7);
}

TEST_CASE("blocked attention rejects malformed input with a clear message", "[attn][blocked]") {
  ops::BlockedAttentionOptions o;
  o.causal = true;
  CHECK_THROWS_WITH(ops::blocked_attention(torch::randn({5, 4}), torch::randn({3, 4}), torch::randn({3, 2}), o),
                    Catch::Contains("at least as many keys as queries"));
  o.causal = false;
  CHECK_THROWS_WITH(ops::blocked_attention(torch::randn({2, 5, 4}), torch::randn({2, 5, 3}), torch::randn({2, 5, 2}), o),
                    Catch::Contains("equal leading dims"));
  CHECK_THROWS_WITH(
      ops::blocked_attention(torch::randn({2, 5, 4}), torch::randn({2, 5, 4}), torch::randn({2, 5, 2}), o, torch::zeros({2, 5})),
      Catch::Contains("key_padding must be a bool tensor"));
}

TEST_CASE("chunked attention: the memory-efficient path equals the explicit one (dropout path) in fp64",
          "[attn][blocked]") {
  torch::manual_seed(2206);
  // L = 21 with chunks of 8: a partial last chunk; non-causal with a key padding mask.
  for (bool causal : {true, false}) {
    Tensor q0 = torch::randn({2, 21, 2, 4}, f64), k0 = torch::randn({2, 21, 2, 4}, f64), v0 = torch::randn({2, 21, 2, 3}, f64);
    Tensor kpm = causal ? Tensor() : torch::zeros({2, 21}, torch::kBool);
    if (kpm.defined()) kpm[1].narrow(0, 17, 4).fill_(true);
    auto q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
    auto qr = q0.clone().requires_grad_(), kr = k0.clone().requires_grad_(), vr = v0.clone().requires_grad_();
    Tensor fast = ops::chunked_attention(q, k, v, 8, causal, 0.8, 0.0, true, kpm);
    // dropout p = 1e-300 in training takes the explicit path and drops (almost surely) nothing.
    Tensor expl = ops::chunked_attention(qr, kr, vr, 8, causal, 0.8, 1e-300, true, kpm);
    INFO("causal " << causal);
    CHECK(max_abs(fast, expl) < 1e-12);
    Tensor w = torch::randn(fast.sizes(), f64);
    (fast * w).sum().backward();
    (expl * w).sum().backward();
    CHECK(max_abs(q.grad(), qr.grad()) < 1e-12);
    CHECK(max_abs(k.grad(), kr.grad()) < 1e-12);
    CHECK(max_abs(v.grad(), vr.grad()) < 1e-12);
  }
}

TEST_CASE("Transformer baseline: blocked attention equals the explicit softmax (logits and gradients, fp64)",
          "[transformer][blocked]") {
  torch::manual_seed(2207);
  TransformerConfig c;
  c.num_layers = 2;
  c.model_dim = 32;
  c.num_heads = 4;
  c.ffn_hidden_dim = 48;
  c.vocab_size = 50;
  c.attention = BaselineAttention::explicit_softmax;
  auto ref = make_transformer_lm(c);
  c.attention = BaselineAttention::blocked;
  auto fast = make_transformer_lm(c);
  ref->to(torch::kFloat64);
  fast->to(torch::kFloat64);
  {
    torch::NoGradGuard g;
    auto src = ref->parameters(), dst = fast->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
  }
  Tensor tokens = torch::randint(50, {2, 37});
  Tensor a = ref->forward(tokens), b = fast->forward(tokens);
  CHECK(max_abs(a, b) < 1e-11);
  a.pow(2).sum().backward();
  b.pow(2).sum().backward();
  auto pa = ref->parameters(), pb = fast->parameters();
  for (size_t i = 0; i < pa.size(); ++i) CHECK(max_abs(pa[i].grad(), pb[i].grad()) < 1e-9);
  // Streaming with several new queries after a cache uses the bottom-right causal mask.
  torch::NoGradGuard g;
  auto st = fast->make_state(2);
  Tensor s1 = fast->forward(tokens.narrow(1, 0, 10), st.get()), s2 = fast->forward(tokens.narrow(1, 10, 27), st.get());
  CHECK(max_abs(torch::cat({s1, s2}, 1), a) < 1e-11);
}

TEST_CASE("Transformer baseline: model.attention = sdpa is refused without LibTorch >= 2", "[transformer]") {
  TransformerConfig c;
  c.num_layers = 1;
  c.model_dim = 16;
  c.num_heads = 2;
  c.ffn_hidden_dim = 16;
  c.vocab_size = 10;
  c.attention = BaselineAttention::sdpa;
  if (ops::sdpa_available())
    CHECK_NOTHROW(make_transformer_lm(c));
  else
    CHECK_THROWS_WITH(make_transformer_lm(c), Catch::Contains("model.attention") && Catch::Contains("LibTorch >= 2.0"));
}

TEST_CASE("blocked attention in fp32, one key tile per query block (fused CPU rows): forward and gradients "
          "within twice the explicit fp32 path's error", "[attn][blocked][cpu_kernels]") {
  torch::manual_seed(2206);
  struct Case {
    int64_t Lq, Lk;
    bool causal;
    double scale;
    int64_t bq;
  };
  // Lk > Lq: a cache in front (bottom-right causal); bq not dividing Lq; rows wider than 16 lanes
  // and narrower; scale 1 (normalized attention) and not.
  for (const Case& c : {Case{300, 300, true, 1.0, 64}, Case{300, 340, true, 0.125, 100}, Case{37, 37, false, 0.3, 16},
                        Case{5, 5, true, 1.0, 2}}) {
    INFO("Lq " << c.Lq << " Lk " << c.Lk << " causal " << c.causal << " scale " << c.scale);
    ops::BlockedAttentionOptions o;
    o.causal = c.causal;
    o.scale = c.scale;
    o.block_q = c.bq;
    o.block_k = c.Lk;  // one tile: the fused rows
    Tensor q0 = torch::randn({2, 3, c.Lq, 16}) * 2, k0 = torch::randn({2, 3, c.Lk, 16}), v0 = torch::randn({2, 3, c.Lk, 24});
    Tensor w = torch::randn({2, 3, c.Lq, 24});
    auto grads = [&](bool fused, torch::Dtype dt) {
      auto q = q0.to(dt).requires_grad_(), k = k0.to(dt).requires_grad_(), v = v0.to(dt).requires_grad_();
      Tensor out = fused ? ops::blocked_attention(q, k, v, o) : explicit_attention(q, k, v, c.causal, c.scale, {});
      auto g = torch::autograd::grad({(out * w.to(dt)).sum()}, {q, k, v});
      g.insert(g.begin(), out);
      return g;
    };
    auto ref = grads(false, torch::kFloat64), expl = grads(false, torch::kFloat32), fast = grads(true, torch::kFloat32);
    for (size_t i = 0; i < ref.size(); ++i) {
      INFO("output/gradient " << i);
      CHECK(fast[i].scalar_type() == torch::kFloat32);
      CHECK(test::rel_err(fast[i], ref[i]) <= 2 * test::rel_err(expl[i], ref[i]) + 1e-6);
    }
  }
}

TEST_CASE("blocked attention over silu(v) from the pre-activation (silu_v) equals attention on silu(v): fp64 "
          "oracle, finite differences, fp32 against the unfused pair", "[attn][blocked][grad]") {
  torch::manual_seed(2207);
  // Blocks of 5×3 (the online softmax, several key tiles) and one tile per query block (the fused
  // CPU rows in fp32); causal with a cache in front, and non-causal with key padding.
  for (bool causal : {true, false})
    for (int64_t bk : {3, 40}) {
      INFO("causal " << causal << ", block_k " << bk);
      ops::BlockedAttentionOptions o;
      o.causal = causal;
      o.scale = 0.6;
      o.block_q = 5;
      o.block_k = bk;
      Tensor pad = causal ? Tensor() : torch::zeros({2, 1, 17}, torch::kBool);
      if (pad.defined()) pad[1][0].narrow(0, 12, 5).fill_(true);
      Tensor q0 = torch::randn({2, 2, 13, 4}, f64), k0 = torch::randn({2, 2, 17, 4}, f64),
             v0 = 2 * torch::randn({2, 2, 17, 6}, f64);
      Tensor w = torch::randn({2, 2, 13, 6}, f64);
      auto run = [&](bool pre, torch::Dtype dt) {
        auto q = q0.to(dt).requires_grad_(), k = k0.to(dt).requires_grad_(), v = v0.to(dt).requires_grad_();
        ops::BlockedAttentionOptions oo = o;
        oo.silu_v = pre;
        Tensor out = pre ? ops::blocked_attention(q, k, v, oo, pad) : ops::blocked_attention(q, k, torch::silu(v), oo, pad);
        auto g = torch::autograd::grad({(out * w.to(dt)).sum()}, {q, k, v});
        g.insert(g.begin(), out);
        return g;
      };
      // The fp64 oracle: the explicit softmax on silu(v), through autograd.
      auto q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
      Tensor ref = explicit_attention(q, k, torch::silu(v), causal, o.scale, pad);
      auto gref = torch::autograd::grad({(ref * w).sum()}, {q, k, v});
      gref.insert(gref.begin(), ref);
      auto got = run(true, torch::kFloat64);
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("output/gradient " << i);
        CHECK(max_abs(got[i], gref[i]) < 1e-12);
      }
      // fp32: the same arithmetic as silu applied outside, up to the order of the silu backward.
      auto a = run(true, torch::kFloat32), b = run(false, torch::kFloat32);
      for (size_t i = 0; i < a.size(); ++i) {
        INFO("fp32 output/gradient " << i);
        CHECK(test::rel_err(a[i], b[i]) < 1e-6);
      }
      auto fn = [&](const std::vector<Tensor>& in) {
        ops::BlockedAttentionOptions oo = o;
        oo.silu_v = true;
        return ops::blocked_attention(in[0], in[1], in[2], oo, pad);
      };
      auto r = test::gradcheck(fn, {q0.narrow(2, 0, 7).contiguous(), k0.narrow(2, 0, causal ? 9 : 17).contiguous(),
                                    v0.narrow(2, 0, causal ? 9 : 17).contiguous()});
      INFO(r.where);
      CHECK(r.ok);
    }
}

TEST_CASE("chunked attention with silu_v equals chunked attention on silu(v), both paths, fp64", "[attn][blocked]") {
  torch::manual_seed(2208);
  for (bool causal : {true, false})
    for (double p : {0.0, 1e-300}) {  // p = 1e-300 in training: the explicit (dropout) path, dropping nothing
      INFO("causal " << causal << ", dropout path " << (p > 0));
      Tensor q0 = torch::randn({2, 21, 2, 4}, f64), k0 = torch::randn({2, 21, 2, 4}, f64),
             v0 = torch::randn({2, 21, 2, 3}, f64);
      Tensor kpm = causal ? Tensor() : torch::zeros({2, 21}, torch::kBool);
      if (kpm.defined()) kpm[0].narrow(0, 15, 6).fill_(true);
      Tensor w = torch::randn({2, 21, 2, 3}, f64);
      auto run = [&](bool pre) {
        auto q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
        Tensor out = ops::chunked_attention(q, k, pre ? v : torch::silu(v), 8, causal, 0.8, p, true, kpm, pre);
        auto g = torch::autograd::grad({(out * w).sum()}, {q, k, v});
        g.insert(g.begin(), out);
        return g;
      };
      auto a = run(true), b = run(false);
      for (size_t i = 0; i < a.size(); ++i) {
        INFO("output/gradient " << i);
        CHECK(max_abs(a[i], b[i]) < 1e-12);
      }
    }
}
