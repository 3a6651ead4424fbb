// Distributed training (harness/dist): data and chunk parallelism against one process, on the CPU
// with Gloo over loopback. In-process ranks (threads sharing a c10d::HashStore) check gradients
// exactly; real processes through `megalodon launch` check whole training runs, resuming onto
// another world size and the failure behaviour.
#include <catch2/catch.hpp>

#include <limits>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "core/models/megalodon.h"
#include "core/modules/sequence_parallel.h"
#include "harness/dist/dist.h"
#include "harness/train/data_loader.h"
#include "harness/util/files.h"
#include "support/files.h"

namespace fs = std::filesystem;
using mgl::harness::dist::Context;
using torch::Tensor;
using LM = std::shared_ptr<mgl::MegalodonLMImpl>;

#ifdef MEGALODON_WITH_GLOO
namespace {

// Runs fn(rank's Context) on `world` threads, each a rank of one Gloo job; rethrows the first error.
template <typename F>
void run_ranks(int world, int cp, F fn) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  mgl::harness::dist::Options o;
  o.chunk_parallel = cp;
  o.timeout_s = 60;
  o.bucket_mb = 0.001;  // many small buckets: exercises the ordered launch
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        auto ctx = Context::create_with_store(store, r, world, o, torch::kCPU);
        fn(*ctx);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

mgl::MegalodonConfig tiny_lm(mgl::NormKind norm = mgl::NormKind::timestep, mgl::EmaKind ema = mgl::EmaKind::cema) {
  mgl::MegalodonConfig c;
  c.num_layers = 2;
  c.model_dim = 16;
  c.z_dim = 8;
  c.value_dim = 16;
  c.ffn_hidden_dim = 24;
  c.cema_ndim = 4;
  c.chunk_size = 8;
  c.vocab_size = 23;
  c.norm_num_groups = 4;
  c.norm = norm;
  c.ema = ema;
  return c;
}

// A model per rank, all with the reference model's weights (built here: torch's generator is global).
std::vector<LM> replicas(const LM& ref, const mgl::MegalodonConfig& c, int n) {
  std::vector<LM> out;
  for (int i = 0; i < n; ++i) {
    auto m = std::make_shared<mgl::MegalodonLMImpl>(c);
    torch::NoGradGuard g;
    auto src = ref->named_parameters();
    for (auto& p : m->named_parameters()) p.value().copy_(src[p.key()]);
    out.push_back(m);
  }
  return out;
}

double rel(const Tensor& a, const Tensor& ref) {
  return (a - ref).abs().max().item<double>() / std::max(1e-12, ref.abs().max().item<double>());
}

// Every parameter's gradient on `m` against the reference's: the largest relative difference
// (infinite when one has a gradient and the other none). Called on the rank threads, so no Catch2
// assertion here: Catch2 v3 before 3.9 is not thread-safe (its output redirect asserts).
double worst_grad(const LM& m, const LM& ref) {
  double worst = 0;
  auto rp = ref->named_parameters();
  for (auto& p : m->named_parameters()) {
    const Tensor g = p.value().grad(), gr = rp[p.key()].grad();
    if (g.defined() != gr.defined()) return std::numeric_limits<double>::infinity();
    if (g.defined()) worst = std::max(worst, rel(g, gr));
  }
  return worst;
}

}  // namespace

TEST_CASE("data parallel: averaged gradients equal one process on the combined batch", "[dist]") {
  torch::manual_seed(3);
  const auto cfg = tiny_lm();
  auto ref = std::make_shared<mgl::MegalodonLMImpl>(cfg);
  const Tensor tokens = torch::randint(0, cfg.vocab_size, {4, 17});
  const Tensor x = tokens.narrow(1, 0, 16), y = tokens.narrow(1, 1, 16);
  const Tensor ref_loss = ref->nll(x, y, nullptr).mean();
  ref_loss.backward();
  for (int world : {2, 4}) {
    auto models = replicas(ref, cfg, world);
    std::vector<double> worst(world, 0);
    run_ranks(world, 1, [&](Context& ctx) {
      auto& m = models[ctx.rank()];
      std::vector<Tensor> ps = m->parameters();
      Context::GradSync sync(ctx, ps);
      const int64_t b = 4 / world, r = ctx.rank();
      // Accumulation over two micro-batches: the first only accumulates locally.
      sync.prepare(false);
      (m->nll(x.narrow(0, r * b, b), y.narrow(0, r * b, b), nullptr).mean() * 0.5).backward();
      sync.prepare(true);
      (m->nll(x.narrow(0, r * b, b), y.narrow(0, r * b, b), nullptr).mean() * 0.5).backward();
      sync.finish();
      worst[r] = worst_grad(m, ref);
    });
    for (int r = 0; r < world; ++r) {
      INFO("world " << world << " rank " << r);
      CHECK(worst[r] < 1e-5);
    }
  }
}

