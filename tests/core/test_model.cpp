// Whole-block and whole-model oracles: two-hop identities (§9.18), streaming equals one shot
// (§9.20), the ablation switches (§8), causality, names of parameters, the classifier.
#include <catch2/catch.hpp>

#include <set>

#include "core/models/factory.h"
#include "core/models/megalodon.h"
#include "core/ops/attention.h"
#include "core/ops/norms.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using mgl::test::rel_err;
using torch::Tensor;

namespace {
// The §9.20 configuration: 2 layers, D = 64, H = 2, Z = 32, E = 64, N = 16, G = 4, C = 16.
MegalodonConfig small_cfg() {
  MegalodonConfig c;
  c.num_layers = 2;
  c.model_dim = 64;
  c.num_heads = 2;
  c.z_dim = 32;
  c.value_dim = 64;
  c.ffn_hidden_dim = 96;
  c.cema_ndim = 16;
  c.norm_num_groups = 4;
  c.chunk_size = 16;
  c.vocab_size = 50;
  return c;
}
// Make the zero-initialised parameters (norm weights, q/k affine) non-trivial, so every path
// is exercised.
void perturb(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.named_parameters()) {
    const auto& n = p.key();
    if (n.find("weight") != std::string::npos && p.value().dim() == 1) p.value().normal_(0, 0.2);
    if (n.find("bias") != std::string::npos && p.value().dim() == 1) p.value().normal_(0, 0.2);
    if (n.size() >= 5 && (n.substr(n.size() - 5) == "gamma" || n.substr(n.size() - 4) == "beta") && p.value().dim() == 2 &&
        n.find("cema") == std::string::npos)
      p.value().normal_(0, 0.2);
  }
}
Tensor stream(MegalodonLMImpl& lm, const Tensor& tokens, const std::vector<int64_t>& segments) {
  auto st = lm.make_state(tokens.size(0));
  std::vector<Tensor> outs;
  int64_t off = 0;
  for (int64_t n : segments) {
    outs.push_back(lm.forward(tokens.narrow(1, off, n), st.get()));
    off += n;
  }
  REQUIRE(off == tokens.size(1));
  REQUIRE(st->position == off);
  return torch::cat(outs, 1);
}
}  // namespace

TEST_CASE("two-hop residual identities (§9.18)", "[model]") {
  torch::manual_seed(41);
  auto cfg = small_cfg();
  MegaBlock block(cfg, 0);
  perturb(*block);
  auto x = torch::randn({2, 20, cfg.model_dim});
  torch::NoGradGuard g;
  // fc2 = 0: the block output equals its input exactly (h reaches the stream only through the FFN).
  auto saved = block->nffn->fc2->weight.clone();
  block->nffn->fc2->weight.zero_();
  REQUIRE(block(x).equal(x));
  block->nffn->fc2->weight.copy_(saved);
  // Wh1 = Wh2 = bh1 = 0: y = x and the block is x + FFN(LN(x)).
  block->mega->wh1->weight.zero_();
  block->mega->wh1->bias.zero_();
  block->mega->wh2->weight.zero_();
  REQUIRE(block->mega(x).equal(x));
  REQUIRE(max_abs(block(x), block->nffn(x, x)) < 1e-6);
}

