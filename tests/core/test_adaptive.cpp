// Adaptive input and adaptive softmax (core/modules/adaptive.h): the factorised distribution against
// a full softmax written out by hand, normalisation, the fast NLL path against the full one, tied
// weights, fp64 finite differences, and both LMs with an adaptive head (streaming = one shot).
#include <catch2/catch.hpp>

#include "core/models/factory.h"
#include "core/modules/adaptive.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using torch::Tensor;

namespace {

struct Fixture {
  AdaptiveInput in{nullptr};
  AdaptiveSoftmax out{nullptr};
  Fixture(int64_t V = 40, int64_t D = 16, std::vector<int64_t> cutoffs = {10, 25}, double factor = 2.0) {
    torch::manual_seed(3);
    in = AdaptiveInput(V, D, cutoffs, factor);
    out = AdaptiveSoftmax(in, 0.0);
    in->to(torch::kFloat64);
    out->to(torch::kFloat64);
  }
};

}  // namespace

TEST_CASE("adaptive input: bands, widths, and each id through its own band", "[adaptive]") {
  Fixture f;
  REQUIRE(f.in->num_bands() == 3);
  CHECK(f.in->band_dim(0) == 16);
  CHECK(f.in->band_dim(1) == 8);
  CHECK(f.in->band_dim(2) == 4);
  CHECK(f.in->embedding(1).size(0) == 15);
  CHECK(f.in->embedding(2).size(0) == 15);
  const Tensor ids = torch::tensor({0, 9, 10, 24, 25, 39}, torch::kInt64).view({2, 3});
  const Tensor x = f.in(ids);
  REQUIRE(x.sizes() == torch::IntArrayRef({2, 3, 16}));
  // id 24 is row 14 of band 1: P_1 · E_1[14].
  const Tensor want = torch::matmul(f.in->projection(1), f.in->embedding(1)[14]);
  CHECK(max_abs(x[1][0], want) < 1e-12);
  const Tensor want0 = torch::matmul(f.in->projection(0), f.in->embedding(0)[9]);
  CHECK(max_abs(x[0][1], want0) < 1e-12);
}

TEST_CASE("adaptive softmax equals the factorised full softmax written out, and sums to one", "[adaptive]") {
  Fixture f;
  const Tensor h = torch::randn({5, 16}, torch::kFloat64);
  const Tensor lp = f.out->log_prob(h);
  REQUIRE(lp.sizes() == torch::IntArrayRef({5, 40}));
  CHECK(max_abs(lp.exp().sum(1), torch::ones({5}, torch::kFloat64)) < 1e-12);
  // By hand: one softmax over [h·E0ᵀ, h·Wc], then a softmax per tail over h·P_i·E_iᵀ.
  const Tensor head = torch::log_softmax(torch::cat({torch::matmul(h, f.in->embedding(0).t()),
                                                     torch::matmul(h, f.out->cluster->weight.t())}, 1), 1);
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t w : {0, 7, 9}) CHECK(std::abs(lp[r][w].item<double>() - head[r][w].item<double>()) < 1e-12);
    for (int64_t band : {1, 2}) {
      const Tensor tail = torch::log_softmax(
          torch::matmul(torch::matmul(h[r], f.in->projection(band)), f.in->embedding(band).t()), 0);
      const int64_t start = f.in->edges[band];
      for (int64_t k : {0, 3, 14}) {
        const double want = head[r][10 + band - 1].item<double>() + tail[k].item<double>();
        CHECK(std::abs(lp[r][start + k].item<double>() - want) < 1e-12);
      }
    }
  }
}

TEST_CASE("adaptive softmax with a single band is a full softmax of the tied logits", "[adaptive]") {
  // Cutoff at V − 1 leaves a one-word tail; the head is then a plain softmax over E0 for every other
  // word plus one cluster logit. With the cluster weight pushed to −∞-like values the tail mass
  // vanishes and the head equals a full softmax of h·E0ᵀ.
  Fixture f(12, 8, {11}, 4.0);
  {
    torch::NoGradGuard g;
    f.out->cluster->weight.zero_();
  }
  const Tensor h = torch::randn({4, 8}, torch::kFloat64);
  const Tensor lp = f.out->log_prob(h);
  const Tensor full = torch::log_softmax(torch::cat({torch::matmul(h, f.in->embedding(0).t()),
                                                     torch::zeros({4, 1}, torch::kFloat64)}, 1), 1);
  CHECK(max_abs(lp.narrow(1, 0, 11), full.narrow(1, 0, 11)) < 1e-12);
  CHECK(max_abs(lp.select(1, 11), full.select(1, 11)) < 1e-12);  // the one-word tail has log p = cluster's
}

