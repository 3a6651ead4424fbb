// Packed documents with state reset (core/ops/documents.h). Oracles:
//   - the sequential CEMA recurrence (§1.3) restarted from zero at every document start;
//   - the timestep norm run on every document separately from the prior (§2.1);
//   - the whole-model oracle: a packed batch of several documents gives the loss and the
//     gradients of running each document alone (fp64, to 1e-10), for Megalodon in every ablation
//     variant and for the Transformer baseline, with documents shorter than a chunk, longer than
//     several chunks and ending exactly on a chunk boundary;
//   - streaming the packed rows in pieces equals the one-shot forward with resets;
//   - rows without any boundary give exactly the plain forward's output.
#include <catch2/catch.hpp>

#include <functional>

#include "core/models/megalodon.h"
#include "core/models/transformer.h"
#include "core/modules/cema.h"
#include "core/modules/norms.h"
#include "core/ops/documents.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using torch::Tensor;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

Tensor i64(std::vector<int64_t> v) { return torch::tensor(v, torch::kInt64); }

// Row r of the packed batch is the concatenation of documents of lengths lengths[r]; all rows must
// have the same total. Returns the B×L flags (true at every document's first token).
Tensor flags_for(const std::vector<std::vector<int64_t>>& lengths) {
  int64_t L = 0;
  for (auto n : lengths[0]) L += n;
  Tensor f = torch::zeros({static_cast<int64_t>(lengths.size()), L}, torch::kBool);
  for (size_t r = 0; r < lengths.size(); ++r) {
    int64_t at = 0;
    for (auto n : lengths[r]) {
      f[static_cast<int64_t>(r)][at] = true;
      at += n;
    }
    REQUIRE(at == L);
  }
  return f;
}

// The segments [start, end) of row b of a flag tensor (a segment also starts at t = 0).
std::vector<std::pair<int64_t, int64_t>> segments_of(const Tensor& flags, int64_t b) {
  std::vector<std::pair<int64_t, int64_t>> out;
  const int64_t L = flags.size(1);
  int64_t s = 0;
  for (int64_t t = 1; t < L; ++t)
    if (flags[b][t].item<bool>()) out.emplace_back(s, t), s = t;
  out.emplace_back(s, L);
  return out;
}

ops::DocumentPlan plan_for(const Tensor& flags, int64_t chunk = 0) {
  ops::DocumentPlanOptions o;
  o.chunk = chunk;
  return ops::plan_documents(flags, o);
}

// Make the zero-initialised parameters non-trivial (norm affines, q/k affines, a learnable prior).
void perturb(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.named_parameters()) {
    const auto& n = p.key();
    const bool vec = p.value().dim() == 1;
    if ((n.find("weight") != std::string::npos || n.find("bias") != std::string::npos) && vec) p.value().normal_(0, 0.2);
    if (n.find("prior_") != std::string::npos) p.value().normal_(0, 0.3);
    if ((n.size() >= 5 && n.substr(n.size() - 5) == "gamma") && p.value().dim() == 2 && n.find("cema") == std::string::npos)
      p.value().normal_(0, 0.2);
    if ((n.size() >= 4 && n.substr(n.size() - 4) == "beta") && p.value().dim() == 2 && n.find("cema") == std::string::npos)
      p.value().normal_(0, 0.2);
  }
}

MegalodonConfig tiny_cfg() {
  MegalodonConfig c;
  c.num_layers = 2;
  c.model_dim = 16;
  c.num_heads = 2;
  c.z_dim = 8;
  c.value_dim = 16;
  c.ffn_hidden_dim = 24;
  c.cema_ndim = 4;
  c.norm_num_groups = 2;
  c.chunk_size = 8;
  c.vocab_size = 23;
  return c;
}

TransformerConfig tiny_transformer() {
  TransformerConfig c;
  c.num_layers = 2;
  c.model_dim = 16;
  c.num_heads = 2;
  c.ffn_hidden_dim = 24;
  c.vocab_size = 23;
  return c;
}

// Documents of the whole-model tests (C = 8): row 0 has one shorter than a chunk (5), one longer
// than three chunks (27) and one ending exactly on a chunk boundary of the packed row (16, ending
// at 48); row 1 has chunk multiples starting off the grid (8 at 3, 24 at 11) and a tail (13).
const std::vector<std::vector<int64_t>> kDocs = {{5, 27, 16}, {3, 8, 24, 13}};

