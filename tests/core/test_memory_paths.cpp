// The memory-saving paths of issue 22 against their plain counterparts: the LM loss over slices
// (ops::sliced_linear_nll) against log_softmax of the whole logits, and activation checkpointing
// (`model.checkpoint_activations`) against the plain run, gradients included.
#include <catch2/catch.hpp>
#include <mutex>
#include <atomic>
#include <thread>
#include <future>

#include "core/models/factory.h"
#include "core/models/megalodon.h"
#include "core/modules/checkpoint.h"
#include "core/ops/cema.h"
#include "core/ops/ffn.h"
#include "core/ops/gates.h"
#include "core/ops/lm_loss.h"
#include "core/ops/norms.h"
#include "core/util/memory.h"
#include "support/oracle.h"

using namespace mgl;
using mgl::test::max_abs;
using torch::Tensor;

namespace {
const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);

// The plain oracle: the whole logits, log_softmax, gather; ignored targets give 0.
Tensor explicit_nll(const Tensor& h, const Tensor& w, const Tensor& t) {
  Tensor lp = torch::log_softmax(torch::nn::functional::linear(h, w), -1);
  Tensor picked = lp.gather(-1, t.clamp_min(0).unsqueeze(-1)).squeeze(-1);
  return torch::where(t >= 0, -picked, torch::zeros_like(picked));
}

MegalodonConfig tiny_lm() {
  MegalodonConfig c;
  c.num_layers = 2;
  c.model_dim = 16;
  c.num_heads = 2;
  c.z_dim = 8;
  c.value_dim = 16;
  c.ffn_hidden_dim = 24;
  c.cema_ndim = 4;
  c.norm_num_groups = 4;
  c.chunk_size = 8;
  c.vocab_size = 30;
  return c;
}

void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard g;
  auto a = from.parameters(), b = to.parameters();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
}
}  // namespace

TEST_CASE("the LM loss over slices equals log_softmax of the whole logits (fp64, gradients too)", "[lm_loss]") {
  torch::manual_seed(2211);
  Tensor h0 = torch::randn({3, 11, 6}, f64) * 3, w0 = torch::randn({17, 6}, f64);
  Tensor t = torch::randint(17, {3, 11});
  t[0][4] = -1;  // ignored
  t[2][10] = -100;
  for (int64_t rows : {1, 4, 7, 33, 0}) {
    INFO("rows per slice " << rows);
    auto h = h0.clone().requires_grad_(), w = w0.clone().requires_grad_();
    auto hr = h0.clone().requires_grad_(), wr = w0.clone().requires_grad_();
    Tensor a = ops::sliced_linear_nll(h, w, t, rows), b = explicit_nll(hr, wr, t);
    REQUIRE(a.sizes() == t.sizes());
    CHECK(a.scalar_type() == torch::kFloat64);
    CHECK(max_abs(a, b) < 1e-12);
    CHECK(a[0][4].item<double>() == 0.0);
    Tensor g = torch::rand(t.sizes(), f64);
    (a * g).sum().backward();
    (b * g).sum().backward();
    CHECK(max_abs(h.grad(), hr.grad()) < 1e-12);
    CHECK(max_abs(w.grad(), wr.grad()) < 1e-12);
  }
}

TEST_CASE("the LM loss over slices: finite differences in fp64, fp32 logits, bad targets", "[lm_loss][grad]") {
  torch::manual_seed(2212);
  Tensor t = torch::tensor({{2, 0, -1, 4}}, torch::kInt64);
  auto run = [&](const std::vector<Tensor>& in) { return ops::sliced_linear_nll(in[0], in[1], t, 3); };
  auto r = test::gradcheck(run, {torch::randn({1, 4, 3}, f64), torch::randn({5, 3}, f64)});
  INFO(r.where);
  REQUIRE(r.ok);
  // fp32 in, fp32 out, close to the fp64 oracle.
  Tensor h = torch::randn({2, 50, 8}), w = torch::randn({40, 8});
  Tensor tt = torch::randint(40, {2, 50});
  Tensor a = ops::sliced_linear_nll(h, w, tt, 16);
  CHECK(a.scalar_type() == torch::kFloat32);
  CHECK(test::rel_err(a, explicit_nll(h.to(torch::kFloat64), w.to(torch::kFloat64), tt)) < 1e-6);
  CHECK_THROWS_WITH(ops::sliced_linear_nll(h, w, torch::full({2, 50}, 40, torch::kInt64)),
                    Catch::Contains("target id 40 is outside the head's 40 outputs"));
  CHECK_THROWS_WITH(ops::sliced_linear_nll(h, w, torch::zeros({2, 49}, torch::kInt64)),
                    Catch::Contains("targets must be int64 of shape"));
}