TEST_CASE("chunk parallel: loss and gradients equal one process on the whole sequence", "[dist]") {
  struct Case {
    int world, cp;
    mgl::NormKind norm;
    mgl::EmaKind ema;
  };
  for (const Case k : {Case{2, 2, mgl::NormKind::timestep, mgl::EmaKind::cema},
                       Case{4, 4, mgl::NormKind::timestep, mgl::EmaKind::cema},
                       Case{4, 2, mgl::NormKind::timestep, mgl::EmaKind::cema},  // data × chunk
                       Case{2, 2, mgl::NormKind::layer, mgl::EmaKind::ema}}) {
    INFO("world " << k.world << " cp " << k.cp << " norm " << mgl::to_string(k.norm));
    torch::manual_seed(5);
    const auto cfg = tiny_lm(k.norm, k.ema);
    auto ref = std::make_shared<mgl::MegalodonLMImpl>(cfg);
    const int64_t L = 32, B = 2;  // 4 chunks of 8
    const Tensor tokens = torch::randint(0, cfg.vocab_size, {B, L + 1});
    const Tensor x = tokens.narrow(1, 0, L), y = tokens.narrow(1, 1, L);
    const Tensor ref_loss = ref->nll(x, y, nullptr).mean();
    ref_loss.backward();
    auto models = replicas(ref, cfg, k.world);
    std::vector<double> worst(k.world, 0), loss(k.world, 0);
    std::vector<int64_t> gathers(k.world, 0);
    run_ranks(k.world, k.cp, [&](Context& ctx) {
      auto& m = models[ctx.rank()];
      Context::GradSync sync(ctx, m->parameters());
      const int64_t S = L / ctx.cp_size(), b = B / ctx.dp_size();
      const Tensor xs = x.narrow(0, ctx.dp_rank() * b, b).narrow(1, ctx.cp_rank() * S, S);
      const Tensor ys = y.narrow(0, ctx.dp_rank() * b, b).narrow(1, ctx.cp_rank() * S, S);
      sync.prepare(true);
      Tensor l;
      {
        mgl::ExchangeBinding bind(m.get(), ctx.exchange());
        l = m->nll(xs, ys, nullptr).mean();
      }
      l.backward();
      sync.finish();
      std::vector<double> v{l.item<double>()};
      ctx.all_reduce_sum(v);
      loss[ctx.rank()] = v[0] / ctx.world();
      worst[ctx.rank()] = worst_grad(m, ref);
      gathers[ctx.rank()] = ctx.exchange()->gathers;
    });
    for (int r = 0; r < k.world; ++r) {
      INFO("rank " << r);
      CHECK(std::abs(loss[r] - ref_loss.item<double>()) <= 1e-5 * std::abs(ref_loss.item<double>()));
      CHECK(worst[r] < 1e-5);
      // Two layers: with the timestep norm, norm + EMA per layer and the final norm; else the EMAs.
      CHECK(gathers[r] == (k.norm == mgl::NormKind::timestep ? 5 : 2));
    }
  }
}

TEST_CASE("chunk parallel: a segment that is not a whole number of chunks is refused", "[dist]") {
  torch::manual_seed(1);
  const auto cfg = tiny_lm();
  auto ref = std::make_shared<mgl::MegalodonLMImpl>(cfg);
  auto models = replicas(ref, cfg, 2);
  std::vector<std::string> msg(2);
  run_ranks(2, 2, [&](Context& ctx) {
    mgl::ExchangeBinding bind(models[ctx.rank()].get(), ctx.exchange());
    try {
      models[ctx.rank()]->nll(torch::zeros({1, 12}, torch::kInt64), torch::zeros({1, 12}, torch::kInt64), nullptr);
    } catch (const std::exception& e) {
      msg[ctx.rank()] = e.what();
    }
  });
  for (const auto& m : msg) CHECK(m.find("whole number of attention chunks") != std::string::npos);
}

