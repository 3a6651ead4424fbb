// The IO-aware chunked attention kernels (core/cuda/attention/) run by the SIMT executor, through
// the autograd Function the CUDA glue uses (attention_autograd.h), against ops::chunked_attention /
// ops::cached_attention and their autograd; oracle: the reference path in fp64. Rule: the kernel's
// error ≤ 2 × the reference path's own (fp32 or bf16) + a floor, both relative to the largest
// magnitude of the op's results (the GPU check's rule).
// Shapes: head dims 64, 80 (not a multiple of the 32-wide staging) and 256 (the largest; its
// backward needs more than 48 KB of shared memory, so the opt-in); value dims below, at and above
// one 16·NJ column tile; chunks with several 64-row tiles and a partial last chunk; causal and
// not; key padding with a fully padded chunk; the decode step on a KV cache; B·H > 1 grid rows.
#include <fmt/format.h>

#include "core/cuda/attention/attention_autograd.h"
#include "core/ops/attention.h"
#include "simt/support.h"

using namespace mgl;
using mgl::simt_tests::NoStream;
using torch::Tensor;

namespace {

struct Outputs {
  Tensor o, dq, dk, dv;
};

template <typename F>
Outputs run(F f, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& d_o, torch::Dtype dt) {
  auto leaf = [&](const Tensor& t) { return t.detach().to(dt).clone().requires_grad_(); };
  Tensor qq = leaf(q), kk = leaf(k), vv = leaf(v);
  Tensor o = f(qq, kk, vv);
  auto g = torch::autograd::grad({(o.to(torch::kFloat64) * d_o).sum()}, {qq, kk, vv});
  return {o.detach().to(torch::kFloat64), g[0].to(torch::kFloat64), g[1].to(torch::kFloat64),
          g[2].to(torch::kFloat64)};
}

// Errors relative to the largest magnitude among the op's four results: with one visible key the
// exact dq and dk are 0 (a softmax over one logit has no gradient), which the reference path
// reproduces exactly while the kernel's δ = Σ dO·O cancels dP only to rounding, so an error
// relative to |dq| itself would be unbounded.
void compare(const Outputs& ker, const Outputs& ref, const Outputs& oracle, torch::Dtype dt,
             const std::string& what) {
  const double floor = dt == torch::kBFloat16 ? 1e-3 : 5e-6;
  const char* names[] = {"o", "dq", "dk", "dv"};
  const Tensor Outputs::*fields[] = {&Outputs::o, &Outputs::dq, &Outputs::dk, &Outputs::dv};
  double M = 1e-30;
  for (int i = 0; i < 4; ++i) M = std::max(M, mgl::simt_tests::max_abs(oracle.*fields[i]));
  auto rel = [&](const Tensor& a, const Tensor& b) { return mgl::simt_tests::max_abs_diff(a, b) / M; };
  for (int i = 0; i < 4; ++i) {
    const double e_ref = rel(ref.*fields[i], oracle.*fields[i]),
                 e_ker = rel(ker.*fields[i], oracle.*fields[i]);
    INFO(what << " " << names[i] << (dt == torch::kBFloat16 ? " bf16" : " fp32") << ": kernel " << e_ker
              << ", reference " << e_ref);
    CHECK(std::isfinite(e_ker));
    CHECK(e_ker <= 2.0 * e_ref + floor);
  }
}

Tensor unit_rows(std::vector<int64_t> shape) {  // Megalodon's normalised q and k: unit vectors × a few
  auto t = torch::randn(shape, torch::kFloat64);
  return t / t.norm(2, -1, true) * 4.0;
}

}  // namespace