// Σ NLL over the within-document predictions (targets that would start another document, and the
// row's last position, are not scored).
struct Losses {
  Tensor packed, separate;
};
Losses packed_and_separate(CausalLMImpl& lm, const Tensor& tokens, const Tensor& flags, bool restart_positions) {
  const int64_t B = tokens.size(0), L = tokens.size(1);
  Tensor targets = torch::full({B, L}, -100, torch::kInt64);
  targets.narrow(1, 0, L - 1).copy_(tokens.narrow(1, 1, L - 1));
  targets.narrow(1, 0, L - 1).masked_fill_(flags.narrow(1, 1, L - 1), -100);
  Documents docs{flags, restart_positions};
  Losses out;
  out.packed = lm.nll(tokens, targets, nullptr, docs).sum();
  out.separate = torch::zeros({}, kF64);
  for (int64_t b = 0; b < B; ++b)
    for (auto [s, e] : segments_of(flags, b)) {
      if (e - s < 2) continue;
      Tensor doc = tokens[b].narrow(0, s, e - s).unsqueeze(0);
      out.separate = out.separate + lm.nll(doc.narrow(1, 0, e - s - 1), doc.narrow(1, 1, e - s - 1)).sum();
    }
  return out;
}

// Loss and every parameter's gradient: packed = separate to 1e-10 (relative to the scale).
void require_packed_equals_separate(CausalLMImpl& lm, const Tensor& tokens, const Tensor& flags, bool restart) {
  const auto params = lm.parameters();
  const Losses l = packed_and_separate(lm, tokens, flags, restart);
  const double scale = std::max(1.0, std::abs(l.separate.item<double>()));
  INFO("loss packed " << l.packed.item<double>() << " separate " << l.separate.item<double>());
  REQUIRE(std::abs(l.packed.item<double>() - l.separate.item<double>()) <= 1e-10 * scale);
  const auto gp = torch::autograd::grad({l.packed}, params, {}, false, false, true);
  const auto gs = torch::autograd::grad({l.separate}, params, {}, false, false, true);
  const auto named = lm.named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    INFO("parameter " << named[i].key());
    REQUIRE(gp[i].defined() == gs[i].defined());
    if (!gs[i].defined()) continue;
    const double g = std::max(1.0, gs[i].abs().max().item<double>());
    REQUIRE(max_abs(gp[i], gs[i]) <= 1e-10 * g);
  }
}

struct Variant {
  const char* name;
  std::function<void(MegalodonConfig&)> set;
};
const std::vector<Variant>& variants() {
  static const std::vector<Variant> v = {
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
      {"learned timestep-norm prior", [](MegalodonConfig& c) { c.prior_count = 3; }},
  };
  return v;
}

}  // namespace

TEST_CASE("documents: the plan's segments, buckets and attention segments", "[documents]") {
  // Row 0: starts at 0 (flagged), 3, 11; row 1: unflagged start (continues), a start at 9.
  Tensor f = torch::zeros({2, 12}, torch::kBool);
  f[0][0] = f[0][3] = f[0][11] = true;
  f[1][9] = true;
  ops::DocumentPlanOptions o;
  o.chunk = 4;
  const auto p = ops::plan_documents(f, o);
  REQUIRE(p.segment_start[0].equal(i64({0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 11})));
  REQUIRE(p.segment_start[1].equal(i64({0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9})));
  REQUIRE(!p.continues[0].any().item<bool>());  // flagged at 0: nothing continues
  REQUIRE(p.continues[1].narrow(0, 0, 9).all().item<bool>());
  REQUIRE(!p.continues[1].narrow(0, 9, 3).any().item<bool>());
  REQUIRE(p.last_segment[0].equal(i64({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}).to(torch::kBool)));
  REQUIRE(!p.last_continues.any().item<bool>());
  // Segment lengths 3, 8, 1 | 9, 3 → FFT lengths 4, 8, 1, 16, 4.
  std::map<int64_t, int64_t> count;
  for (const auto& b : p.buckets) count[b.length] = b.index.numel() / b.length;
  REQUIRE(count == std::map<int64_t, int64_t>{{1, 1}, {4, 2}, {8, 1}, {16, 1}});
  // Attention: chunks re-anchored at each start: row 0 segments [0,3) [3,7) [7,11) [11,12).
  REQUIRE(p.key_segment[0].equal(i64({1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4})));
  REQUIRE(p.positions[0].equal(i64({0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 0})));
  REQUIRE(p.key_segment[1].equal(i64({1, 1, 1, 1, 2, 2, 2, 2, 3, 4, 4, 4})));
  REQUIRE(p.keep_valid.equal(i64({1, 3})));
  REQUIRE(p.keep == 3);
  // The stream's grid instead (restart_positions = false): chunks at multiples of 4 cut by the starts.
  o.restart_positions = false;
  const auto q = ops::plan_documents(f, o);
  REQUIRE(q.key_segment[0].equal(i64({1, 1, 1, 2, 3, 3, 3, 3, 4, 4, 4, 5})));
  REQUIRE(q.positions[0].equal(i64({0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3})));
  REQUIRE(q.keep == 0);  // 12 tokens end a chunk of the stream's grid
  // Without chunks (the Transformer): one segment per document, positions from its start.
  o.chunk = 0;
  o.restart_positions = true;
  const auto t = ops::plan_documents(f, o);
  REQUIRE(t.key_segment[1].equal(i64({0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1})));
  REQUIRE(t.positions[1].equal(i64({0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2})));
  REQUIRE(t.keep_valid.equal(i64({1, 3})));
  REQUIRE_THROWS_WITH(ops::plan_documents(torch::zeros({2, 3}), o), Catch::Contains("bool"));
}