TEST_CASE("Megalodon and Transformer nll() (loss over slices) equal the log_softmax of forward()", "[lm_loss][model]") {
  torch::manual_seed(2213);
  for (bool tied : {false, true}) {
    INFO("tied head " << tied);
    auto mcfg = tiny_lm();
    mcfg.share_emb = tied;
    for (int m = 0; m < 2; ++m) {
      CausalLM lm = m == 0 ? make_megalodon_lm(mcfg) : make_transformer_lm(TransformerConfig::matched(mcfg));
      lm->to(torch::kFloat64);
      Tensor x = torch::randint(30, {2, 19}), y = torch::randint(30, {2, 19});
      y[1][3] = -1;
      Tensor a = lm->nll(x, y);
      auto ga = torch::autograd::grad({a.sum()}, lm->parameters());
      Tensor lp = torch::log_softmax(lm->forward(x), -1);
      Tensor b = torch::where(y >= 0, -lp.gather(-1, y.clamp_min(0).unsqueeze(-1)).squeeze(-1), torch::zeros({2, 19}, f64));
      auto gb = torch::autograd::grad({b.sum()}, lm->parameters());
      CHECK(max_abs(a, b) < 1e-12);
      for (size_t i = 0; i < ga.size(); ++i) CHECK(max_abs(ga[i], gb[i]) < 1e-10);
    }
  }
}

TEST_CASE("checkpoint(): gradients equal the plain run, with dropout, and no graph without gradients", "[checkpoint]") {
  torch::manual_seed(2214);
  torch::nn::Linear lin(5, 5);
  auto fn = [&](const Tensor& t) {
    return torch::nn::functional::dropout(torch::tanh(lin(t)), torch::nn::functional::DropoutFuncOptions().p(0.3).training(true));
  };
  Tensor x0 = torch::randn({4, 5});
  auto params = lin->parameters();
  // Plain run.
  torch::manual_seed(7);
  auto x1 = x0.clone().requires_grad_();
  Tensor y1 = fn(x1);
  auto g1 = torch::autograd::grad({y1.pow(2).sum()}, {x1, params[0], params[1]});
  // Checkpointed run from the same RNG state: same dropout mask in the forward and the recompute.
  torch::manual_seed(7);
  auto x2 = x0.clone().requires_grad_();
  Tensor y2 = checkpoint(fn, x2, params);
  const Tensor after_forward = at::detail::getDefaultCPUGenerator().get_state();
  auto g2 = torch::autograd::grad({y2.pow(2).sum()}, {x2, params[0], params[1]});
  REQUIRE(y1.equal(y2));
  for (size_t i = 0; i < 3; ++i) CHECK(g1[i].equal(g2[i]));
  // The backward leaves the generator where the forward left it.
  CHECK(at::detail::getDefaultCPUGenerator().get_state().equal(after_forward));
  {
    torch::NoGradGuard g;
    CHECK(!checkpoint(fn, x2, params).requires_grad());
  }
}

