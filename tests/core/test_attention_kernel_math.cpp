// The algorithm of the IO-aware attention kernels (core/cuda/attention/attention.cuh), checked on the
// CPU: a loop-for-loop emulation of their tiling (forward: online softmax over key tiles; backward:
// δ, then dQ per query tile and dK, dV per key tile, P recomputed from the saved lse) built on the
// very helpers the kernels call (core/cuda/attention/attention_math.h), against the reference path
// (ops::chunked_attention / cached_attention and their autograd gradients) in fp64.
// Also: the bf16 rounding used for kernel stores against LibTorch's conversion, and the SDPA path.
#include <catch2/catch.hpp>

#include <vector>

#include "core/cuda/attention/attention_math.h"
#include "core/cuda/common/bf16.h"
#include "core/modules/mega_layer.h"
#include "core/ops/attention.h"

namespace {

using torch::Tensor;
namespace A = mgl::cuda::attention;

struct Geometry {
  int64_t Lq, Lk, cq, ck;
  bool causal;
};

struct Grads {
  Tensor o, lse, dq, dk, dv;
};

// Emulation in fp64 with tile size T (the kernels use A::kTile = 64). q, k: B×L×H×d, v: B×L×H×dv,
// pad: B×Lk bool or undefined; d_o: B×Lq×H×dv.
Grads emulate(const Tensor& q_, const Tensor& k_, const Tensor& v_, const Tensor& pad_, const Tensor& do_,
              const Geometry& g, double scale, int64_t T) {
  auto q = q_.accessor<double, 4>(), k = k_.accessor<double, 4>(), v = v_.accessor<double, 4>();
  auto d_o = do_.accessor<double, 4>();
  const int64_t B = q_.size(0), H = q_.size(2), dk = q_.size(3), dv = v_.size(3);
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Grads r{torch::zeros({B, g.Lq, H, dv}, opts), torch::zeros({B, H, g.Lq}, opts), torch::zeros_like(q_),
          torch::zeros_like(k_), torch::zeros_like(v_)};
  auto o = r.o.accessor<double, 4>(), dq = r.dq.accessor<double, 4>(), dK = r.dk.accessor<double, 4>(),
       dV = r.dv.accessor<double, 4>();
  auto lse = r.lse.accessor<double, 3>();
  const int64_t nc = (g.Lq + g.cq - 1) / g.cq;
  REQUIRE(nc == (g.Lk + g.ck - 1) / g.ck);
  const double ninf = A::neg_inf<double>();

  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t m = 0; m < nc; ++m) {
        const A::ChunkSpan sp = A::chunk_span(m, g.Lq, g.Lk, g.cq, g.ck);
        auto masked_score = [&](int64_t r, int64_t c) {
          const bool padded = pad_.defined() && c < sp.klen && pad_[b][sp.k0 + c].item<bool>();
          if (!A::visible(r, c, sp, g.causal) || padded) return ninf;
          double s = 0;
          for (int64_t d = 0; d < dk; ++d) s += q[b][sp.q0 + r][h][d] * k[b][sp.k0 + c][h][d];
          return s * scale;
        };
        // Forward, one query tile at a time; keys beyond keys_needed are never touched.
        for (int64_t r0 = 0; r0 < sp.qlen; r0 += T) {
          const int64_t nk = A::keys_needed(r0, T, sp, g.causal);
          std::vector<double> mrow(T, ninf), lrow(T, 0.0), acc(T * dv, 0.0);
          for (int64_t c0 = 0; c0 < nk; c0 += T)
            for (int64_t i = 0; i < T; ++i) {
              std::vector<double> s(T);
              double mx = ninf;
              for (int64_t j = 0; j < T; ++j) mx = std::max(mx, s[j] = masked_score(r0 + i, c0 + j));
              const double mnew = std::max(mrow[i], mx), alpha = A::rescale_factor(mrow[i], mnew);
              double sum = 0;
              for (int64_t j = 0; j < T; ++j) sum += (s[j] = A::prob(s[j], mnew));
              lrow[i] = lrow[i] * alpha + sum;
              mrow[i] = mnew;
              for (int64_t c = 0; c < dv; ++c) {
                double pv = 0;
                for (int64_t j = 0; j < T; ++j)
                  if (c0 + j < sp.klen) pv += s[j] * v[b][sp.k0 + c0 + j][h][c];
                acc[i * dv + c] = acc[i * dv + c] * alpha + pv;
              }
            }
          for (int64_t i = 0; i < T && r0 + i < sp.qlen; ++i) {
            for (int64_t c = 0; c < dv; ++c) o[b][sp.q0 + r0 + i][h][c] = acc[i * dv + c] * A::inv_sum(lrow[i]);
            lse[b][h][sp.q0 + r0 + i] = A::finish_lse(mrow[i], lrow[i]);
          }
        }
        auto delta = [&](int64_t r) {
          double s = 0;
          for (int64_t c = 0; c < dv; ++c) s += d_o[b][sp.q0 + r][h][c] * o[b][sp.q0 + r][h][c];
          return s;
        };
        auto dscore = [&](int64_t r, int64_t c, double p) {
          double dp = 0;
          for (int64_t e = 0; e < dv; ++e) dp += d_o[b][sp.q0 + r][h][e] * v[b][sp.k0 + c][h][e];
          return scale * A::dscore(p, dp, delta(r));
        };
        // dQ: per query tile over the key tiles it needs.
        for (int64_t r0 = 0; r0 < sp.qlen; r0 += T)
          for (int64_t c0 = 0; c0 < A::keys_needed(r0, T, sp, g.causal); c0 += T)
            for (int64_t i = r0; i < std::min(r0 + T, sp.qlen); ++i)
              for (int64_t j = c0; j < std::min(c0 + T, sp.klen); ++j) {
                const double p = A::prob_from_lse(masked_score(i, j), lse[b][h][sp.q0 + i]);
                const double ds = dscore(i, j, p);
                for (int64_t d = 0; d < dk; ++d) dq[b][sp.q0 + i][h][d] += ds * k[b][sp.k0 + j][h][d];
              }
        // dK, dV: per key tile over the query tiles from first_query (rounded down to a tile).
        for (int64_t c0 = 0; c0 < sp.klen; c0 += T)
          for (int64_t r0 = A::first_query(c0, sp, g.causal) / T * T; r0 < sp.qlen; r0 += T)
            for (int64_t j = c0; j < std::min(c0 + T, sp.klen); ++j)
              for (int64_t i = r0; i < std::min(r0 + T, sp.qlen); ++i) {
                const double p = A::prob_from_lse(masked_score(i, j), lse[b][h][sp.q0 + i]);
                const double ds = dscore(i, j, p);
                for (int64_t d = 0; d < dk; ++d) dK[b][sp.k0 + j][h][d] += ds * q[b][sp.q0 + i][h][d];
                for (int64_t c = 0; c < dv; ++c) dV[b][sp.k0 + j][h][c] += p * d_o[b][sp.q0 + i][h][c];
              }
      }
  return r;
}