TEST_CASE("documents: CEMA restarts from a zero state at every start (recurrence oracle)", "[documents][cema]") {
  torch::manual_seed(71);
  const int64_t D = 4, N = 3, L = 37;
  Tensor f = torch::zeros({3, L}, torch::kBool);
  f[0][0] = f[0][5] = f[0][6] = f[0][30] = true;  // a one-token document among them
  f[1][17] = true;                                // the first segment continues h0
  // row 2: no start at all: continues h0 throughout
  for (const auto& [name, kind, exact] : {std::tuple{"cema", EmaKind::cema, false}, std::tuple{"ema", EmaKind::ema, false},
                                          std::tuple{"ema mega-exact", EmaKind::ema, true}}) {
    CAPTURE(name);
    ComplexEMA ema(ComplexEMAOptions(D, N).kind(kind).mega_exact(exact));
    ema->to(torch::kFloat64);
    const ops::EmaCoeffs c = ema->coeffs();
    Tensor x = torch::randn({3, D, L}, kF64);
    Tensor h0 = c.is_complex() ? torch::randn({3, D, N}, torch::TensorOptions().dtype(torch::kComplexDouble))
                               : torch::randn({3, D, N}, kF64);
    const auto plan = plan_for(f);
    auto [y, h] = ema->forward(x, h0, true, &plan);
    Tensor omega = ema->omega.view({1, -1, 1});
    for (int64_t b = 0; b < 3; ++b) {
      const auto segs = segments_of(f, b);
      for (size_t k = 0; k < segs.size(); ++k) {
        const auto [s, e] = segs[k];
        const bool carried = k == 0 && !f[b][0].item<bool>();
        Tensor xs = x[b].narrow(1, s, e - s).unsqueeze(0);
        auto [rec, hl] = ops::ema_recurrence(xs, c, carried ? h0[b].unsqueeze(0) : Tensor());
        Tensor ref = rec + xs * omega;
        if (exact) ref = torch::silu(ref);
        INFO("row " << b << " segment [" << s << ", " << e << ")");
        REQUIRE(max_abs(y[b].narrow(1, s, e - s), ref[0]) <= 1e-12);
        if (k + 1 == segs.size()) REQUIRE(max_abs(h[b], hl[0]) <= 1e-12);
      }
    }
  }
  ComplexEMA bidir(ComplexEMAOptions(D, N).bidirectional(true));
  const auto plan = plan_for(f);
  REQUIRE_THROWS_WITH(bidir->forward(torch::randn({3, D, L}), Tensor(), false, &plan),
                      Catch::Contains("causal"));
}