TEST_CASE("the MEGA layer and block follow the spec §0 data flow", "[model]") {
  torch::manual_seed(42);
  for (auto attn : {AttentionKind::normalized, AttentionKind::plain}) {
    for (auto resid : {ResidualKind::two_hop, ResidualKind::prenorm}) {
      auto cfg = small_cfg();
      cfg.attention = attn;
      cfg.residual = resid;
      MegaBlock block(cfg, 0);
      perturb(*block);
      block->to(torch::kFloat64);
      auto& m = *block->mega;
      auto x = torch::randn({2, 40, cfg.model_dim}, torch::kFloat64);
      torch::NoGradGuard g;
      // Written out step by step from §0 / §8.3 / §8.4.
      auto xt = m.timenorm(x);
      auto xc = m.cema->forward(xt.transpose(1, 2)).first.transpose(1, 2);
      auto mx = ops::rms_norm(xc, m.rmsnorm->weight + 1, cfg.norm_eps);
      const int64_t B = 2, L = 40, H = cfg.num_heads, dz = cfg.z_head_dim();
      auto z = m.wz(mx);
      Tensor q, k;
      double scale;
      if (attn == AttentionKind::normalized) {
        auto zn = ops::rms_norm(z.view({B, L, H, dz}), {}, cfg.norm_eps).view({B, L, -1});
        q = zn * (m.gamma[0] + 1) / std::sqrt(double(dz)) + m.beta[0];
        k = zn * (m.gamma[1] + 1) / std::sqrt(double(dz)) + m.beta[1];
        scale = 1.0;
      } else {
        z = torch::silu(z);
        q = z * (m.gamma[0] + 1) + m.beta[0];
        k = z * (m.gamma[1] + 1) + m.beta[1];
        scale = 1.0 / std::sqrt(double(dz));
      }
      auto v = torch::silu(m.wv(xt)), r = torch::silu(m.wr(mx));
      auto pos = torch::arange(L) % cfg.chunk_size;
      auto o = ops::chunked_attention(ops::apply_rope(q.view({B, L, H, dz}), pos, 1e4),
                                      ops::apply_rope(k.view({B, L, H, dz}), pos, 1e4), v.view({B, L, H, -1}),
                                      cfg.chunk_size, true, scale, 0.0, false)
                   .reshape({B, L, -1});
      auto y = x + m.wh1(mx) + m.wh2(o * r);
      auto u = ops::layer_norm(y, block->nffn->norm->weight + 1, block->nffn->norm->bias, cfg.norm_eps);
      auto f = block->nffn->fc2(torch::silu(block->nffn->fc1(u)));
      auto ref = (resid == ResidualKind::two_hop ? x : y) + f;
      CAPTURE(to_string(attn), to_string(resid));
      REQUIRE(max_abs(m.forward(x), y) < 1e-10);
      REQUIRE(max_abs(block(x), ref) < 1e-10);
    }
  }
}

TEST_CASE("the Mega update gate: y = x + u ⊙ (silu(h) − x) (§8.5)", "[model][ablation]") {
  torch::manual_seed(43);
  auto cfg = small_cfg();
  cfg.update_gate = UpdateGate::mega;
  MovingAverageGatedAttention m(cfg);
  auto cfg0 = small_cfg();
  MovingAverageGatedAttention m0(cfg0);
  m0->to(torch::kFloat64);
  m->to(torch::kFloat64);
  torch::NoGradGuard g;
  for (auto& p : m0->named_parameters()) m->named_parameters()[p.key()].copy_(p.value());
  auto x = torch::randn({1, 24, cfg.model_dim}, torch::kFloat64);
  auto hidden = m0->forward(x) - x;  // wh1(mx) + wh2(O ⊙ r): the gate-free h
  auto u = torch::sigmoid(m->wu->forward(ops::rms_norm(
      m->cema->forward(m->timenorm->forward(x).transpose(1, 2)).first.transpose(1, 2), m->rmsnorm->weight + 1, 1e-5)));
  REQUIRE(max_abs(m->forward(x), x + u * (torch::silu(hidden) - x)) < 1e-10);
}