TEST_CASE("model.checkpoint_activations: the same loss and gradients as the plain run (Megalodon, Transformer)",
          "[checkpoint][model]") {
  torch::manual_seed(2215);
  auto mcfg = tiny_lm();
  mcfg.dropout = 0.1;  // dropout everywhere: the recompute must draw the same masks
  mcfg.hidden_dropout = 0.1;
  mcfg.attention_dropout = 0.1;
  mcfg.drop_path = 0.2;
  for (int m = 0; m < 2; ++m) {
    INFO((m == 0 ? "megalodon" : "transformer"));
    auto ccfg = mcfg;
    ccfg.checkpoint_activations = true;
    CausalLM plain = m == 0 ? make_megalodon_lm(mcfg) : make_transformer_lm(TransformerConfig::matched(mcfg));
    CausalLM ckpt = m == 0 ? make_megalodon_lm(ccfg) : make_transformer_lm(TransformerConfig::matched(ccfg));
    plain->to(torch::kFloat64);
    ckpt->to(torch::kFloat64);
    copy_parameters(*plain, *ckpt);
    plain->train();
    ckpt->train();
    Tensor x = torch::randint(30, {2, 21}), y = torch::randint(30, {2, 21});
    torch::manual_seed(99);
    Tensor la = plain->nll(x, y).mean();
    la.backward();
    torch::manual_seed(99);
    Tensor lb = ckpt->nll(x, y).mean();
    lb.backward();
    CHECK(la.item<double>() == lb.item<double>());
    auto pa = plain->named_parameters(), pb = ckpt->named_parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      INFO(pa[i].key());
      REQUIRE(pa[i].value().grad().defined() == pb[i].value().grad().defined());
      if (pa[i].value().grad().defined()) CHECK(max_abs(pa[i].value().grad(), pb[i].value().grad()) < 1e-13);
    }
  }
}

TEST_CASE("model.checkpoint_activations: the classifier encoder too, padding mask included", "[checkpoint][encoder]") {
  torch::manual_seed(2216);
  auto cfg = tiny_lm();
  cfg.vocab_size = 20;
  cfg.hidden_dropout = 0.1;
  ClassifierOptions o;
  o.num_classes = 3;
  MegalodonClassifier plain(cfg, o);
  cfg.checkpoint_activations = true;
  MegalodonClassifier ckpt(cfg, o);
  plain->to(torch::kFloat64);
  ckpt->to(torch::kFloat64);
  copy_parameters(*plain, *ckpt);
  Tensor x = torch::randint(20, {3, 13});
  Tensor mask = torch::zeros({3, 13}, torch::kBool);
  mask[1].narrow(0, 9, 4).fill_(true);
  torch::manual_seed(5);
  plain->forward(x, mask).pow(2).sum().backward();
  torch::manual_seed(5);
  ckpt->forward(x, mask).pow(2).sum().backward();
  auto pa = plain->parameters(), pb = ckpt->parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    if (pa[i].grad().defined()) CHECK(max_abs(pa[i].grad(), pb[i].grad()) < 1e-13);
}

TEST_CASE("RMSNorm and LayerNorm (lean backward) equal their autograd references in fp64", "[norms][lowmem]") {
  torch::manual_seed(2217);
  Tensor x0 = torch::randn({3, 7, 10}, f64) * 2 + 1, w0 = torch::randn({10}, f64), b0 = torch::randn({10}, f64);
  for (bool affine : {true, false}) {
    INFO("affine " << affine);
    auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    auto xr = x0.clone().requires_grad_(), wr = w0.clone().requires_grad_(), br = b0.clone().requires_grad_();
    Tensor gy = torch::randn({3, 7, 10}, f64);
    Tensor a = ops::rms_norm_lowmem(x, affine ? w : Tensor(), 1e-5), r = ops::rms_norm(xr, affine ? wr : Tensor(), 1e-5);
    CHECK(max_abs(a, r) < 1e-13);
    a.backward(gy);
    r.backward(gy);
    CHECK(max_abs(x.grad(), xr.grad()) < 1e-12);
    if (affine) CHECK(max_abs(w.grad(), wr.grad()) < 1e-12);
    x.mutable_grad() = Tensor();
    xr.mutable_grad() = Tensor();
    a = ops::layer_norm_lowmem(x, affine ? w : Tensor(), affine ? b : Tensor(), 1e-5);
    r = ops::layer_norm(xr, affine ? wr : Tensor(), affine ? br : Tensor(), 1e-5);
    CHECK(max_abs(a, r) < 1e-13);
    a.backward(gy);
    r.backward(gy);
    CHECK(max_abs(x.grad(), xr.grad()) < 1e-12);
  }
  auto fn = [](const std::vector<Tensor>& in) { return ops::rms_norm_lowmem(in[0], in[1], 1e-5); };
  auto r = test::gradcheck(fn, {torch::randn({2, 3, 4}, f64), torch::randn({4}, f64)});
  INFO(r.where);
  REQUIRE(r.ok);
  // fp32 in, fp32 out; bf16 in, bf16 out.
  CHECK(ops::rms_norm_lowmem(torch::randn({2, 4}), torch::ones({4}), 1e-5).scalar_type() == torch::kFloat32);
  CHECK(ops::rms_norm_lowmem(torch::randn({2, 4}).to(torch::kBFloat16), torch::ones({4}), 1e-5).scalar_type() ==
        torch::kBFloat16);
}

