#include "harness/dist/dist.h"

#include <fmt/format.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#ifdef MEGALODON_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR >= 2  // c10d::Backend; otherwise only Gloo's or NCCL's header brings it
#include <torch/csrc/distributed/c10d/Backend.hpp>
#endif
#ifdef MEGALODON_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <cstring>
#include <atomic>
#include <mutex>

namespace mgl::harness::dist {

// LibTorch 2.x split process groups into a ProcessGroup front and per-device Backends (Gloo and
// NCCL are Backends there); in 1.13 they are ProcessGroups. Both expose the collectives we use.
#if TORCH_VERSION_MAJOR >= 2
using PG = c10d::Backend;
#else
using PG = c10d::ProcessGroup;
#endif

struct Context::Groups {
  c10::intrusive_ptr<PG> world, cp;
};

namespace {

std::optional<std::string> getenv_str(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

int env_int(const char* name, int fallback, const char* alt = nullptr) {
  auto v = getenv_str(name);
  if (!v && alt) {
    v = getenv_str(alt);
    name = alt;
  }
  if (!v) return fallback;
  try {
    size_t used = 0;
    const long x = std::stol(*v, &used);
    if (used != v->size() || x < 0 || x > 1 << 24) throw std::invalid_argument("range");
    return static_cast<int>(x);
  } catch (const std::exception&) {
    throw std::runtime_error(fmt::format("environment variable {}='{}': expected a non-negative integer", name, *v));
  }
}

std::chrono::milliseconds timeout_ms(const Options& o) {
  return std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
}

c10::intrusive_ptr<PG> make_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, const Options& o,
                                  const std::string& backend) {
  if (backend == "nccl") {
#ifdef MEGALODON_WITH_NCCL
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout_ms(o);
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
#else
    throw std::runtime_error("dist.backend: NCCL process groups need a CUDA LibTorch built with NCCL");
#endif
  }
#ifndef MEGALODON_WITH_GLOO
  (void)store, (void)rank, (void)size, (void)o;  // a build without Gloo (e.g. the GPU machine's)
  throw std::runtime_error("Gloo process groups need the Gloo headers at build time (Debian: libgloo-dev)");
#else
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout_ms(o));
  // GLOO_SOCKET_IFNAME picks the interface, as in PyTorch; a loopback master means one machine.
  if (auto ifname = getenv_str("GLOO_SOCKET_IFNAME")) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(*ifname));
  } else {
    const std::string addr = getenv_str("MASTER_ADDR").value_or("127.0.0.1");
    if (addr == "localhost" || addr.rfind("127.", 0) == 0)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
#endif
}

void wait(const c10::intrusive_ptr<c10d::Work>& w) { w->wait(); }

// The c10d transport of chunk parallelism: all_gather as an autograd Function whose backward is
// an all-reduce of the gradient of the stack (every rank's loss depends on every summary).
class C10dExchange : public SequenceExchange {
 public:
  C10dExchange(c10::intrusive_ptr<PG> pg, int rank, int size) : pg_(std::move(pg)), rank_(rank), size_(size) {}
  int64_t rank() const override { return rank_; }
  int64_t size() const override { return size_; }
  torch::Tensor all_gather(const torch::Tensor& local) override { return Gather::apply(local, this); }

 private:
  struct Gather : torch::autograd::Function<Gather> {
    static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& local, C10dExchange* ex) {
      ctx->saved_data["ex"] = reinterpret_cast<int64_t>(ex);
      ex->gathers++;
      torch::Tensor in = local.contiguous();
      std::vector<std::vector<torch::Tensor>> out(1);
      for (int i = 0; i < ex->size_; ++i) out[0].push_back(torch::empty_like(in));
      std::vector<torch::Tensor> inputs{in};
      wait(ex->pg_->allgather(out, inputs));
      return torch::stack(out[0]);
    }
    static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::tensor_list grads) {
      auto* ex = reinterpret_cast<C10dExchange*>(ctx->saved_data["ex"].toInt());
      std::vector<torch::Tensor> g{grads[0].contiguous().clone()};
      wait(ex->pg_->allreduce(g));
      return {g[0][ex->rank_], torch::Tensor()};
    }
  };
  c10::intrusive_ptr<PG> pg_;
  int rank_, size_;
};

}  // namespace

