// The Transformer baseline: causal, streamable, matched in size.
#include <catch2/catch.hpp>

#include "core/models/factory.h"
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