TEST_CASE("whole-model streaming equals one shot (§9.20)", "[model][stream]") {
  torch::manual_seed(44);
  struct Variant {
    const char* name;
    std::function<void(MegalodonConfig&)> set;
  };
  std::vector<Variant> variants = {
      {"megalodon", [](MegalodonConfig&) {}},
      {"ema", [](MegalodonConfig& c) { c.ema = EmaKind::ema; }},
      {"ema mega-exact", [](MegalodonConfig& c) { c.ema = EmaKind::ema, c.ema_mega_exact = true; }},
      {"layer norm", [](MegalodonConfig& c) { c.norm = NormKind::layer; }},
      {"group norm", [](MegalodonConfig& c) { c.norm = NormKind::group; }},
      {"plain attention", [](MegalodonConfig& c) { c.attention = AttentionKind::plain; }},
      {"prenorm", [](MegalodonConfig& c) { c.residual = ResidualKind::prenorm; }},
      {"update gate, swiglu, tied, scaled", [](MegalodonConfig& c) {
         c.update_gate = UpdateGate::mega, c.swiglu = c.share_emb = c.scale_emb = c.rescale_nffn = true;
       }},
  };
  for (const auto& var : variants) {
    auto cfg = small_cfg();
    var.set(cfg);
    MegalodonLMImpl lm(cfg);
    perturb(lm);
    lm.eval();
    auto tokens = torch::randint(cfg.vocab_size, {2, 96});
    torch::NoGradGuard g;
    auto full = lm.forward(tokens);
    CAPTURE(var.name);
    std::vector<int64_t> spec = {32, 32, 16, 8, 1, 1, 1, 1, 1, 1, 1, 1};
    REQUIRE(max_abs(stream(lm, tokens, spec), full) <= 1e-4);
    REQUIRE(max_abs(stream(lm, tokens, {5, 13, 40, 1, 37}), full) <= 1e-4);
  }
}

TEST_CASE("the causal LM is causal", "[model]") {
  torch::manual_seed(45);
  auto cfg = small_cfg();
  MegalodonLMImpl lm(cfg);
  perturb(lm);
  auto tokens = torch::randint(cfg.vocab_size, {1, 40});
  torch::NoGradGuard g;
  auto a = lm.forward(tokens);
  auto t2 = tokens.clone();
  t2[0][25] = (t2[0][25].item<int64_t>() + 1) % cfg.vocab_size;
  auto b = lm.forward(t2);
  // Not bit-exact: the FFT convolution mixes round-off across positions (fp32 ε ≈ 1e-7).
  REQUIRE(max_abs(a.narrow(1, 0, 25), b.narrow(1, 0, 25)) < 1e-5);
  REQUIRE(max_abs(a.narrow(1, 25, 15), b.narrow(1, 25, 15)) > 1e-2);
}

TEST_CASE("every parameter gets a finite gradient", "[model][grad]") {
  torch::manual_seed(46);
  auto cfg = small_cfg();
  cfg.swiglu = true;
  MegalodonLMImpl lm(cfg);
  perturb(lm);
  auto tokens = torch::randint(cfg.vocab_size, {2, 37});
  auto logits = lm.forward(tokens);
  torch::nn::functional::cross_entropy(logits.view({-1, cfg.vocab_size}), tokens.view({-1})).backward();
  for (auto& p : lm.named_parameters()) {
    CAPTURE(p.key());
    REQUIRE(p.value().grad().defined());
    REQUIRE(torch::isfinite(p.value().grad()).all().item<bool>());
  }
}