TEST_CASE("the gated output projection and the causal FFT convolution: custom backwards against finite differences",
          "[lowmem][grad]") {
  torch::manual_seed(2218);
  auto gate = [](const std::vector<Tensor>& in) { return ops::silu_gated_linear(in[0], in[1], in[2]); };
  auto r = test::gradcheck(gate, {torch::randn({2, 3, 4}, f64), torch::randn({2, 3, 4}, f64), torch::randn({5, 4}, f64)});
  INFO(r.where);
  REQUIRE(r.ok);
  Tensor o = torch::randn({2, 3, 4}, f64), a = torch::randn({2, 3, 4}, f64), w = torch::randn({5, 4}, f64);
  CHECK(max_abs(ops::silu_gated_linear(o, a, w), torch::nn::functional::linear(o * torch::silu(a), w)) < 1e-14);
  // The convolution, causal and bidirectional, at a length that is not a power of two.
  auto conv = [](const std::vector<Tensor>& in) { return ops::causal_fftconv(in[0], in[1]); };
  r = test::gradcheck(conv, {torch::randn({2, 3, 7}, f64), torch::randn({3, 7}, f64)});
  INFO(r.where);
  REQUIRE(r.ok);
  auto bi = [](const std::vector<Tensor>& in) { return ops::bidirectional_fftconv(in[0], in[1], in[2]); };
  r = test::gradcheck(bi, {torch::randn({1, 2, 5}, f64), torch::randn({2, 5}, f64), torch::randn({2, 5}, f64)});
  INFO(r.where);
  REQUIRE(r.ok);
}

TEST_CASE("the NFFN's inner part (recomputing backward) equals the plain form, finite differences in fp64",
          "[lowmem][grad]") {
  torch::manual_seed(2219);
  namespace F = torch::nn::functional;
  Tensor u = torch::randn({2, 3, 4}, f64), w1 = torch::randn({6, 4}, f64), w2 = torch::randn({4, 6}, f64),
         w3 = torch::randn({6, 4}, f64);
  CHECK(max_abs(ops::silu_ffn(u, w1, w2), F::linear(torch::silu(F::linear(u, w1)), w2)) < 1e-13);
  CHECK(max_abs(ops::silu_ffn(u, w1, w2, w3), F::linear(torch::silu(F::linear(u, w1)) * F::linear(u, w3), w2)) < 1e-13);
  auto silu_form = [](const std::vector<Tensor>& in) { return ops::silu_ffn(in[0], in[1], in[2]); };
  auto r = test::gradcheck(silu_form, {u, w1, w2});
  INFO(r.where);
  REQUIRE(r.ok);
  auto swiglu = [](const std::vector<Tensor>& in) { return ops::silu_ffn(in[0], in[1], in[2], in[3]); };
  r = test::gradcheck(swiglu, {u, w1, w2, w3});
  INFO(r.where);
  REQUIRE(r.ok);
}