bool nccl_available() {
#ifdef MEGALODON_WITH_NCCL
  return true;
#else
  return false;
#endif
}

Env env_from_environment() {
  Env e;
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID"})
    if (getenv_str(v)) e.present = true;
  e.rank = env_int("RANK", 0, "SLURM_PROCID");
  e.world = env_int("WORLD_SIZE", 1, "SLURM_NTASKS");
  e.local_rank = env_int("LOCAL_RANK", 0, "SLURM_LOCALID");
  e.local_world = env_int("LOCAL_WORLD_SIZE", 1);
  e.master_addr = getenv_str("MASTER_ADDR").value_or("127.0.0.1");
  e.master_port = env_int("MASTER_PORT", 29500);
  if (e.world < 1) throw std::runtime_error("environment variable WORLD_SIZE: expected at least 1");
  if (e.rank >= e.world)
    throw std::runtime_error(fmt::format("environment: RANK={} is not below WORLD_SIZE={}", e.rank, e.world));
  if (e.master_port < 1 || e.master_port > 65535)
    throw std::runtime_error(fmt::format("environment variable MASTER_PORT={}: expected a TCP port", e.master_port));
  return e;
}

// LibTorch >= 2.4 asks for the libuv TCPStore backend by default, which a build without libuv (Debian
// trixie's 2.6) refuses; the classic backend is in every build and ample for our handful of keys.
template <typename T>
auto use_classic_store_backend(T& o, int) -> decltype(o.useLibUV = false, void()) {
  o.useLibUV = false;
}
template <typename T>
void use_classic_store_backend(T&, long) {}  // LibTorch before the libuv backend

std::unique_ptr<Context> Context::create(const Env& env, const Options& o, const torch::Device& device) {
  c10d::TCPStoreOptions so;
  use_classic_store_backend(so, 0);
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = env.world;
  so.timeout = timeout_ms(o);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("rank {}/{}: could not join the job's TCP store at {}:{} within {} s "
                                         "(dist.timeout_s): {}",
                                         env.rank, env.world, env.master_addr, env.master_port, o.timeout_s, e.what()));
  }
  return create_with_store(store, env.rank, env.world, o, device);
}

std::unique_ptr<Context> Context::create_with_store(c10::intrusive_ptr<c10d::Store> store, int rank, int world,
                                                    const Options& o, const torch::Device& device) {
  if (o.chunk_parallel < 1 || world % o.chunk_parallel != 0)
    throw std::runtime_error(fmt::format("dist.chunk_parallel = {}: must divide the number of processes ({})",
                                         o.chunk_parallel, world));
  std::unique_ptr<Context> c(new Context());
  c->rank_ = rank;
  c->world_ = world;
  c->cp_ = static_cast<int>(o.chunk_parallel);
  c->o_ = o;
  c->device_ = device;
  if (o.backend == "auto")
    c->backend_ = device.is_cuda() ? "nccl" : "gloo";
  else if (o.backend == "gloo" || o.backend == "nccl")
    c->backend_ = o.backend;
  else
    throw std::runtime_error(fmt::format("dist.backend = '{}': expected auto, gloo or nccl", o.backend));
  if (c->backend_ == "nccl" && !device.is_cuda())
    throw std::runtime_error("dist.backend = nccl needs run.device = cuda");
  c->init_groups(std::move(store));
  return c;
}