TEST_CASE("parameter names follow the official state dict", "[model]") {
  auto cfg = small_cfg();
  cfg.num_layers = 1;
  MegalodonLMImpl lm(cfg);
  std::set<std::string> names;
  for (auto& p : lm.named_parameters()) names.insert(p.key());
  for (auto& b : lm.named_buffers()) names.insert(b.key());
  const std::set<std::string> expected = {
      "embed.weight",
      "layers.0.mega.timenorm.prior_count", "layers.0.mega.timenorm.prior_mean", "layers.0.mega.timenorm.prior_logv",
      "layers.0.mega.timenorm.weight", "layers.0.mega.timenorm.bias",
      "layers.0.mega.cema.alpha", "layers.0.mega.cema.delta", "layers.0.mega.cema.theta",
      "layers.0.mega.cema.gamma", "layers.0.mega.cema.omega",
      "layers.0.mega.rmsnorm.weight",
      "layers.0.mega.wv.weight", "layers.0.mega.wv.bias", "layers.0.mega.wz.weight", "layers.0.mega.wz.bias",
      "layers.0.mega.wr.weight", "layers.0.mega.wr.bias", "layers.0.mega.wh1.weight", "layers.0.mega.wh1.bias",
      "layers.0.mega.wh2.weight", "layers.0.mega.gamma", "layers.0.mega.beta",
      "layers.0.nffn.norm.weight", "layers.0.nffn.norm.bias", "layers.0.nffn.fc1.weight", "layers.0.nffn.fc2.weight",
      "output.final_norm.prior_count", "output.final_norm.prior_mean", "output.final_norm.prior_logv",
      "output.final_norm.weight", "output.final_norm.bias", "output.output.weight"};
  REQUIRE(names == expected);
  auto shape = [&](const std::string& n) { return lm.named_parameters()[n].sizes().vec(); };
  REQUIRE(shape("layers.0.mega.cema.alpha") == std::vector<int64_t>{64, 16, 1});
  REQUIRE(shape("layers.0.mega.cema.theta") == std::vector<int64_t>{64, 1, 1});
  REQUIRE(shape("layers.0.mega.cema.gamma") == std::vector<int64_t>{64, 16, 2});
  REQUIRE(shape("layers.0.mega.cema.omega") == std::vector<int64_t>{64, 1});
  REQUIRE(shape("layers.0.mega.gamma") == std::vector<int64_t>{2, 32});
}

TEST_CASE("each ablation switch changes exactly its own parameters", "[model][ablation]") {
  auto names = [](const MegalodonConfig& c) {
    MegalodonLMImpl lm(c);
    std::map<std::string, std::vector<int64_t>> n;
    for (auto& p : lm.named_parameters()) n[p.key()] = p.value().sizes().vec();
    return n;
  };
  auto base = names(small_cfg());
  auto diff = [&](const MegalodonConfig& c) {
    auto other = names(c);
    std::set<std::string> d;
    for (auto& [k, v] : base)
      if (!other.count(k) || other[k] != v) d.insert(k.substr(k.find('.', 7) + 1));
    for (auto& [k, v] : other)
      if (!base.count(k)) d.insert(k.substr(k.find('.', 7) + 1));
    return d;
  };
  auto c = small_cfg();
  c.attention = AttentionKind::plain;
  REQUIRE(diff(c).empty());  // same parameters, different maths
  c = small_cfg();
  c.residual = ResidualKind::prenorm;
  REQUIRE(diff(c).empty());
  c = small_cfg();
  c.ema = EmaKind::ema;
  REQUIRE(diff(c) == std::set<std::string>{"mega.cema.theta", "mega.cema.gamma"});
  c = small_cfg();
  c.norm = NormKind::layer;
  auto d = diff(c);
  REQUIRE(d.count("mega.timenorm.weight"));
  REQUIRE(d.count("mega.layernorm.weight"));
}

TEST_CASE("configs are validated with the key named", "[model][config]") {
  auto c = small_cfg();
  c.z_dim = 30;  // not a multiple of num_heads·2
  REQUIRE_THROWS_WITH(c.validate(), Catch::Contains("model.z_dim"));
  c = small_cfg();
  c.norm_num_groups = 5;
  REQUIRE_THROWS_WITH(c.validate(), Catch::Contains("model.norm_num_groups"));
  REQUIRE_THROWS_WITH(parse_norm("model.norm", "batch"), Catch::Contains("\"timestep\", \"layer\", \"group\""));
  REQUIRE(parse_ema("model.ema", "ema") == EmaKind::ema);
  for (const auto& n : MegalodonConfig::preset_names()) REQUIRE_NOTHROW(MegalodonConfig::preset(n).validate());
  REQUIRE_THROWS_WITH(MegalodonConfig::preset("mega9B"), Catch::Contains("mega200M"));
  auto p = MegalodonConfig::preset("mega1.3B_pg19");
  REQUIRE((p.swiglu && p.share_emb && p.scale_emb && p.ffn_hidden_dim == 3584 && p.num_heads == 2));
}