TEST_CASE("ema_convolve (closed-form backward) equals the FFT convolution with ema_kernel under autograd",
          "[cema][lowmem]") {
  torch::manual_seed(2220);
  for (bool complex : {true, false}) {
    INFO((complex ? "CEMA" : "real EMA"));
    const int64_t B = 2, D = 3, N = 4, L = 37;  // L not a power of two, blocks of 7
    auto leaf = [](const Tensor& t) { return t.clone().requires_grad_(); };
    Tensor p0 = torch::rand({D, N}, f64), lq_re = -torch::rand({D, N}, f64) * 0.3 - 0.01, lq_im = torch::rand({D, N}, f64);
    Tensor e_re = torch::randn({D, N}, f64), e_im = torch::randn({D, N}, f64), x0 = torch::randn({B, D, L}, f64);
    std::vector<Tensor> a{leaf(p0), leaf(lq_re), leaf(lq_im), leaf(e_re), leaf(e_im), leaf(x0)};
    std::vector<Tensor> b{leaf(p0), leaf(lq_re), leaf(lq_im), leaf(e_re), leaf(e_im), leaf(x0)};
    auto coeffs = [&](const std::vector<Tensor>& v) {
      ops::EmaCoeffs c;
      c.p = v[0];
      c.log_q = complex ? torch::complex(v[1], v[2]) : v[1];
      c.eta = complex ? torch::complex(v[3], v[4]) : v[3];
      return c;
    };
    Tensor ya = ops::ema_convolve(a[5], coeffs(a));
    Tensor yb = ops::causal_fftconv(b[5], ops::ema_kernel(coeffs(b), L));
    CHECK(max_abs(ya, yb) < 1e-12);
    Tensor w = torch::randn({B, D, L}, f64);
    auto ga = torch::autograd::grad({(ya * w).sum()}, a, {}, false, false, true);
    auto gb = torch::autograd::grad({(yb * w).sum()}, b, {}, false, false, true);
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("input " << i);
      REQUIRE(ga[i].defined() == gb[i].defined());
      if (ga[i].defined()) CHECK(max_abs(ga[i], gb[i]) < 1e-10);
    }
  }
}

TEST_CASE("the harness CPU allocator counts tensor bytes and reuses large blocks", "[memory]") {
  namespace tmem = mgl::tensor_memory;
  tmem::install();
  const int64_t base = tmem::current_bytes();
  {
    Tensor t = torch::empty({1000}, torch::kFloat32);
    CHECK(tmem::current_bytes() - base == 4000);
  }
  CHECK(tmem::current_bytes() == base);
  tmem::set_cache_large_blocks(true);
  tmem::release_cached();
  void* first = nullptr;
  {
    Tensor big = torch::full({10 << 20}, 2.0f);  // 40 MiB: above glibc's mmap threshold
    first = big.data_ptr();
    CHECK(tmem::current_bytes() - base == 40 << 20);
    CHECK(big.sum(torch::kFloat64).item<double>() == 2.0 * (10 << 20));
  }
  CHECK(tmem::cached_bytes() >= (40 << 20));
  {
    Tensor again = torch::zeros({10 << 20});  // the same size class: the cached block, zeroed
    CHECK(again.data_ptr() == first);
    CHECK(again.abs().sum().item<double>() == 0.0);
  }
  // Cached blocks fit below the most tensor memory ever alive (here 160 MiB, more than this test
  // had before; torch::empty touches no page): a new 100 MiB tensor, of another class, takes the
  // room of the cached 160 MiB block, and once freed stays cached beside a 40 MiB tensor.
  tmem::release_cached();
  torch::empty({40 << 20});  // 160 MiB, freed at once
  CHECK(tmem::cached_bytes() == 160 << 20);
  {
    Tensor b = torch::empty({25 << 20});  // 100 MiB
    CHECK(tmem::cached_bytes() == 0);
    CHECK(tmem::current_bytes() - base == 100 << 20);
  }
  CHECK(tmem::cached_bytes() >= (100 << 20));
  {
    Tensor c = torch::empty({10 << 20});  // 40 MiB: 40 + 112 cached is below 160
    CHECK(tmem::cached_bytes() >= (100 << 20));
  }
  tmem::release_cached();
  CHECK(tmem::cached_bytes() == 0);
  tmem::set_cache_large_blocks(false);
}

