// The IO-aware chunked attention kernel (core/cuda/attention/attention.h, issue 11) against the
// reference path (ops::chunked_attention / cached_attention) on fresh random inputs. Oracle: the
// reference path in fp64. Pass rule (FlashAttention's): the kernel's error against fp64 is at most
// twice the reference path's own error in the same storage dtype, plus a small floor.
// Forward and backward, causal and not, key padding mask, L not a multiple of the chunk, chunk
// 8192, head dims 64/128/256 (and the mega200M value head dim 2048), the decode step.
#include "gpu/gpu_check.h"

#ifdef MEGALODON_WITH_CUDA_GLUE
#include <c10/cuda/CUDACachingAllocator.h>
#include <fmt/format.h>

#include "core/cuda/attention/attention_glue.h"
#include "core/modules/mega_layer.h"
#include "core/ops/attention.h"

namespace {

using torch::Tensor;

struct Case {
  int64_t B, H, L, C, dk, dv;
  bool causal, pad;
};

struct Outputs {
  Tensor o, dq, dk, dv;
};

// Runs `f` on copies of q, k, v in dtype `dt` and returns the output and the gradients of
// Σ o ⊙ d_o, all as fp64.
template <typename F>
Outputs run(F f, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& d_o, torch::Dtype dt) {
  auto leaf = [&](const Tensor& t) { return t.detach().to(dt).clone().requires_grad_(); };
  Tensor qq = leaf(q), kk = leaf(k), vv = leaf(v);
  Tensor o = f(qq, kk, vv);
  (o.to(torch::kFloat64) * d_o).sum().backward();
  return {o.detach().to(torch::kFloat64), qq.grad().to(torch::kFloat64), kk.grad().to(torch::kFloat64),
          vv.grad().to(torch::kFloat64)};
}

// Errors relative to the largest magnitude among the op's four results (max|a − b| / M). Not
// relative to each result's own magnitude: with one visible key (L = 1, the first decode step)
// the exact dq and dk are 0, the reference path gives exactly 0 and the kernel's δ = Σ dO·O
// cancels dP only to rounding, so that ratio is unbounded (found by the SIMT executor's test).
void compare(mgl::gpu_tests::Report& report, const Outputs& ker, const Outputs& ref, const Outputs& oracle,
             torch::Dtype dt, const std::string& what) {
  // Floor: relative, far below bf16's rounding (2^-9) and fp32 summation over 8192 keys.
  const double floor = dt == torch::kBFloat16 ? 1e-3 : 5e-6;
  const char* names[] = {"o", "dq", "dk", "dv"};
  const Tensor Outputs::*fields[] = {&Outputs::o, &Outputs::dq, &Outputs::dk, &Outputs::dv};
  double M = 1e-30;
  for (int i = 0; i < 4; ++i) M = std::max(M, (oracle.*fields[i]).abs().max().item<double>());
  auto rel = [&](const Tensor& a, const Tensor& b) { return mgl::gpu_tests::max_abs_diff(a, b) / M; };
  for (int i = 0; i < 4; ++i) {
    const double e_ref = rel(ref.*fields[i], oracle.*fields[i]);
    report.expect_le(rel(ker.*fields[i], oracle.*fields[i]), 2.0 * e_ref + floor,
                     fmt::format("{} {} ({})", what, names[i], dt == torch::kBFloat16 ? "bf16" : "fp32"));
  }
}

}  // namespace

MGL_GPU_CHECK("attention chunked") {
  torch::manual_seed(0);
  const std::vector<Case> cases = {
      {2, 2, 300, 128, 64, 64, true, false},     {1, 3, 1000, 256, 128, 128, true, false},
      {2, 1, 777, 256, 256, 256, true, false},   {1, 1, 9000, 8192, 64, 64, true, false},
      {1, 1, 8192, 8192, 128, 96, true, false},  {2, 2, 500, 128, 64, 64, false, false},
      {2, 2, 500, 128, 128, 64, false, true},    {1, 1, 4100, 2048, 256, 2048, true, false},
      {3, 2, 65, 64, 80, 48, true, false},       {1, 2, 1, 64, 64, 64, true, false},
  };
  auto dev = torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCUDA);
  for (const Case& c : cases) {
    // Megalodon's q and k are normalised (scale 1): unit vectors scaled by a few, as after training.
    Tensor q = torch::nn::functional::normalize(torch::randn({c.B, c.L, c.H, c.dk}, dev),
                                                torch::nn::functional::NormalizeFuncOptions().dim(-1)) * 4.0;
    Tensor k = torch::nn::functional::normalize(torch::randn({c.B, c.L, c.H, c.dk}, dev),
                                                torch::nn::functional::NormalizeFuncOptions().dim(-1)) * 4.0;
    Tensor v = torch::randn({c.B, c.L, c.H, c.dv}, dev), d_o = torch::randn({c.B, c.L, c.H, c.dv}, dev);
    Tensor pad;
    if (c.pad) {
      pad = torch::rand({c.B, c.L}, dev) < 0.25;
      pad.index_put_({0, torch::indexing::Slice(0, c.C)}, true);  // a fully padded chunk: zero rows
    }
    const double scale = 1.0;
    auto ref_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
      return mgl::ops::chunked_attention(a, b, e, c.C, c.causal, scale, 0.0, false, pad);
    };
    auto ker_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
      return mgl::cuda::chunked_attention_cuda(a, b, e, c.C, c.causal, scale, pad);
    };
    const Outputs oracle = run(ref_f, q, k, v, d_o, torch::kFloat64);
    for (auto dt : {torch::kFloat32, torch::kBFloat16}) {
      const std::string what = fmt::format("B={} H={} L={} C={} dk={} dv={} {}{}", c.B, c.H, c.L, c.C, c.dk, c.dv,
                                           c.causal ? "causal" : "non-causal", c.pad ? " +padding" : "");
      compare(report, run(ker_f, q, k, v, d_o, dt), run(ref_f, q, k, v, d_o, dt), oracle, dt, what);
    }
    c10::cuda::CUDACachingAllocator::emptyCache();
  }
}