double max_err(const Tensor& a, const Tensor& b) { return (a - b).abs().max().item<double>(); }

// Reference forward and gradients for the same case.
Grads reference(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& pad, const Tensor& d_o,
                const Geometry& g, double scale) {
  Tensor qq = q.clone().requires_grad_(), kk = k.clone().requires_grad_(), vv = v.clone().requires_grad_();
  Tensor o = g.Lq == g.Lk && g.cq == g.ck
                 ? mgl::ops::chunked_attention(qq, kk, vv, g.cq, g.causal, scale, 0.0, false, pad)
                 : mgl::ops::cached_attention(qq, kk, vv, scale, 0.0, false);
  (o * d_o).sum().backward();
  return {o.detach(), Tensor(), qq.grad(), kk.grad(), vv.grad()};
}

void check_case(int64_t B, int64_t H, int64_t dk, int64_t dv, const Geometry& g, bool with_pad, int64_t T) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  Tensor q = torch::randn({B, g.Lq, H, dk}, opts), k = torch::randn({B, g.Lk, H, dk}, opts);
  Tensor v = torch::randn({B, g.Lk, H, dv}, opts), d_o = torch::randn({B, g.Lq, H, dv}, opts);
  Tensor pad;
  if (with_pad) {
    pad = torch::rand({B, g.Lk}, opts) < 0.3;
    pad.index_put_({0, torch::indexing::Slice(0, std::min(g.ck, g.Lk))}, true);  // one chunk fully padded
  }
  const double scale = 0.7;
  const Grads e = emulate(q, k, v, pad, d_o, g, scale, T);
  const Grads r = reference(q, k, v, pad, d_o, g, scale);
  INFO("B=" << B << " H=" << H << " dk=" << dk << " dv=" << dv << " Lq=" << g.Lq << " Lk=" << g.Lk << " C=" << g.cq
            << " causal=" << g.causal << " pad=" << with_pad << " T=" << T);
  CHECK(max_err(e.o, r.o) < 1e-10);
  CHECK(max_err(e.dq, r.dq) < 1e-9);
  CHECK(max_err(e.dk, r.dk) < 1e-9);
  CHECK(max_err(e.dv, r.dv) < 1e-9);
  // lse is the log-sum-exp of the visible scaled logits (+inf for rows with none).
  CHECK(torch::isfinite(e.o).all().item<bool>());
}

}  // namespace

