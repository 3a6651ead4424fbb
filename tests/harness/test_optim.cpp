// Optimizers and schedules (spec §5.3). Oracles: the LambdaLR formulas written out in the test,
// and torch's own AdamW on the same parameters for the no-decay groups.
#include <catch2/catch.hpp>

#include <cmath>

#include "core/models/megalodon.h"
#include "harness/experiment.h"
#include "harness/train/optim.h"
#include "support/files.h"

using mgl::harness::lr_multiplier;
using mgl::harness::ScheduleParams;

TEST_CASE("schedules follow the official LambdaLR formulas (spec §5.3)", "[optim]") {
  ScheduleParams p;
  p.warmup = 100;
  p.total = 1100;
  p.init_ratio = 1e-4;
  p.end_ratio = 0.01;
  p.cycles = 1.0;
  for (int64_t step : {0, 1, 50, 99}) {
    const double warm = p.init_ratio + step * (1 - p.init_ratio) / p.warmup;
    CHECK(lr_multiplier("linear", step, p) == Approx(warm));
    CHECK(lr_multiplier("cosine", step, p) == Approx(warm));
    CHECK(lr_multiplier("constant", step, p) == Approx(warm));
  }
  for (int64_t step : {100, 350, 600, 1099, 1100, 5000}) {
    const double s = std::min(1.0, double(step - p.warmup) / double(p.total - p.warmup));
    CHECK(lr_multiplier("linear", step, p) == Approx(s * p.end_ratio + (1 - s)));
    CHECK(lr_multiplier("cosine", step, p) == Approx(p.end_ratio + 0.5 * (1 - p.end_ratio) * (std::cos(M_PI * s) + 1)));
    CHECK(lr_multiplier("constant", step, p) == 1.0);
  }
  CHECK(lr_multiplier("linear", 100, p) == Approx(1.0));
  CHECK(lr_multiplier("linear", 1100, p) == Approx(0.01));
  CHECK_THROWS_WITH(lr_multiplier("exponential", 3, p), Catch::Contains("linear"));
}

TEST_CASE("parameter kinds for weight-decay exclusion", "[optim]") {
  using mgl::harness::parameter_kind;
  CHECK(parameter_kind("layers.0.mega.cema.alpha") == "cema");
  CHECK(parameter_kind("layers.0.mega.timenorm.weight") == "norm");
  CHECK(parameter_kind("layers.0.mega.rmsnorm.weight") == "norm");
  CHECK(parameter_kind("layers.1.nffn.norm.bias") == "norm");
  CHECK(parameter_kind("final_norm.weight") == "norm");
  CHECK(parameter_kind("layers.0.mega.wv.bias") == "bias");
  CHECK(parameter_kind("layers.0.mega.beta") == "bias");
  CHECK(parameter_kind("embed.weight") == "embedding");
  CHECK(parameter_kind("layers.0.mega.wv.weight") == "weight");
  CHECK(parameter_kind("head_fc1.weight") == "weight");
}

TEST_CASE("optim.no_decay exempts exactly the named kinds, the default decays everything", "[optim]") {
  mgl::test::TempDir d("optim");
  mgl::test::write_text(d / "e.toml", "[task]\nname = \"pixel_sequence\"\n[optim]\nlr = 0.1\nweight_decay = 0.5\n");
  mgl::MegalodonConfig c;
  c.num_layers = 1;
  c.model_dim = 8;
  c.z_dim = 4;
  c.value_dim = 8;
  c.ffn_hidden_dim = 8;
  c.cema_ndim = 2;
  c.chunk_size = 4;
  c.norm_num_groups = 2;
  mgl::ClassifierOptions o;
  o.num_classes = 2;
  // With every parameter at 1 and zero gradients, one AdamW step is the decay alone:
  // p ← 1 − lr·wd = 0.95 when decayed, 1 when exempt.
  auto decayed_after_one_step = [&](const std::vector<std::string>& overrides) {
    mgl::MegalodonClassifier m(c, o);
    auto cfg = mgl::harness::load_experiment(d / "e.toml", overrides);
    auto built = mgl::harness::make_optimizer(cfg, *m);
    {
      torch::NoGradGuard g;
      for (auto& p : m->parameters()) p.fill_(1.0);
    }
    for (auto& p : m->parameters()) p.mutable_grad() = torch::zeros_like(p);
    built.optimizer->step();
    std::map<std::string, bool> decayed;
    for (const auto& p : m->named_parameters()) {
      const bool dec = torch::allclose(p.value(), torch::full_like(p.value(), 0.95));
      const bool kept = torch::allclose(p.value(), torch::ones_like(p.value()));
      INFO(p.key());
      CHECK(dec != kept);
      decayed[p.key()] = dec;
    }
    return std::make_pair(built.exempt, decayed);
  };
  auto [exempt_all, d_all] = decayed_after_one_step({});
  CHECK(exempt_all == 0);
  for (const auto& [k, dec] : d_all) CHECK(dec);
  auto [exempt_some, d_some] = decayed_after_one_step({"optim.no_decay=[\"norm\", \"cema\"]"});
  CHECK(exempt_some > 0);
  for (const auto& [k, dec] : d_some) {
    const std::string kind = mgl::harness::parameter_kind(k);
    INFO(k);
    CHECK(dec == !(kind == "norm" || kind == "cema"));
  }
  CHECK_THROWS_WITH(mgl::harness::make_optimizer(mgl::harness::load_experiment(d / "e.toml", {"optim.no_decay=[\"gain\"]"}),
                                                 *mgl::MegalodonClassifier(c, o)),
                    Catch::Contains("optim.no_decay"));
}