MGL_GPU_CHECK("attention decode") {
  torch::manual_seed(1);
  auto dev = torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCUDA);
  for (int64_t Lk : {1, 2, 63, 64, 65, 2047}) {
    for (int64_t Lq : {int64_t(1), std::min<int64_t>(Lk, 5)}) {
      Tensor q = torch::randn({2, Lq, 2, 128}, dev) * 0.3, k = torch::randn({2, Lk, 2, 128}, dev) * 0.3;
      Tensor v = torch::randn({2, Lk, 2, 256}, dev), d_o = torch::randn({2, Lq, 2, 256}, dev);
      auto ref_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
        return mgl::ops::cached_attention(a, b, e, 1.0, 0.0, false);
      };
      auto ker_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
        return mgl::cuda::cached_attention_cuda(a, b, e, 1.0);
      };
      const Outputs oracle = run(ref_f, q, k, v, d_o, torch::kFloat64);
      for (auto dt : {torch::kFloat32, torch::kBFloat16})
        compare(report, run(ker_f, q, k, v, d_o, dt), run(ref_f, q, k, v, d_o, dt), oracle, dt,
                fmt::format("decode Lq={} Lk={}", Lq, Lk));
    }
  }
}

// Integration: a MEGA layer with model.kernel_attention = auto against the same layer on the
// reference path (fp32, so the only difference is the attention), forward, parameter gradients,
// and token-by-token decoding through the chunk-local KV cache.
MGL_GPU_CHECK("attention mega layer") {
  torch::manual_seed(3);
  mgl::MegalodonConfig c;
  c.num_layers = 1;
  c.model_dim = 256;
  c.num_heads = 2;
  c.z_dim = 128;
  c.value_dim = 512;
  c.ffn_hidden_dim = 512;
  c.cema_ndim = 8;
  c.chunk_size = 256;
  c.norm_num_groups = 8;
  mgl::MovingAverageGatedAttention ref(c);
  c.kernel_attention = mgl::KernelImpl::auto_select;
  mgl::MovingAverageGatedAttention ker(c);
  {
    torch::NoGradGuard g;
    auto src = ref->named_parameters();
    for (auto& p : ker->named_parameters()) p.value().copy_(src[p.key()]);
  }
  ref->to(torch::kCUDA);
  ker->to(torch::kCUDA);
  Tensor x = torch::randn({2, 700, 256}, torch::TensorOptions().device(torch::kCUDA));
  Tensor yr = ref(x), yk = ker(x);
  report.expect_le(rel(yk, yr), 1e-5, "mega layer forward (auto vs reference)");
  Tensor g = torch::randn_like(yr);
  yr.backward(g);
  yk.backward(g);
  auto pr = ref->named_parameters();
  double worst = 0;
  for (auto& p : ker->named_parameters())
    if (p.value().grad().defined()) worst = std::max(worst, rel(p.value().grad(), pr[p.key()].grad()));
  report.expect_le(worst, 1e-4, "mega layer parameter gradients (auto vs reference)");
  // Streaming: 40 tokens one at a time (crossing no boundary) and then a 300-token segment.
  torch::NoGradGuard ng;
  ref->eval();
  ker->eval();
  mgl::MegaLayerState sr, sk;
  double err = 0;
  for (int64_t t = 0; t < 40; ++t) {
    Tensor xt = x.narrow(1, t, 1);
    err = std::max(err, rel(ker(xt, &sk), ref(xt, &sr)));
  }
  Tensor seg = x.narrow(1, 40, 300);
  err = std::max(err, rel(ker(seg, &sk), ref(seg, &sr)));
  report.expect_le(err, 1e-5, "mega layer streaming decode with the KV cache (auto vs reference)");
}

MGL_GPU_CHECK("attention sdpa") {
  if (!mgl::ops::sdpa_available()) {
    report.expect(true, "sdpa: not in this LibTorch (skipped)");
    return;
  }
  torch::manual_seed(2);
  auto dev = torch::TensorOptions().dtype(torch::kFloat64).device(torch::kCUDA);
  for (bool causal : {true, false}) {
    Tensor q = torch::randn({2, 700, 2, 128}, dev) * 0.2, k = torch::randn({2, 700, 2, 128}, dev) * 0.2;
    Tensor v = torch::randn({2, 700, 2, 128}, dev), d_o = torch::randn({2, 700, 2, 128}, dev);
    Tensor pad = causal ? Tensor() : torch::rand({2, 700}, dev) < 0.25;
    auto ref_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
      return mgl::ops::chunked_attention(a, b, e, 256, causal, 1.0, 0.0, false, pad);
    };
    auto sdpa_f = [&](const Tensor& a, const Tensor& b, const Tensor& e) {
      return mgl::ops::chunked_attention_sdpa(a, b, e, 256, causal, 1.0, 0.0, false, pad);
    };
    const Outputs oracle = run(ref_f, q, k, v, d_o, torch::kFloat64);
    for (auto dt : {torch::kFloat32, torch::kBFloat16})
      compare(report, run(sdpa_f, q, k, v, d_o, dt), run(ref_f, q, k, v, d_o, dt), oracle, dt,
              fmt::format("sdpa {}", causal ? "causal" : "non-causal"));
  }
}

#endif