TEST_CASE("the classifier encoder ignores padding and pools over valid positions", "[model][encoder]") {
  for (auto norm : {NormKind::group, NormKind::sequence, NormKind::timestep}) {
    DYNAMIC_SECTION("norm = " << to_string(norm)) {
      torch::manual_seed(47);
      auto cfg = small_cfg();
      cfg.norm = norm;
      cfg.vocab_size = -1;
      ClassifierOptions opt;
      opt.num_classes = 3;
      MegalodonClassifier clf(cfg, opt);
      perturb(*clf);
      clf->eval();
      REQUIRE(!clf->cfg.causal);
      REQUIRE(clf->blocks[0]->mega->cema->alpha.size(0) == 2 * cfg.model_dim);  // bidirectional
      auto x = torch::randn({2, 37});
      auto mask = torch::zeros({2, 37}, torch::kBool);
      mask[1].narrow(0, 30, 7).fill_(true);
      torch::NoGradGuard g;
      auto a = clf(x, mask);
      auto x2 = x.clone();
      x2[1].narrow(0, 30, 7).normal_(0, 5);
      auto b = clf(x2, mask);
      REQUIRE(max_abs(a, b) < 1e-5);
      // The unpadded sequence of 30 gives the same logits as the padded one.
      auto c = clf(x[1].narrow(0, 0, 30).unsqueeze(0), torch::Tensor());
      REQUIRE(max_abs(a[1], c[0]) < 1e-4);
      REQUIRE(a.sizes() == torch::IntArrayRef({2, 3}));
    }
  }
}

TEST_CASE("the whole-sequence norm is refused for a causal model", "[model][config]") {
  auto cfg = small_cfg();
  cfg.norm = NormKind::sequence;
  REQUIRE_NOTHROW(cfg.validate());  // a config for either form; the model decides
  REQUIRE_THROWS_WITH(std::make_shared<MegalodonLMImpl>(cfg), Catch::Contains("model.norm") && Catch::Contains("causal"));
  REQUIRE_THROWS_WITH(MegaBlock(cfg, 0), Catch::Contains("causal"));
  cfg.causal = false;
  REQUIRE_NOTHROW(MegaBlock(cfg, 0));
}

TEST_CASE("the two-document head pools each document with the same encoder", "[model][encoder]") {
  torch::manual_seed(48);
  auto cfg = small_cfg();
  cfg.norm = NormKind::sequence;
  cfg.vocab_size = 20;
  ClassifierOptions opt;
  opt.num_classes = 2;
  opt.num_documents = 2;
  MegalodonClassifier clf(cfg, opt);
  perturb(*clf);
  clf->eval();
  REQUIRE(clf->head_fc1->weight.size(1) == 2 * cfg.model_dim);  // [rep(doc1); rep(doc2)]
  auto a = torch::randint(1, 20, {2, 11}), b = torch::randint(1, 20, {2, 7});
  auto ma = torch::zeros({2, 11}, torch::kBool), mb = torch::zeros({2, 7}, torch::kBool);
  ma[0].narrow(0, 8, 3).fill_(true);
  torch::NoGradGuard g;
  auto out = clf->forward_pair(a, ma, b, mb);
  auto pooled = torch::cat({clf->encode(a, ma), clf->encode(b, mb)}, -1);
  auto ref = clf->head_fc2(torch::gelu(clf->head_fc1(pooled)));
  REQUIRE(max_abs(out, ref) < 1e-6);
  // Swapping the documents changes the logits (the head sees an ordered pair).
  REQUIRE(max_abs(out, clf->forward_pair(b, mb, a, ma)) > 1e-4);
  REQUIRE_THROWS(clf->forward(a, ma));
}