TEST_CASE("blocks a loader thread allocates go back to it when another thread frees them", "[memory][loader]") {
  namespace tmem = mgl::tensor_memory;
  tmem::install();
  const int64_t base = tmem::current_bytes();
  // One loader thread hands a tensor over, the consumer frees it, and the loader's next block of
  // that size is the returned one (reused while still in its core's cache).
  {
    std::promise<Tensor> first, third;
    std::promise<void> freed;
    std::promise<void*> second_ptr;
    auto freed_f = freed.get_future();
    std::thread loader([&] {
      const tmem::HeaderBlocksInThisThread returned_here;
      first.set_value(torch::full({32768}, 7, torch::kInt64));  // 256 KiB
      freed_f.wait();
      Tensor again = torch::empty({32768}, torch::kInt64);
      second_ptr.set_value(again.data_ptr());
      third.set_value(torch::full({1000}, 3.0f));  // still held when this thread ends
    });
    Tensor a = first.get_future().get();
    void* p = a.data_ptr();
    CHECK(a.sum().item<int64_t>() == 7 * 32768);
    CHECK(tmem::current_bytes() - base >= 32768 * 8);
    a = Tensor();
    freed.set_value();
    CHECK(second_ptr.get_future().get() == p);
    Tensor kept = third.get_future().get();
    loader.join();
    CHECK(kept.sum().item<float>() == 3000.0f);  // the block outlives its thread
  }
  CHECK(tmem::current_bytes() == base);
  // Many blocks of many sizes from three loader threads, freed by two other threads in any order
  // while the loaders still allocate, and after they have ended: every byte is accounted for.
  {
    std::mutex mu;
    std::vector<Tensor> handed;
    std::atomic<int> loaders_done{0};
    std::vector<std::thread> threads;
    for (int l = 0; l < 3; ++l)
      threads.emplace_back([&, l] {
        const tmem::HeaderBlocksInThisThread returned_here;
        for (int i = 0; i < 3000; ++i) {
          Tensor t = torch::full({1 + (i * 7919 + l * 104729) % 70000}, static_cast<float>(i));
          std::lock_guard<std::mutex> lock(mu);
          handed.push_back(std::move(t));
        }
        ++loaders_done;
      });
    std::atomic<int64_t> bad{0};
    for (int c = 0; c < 2; ++c)
      threads.emplace_back([&] {
        for (;;) {
          Tensor t;
          {
            std::lock_guard<std::mutex> lock(mu);
            if (!handed.empty()) {
              t = std::move(handed.back());
              handed.pop_back();
            }
          }
          if (!t.defined()) {
            if (loaders_done.load() == 3) {
              std::lock_guard<std::mutex> lock(mu);
              if (handed.empty()) return;
            }
            std::this_thread::yield();
            continue;
          }
          const float v = t[0].item<float>();
          if (t.max().item<float>() != v || t.min().item<float>() != v) ++bad;  // no block given out twice
        }
      });
    for (auto& t : threads) t.join();
    CHECK(bad.load() == 0);
  }
  CHECK(tmem::current_bytes() == base);
}

