// The Transformer baseline: causal, streamable, matched in size.
#include <catch2/catch.hpp>

#include <torch/version.h>

#include <cmath>
#include <limits>

#include "core/models/factory.h"
#include "core/models/transformer.h"
#include "core/ops/attention.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using mgl::test::rel_err;

TEST_CASE("Transformer baseline: streaming with its KV cache equals one shot, and it is causal", "[transformer]") {
  torch::manual_seed(51);
  TransformerConfig c;
  c.num_layers = 2;
  c.model_dim = 32;
  c.num_heads = 4;
  c.ffn_hidden_dim = 64;
  c.vocab_size = 40;
  auto lm = make_transformer_lm(c);
  lm->eval();
  auto tokens = torch::randint(40, {2, 30});
  torch::NoGradGuard g;
  auto full = lm->forward(tokens);
  auto st = lm->make_state(2);
  std::vector<torch::Tensor> outs;
  int64_t off = 0;
  for (int64_t n : {7, 1, 1, 15, 6}) {
    outs.push_back(lm->forward(tokens.narrow(1, off, n), st.get()));
    off += n;
  }
  REQUIRE(max_abs(torch::cat(outs, 1), full) < 1e-4);
  auto t2 = tokens.clone();
  t2[0][20] = (t2[0][20].item<int64_t>() + 1) % 40;
  REQUIRE(lm->forward(t2).narrow(1, 0, 20).equal(full.narrow(1, 0, 20)));
}

TEST_CASE("the matched Transformer has about the Megalodon parameter count", "[transformer]") {
  MegalodonConfig m;
  m.num_layers = 2;
  m.model_dim = 128;
  m.num_heads = 1;
  m.z_dim = 32;
  m.value_dim = 256;
  m.ffn_hidden_dim = 256;
  m.chunk_size = 64;
  m.vocab_size = 100;
  m.norm_num_groups = 8;
  auto t = TransformerConfig::matched(m);
  REQUIRE(t.model_dim == 128);
  REQUIRE(t.num_layers == 2);
  REQUIRE(t.num_heads == 2);
  const double a = count_parameters(*make_megalodon_lm(m)), b = count_parameters(*make_transformer_lm(t));
  REQUIRE(std::abs(a - b) / a < 0.05);
}

namespace {

// The Transformer LM written out with an explicit softmax attention (no SDPA, no ops::cached_attention):
// the oracle for whichever attention path the build takes (SDPA with LibTorch 2.x, the reference
// path with 1.13). Reads the model's own parameters; RoPE and RMSNorm are the reference ops.
torch::Tensor explicit_transformer_logits(TransformerLMImpl& lm, const torch::Tensor& tokens) {
  const auto& c = lm.cfg;
  const int64_t B = tokens.size(0), L = tokens.size(1), H = c.num_heads, hd = c.head_dim();
  torch::Tensor h = lm.tok_embeddings(tokens);
  const torch::Tensor pos = torch::arange(L, torch::kInt64);
  const torch::Tensor future = torch::ones({L, L}, torch::kBool).triu(1);  // key j > query i
  for (auto& blk : lm.blocks) {
    auto& at = *blk->attention;
    torch::Tensor u = blk->attention_norm(h);
    torch::Tensor q = ops::apply_rope(at.wq(u).view({B, L, H, hd}), pos, c.rope_base).permute({0, 2, 1, 3});
    torch::Tensor k = ops::apply_rope(at.wk(u).view({B, L, H, hd}), pos, c.rope_base).permute({0, 2, 1, 3});
    torch::Tensor v = at.wv(u).view({B, L, H, hd}).permute({0, 2, 1, 3});
    torch::Tensor s = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(hd));
    torch::Tensor p = torch::softmax(s.masked_fill(future, -std::numeric_limits<double>::infinity()), -1);
    torch::Tensor o = torch::matmul(p, v).permute({0, 2, 1, 3}).reshape({B, L, H * hd});
    h = h + at.wo(o);
    u = blk->ffn_norm(h);
    h = h + blk->w2(torch::silu(blk->w1(u)) * blk->w3(u));
  }
  return lm.output(lm.norm(h));
}

}  // namespace

TEST_CASE("Transformer baseline: its attention (SDPA with LibTorch 2.x) equals the explicit softmax, "
          "causal and cached, values and gradients in fp64",
          "[transformer][sdpa]") {
  // LibTorch >= 2 takes at::scaled_dot_product_attention for a whole causal sequence (is_causal)
  // and for one new token after a cache (no mask); 1.13 the reference path. Either must equal the
  // written-out model.
  CHECK(ops::sdpa_available() == (TORCH_VERSION_MAJOR >= 2));
  torch::manual_seed(52);
  TransformerConfig c;
  c.num_layers = 2;
  c.model_dim = 24;
  c.num_heads = 3;
  c.ffn_hidden_dim = 40;
  c.vocab_size = 31;
  auto holder = make_transformer_lm(c);
  auto* lm = dynamic_cast<TransformerLMImpl*>(holder.get());
  REQUIRE(lm);
  lm->to(torch::kFloat64);
  lm->eval();
  const auto tokens = torch::randint(31, {2, 13});

  // Causal, whole sequence: values and every parameter's gradient.
  const torch::Tensor got = lm->forward(tokens), want = explicit_transformer_logits(*lm, tokens);
  REQUIRE(got.scalar_type() == torch::kFloat64);
  CHECK(max_abs(got, want) < 1e-10);
  const torch::Tensor w = torch::randn(got.sizes(), torch::kFloat64);
  const auto params = lm->parameters();
  const auto g_got = torch::autograd::grad({(got * w).sum()}, params);
  const auto g_want = torch::autograd::grad({(want * w).sum()}, params);
  for (size_t i = 0; i < params.size(); ++i) CHECK(rel_err(g_got[i], g_want[i]) < 1e-10);

  // Cached decoding one token at a time (SDPA without a mask on 2.x), after a prompt of 5.
  torch::NoGradGuard ng;
  auto st = lm->make_state(2);
  std::vector<torch::Tensor> outs{lm->forward(tokens.narrow(1, 0, 5), st.get())};
  for (int64_t t = 5; t < 13; ++t) outs.push_back(lm->forward(tokens.narrow(1, t, 1), st.get()));
  CHECK(max_abs(torch::cat(outs, 1), want) < 1e-10);
}