TEST_CASE("attention kernel math: tiled online-softmax forward and recomputing backward match the reference",
          "[attention_kernel]") {
  torch::manual_seed(11);
  for (int64_t T : {4, 16}) {
    // Chunked causal: L a multiple of C, L not a multiple, C > L, tiles smaller than the chunk.
    check_case(2, 2, 8, 12, {37, 37, 16, 16, true}, false, T);
    check_case(1, 3, 6, 5, {32, 32, 8, 8, true}, false, T);
    check_case(1, 1, 4, 20, {13, 13, 64, 64, true}, false, T);
    // Non-causal (encoder), with and without the key padding mask.
    check_case(2, 2, 8, 6, {29, 29, 12, 12, false}, false, T);
    check_case(2, 1, 8, 6, {29, 29, 12, 12, false}, true, T);
    check_case(2, 2, 4, 4, {24, 24, 8, 8, true}, true, T);
    // Decode step on a chunk-local KV cache: one or several new queries after a cache.
    check_case(2, 2, 8, 10, {1, 9, 1, 9, true}, false, T);
    check_case(1, 2, 8, 10, {5, 23, 5, 23, true}, false, T);
  }
  // The kernels' own tile size, with several tiles per chunk and a partial last chunk.
  check_case(1, 1, 4, 3, {150, 150, 130, 130, true}, false, A::kTile);
}

TEST_CASE("attention kernel math: online-softmax helpers handle fully masked rows", "[attention_kernel]") {
  const double ninf = A::neg_inf<double>();
  CHECK(A::rescale_factor(ninf, ninf) == 1.0);
  CHECK(A::rescale_factor(ninf, 2.0) == 0.0);
  CHECK(A::rescale_factor(1.0, 2.0) == Approx(std::exp(-1.0)));
  CHECK(A::prob(ninf, 3.0) == 0.0);
  CHECK(A::prob(1.0, ninf) == 0.0);
  CHECK(A::finish_lse(ninf, 0.0) == std::numeric_limits<double>::infinity());
  CHECK(A::inv_sum(0.0) == 0.0);
  CHECK(A::prob_from_lse(0.5, std::numeric_limits<double>::infinity()) == 0.0);
  // Geometry: the last chunk is partial; causal tiles stop at the diagonal.
  const A::ChunkSpan sp = A::chunk_span(2, 70, 70, 32, 32);
  CHECK(sp.q0 == 64);
  CHECK(sp.qlen == 6);
  CHECK(sp.off == 0);
  CHECK(A::keys_needed(0, 4, sp, true) == 4);
  CHECK(A::keys_needed(4, 4, sp, true) == 6);
  CHECK(A::keys_needed(0, 4, sp, false) == 6);
  const A::ChunkSpan dec = A::chunk_span(0, 1, 10, 1, 10);
  CHECK(dec.off == 9);
  CHECK(A::keys_needed(0, 64, dec, true) == 10);
  CHECK(A::first_query(9, dec, true) == 0);
}