void Context::init_groups(c10::intrusive_ptr<c10d::Store> store) {
  groups_ = std::make_unique<Groups>();
  try {
    groups_->world = make_group(c10::make_intrusive<c10d::PrefixStore>("world", store), rank_, world_, o_, backend_);
    if (cp_ > 1) {
      auto prefix = c10::make_intrusive<c10d::PrefixStore>(fmt::format("cp{}", dp_rank()), store);
      groups_->cp = make_group(prefix, cp_rank(), cp_, o_, backend_);
      exchange_ = std::make_unique<C10dExchange>(groups_->cp, cp_rank(), cp_);
    }
    // No rank leaves until every rank has formed every group: a rank that finished first and then
    // failed at once (a bad config, a refused input) would close its connections while a peer was
    // still completing its own, and the peer would report "connection closed by peer" instead of
    // the real error (seen in the chunk-parallel refusal test under load).
    wait(groups_->world->barrier());
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("rank {}/{}: could not form the process groups within {} s "
                                         "(dist.timeout_s; are all ranks up?): {}",
                                         rank_, world_, o_.timeout_s, e.what()));
  }
}

Context::~Context() = default;

void Context::broadcast_module(torch::nn::Module& m) {
  torch::NoGradGuard g;
  std::vector<torch::Tensor> all;
  for (auto& p : m.parameters()) all.push_back(p);
  for (auto& b : m.buffers()) all.push_back(b);
  for (auto& t : all) {
    std::vector<torch::Tensor> v{t.is_contiguous() ? t : t.contiguous()};
    wait(groups_->world->broadcast(v));
    if (!t.is_contiguous()) t.copy_(v[0]);
  }
}

void Context::all_reduce_sum(std::vector<double>& values) {
  if (values.empty()) return;
  std::vector<torch::Tensor> v{torch::tensor(values, torch::kFloat64).to(device_)};
  wait(groups_->world->allreduce(v));
  auto cpu = v[0].cpu();
  for (size_t i = 0; i < values.size(); ++i) values[i] = cpu[static_cast<int64_t>(i)].item<double>();
}

std::vector<std::string> Context::all_gather_strings(const std::string& mine) {
  auto gather = [&](const torch::Tensor& t) {
    std::vector<std::vector<torch::Tensor>> out(1);
    for (int i = 0; i < world_; ++i) out[0].push_back(torch::empty_like(t));
    std::vector<torch::Tensor> in{t};
    wait(groups_->world->allgather(out, in));
    return out[0];
  };
  const auto opts = torch::TensorOptions().device(device_);
  auto lengths = gather(torch::tensor({static_cast<int64_t>(mine.size())}, opts.dtype(torch::kInt64)));
  int64_t longest = 1;
  for (auto& l : lengths) longest = std::max(longest, l.cpu().item<int64_t>());
  auto bytes = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(bytes.data_ptr<uint8_t>(), mine.data(), mine.size());
  auto all = gather(bytes.to(device_));
  std::vector<std::string> out;
  for (int i = 0; i < world_; ++i) {
    auto b = all[i].cpu();
    out.emplace_back(reinterpret_cast<const char*>(b.data_ptr<uint8_t>()),
                     static_cast<size_t>(lengths[i].cpu().item<int64_t>()));
  }
  return out;
}

void Context::barrier() { wait(groups_->world->barrier()); }

// ---- gradient synchronisation ----------------------------------------------------------------

struct Context::GradSync::Impl {
  Context& ctx;
  std::vector<torch::Tensor> params;
  struct Bucket {
    std::vector<size_t> members;  // indices into params
    int64_t numel = 0;
    size_t ready = 0;
    torch::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: hooks live on them
  std::mutex mu;
  // The hooks outlive this object on accumulators that a graph still references: they check this.
  std::shared_ptr<std::atomic<bool>> alive = std::make_shared<std::atomic<bool>>(true);
  bool armed = false;
  size_t next_launch = 0;