TEST_CASE("documents: the timestep norm restarts from the prior (per-document oracle)", "[documents][tsn]") {
  torch::manual_seed(72);
  const int64_t D = 8, G = 2, L = 29;
  Tensor f = torch::zeros({3, L}, torch::kBool);
  f[0][0] = f[0][4] = f[0][5] = f[0][20] = true;
  f[1][13] = true;
  for (int64_t prior : {0, 2}) {
    CAPTURE(prior);
    SequenceNorm norm(NormKind::timestep, D, G, 1e-5, prior);
    norm->to(torch::kFloat64);
    perturb(*norm);
    Tensor x = torch::randn({3, L, D}, kF64) * 2.0 + 0.5;
    // A carried state from an earlier segment of the stream.
    ops::NormState prev{torch::tensor({7, 7, 7}), torch::randn({3, G}, kF64), torch::rand({3, G}, kF64) + 0.5};
    ops::NormState st = prev;
    const auto plan = plan_for(f);
    Tensor y = norm(x, &st, Tensor(), &plan);
    for (int64_t b = 0; b < 3; ++b) {
      const auto segs = segments_of(f, b);
      for (size_t k = 0; k < segs.size(); ++k) {
        const auto [s, e] = segs[k];
        const bool carried = k == 0 && !f[b][0].item<bool>();
        ops::NormState one = norm->initial_state(1, torch::kCPU);
        if (carried) one = {prev.count.narrow(0, b, 1), prev.mean.narrow(0, b, 1), prev.var.narrow(0, b, 1)};
        Tensor ref = norm(x[b].narrow(0, s, e - s).unsqueeze(0), &one);
        INFO("row " << b << " segment [" << s << ", " << e << ")");
        REQUIRE(max_abs(y[b].narrow(0, s, e - s), ref[0]) <= 1e-12);
        if (k + 1 == segs.size()) {
          REQUIRE(st.count[b].item<int64_t>() == one.count[0].item<int64_t>());
          REQUIRE(max_abs(st.mean[b], one.mean[0]) <= 1e-12);
          REQUIRE(max_abs(st.var[b], one.var[0]) <= 1e-12);
        }
      }
    }
  }
}

TEST_CASE("documents: gradients of the segmented ops by finite differences", "[documents][grad]") {
  torch::manual_seed(73);
  Tensor f = torch::zeros({2, 9}, torch::kBool);
  f[0][3] = f[1][0] = f[1][8] = true;
  const auto plan = plan_for(f);
  auto conv = [&](const std::vector<Tensor>& in) { return ops::segmented_causal_fftconv(in[0], in[1], plan); };
  auto r1 = mgl::test::gradcheck(conv, {torch::randn({2, 3, 9}, kF64), torch::randn({3, 9}, kF64)});
  INFO(r1.where);
  REQUIRE(r1.ok);
  const ops::NormState prev{torch::tensor({4, 4}), torch::randn({2, 2}, kF64), torch::rand({2, 2}, kF64) + 0.5};
  auto tsn = [&](const std::vector<Tensor>& in) {
    const ops::NormState prior{torch::tensor({2, 2}), in[3].expand({2, 2}), in[4].exp().expand({2, 2})};
    return ops::timestep_norm_segmented(in[0], 2, in[1], in[2], prev, prior, plan, 1e-5).y;
  };
  auto r2 = mgl::test::gradcheck(tsn, {torch::randn({2, 9, 4}, kF64), torch::randn({4}, kF64), torch::randn({4}, kF64),
                                       torch::randn({1, 2}, kF64), torch::randn({1, 2}, kF64) * 0.3});
  INFO(r2.where);
  REQUIRE(r2.ok);
}

TEST_CASE("documents: a packed batch equals every document run alone — Megalodon, every variant (fp64)",
          "[documents][model]") {
  torch::manual_seed(74);
  const Tensor flags = flags_for(kDocs);
  for (const auto& var : variants()) {
    CAPTURE(var.name);
    auto cfg = tiny_cfg();
    var.set(cfg);
    MegalodonLMImpl lm(cfg);
    lm.to(torch::kFloat64);
    perturb(lm);
    Tensor tokens = torch::randint(cfg.vocab_size, flags.sizes());
    require_packed_equals_separate(lm, tokens, flags, true);
  }
}

TEST_CASE("documents: the stream's chunk grid (positions continue) equals separate runs of chunk-aligned documents",
          "[documents][model]") {
  torch::manual_seed(75);
  auto cfg = tiny_cfg();
  MegalodonLMImpl lm(cfg);
  lm.to(torch::kFloat64);
  perturb(lm);
  const Tensor aligned = flags_for({{8, 24, 16}, {16, 8, 8, 16}});
  require_packed_equals_separate(lm, torch::randint(cfg.vocab_size, aligned.sizes()), aligned, false);
  // Off the grid the two settings differ only in the attention windows of the first chunk.
  const Tensor flags = flags_for(kDocs);
  Tensor tokens = torch::randint(cfg.vocab_size, flags.sizes());
  torch::NoGradGuard g;
  Tensor restart = lm.forward(tokens, nullptr, nullptr, Documents{flags, true});
  Tensor cont = lm.forward(tokens, nullptr, nullptr, Documents{flags, false});
  REQUIRE(max_abs(restart.narrow(1, 0, 5)[0], cont.narrow(1, 0, 5)[0]) <= 1e-12);  // the first document is on the grid
  REQUIRE(max_abs(restart, cont) > 1e-3);
}

