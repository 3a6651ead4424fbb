// The image-classification pieces of the core: stochastic depth, learned positions and the image
// head of the Megalodon classifier, and the ViT/DeiT-form Transformer baseline (against LibTorch's
// own MultiheadAttention and a float64 finite-difference gradient check).
#include <catch2/catch.hpp>

#include "core/models/megalodon.h"
#include "core/models/transformer_classifier.h"
#include "core/modules/drop_path.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using torch::Tensor;

namespace {

MegalodonConfig tiny_encoder() {
  MegalodonConfig c;
  c.num_layers = 3;
  c.model_dim = 16;
  c.num_heads = 1;
  c.z_dim = 8;
  c.value_dim = 32;
  c.ffn_hidden_dim = 32;
  c.cema_ndim = 4;
  c.norm = NormKind::sequence;
  c.norm_num_groups = 4;
  c.chunk_size = 64;
  c.causal = false;
  return c;
}

TransformerClassifierConfig tiny_vit() {
  TransformerClassifierConfig c;
  c.num_layers = 2;
  c.model_dim = 12;
  c.num_heads = 3;
  c.ffn_hidden_dim = 20;
  c.num_classes = 5;
  c.input_dim = 6;
  c.max_positions = 9;
  return c;
}

int64_t count(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// ViT parameters: patch projection, class token, positions, per block (LN, qkv, proj, LN, MLP),
// final LN, head.
int64_t vit_params(int64_t layers, int64_t D, int64_t F, int64_t in, int64_t positions, int64_t classes, bool cls) {
  const int64_t block = 2 * D + (D * 3 * D + 3 * D) + (D * D + D) + 2 * D + (D * F + F) + (F * D + D);
  return (in * D + D) + (cls ? D : 0) + (positions + (cls ? 1 : 0)) * D + layers * block + 2 * D + (D * classes + classes);
}

}  // namespace

TEST_CASE("drop_path zeroes whole examples with probability p and rescales the rest", "[model][drop-path]") {
  torch::manual_seed(3);
  Tensor branch = torch::randn({4000, 3, 5});
  REQUIRE(max_abs(drop_path(branch, 0.3, false), branch) == 0.0);  // evaluation: identity
  REQUIRE(max_abs(drop_path(branch, 0.0, true), branch) == 0.0);
  Tensor out = drop_path(branch, 0.3, true);
  Tensor kept = (out != 0).flatten(1).all(1), dropped = (out == 0).flatten(1).all(1);
  REQUIRE(kept.logical_or(dropped).all().item<bool>());  // all or nothing per example
  const double drop_rate = dropped.to(torch::kFloat64).mean().item<double>();
  REQUIRE(drop_rate == Approx(0.3).margin(0.03));
  REQUIRE(max_abs(out.index({kept}), branch.index({kept}) / 0.7) < 1e-5);
}

TEST_CASE("stochastic depth rates grow linearly over the blocks and act on both residual branches",
          "[model][drop-path]") {
  auto cfg = tiny_encoder();
  cfg.drop_path = 0.4;
  ClassifierOptions opt;
  opt.num_classes = 3;
  MegalodonClassifier clf(cfg, opt);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(clf->blocks[i]->mega->drop_path_rate == Approx(0.2 * i));
    REQUIRE(clf->blocks[i]->nffn->drop_path_rate == Approx(0.2 * i));
  }
  // One block at rate 0.5: per example, the MEGA output is x (branch dropped) or x + 2·h.
  torch::manual_seed(5);
  auto c2 = tiny_encoder();
  c2.num_layers = 2;
  c2.drop_path = 0.5;
  MegaBlock block(c2, 1);
  Tensor x = torch::randn({64, 10, 16});
  block->eval();
  Tensor h;
  {
    torch::NoGradGuard g;
    h = block->mega(x) - x;
  }
  block->train();
  torch::NoGradGuard g;
  Tensor y = block->mega(x);
  int same = 0, doubled = 0;
  for (int64_t b = 0; b < 64; ++b) {
    if (max_abs(y[b], x[b]) < 1e-6) ++same;
    else if (max_abs(y[b], x[b] + 2 * h[b]) < 1e-4) ++doubled;
  }
  REQUIRE(same + doubled == 64);
  REQUIRE(same > 10);
  REQUIRE(doubled > 10);
}

TEST_CASE("learned positions and the image head compute final norm → Linear+SiLU → pool → Linear",
          "[model][encoder]") {
  torch::manual_seed(11);
  auto cfg = tiny_encoder();
  ClassifierOptions opt;
  opt.num_classes = 4;
  opt.input_dim = 6;
  opt.max_positions = 9;
  opt.head = ClassifierHead::image;
  MegalodonClassifier clf(cfg, opt);
  clf->eval();
  REQUIRE(clf->positions.sizes() == torch::IntArrayRef({9, 16}));
  REQUIRE(clf->positions.abs().max().item<double>() <= 0.04);
  REQUIRE(clf->head_fc1->weight.sizes() == torch::IntArrayRef({16, 16}));  // head_dim -1 → D
  REQUIRE(clf->head_fc2->bias.defined());
  Tensor x = torch::randn({2, 9, 6});
  torch::NoGradGuard g;
  Tensor h = clf->input_proj(x) + clf->positions;
  for (auto& b : clf->blocks) h = b(h);
  h = clf->final_norm(h);
  Tensor want = clf->head_fc2(torch::silu(clf->head_fc1(h)).mean(1));
  REQUIRE(max_abs(clf(x), want) < 1e-5);
  // The positions matter, and a longer input than max_positions is refused.
  clf->positions.normal_(0, 1);
  REQUIRE(max_abs(clf(x), want) > 1e-3);
  REQUIRE_THROWS_WITH(clf(torch::randn({1, 10, 6})), Catch::Contains("max_positions"));
  REQUIRE(parse_classifier_head("model.head", "image") == ClassifierHead::image);
  REQUIRE_THROWS_WITH(parse_classifier_head("model.head", "conv"), Catch::Contains("mlp, image"));
}