  ~Impl() { *alive = false; }
  Impl(Context& c, std::vector<torch::Tensor> ps) : ctx(c), params(std::move(ps)) {
    // Buckets in reverse parameter order (gradients arrive roughly last layer first).
    const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(ctx.o_.bucket_mb * 1024 * 1024));
    bucket_of.resize(params.size());
    for (size_t k = params.size(); k-- > 0;) {
      const int64_t bytes = params[k].numel() * params[k].element_size();
      const bool fresh = buckets.empty() ||
                         (!buckets.back().members.empty() &&
                          (buckets.back().numel * params[k].element_size() + bytes > cap ||
                           params[buckets.back().members.front()].scalar_type() != params[k].scalar_type()));
      if (fresh) buckets.emplace_back();
      buckets.back().members.push_back(k);
      buckets.back().numel += params[k].numel();
      bucket_of[k] = buckets.size() - 1;
    }
    for (size_t k = 0; k < params.size(); ++k) {
      auto acc = torch::autograd::impl::grad_accumulator(params[k]);
      TORCH_CHECK(acc, "gradient sync: parameter ", k, " is not a leaf that requires grad");
      acc->add_post_hook(std::make_unique<Hook>(this, k, alive));
      accumulators.push_back(std::move(acc));
    }
  }

  struct Hook : torch::autograd::FunctionPostHook {
    Hook(Impl* i, size_t k, std::shared_ptr<std::atomic<bool>> a) : impl(i), index(k), alive(std::move(a)) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list&) override {
      if (*alive) impl->on_ready(index);
      return outputs;
    }
    Impl* impl;
    size_t index;
    std::shared_ptr<std::atomic<bool>> alive;
  };

  void on_ready(size_t k) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed) return;
    Bucket& b = buckets[bucket_of[k]];
    if (++b.ready == b.members.size()) launch_ready();
  }

  // Launches, in bucket order, every bucket whose gradients are all in (the same order on every
  // rank, so the collectives match).
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].ready == buckets[next_launch].members.size())
      launch(buckets[next_launch++]);
  }

  void launch(Bucket& b) {
    std::vector<torch::Tensor> parts;
    for (size_t k : b.members) {
      const auto& p = params[k];
      parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}, p.options()));
    }
    b.flat = torch::cat(parts);
    std::vector<torch::Tensor> v{b.flat};
    b.work = ctx.groups_->world->allreduce(v);
  }

  void prepare(bool last) {
    std::lock_guard<std::mutex> lock(mu);
    armed = last;
    next_launch = 0;
    for (auto& b : buckets) b.ready = 0, b.work.reset();
  }

  void finish() {
    {
      std::lock_guard<std::mutex> lock(mu);
      TORCH_CHECK(armed, "gradient sync: finish() without prepare(true)");
      // Parameters that took no part in this backward never fired: their buckets go now.
      for (auto& b : buckets) b.ready = b.members.size();
      launch_ready();
      armed = false;
    }
    torch::NoGradGuard g;
    const double inv = 1.0 / ctx.world_;
    for (auto& b : buckets) {
      b.work->wait();
      b.flat.mul_(inv);
      int64_t off = 0;
      for (size_t k : b.members) {
        auto& p = params[k];
        auto part = b.flat.narrow(0, off, p.numel()).view(p.sizes());
        off += p.numel();
        if (p.grad().defined())
          p.mutable_grad().copy_(part);
        else
          p.mutable_grad() = part.clone();
      }
      b.work.reset();
      b.flat = torch::Tensor();
    }
  }
};

Context::GradSync::GradSync(Context& ctx, std::vector<torch::Tensor> params)
    : impl_(std::make_unique<Impl>(ctx, std::move(params))) {}
Context::GradSync::~GradSync() = default;
void Context::GradSync::prepare(bool last) { impl_->prepare(last); }
void Context::GradSync::finish() { impl_->finish(); }

std::string describe_failure(const Context& ctx, const std::exception& e) {
  std::string what = e.what();
  // c10::Error appends a C++ backtrace: keep the first line.
  if (auto nl = what.find('\n'); nl != std::string::npos) what = what.substr(0, nl);
  return fmt::format("rank {}/{}: {} (a job of {} processes: a peer rank may have died, hung or exceeded "
                     "dist.timeout_s = {} s; this rank stops too; continue from the last checkpoint with --resume)",
                     ctx.rank(), ctx.world(), what, ctx.world(), ctx.options().timeout_s);
}

}  // namespace mgl::harness::dist