TEST_CASE("documents: a packed batch equals every document run alone — Transformer (fp64)", "[documents][model]") {
  torch::manual_seed(76);
  const Tensor flags = flags_for(kDocs);
  TransformerLMImpl lm(tiny_transformer());
  lm.to(torch::kFloat64);
  perturb(lm);
  Tensor tokens = torch::randint(23, flags.sizes());
  // RoPE is relative: restarting the positions or keeping the stream's gives the same logits.
  require_packed_equals_separate(lm, tokens, flags, true);
  require_packed_equals_separate(lm, tokens, flags, false);
}

TEST_CASE("documents: streaming the packed rows equals the one-shot forward with resets", "[documents][stream]") {
  torch::manual_seed(77);
  const Tensor flags = flags_for(kDocs);
  // Calls of 5, 13, 7, 1, 1, 16, 5 tokens: row 0's start at 5 falls on a call's first token.
  const std::vector<int64_t> pieces{5, 13, 7, 1, 1, 16, 5};
  auto streamed = [&](CausalLMImpl& lm, const Tensor& tokens, bool restart) {
    auto st = lm.make_state(tokens.size(0));
    std::vector<Tensor> outs;
    int64_t at = 0;
    for (int64_t n : pieces) {
      outs.push_back(lm.forward(tokens.narrow(1, at, n), st.get(), nullptr, Documents{flags.narrow(1, at, n), restart}));
      at += n;
    }
    REQUIRE(at == tokens.size(1));
    return torch::cat(outs, 1);
  };
  for (bool restart : {true, false}) {
    CAPTURE(restart);
    for (const auto& var : variants()) {
      CAPTURE(var.name);
      auto cfg = tiny_cfg();
      var.set(cfg);
      MegalodonLMImpl lm(cfg);
      lm.to(torch::kFloat64);
      perturb(lm);
      lm.eval();
      Tensor tokens = torch::randint(cfg.vocab_size, flags.sizes());
      torch::NoGradGuard g;
      REQUIRE(max_abs(streamed(lm, tokens, restart), lm.forward(tokens, nullptr, nullptr, Documents{flags, restart})) <= 1e-10);
    }
    TransformerLMImpl tf(tiny_transformer());
    tf.to(torch::kFloat64);
    perturb(tf);
    tf.eval();
    Tensor tokens = torch::randint(23, flags.sizes());
    torch::NoGradGuard g;
    REQUIRE(max_abs(streamed(tf, tokens, restart), tf.forward(tokens, nullptr, nullptr, Documents{flags, restart})) <= 1e-10);
  }
}

TEST_CASE("documents: rows without a boundary give the plain forward, one-shot and streamed", "[documents][model]") {
  torch::manual_seed(78);
  auto cfg = tiny_cfg();
  MegalodonLMImpl lm(cfg);
  lm.to(torch::kFloat64);
  perturb(lm);
  lm.eval();
  TransformerLMImpl tf(tiny_transformer());
  tf.to(torch::kFloat64);
  perturb(tf);
  tf.eval();
  Tensor tokens = torch::randint(cfg.vocab_size, {2, 45});
  const Tensor none = torch::zeros({2, 45}, torch::kBool);
  torch::NoGradGuard g;
  for (CausalLMImpl* m : {static_cast<CausalLMImpl*>(&lm), static_cast<CausalLMImpl*>(&tf)}) {
    CAPTURE(m->name());
    Tensor plain = m->forward(tokens);
    REQUIRE(max_abs(m->forward(tokens, nullptr, nullptr, Documents{none, true}), plain) <= 1e-10);
    // A stream that switches to the document form midway keeps the plain results.
    auto st = m->make_state(2);
    Tensor a = m->forward(tokens.narrow(1, 0, 13), st.get());
    Tensor b = m->forward(tokens.narrow(1, 13, 20), st.get(), nullptr, Documents{none.narrow(1, 13, 20), true});
    Tensor c = m->forward(tokens.narrow(1, 33, 12), st.get());
    REQUIRE(max_abs(torch::cat({a, b, c}, 1), plain) <= 1e-10);
  }
}