TEST_CASE("the Transformer classifier block equals LibTorch's MultiheadAttention pre-norm block",
          "[model][transformer-classifier]") {
  torch::manual_seed(21);
  auto cfg = tiny_vit();
  TransformerEncoderBlock block(cfg, 0.0);
  block->to(torch::kFloat64);
  block->eval();
  torch::nn::MultiheadAttention mha(torch::nn::MultiheadAttentionOptions(12, 3));
  mha->to(torch::kFloat64);
  {
    torch::NoGradGuard g;
    mha->in_proj_weight.copy_(block->qkv->weight);
    mha->in_proj_bias.copy_(block->qkv->bias);
    mha->out_proj->weight.copy_(block->proj->weight);
    mha->out_proj->bias.copy_(block->proj->bias);
    for (auto* ln : {&block->norm1, &block->norm2}) {
      (*ln)->weight.normal_(1, 0.2);
      (*ln)->bias.normal_(0, 0.2);
    }
  }
  mha->eval();
  Tensor x = torch::randn({3, 7, 12}, torch::kFloat64);
  Tensor pad = torch::zeros({3, 7}, torch::kBool);
  pad[2].narrow(0, 4, 3).fill_(true);
  torch::NoGradGuard g;
  Tensor u = block->norm1(x).transpose(0, 1);  // L×B×D
  Tensor a = std::get<0>(mha(u, u, u, pad)).transpose(0, 1);
  Tensor y = x + a;
  Tensor want = y + block->fc2(torch::gelu(block->fc1(block->norm2(y))));
  Tensor got = block(x, pad);
  // Padded queries attend too (their outputs are ignored downstream); compare every position.
  REQUIRE(max_abs(got, want) < 1e-10);
}

TEST_CASE("the Transformer classifier: sizes, padding, pooling and float64 gradients",
          "[model][transformer-classifier]") {
  torch::manual_seed(22);
  auto cfg = tiny_vit();
  for (bool cls : {true, false}) {
    DYNAMIC_SECTION("cls token " << cls) {
      cfg.cls_token = cls;
      TransformerClassifier m(cfg);
      REQUIRE(count(*m) == vit_params(2, 12, 20, 6, 9, 5, cls));
      m->eval();
      Tensor x = torch::randn({2, 9, 6});
      Tensor mask = torch::zeros({2, 9}, torch::kBool);
      mask[1].narrow(0, 6, 3).fill_(true);
      torch::NoGradGuard g;
      Tensor a = m(x, mask);
      REQUIRE(a.sizes() == torch::IntArrayRef({2, 5}));
      Tensor x2 = x.clone();
      x2[1].narrow(0, 6, 3).normal_(0, 5);
      REQUIRE(max_abs(m(x2, mask), a) < 1e-5);  // padding is invisible
      REQUIRE(max_abs(m(x[1].narrow(0, 0, 6).unsqueeze(0)), a[1].unsqueeze(0)) < 1e-5);
      REQUIRE_THROWS_WITH(m(torch::randn({1, 10, 6})), Catch::Contains("max_positions"));
    }
  }
  // DeiT-B at 224² / 16² with 1,000 classes: the 86,567,656 parameters of timm's vit_base_patch16_224.
  REQUIRE(vit_params(12, 768, 3072, 768, 196, 1000, true) == 86567656);

  auto small = tiny_vit();
  small.num_layers = 1;
  small.model_dim = 6;
  small.num_heads = 2;
  small.ffn_hidden_dim = 8;
  small.input_dim = 3;
  small.max_positions = 4;
  small.num_classes = 3;
  TransformerClassifier m(small);
  m->to(torch::kFloat64);
  m->eval();
  {
    torch::NoGradGuard g;  // O(1) weights so the gradients are far above the difference noise
    for (auto& p : m->parameters()) p.normal_(0, 0.5);
  }
  auto r = mgl::test::gradcheck([&](const std::vector<Tensor>& in) { return m(in[0]); },
                                {torch::randn({2, 4, 3}, torch::kFloat64)});
  INFO(r.where);
  REQUIRE(r.ok);
}

TEST_CASE("Transformer classifier configs are validated with the key named", "[model][transformer-classifier]") {
  auto c = tiny_vit();
  c.num_heads = 5;
  REQUIRE_THROWS_WITH(c.validate(), Catch::Contains("model.num_heads"));
  c = tiny_vit();
  c.drop_path = 1.0;
  REQUIRE_THROWS_WITH(c.validate(), Catch::Contains("model.drop_path"));
}