TEST_CASE("simt attention: chunked forward and backward", "[attention]") {
  torch::manual_seed(0);
  struct Case {
    int64_t B, H, L, C, dk, dv;
    bool causal, pad;
  };
  const Case cases[] = {
      {2, 2, 150, 130, 64, 64, true, false},  // three 64-row tiles in the first chunk, a partial second chunk
      {1, 3, 70, 32, 80, 48, true, false},    // head dim 80; chunk smaller than a tile
      {1, 1, 70, 70, 256, 200, true, false},  // the largest head dim: > 48 KB shared memory in the backward
      {2, 2, 90, 40, 64, 16, false, true},    // encoder with key padding (a fully padded chunk)
      {1, 2, 1, 64, 64, 64, true, false},     // L = 1
  };
  for (const Case& c : cases) {
    Tensor q = unit_rows({c.B, c.L, c.H, c.dk}), k = unit_rows({c.B, c.L, c.H, c.dk});
    Tensor v = torch::randn({c.B, c.L, c.H, c.dv}, torch::kFloat64),
           d_o = torch::randn({c.B, c.L, c.H, c.dv}, torch::kFloat64);
    Tensor pad;
    if (c.pad) {
      pad = torch::rand({c.B, c.L}) < 0.25;
      pad.index_put_({0, torch::indexing::Slice(0, c.C)}, true);  // a fully padded chunk: zero rows
    }
    auto ref_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
      return ops::chunked_attention(a, b, e, c.C, c.causal, 1.0, 0.0, false, pad);
    };
    auto ker_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
      return cuda::attention_run<NoStream>(a, b, e, pad, c.C, c.C, c.causal, 1.0);
    };
    const Outputs oracle = run(ref_f, q, k, v, d_o, torch::kFloat64);
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
      const std::string what =
          fmt::format("B={} H={} L={} C={} dk={} dv={} {}{}", c.B, c.H, c.L, c.C, c.dk, c.dv,
                      c.causal ? "causal" : "non-causal", c.pad ? " +padding" : "");
      const Outputs ker = run(ker_f, q, k, v, d_o, dt);
      mgl::simt_tests::require_no_findings(what);
      compare(ker, run(ref_f, q, k, v, d_o, dt), oracle, dt, what);
    }
  }
}

TEST_CASE("simt attention: the decode step on a chunk-local KV cache", "[attention]") {
  torch::manual_seed(1);
  for (int64_t Lk : {1, 65})
    for (int64_t Lq : {int64_t(1), std::min<int64_t>(Lk, 3)}) {
      Tensor q = torch::randn({2, Lq, 2, 64}, torch::kFloat64) * 0.3,
             k = torch::randn({2, Lk, 2, 64}, torch::kFloat64) * 0.3;
      Tensor v = torch::randn({2, Lk, 2, 96}, torch::kFloat64),
             d_o = torch::randn({2, Lq, 2, 96}, torch::kFloat64);
      auto ref_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
        return ops::cached_attention(a, b, e, 1.0, 0.0, false);
      };
      auto ker_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
        return cuda::attention_run<NoStream>(a, b, e, {}, a.size(1), b.size(1), true, 1.0);
      };
      const Outputs oracle = run(ref_f, q, k, v, d_o, torch::kFloat64);
      for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
        const std::string what = fmt::format("decode Lq={} Lk={}", Lq, Lk);
        const Outputs ker = run(ker_f, q, k, v, d_o, dt);
        mgl::simt_tests::require_no_findings(what);
        compare(ker, run(ref_f, q, k, v, d_o, dt), oracle, dt, what);
      }
    }
}

TEST_CASE("simt attention: no kernel reads lse/delta/outputs it did not write (initcheck)",
          "[attention][race]") {
  REQUIRE(::simt::race_detector_enabled());
  torch::manual_seed(2);
  cuda::AttentionShape s;
  s.B = 1, s.H = 2, s.Lq = s.Lk = 100, s.chunk_q = s.chunk_k = 70, s.dk = 80, s.dv = 40, s.causal = true;
  Tensor q = torch::randn({1, 100, 2, 80}), k = torch::randn({1, 100, 2, 80}),
         v = torch::randn({1, 100, 2, 40});
  Tensor o = torch::empty({1, 100, 2, 40}), lse = torch::empty({1, 2, 100}), d_o = torch::randn_like(o);
  Tensor delta = torch::empty({1, 2, 100}), dq = torch::empty_like(q), dk = torch::empty_like(k),
         dv = torch::empty_like(v);
  for (const Tensor* t : {&o, &lse, &delta, &dq, &dk, &dv})
    ::simt::track_uninitialized(t->data_ptr(), t->nbytes());
  CHECK(cuda::attention_forward<float>(s, q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                                       nullptr, o.data_ptr<float>(), lse.data_ptr<float>(),
                                       nullptr) == nullptr);
  CHECK(cuda::attention_backward<float>(s, q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                                        nullptr, o.data_ptr<float>(), d_o.data_ptr<float>(),
                                        lse.data_ptr<float>(), delta.data_ptr<float>(), dq.data_ptr<float>(),
                                        dk.data_ptr<float>(), dv.data_ptr<float>(), nullptr) == nullptr);
  ::simt::untrack_all();
  mgl::simt_tests::require_no_findings("attention initcheck");
}