TEST_CASE("the prefix merge of group moments equals the moments of the concatenation", "[dist]") {
  torch::manual_seed(2);
  const Tensor a = torch::randn({3, 40}, torch::kFloat64) * 2 + 1, b = torch::randn({3, 25}, torch::kFloat64) - 3;
  Tensor count = torch::full({3}, 40, torch::kInt64), mean = a.mean(1, true).squeeze(1).unsqueeze(-1);
  Tensor var = a.var(1, false).unsqueeze(-1);
  mgl::sequence_parallel::merge_moments(count, mean, var, torch::full({3}, 25, torch::kInt64),
                                        b.mean(1).unsqueeze(-1), b.var(1, false).unsqueeze(-1));
  const Tensor ab = torch::cat({a, b}, 1);
  CHECK(count.eq(65).all().item<bool>());
  CHECK(rel(mean.squeeze(-1), ab.mean(1)) < 1e-12);
  CHECK(rel(var.squeeze(-1), ab.var(1, false)) < 1e-12);
  // A zero-count side leaves the other unchanged.
  Tensor c0 = torch::zeros({3}, torch::kInt64), m0 = torch::full({3, 1}, 7.0, torch::kFloat64), v0 = m0.clone();
  mgl::sequence_parallel::merge_moments(c0, m0, v0, count, mean, var);
  CHECK(rel(m0, mean) < 1e-15);
  CHECK(rel(v0, var) < 1e-15);
}
#endif  // MEGALODON_WITH_GLOO

TEST_CASE("environment: torchrun and Slurm variables, malformed values named", "[dist]") {
  auto clear = [] {
    for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                          "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"})
      unsetenv(v);
  };
  clear();
  auto e = mgl::harness::dist::env_from_environment();
  CHECK_FALSE(e.present);
  CHECK(e.world == 1);
  setenv("SLURM_PROCID", "3", 1);
  setenv("SLURM_NTASKS", "8", 1);
  setenv("SLURM_LOCALID", "1", 1);
  setenv("MASTER_ADDR", "node17", 1);
  e = mgl::harness::dist::env_from_environment();
  CHECK(e.present);
  CHECK(e.rank == 3);
  CHECK(e.world == 8);
  CHECK(e.local_rank == 1);
  CHECK(e.master_addr == "node17");
  setenv("RANK", "2", 1);  // torchrun's variables win
  setenv("WORLD_SIZE", "4", 1);
  e = mgl::harness::dist::env_from_environment();
  CHECK(e.rank == 2);
  CHECK(e.world == 4);
  setenv("RANK", "4", 1);
  CHECK_THROWS_WITH(mgl::harness::dist::env_from_environment(), Catch::Contains("RANK=4"));
  setenv("RANK", "x1", 1);
  CHECK_THROWS_WITH(mgl::harness::dist::env_from_environment(), Catch::Contains("RANK='x1'"));
  clear();
}

TEST_CASE("data loader shards: together they are the global batch, every example once", "[dist]") {
  struct Numbers : mgl::harness::Task {
    int64_t size(mgl::harness::Split) const override { return 30; }
    mgl::harness::Batch make_batch(mgl::harness::Split, const std::vector<int64_t>& idx, uint64_t) const override {
      mgl::harness::Batch b;
      b.inputs = torch::tensor(idx, torch::kInt64);
      b.examples = static_cast<int64_t>(idx.size());
      return b;
    }
    std::shared_ptr<torch::nn::Module> build_model() override { return nullptr; }
    std::shared_ptr<torch::nn::Module> model() const override { return nullptr; }
    mgl::harness::StepOutput step(const mgl::harness::Batch&, bool) override { return {}; }
    std::map<std::string, double> finalize(const mgl::harness::MetricSums&) const override { return {}; }
    std::string describe() const override { return "numbers"; }
  } task;
  mgl::harness::LoaderOptions o;
  o.batch_size = 8;
  o.workers = 0;
  mgl::harness::DataLoader whole(task, mgl::harness::Split::train, o);
  std::vector<std::unique_ptr<mgl::harness::DataLoader>> shards;
  for (int s = 0; s < 4; ++s) {
    auto so = o;
    so.shard = s;
    so.num_shards = 4;
    shards.push_back(std::make_unique<mgl::harness::DataLoader>(task, mgl::harness::Split::train, so));
  }
  for (int step = 0; step < 7; ++step) {  // across an epoch boundary (3 batches per epoch)
    auto g = whole.next()->inputs;
    std::vector<Tensor> parts;
    for (auto& s : shards) parts.push_back(s->next()->inputs);
    CHECK(torch::equal(torch::cat(parts), g));
  }
  // Evaluation: the ragged last batch leaves some shards empty.
  o.repeat = false;
  o.drop_last = false;
  o.shuffle = false;
  o.batch_size = 32;
  int64_t seen = 0;
  for (int s = 0; s < 4; ++s) {
    auto so = o;
    so.shard = s;
    so.num_shards = 4;
    mgl::harness::DataLoader l(task, mgl::harness::Split::val, so);
    while (auto b = l.next()) seen += b->examples;
  }
  CHECK(seen == 30);
}