TEST_CASE("attention kernel math: bf16 stores round to nearest even like LibTorch", "[attention_kernel]") {
  torch::manual_seed(3);
  Tensor x = torch::cat({torch::randn({4096}) * 100, torch::randn({4096}) * 1e-3,
                         torch::tensor({0.f, -0.f, 1.f, 1.00390625f, 1.01171875f, 3.0e38f, -3.0e38f, 1e-40f,
                                        std::numeric_limits<float>::infinity(),
                                        -std::numeric_limits<float>::infinity()})});
  Tensor ours = torch::empty_like(x);
  auto xa = x.accessor<float, 1>();
  auto oa = ours.accessor<float, 1>();
  for (int64_t i = 0; i < x.size(0); ++i) oa[i] = mgl::cuda::bf16_to_float(mgl::cuda::float_to_bf16(xa[i]));
  Tensor theirs = x.to(torch::kBFloat16).to(torch::kFloat32);
  CHECK(torch::equal(ours, theirs));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(mgl::cuda::bf16_to_float(mgl::cuda::float_to_bf16(nan))));
}

TEST_CASE("attention: the SDPA path matches the reference where LibTorch has it", "[attention_kernel]") {
  torch::manual_seed(5);
  Tensor q = torch::randn({2, 21, 2, 8}), k = torch::randn({2, 21, 2, 8}), v = torch::randn({2, 21, 2, 6});
  Tensor pad = torch::rand({2, 21}) < 0.3;
  if (!mgl::ops::sdpa_available()) {
    CHECK_THROWS_WITH(mgl::ops::chunked_attention_sdpa(q, k, v, 8, true, 1.0, 0.0, false),
                      Catch::Contains("scaled_dot_product_attention needs LibTorch >= 2.0"));
    return;
  }
  for (bool causal : {true, false}) {
    Tensor m = causal ? Tensor() : pad;
    Tensor ref = mgl::ops::chunked_attention(q, k, v, 8, causal, 1.0, 0.0, false, m);
    Tensor got = mgl::ops::chunked_attention_sdpa(q, k, v, 8, causal, 1.0, 0.0, false, m);
    CHECK(max_err(got, ref) < 1e-5);
  }
}

TEST_CASE("attention: fused backend selection parses and round-trips", "[attention_kernel]") {
  using mgl::ops::FusedAttentionBackend;
  const auto saved = mgl::ops::fused_attention_backend();
  CHECK(mgl::ops::parse_fused_attention_backend("sdpa") == FusedAttentionBackend::sdpa);
  CHECK(mgl::ops::parse_fused_attention_backend("kernel") == FusedAttentionBackend::kernel);
  CHECK_THROWS_AS(mgl::ops::parse_fused_attention_backend("flash"), std::invalid_argument);
  mgl::ops::set_fused_attention_backend(FusedAttentionBackend::sdpa);
  CHECK(std::string(mgl::ops::to_string(mgl::ops::fused_attention_backend())) == "sdpa");
  mgl::ops::set_fused_attention_backend(saved);
}

TEST_CASE("attention: the MEGA layer's kernel choice on the CPU (auto → reference, fused → error)",
          "[attention_kernel]") {
  mgl::MegalodonConfig c;
  c.num_layers = 1;
  c.model_dim = 16;
  c.num_heads = 2;
  c.z_dim = 8;
  c.value_dim = 12;
  c.ffn_hidden_dim = 24;
  c.cema_ndim = 4;
  c.chunk_size = 8;
  c.norm_num_groups = 4;
  torch::manual_seed(9);
  mgl::MovingAverageGatedAttention ref(c);
  c.kernel_attention = mgl::KernelImpl::auto_select;
  mgl::MovingAverageGatedAttention autod(c);
  c.kernel_attention = mgl::KernelImpl::fused;
  mgl::MovingAverageGatedAttention fused(c);
  torch::NoGradGuard g;
  for (auto* m : {&autod, &fused}) {
    auto src = ref->named_parameters();
    for (auto& p : (*m)->named_parameters()) p.value().copy_(src[p.key()]);
  }
  Tensor x = torch::randn({2, 19, 16});
  CHECK(max_err(autod(x), ref(x)) == 0.0);
  CHECK_THROWS_WITH(fused(x), Catch::Contains("model.kernel_attention"));
}