TEST_CASE("ema_chunked (chunked scan) equals the FFT convolution with ema_kernel, values and gradients (fp64)",
          "[cema][lowmem]") {
  torch::manual_seed(2225);
  for (bool complex : {true, false})
    for (auto lc : std::vector<std::pair<int64_t, int64_t>>{{37, 8}, {64, 16}, {5, 8}, {50, 1}, {41, 64}}) {
      const int64_t B = 2, D = 3, N = 4, L = lc.first, chunk = lc.second;
      INFO((complex ? "CEMA" : "real EMA") << ", L " << L << ", chunk " << chunk);
      auto leaf = [](const Tensor& t) { return t.clone().requires_grad_(); };
      Tensor p0 = torch::rand({D, N}, f64), lq_re = -torch::rand({D, N}, f64) * 0.3 - 0.01,
             lq_im = torch::rand({D, N}, f64) * 3;
      Tensor e_re = torch::randn({D, N}, f64), e_im = torch::randn({D, N}, f64);
      // x in the MEGA layer's layout: the transposed view of a B×L×D tensor.
      Tensor x0 = torch::randn({B, L, D}, f64).transpose(1, 2);
      std::vector<Tensor> a{leaf(p0), leaf(lq_re), leaf(lq_im), leaf(e_re), leaf(e_im), leaf(x0)};
      std::vector<Tensor> b{leaf(p0), leaf(lq_re), leaf(lq_im), leaf(e_re), leaf(e_im), leaf(x0)};
      auto coeffs = [&](const std::vector<Tensor>& v) {
        ops::EmaCoeffs c;
        c.p = v[0];
        c.log_q = complex ? torch::complex(v[1], v[2]) : v[1];
        c.eta = complex ? torch::complex(v[3], v[4]) : v[3];
        return c;
      };
      Tensor ya = ops::ema_chunked(a[5], coeffs(a), chunk);
      Tensor yb = ops::causal_fftconv(b[5], ops::ema_kernel(coeffs(b), L));
      REQUIRE(ya.sizes() == yb.sizes());
      CHECK(max_abs(ya, yb) < 1e-12);
      Tensor w = torch::randn({B, D, L}, f64);
      auto ga = torch::autograd::grad({(ya * w).sum()}, a, {}, false, false, true);
      auto gb = torch::autograd::grad({(yb * w).sum()}, b, {}, false, false, true);
      for (size_t i = 0; i < a.size(); ++i) {
        INFO("input " << i);
        REQUIRE(ga[i].defined() == gb[i].defined());
        if (ga[i].defined()) CHECK(max_abs(ga[i], gb[i]) < 1e-10);
      }
    }
  // Finite differences through the custom backward, complex coefficients.
  auto fn = [](const std::vector<Tensor>& in) {
    ops::EmaCoeffs c;
    c.p = in[0];
    c.log_q = torch::complex(in[1], in[2]);
    c.eta = torch::complex(in[3], in[4]);
    return ops::ema_chunked(in[5], c, 3);
  };
  auto r = test::gradcheck(fn, {torch::rand({2, 2}, f64), -torch::rand({2, 2}, f64) * 0.5 - 0.05, torch::rand({2, 2}, f64),
                                torch::randn({2, 2}, f64), torch::randn({2, 2}, f64), torch::randn({1, 2, 8}, f64)});
  INFO(r.where);
  REQUIRE(r.ok);
}

TEST_CASE("ema_chunked in fp32 stays close to the fp64 sequential recurrence at 8K steps", "[cema][lowmem]") {
  torch::manual_seed(2226);
  const int64_t D = 4, N = 16, L = 8192;
  ops::EmaCoeffs c;
  c.p = torch::rand({D, N}, f64);
  c.log_q = torch::complex(-torch::rand({D, N}, f64) * 0.01 - 1e-4, torch::rand({D, N}, f64));
  c.eta = torch::complex(torch::randn({D, N}, f64), torch::randn({D, N}, f64)) * 0.25;
  Tensor x = torch::randn({1, D, L}, f64);
  auto ref = ops::ema_recurrence(x, c, {}).first;
  ops::EmaCoeffs c32{c.p.to(torch::kFloat32), c.log_q.to(torch::kComplexFloat), c.eta.to(torch::kComplexFloat)};
  Tensor y = ops::ema_chunked(x.to(torch::kFloat32), c32);
  Tensor yf = ops::causal_fftconv(x.to(torch::kFloat32), ops::ema_kernel(c32, L));
  // At most twice the FFT path's own error against the oracle (plus a floor).
  CHECK(test::rel_err(y, ref) <= 2 * test::rel_err(yf, ref) + 1e-6);
}