TEST_CASE("adaptive softmax: nll equals −log_prob gathered, ignores negative targets", "[adaptive]") {
  Fixture f;
  const Tensor h = torch::randn({3, 7, 16}, torch::kFloat64);
  Tensor t = torch::randint(0, 40, {3, 7}, torch::kInt64);
  t[0][0] = -100;
  t[2][6] = -1;
  const Tensor nll = f.out->nll(h, t);
  const Tensor lp = f.out->log_prob(h);
  const Tensor want = -lp.gather(2, t.clamp_min(0).unsqueeze(2)).squeeze(2) * (t >= 0);
  CHECK(max_abs(nll, want) < 1e-12);
  CHECK(nll[0][0].item<double>() == 0.0);
  CHECK_THROWS_WITH(f.out->nll(h, torch::full({3, 7}, 40, torch::kInt64)), Catch::Contains("out of range"));
}

TEST_CASE("adaptive softmax and input: fp64 finite differences through the shared weights", "[adaptive]") {
  Fixture f(20, 8, {6, 13}, 2.0);
  const Tensor tokens = torch::tensor({0, 5, 6, 12, 13, 19}, torch::kInt64);
  const Tensor targets = torch::tensor({19, 13, 0, 7, 12, 5}, torch::kInt64);
  // The members forward reads (Embedding/Linear weights, the cluster weight) are pointed at the
  // gradcheck's leaves, so autograd reaches them through the module code itself.
  std::vector<Tensor*> slots;
  for (int64_t b = 0; b < f.in->num_bands(); ++b) {
    slots.push_back(&f.in->embs[b]->weight);
    slots.push_back(&f.in->projs[b]->weight);
  }
  slots.push_back(&f.out->cluster->weight);
  std::vector<Tensor> inputs;
  for (auto* s : slots) inputs.push_back(s->detach().clone());
  auto fn = [&](const std::vector<Tensor>& xs) {
    for (size_t i = 0; i < slots.size(); ++i) *slots[i] = xs[i];
    return f.out->nll(f.in(tokens), targets);
  };
  const auto r = mgl::test::gradcheck(fn, inputs);
  INFO(r.where);
  CHECK(r.ok);
}

TEST_CASE("adaptive LMs: log-probabilities, nll path, last_logits and streaming agree", "[adaptive]") {
  MegalodonConfig m;
  m.num_layers = 2;
  m.model_dim = 32;
  m.z_dim = 16;
  m.value_dim = 32;
  m.ffn_hidden_dim = 48;
  m.norm_num_groups = 4;
  m.chunk_size = 8;
  m.vocab_size = 60;
  m.adaptive_cutoffs = {20, 40};
  TransformerConfig t;
  t.num_layers = 2;
  t.model_dim = 32;
  t.num_heads = 2;
  t.ffn_hidden_dim = 48;
  t.vocab_size = 60;
  t.adaptive_cutoffs = {20, 40};
  torch::manual_seed(5);
  for (CausalLM lm : {make_megalodon_lm(m), make_transformer_lm(t)}) {
    INFO(lm->name());
    lm->to(torch::kFloat64);
    lm->eval();
    const Tensor x = torch::randint(0, 60, {2, 19}, torch::kInt64);
    const Tensor y = torch::randint(0, 60, {2, 19}, torch::kInt64);
    const Tensor lp = lm->forward(x);
    CHECK(max_abs(lp.exp().sum(-1), torch::ones({2, 19}, torch::kFloat64)) < 1e-10);
    const Tensor nll = lm->nll(x, y);
    CHECK(max_abs(nll, -lp.gather(2, y.unsqueeze(2)).squeeze(2)) < 1e-10);
    CHECK(max_abs(lm->last_logits(x), lp.select(1, -1)) < 1e-10);
    // Streaming in uneven segments equals the one-shot pass.
    auto st = lm->make_state(2);
    std::vector<Tensor> parts;
    for (auto [a, n] : {std::pair<int64_t, int64_t>{0, 5}, {5, 9}, {14, 5}})
      parts.push_back(lm->nll(x.narrow(1, a, n), y.narrow(1, a, n), st.get()));
    CHECK(max_abs(torch::cat(parts, 1), nll) < 1e-10);
  }
  m.share_emb = true;
  CHECK_THROWS_WITH(m.validate(), Catch::Contains("share_emb"));
  m.share_emb = false;
  m.adaptive_cutoffs = {40, 20};
  CHECK_THROWS_WITH(m.validate(), Catch::Contains("increasing"));
  m.adaptive_cutoffs = {20, 60};
  CHECK_THROWS_WITH(m.validate(), Catch::Contains("below vocab_size"));
}
