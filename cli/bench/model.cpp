// `megalodon bench model`: forward+backward throughput and peak memory of Megalodon against the
// Transformer baseline of matched width and depth, measured side by side in one run.
//
// Every (model, length, kernels) cell runs in a fresh child process (this executable with --cell)
// so that its peak memory is its own; the parent prints the table and optionally writes JSON.
//
// The Transformer baseline runs twice (issue 22): `transformer` with memory-efficient attention
// (SDPA on LibTorch >= 2, ops::blocked_attention on 1.13) — the fair baseline the ratio columns use —
// and `transformer-explicit` with the L×L softmax of the old baseline, up to --explicit-max-length.
// The loss is the models' nll() (the LM loss over slices: no B×L×V logits). On the CPU each cell
// reports peak RSS, the peak of live tensor bytes (tensor_memory), both per token, the user and
// system CPU time of the timed steps, and GFLOP/s as a share of the machine's fp32 GEMM rate
// (measured by the parent first); --breakdown adds each sub-module alone (time and activation memory
// kept for the backward) and where one step's time goes per ATen operator (self time, OpProfile).
//
// On CUDA (issue 11) the defaults are the figure users quote: the official mega200M preset and
// its matched Llama-style Transformer at 4K and 32K tokens per sequence, forward+backward under
// bf16 autocast (as `trainer.precision = "bf16"`: weights and optimizer state stay fp32; CEMA and
// the norm statistics stay fp32 inside autocast), once with the reference ops and once with our
// kernels (`--kernels reference,auto`). MFU = 3 · (analytic forward matmul FLOPs per token, the
// models' flops_per_token: every Linear, the embedding-tied or separate head, and causal attention
// counted as half of the visible window, QKᵀ and PV) · tokens/s / peak (989 TFLOP/s, H100 SXM dense
// bf16). Peak memory is the CUDA caching allocator's peak of allocated bytes on CUDA, peak RSS on
// the CPU. The per-op breakdown times each sub-module alone (forward+backward at the cell's
// shapes, synchronised wall clock, mean over the repeats) and multiplies by the layer count, so the
// rows can be compared with the whole step; it is not a profiler trace.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "cli/bench/bench.h"
#include "core/models/factory.h"
#include "core/models/megalodon.h"
#include "core/models/transformer.h"
#include "core/ops/attention.h"
#include "core/util/memory.h"
#include "core/util/op_profile.h"
#include "harness/train/autocast.h"
#include "harness/util/files.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace mgl::cli {
namespace {

struct BenchOptions {
  std::vector<int64_t> lengths{1024, 4096, 16384};
  std::vector<std::string> models{"megalodon", "transformer", "transformer-explicit"};
  int64_t explicit_max = 8192;  // transformer-explicit cells above this length are skipped
  int64_t transformer_max = 0;  // transformer cells above this length are skipped (0: none)
  bool checkpoint = false;      // model.checkpoint_activations
  bool cache_allocator = true;  // tensor_memory::set_cache_large_blocks on the CPU
  double gemm_gflops = 0;       // the CPU's fp32 GEMM rate (measured by the parent when 0)
  int64_t dim = 256, layers = 4, heads = 1, chunk = 1024, batch = 1, vocab = 8192, cema_ndim = 16;
  int repeats = 3, warmup = 1, threads = 0;
  std::string device = "cpu", json;
  bool gemm = false;
  // Issue 11. Empty/unset values take device-dependent defaults in finish_defaults().
  std::string preset;                      // a MegalodonConfig::preset name instead of --dim etc.
  std::vector<std::string> kernels;        // model.kernel_* values: reference, fused, auto
  std::vector<std::string> fused_attention{"kernel"};  // ops::FusedAttentionBackend for non-reference cells
  std::string precision;                   // fp32 | bf16 (autocast, CUDA only)
  int breakdown = -1;                      // per-op breakdown: 1 on, 0 off, -1 device default
  double peak_tflops = 989.0;              // MFU denominator
  bool lengths_set = false, shape_set = false, vocab_set = false;
};

// CPU keeps the historical defaults (the bench model of results/bench/cpu_*); CUDA defaults to the quoted figure.
void finish_defaults(BenchOptions& o) {
  const bool cuda = o.device.rfind("cuda", 0) == 0;
  if (cuda && o.preset.empty() && !o.shape_set) o.preset = "mega200M";
  if (cuda && !o.lengths_set) o.lengths = {4096, 32768};
  if (!o.preset.empty() && !o.vocab_set) o.vocab = 32000;  // the Llama-2 tokenizer of the official runs
  if (o.kernels.empty()) o.kernels = cuda ? std::vector<std::string>{"reference", "auto"} : std::vector<std::string>{"reference"};
  if (o.precision.empty()) o.precision = cuda ? "bf16" : "fp32";
  if (o.breakdown < 0) o.breakdown = cuda ? 1 : 0;
  if (o.precision != "fp32" && o.precision != "bf16")
    throw std::invalid_argument("--precision must be fp32 or bf16, got '" + o.precision + "'");
  if (o.precision == "bf16" && !cuda) throw std::invalid_argument("--precision bf16 is autocast on CUDA only");
  for (auto& k : o.kernels) parse_kernel_impl("--kernels", k);
  for (auto& f : o.fused_attention) ops::parse_fused_attention_backend(f);
}

const char* kBenchHelp =
    "usage: megalodon bench model [options]\n"
    "Times forward+backward (tokens/s) and peak memory of Megalodon and a Llama-style Transformer of\n"
    "matched width and depth at several sequence lengths, one child process per cell.\n\n"
    "  --lengths 1024,4096,16384   sequence lengths (tokens per sequence)\n"
    "  --models megalodon,transformer,transformer-explicit\n"
    "                              transformer: memory-efficient attention (SDPA on LibTorch >= 2,\n"
    "                              blocked online softmax on 1.13), the baseline of the ratio columns;\n"
    "                              transformer-explicit: the L×L softmax (the old baseline)\n"
    "  --explicit-max-length 8192  skip transformer-explicit cells above this length\n"
    "  --transformer-max-length L  skip transformer cells above L (its attention is quadratic in time)\n"
    "  --checkpoint                model.checkpoint_activations (every model)\n"
    "  --no-cache-allocator        large CPU blocks go back to the kernel at every free (glibc's way)\n"
    "  --gemm-gflops X             the GEMM rate for the share column (default: measured first)\n"
    "  --dim 256 --layers 4 --heads 1 --chunk 1024 --batch 1 --vocab 8192 --cema-ndim 16\n"
    "                              Megalodon shape (z_dim = dim/2·heads... see README); the Transformer\n"
    "                              gets the same D, depth and vocabulary, 64-wide heads\n"
    "  --repeats 3 --warmup 1      timed and untimed iterations per cell\n"
    "  --threads N                 intra-op threads (default: LibTorch's choice)\n"
    "  --device cpu|cuda           (cuda changes the defaults below: mega200M, 4096,32768, bf16,\n"
    "                              --kernels reference,auto, per-op breakdown)\n"
    "  --preset NAME               an official Megalodon preset (mega200M, ...) instead of --dim etc.;\n"
    "                              vocabulary 32000 unless --vocab\n"
    "  --kernels reference,auto    model.kernel_cema/_timestep_norm/_attention values, one cell each\n"
    "  --fused-attention kernel,sdpa  which fused attention the non-reference cells use (sdpa needs\n"
    "                              LibTorch >= 2.0); one cell each\n"
    "  --precision fp32|bf16       bf16 = autocast on CUDA (weights stay fp32)\n"
    "  --breakdown | --no-breakdown  each sub-module alone (forward+backward time, activation memory),\n"
    "                              and one step's self time per ATen operator (CPU)\n"
    "  --peak-tflops 989           MFU denominator (H100 SXM dense bf16)\n"
    "  --json FILE                 also write the figures as JSON\n"
    "  --gemm                      only time a 2048² fp32 matmul (checks which BLAS is in use)\n";

std::vector<int64_t> parse_ints(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) v.push_back(std::stoll(t));
  return v;
}
std::vector<std::string> parse_strs(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) v.push_back(t);
  return v;
}

MegalodonConfig megalodon_config(const BenchOptions& o) {
  if (!o.preset.empty()) {
    MegalodonConfig c = MegalodonConfig::preset(o.preset);
    c.vocab_size = o.vocab;
    return c;
  }
  MegalodonConfig c;
  c.num_layers = o.layers;
  c.model_dim = o.dim;
  c.num_heads = o.heads;
  c.z_dim = std::max<int64_t>(2 * o.heads, o.dim / 4 / o.heads * o.heads);
  c.value_dim = 2 * o.dim;
  c.ffn_hidden_dim = 2 * o.dim;
  c.cema_ndim = o.cema_ndim;
  c.chunk_size = o.chunk;
  c.norm_num_groups = std::min<int64_t>(32, o.dim);
  while (o.dim % c.norm_num_groups) --c.norm_num_groups;
  c.vocab_size = o.vocab;
  return c;
}

struct OpTime {
  std::string name;
  double ms = 0;
  double kept_bytes_per_token = -1;  // activation memory the sub-module keeps for its backward
};

struct OpShare {  // one ATen operator's self time in a profiled step
  std::string name;
  int64_t calls = 0;
  double self_ms = 0;
};

struct Cell {
  std::string model, kernels, fused;
  int64_t length = 0;
  bool ok = false, skipped = false;
  std::string error;
  double tokens_per_s = 0, ms_per_iter = 0, peak_mib = 0, base_mib = 0, gflops = 0, mfu = 0;
  double tensor_peak_mib = 0, user_s = 0, sys_s = 0, profiled_ms = 0;
  int64_t params = 0;
  std::vector<OpTime> ops;
  std::vector<OpShare> profile;
  double over_mib() const { return peak_mib - base_mib; }
};

bool is_transformer(const std::string& m) { return m == "transformer" || m == "transformer-explicit"; }

TransformerConfig transformer_config(const MegalodonConfig& m, const std::string& model) {
  TransformerConfig t = TransformerConfig::matched(m);
  t.attention = model == "transformer-explicit" ? BaselineAttention::explicit_softmax : BaselineAttention::auto_select;
  return t;
}

bool is_cuda(const torch::Device& d) { return d.is_cuda(); }


void sync(const torch::Device& d) {
  if (is_cuda(d)) torch::cuda::synchronize();
}

// Memory figures of the child: CUDA caching allocator (allocated bytes) or RSS.
double memory_now_mib(const torch::Device& d) {
#ifdef MEGALODON_WITH_CUDA_GLUE
  if (is_cuda(d)) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index() < 0 ? 0 : d.index())
                             .allocated_bytes[0].current / 1048576.0;
#endif
  (void)d;
  return (current_rss_bytes() - file_rss_bytes()) / 1048576.0;  // the process's own pages (memory.h)
}
// Bytes of live tensors: the CUDA allocator's, or the CPU tensors' (tensor_memory).
double tensor_bytes_now(const torch::Device& d) {
#ifdef MEGALODON_WITH_CUDA_GLUE
  if (is_cuda(d)) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index() < 0 ? 0 : d.index())
                             .allocated_bytes[0].current;
#endif
  (void)d;
  return static_cast<double>(tensor_memory::current_bytes());
}
double memory_peak_mib(const torch::Device& d) {
#ifdef MEGALODON_WITH_CUDA_GLUE
  if (is_cuda(d)) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index() < 0 ? 0 : d.index())
                             .allocated_bytes[0].peak / 1048576.0;
#endif
  (void)d;
  return (peak_rss_bytes() - file_rss_bytes()) / 1048576.0;  // the library pages mapped by then left out
}
// Mean seconds of fn() over the repeats after the warm-up, synchronised.
template <typename F>
double time_it(const BenchOptions& o, const torch::Device& dev, F fn) {
  for (int i = 0; i < o.warmup; ++i) fn();
  sync(dev);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.repeats; ++i) fn();
  sync(dev);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / std::max(1, o.repeats);
}

// Forward+backward of one sub-module alone at the cell's shapes: fn(x) → output; the backward
// seeds a random gradient. Returns ms per call (negative when it failed) and the bytes its forward
// keeps alive for the backward, output included, per token.
template <typename F>
std::pair<double, double> time_module(const BenchOptions& o, const torch::Device& dev, const torch::Tensor& x0,
                                      bool bf16, F fn) {
  try {
    torch::Tensor x = x0.detach().clone().requires_grad_();
    harness::AutocastScope ac(bf16);
    torch::Tensor g;
    double kept = -1;
    {
      sync(dev);
      const double before = tensor_bytes_now(dev);
      torch::Tensor y = fn(x);
      sync(dev);
      kept = (tensor_bytes_now(dev) - before) / static_cast<double>(x0.size(0) * x0.size(1));
      g = torch::randn_like(y);
      y.backward(g);
      x.mutable_grad() = torch::Tensor();
    }
    const double ms = 1e3 * time_it(o, dev, [&] {
                        torch::Tensor y = fn(x);
                        y.backward(g);
                        x.mutable_grad() = torch::Tensor();
                      });
    return {ms, kept};
  } catch (const std::exception&) {
    return {-1.0, -1.0};
  }
}

std::vector<OpTime> breakdown(const BenchOptions& o, const torch::Device& dev, const std::string& model,
                              const MegalodonConfig& mcfg, int64_t L, bool bf16) {
  std::vector<OpTime> out;
  const int64_t B = o.batch, D = mcfg.model_dim;
  auto opts = torch::TensorOptions().device(dev);
  torch::Tensor x = torch::randn({B, L, D}, opts);
  const double layers = static_cast<double>(mcfg.num_layers);
  auto add = [&](const std::string& name, std::pair<double, double> r) {
    out.push_back({name, r.first < 0 ? -1.0 : r.first * layers, r.second});
  };
  if (model == "megalodon") {
    MegaBlock block(mcfg, 0);
    block->to(dev);
    block->train();
    auto& mega = block->mega;
    const int64_t H = mcfg.num_heads, dz = mcfg.z_head_dim(), dv = mcfg.v_head_dim();
    add("timestep norm", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return mega->timenorm(t); }));
    add("CEMA", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) {
          return std::get<0>(mega->cema(t.transpose(1, 2), torch::Tensor(), false));
        }));
    // RoPE + chunked attention on already projected q, k (normalised, as in the layer) and W_v x̂:
    // the attention applies the silu of the values itself, as in the layer (silu_v).
    torch::Tensor qk = torch::nn::functional::normalize(torch::randn({B, L, H, 2 * dz}, opts),
                                                        torch::nn::functional::NormalizeFuncOptions().dim(-1));
    torch::Tensor v = torch::randn({B, L, H, dv}, opts);
    torch::Tensor qkv = torch::cat({qk, v}, -1);
    add("RoPE + chunked attention", time_module(o, dev, qkv, bf16, [&](const torch::Tensor& t) {
          auto parts = t.split_with_sizes({dz, dz, dv}, -1);
          torch::Tensor vv = bf16 ? parts[2].to(torch::kBFloat16) : parts[2];
          return mega->attend(parts[0], parts[1], vv, nullptr, torch::Tensor(), /*silu_v=*/true);
        }));
    add("MEGA layer (all)", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return mega(t); }));
    add("NFFN", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block->nffn(t, t); }));
    add("block (all)", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block(t); }));
  } else {
    const auto tcfg = transformer_config(mcfg, model);
    TransformerBlock block(tcfg, 0);
    block->to(dev);
    block->train();
    add(std::string("attention (RoPE + ") + to_string(resolve_baseline_attention(tcfg.attention)) + " + projections)",
        time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block->attention(t, 0, nullptr, nullptr); }));
    add("block (all)",
        time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block(t, 0, nullptr, nullptr); }));
  }
  return out;
}

double cpu_seconds(const timeval& t) { return t.tv_sec + 1e-6 * t.tv_usec; }

// Runs in the child: build, warm up, time, report one CELL line (and OP / PROF lines).
int run_cell(const BenchOptions& o, const std::string& model, int64_t L, const std::string& kernels,
             const std::string& fused) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  torch::manual_seed(0);
  torch::Device dev(o.device);
  tensor_memory::install();
  if (!dev.is_cuda() && o.cache_allocator) tensor_memory::set_cache_large_blocks(true);
  auto mcfg = megalodon_config(o);
  const KernelImpl impl = parse_kernel_impl("--kernels", kernels);
  mcfg.kernel_cema = mcfg.kernel_timestep_norm = mcfg.kernel_row_norm = mcfg.kernel_attention = impl;
  mcfg.checkpoint_activations = o.checkpoint;
  ops::set_fused_attention_backend(ops::parse_fused_attention_backend(fused));
  const bool bf16 = o.precision == "bf16";
  CausalLM lm = model == "megalodon" ? make_megalodon_lm(mcfg) : make_transformer_lm(transformer_config(mcfg, model));
  lm->to(dev);
  lm->train();
  auto tokens = torch::randint(o.vocab, {o.batch, L + 1}, torch::TensorOptions().dtype(torch::kInt64).device(dev));
  auto x = tokens.narrow(1, 0, L), y = tokens.narrow(1, 1, L);
  sync(dev);
  const double base = memory_now_mib(dev);
  const double tensor_base = tensor_bytes_now(dev);
  tensor_memory::reset_peak();
  // The LM loss over slices (nll): the models never form the B×L×V logits.
  auto step = [&] {
    {
      harness::AutocastScope ac(bf16);
      lm->nll(x, y).mean().backward();
    }
    for (auto& p : lm->parameters()) p.mutable_grad() = torch::Tensor();
  };
  for (int i = 0; i < o.warmup; ++i) step();
  sync(dev);
  rusage r0{}, r1{};
  getrusage(RUSAGE_SELF, &r0);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.repeats; ++i) step();
  sync(dev);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / std::max(1, o.repeats);
  getrusage(RUSAGE_SELF, &r1);
  const double peak = memory_peak_mib(dev);
  double tensor_peak = 0;
#ifdef MEGALODON_WITH_CUDA_GLUE
  if (dev.is_cuda())
    tensor_peak = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index() < 0 ? 0 : dev.index()).allocated_bytes[0].peak;
#endif
  if (!dev.is_cuda()) tensor_peak = static_cast<double>(tensor_memory::peak_bytes());
  const double tps = o.batch * L / s;
  const double flops = 3.0 * lm->flops_per_token(L) * tps;  // forward + backward (2×) matmul FLOPs
  const double reps = std::max(1, o.repeats);
  std::printf("CELL %.6g %.6g %.6g %.6g %ld %.6g %.6g %.6g %.6g %.6g\n", tps, s * 1e3, peak, base,
              count_parameters(*lm), flops / 1e9, flops / (o.peak_tflops * 1e12), (tensor_peak - tensor_base) / 1048576.0,
              (cpu_seconds(r1.ru_utime) - cpu_seconds(r0.ru_utime)) / reps,
              (cpu_seconds(r1.ru_stime) - cpu_seconds(r0.ru_stime)) / reps);
  std::fflush(stdout);
  if (o.breakdown) {
    if (!dev.is_cuda()) {  // one more step, every operator timed (CUDA ops return before they ran)
      OpProfile prof;
      auto p0 = std::chrono::steady_clock::now();
      step();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - p0).count();
      std::printf("PROFILED %.6g\n", ms);
      // 15 rows; 60 when the rows are split by caller (MEGALODON_OP_PROFILE_CALLERS, core/util/op_profile.h).
      const int rows = std::getenv("MEGALODON_OP_PROFILE_CALLERS") ? 60 : 15;
      int shown = 0;
      for (const auto& r : prof.rows()) {
        if (shown++ == rows) break;
        std::printf("PROF %ld %.6g %s\n", r.calls, r.self_ms, r.name.c_str());
      }
    }
    lm = nullptr;  // free the model before timing the parts
    for (const auto& op : breakdown(o, dev, model, mcfg, L, bf16))
      std::printf("OP %.6g %.6g %s\n", op.ms, op.kept_bytes_per_token, op.name.c_str());
  }
  std::fflush(stdout);
  return 0;
}

Cell spawn_cell(const BenchOptions& o, const std::vector<std::string>& args, const std::string& model, int64_t L,
                const std::string& kernels, const std::string& fused) {
  Cell c;
  c.model = model;
  c.length = L;
  c.kernels = kernels;
  c.fused = fused;
  // popen runs /bin/sh, whose /proc/self/exe is the shell: resolve our own path first.
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    c.error = "cannot resolve /proc/self/exe";
    return c;
  }
  self[n] = 0;
  std::string cmd = "'" + std::string(self) + "' bench model";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += fmt::format(" --cell {} {} {} {} 2>&1", model, L, kernels, fused);
  (void)o;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    c.error = "could not start a child process";
    return c;
  }
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = pclose(p);
  auto pos = out.find("CELL ");
  if (pos != std::string::npos) {
    long params = 0;
    if (std::sscanf(out.c_str() + pos, "CELL %lf %lf %lf %lf %ld %lf %lf %lf %lf %lf", &c.tokens_per_s,
                    &c.ms_per_iter, &c.peak_mib, &c.base_mib, &params, &c.gflops, &c.mfu, &c.tensor_peak_mib,
                    &c.user_s, &c.sys_s) == 10) {
      c.params = params;
      c.ok = true;
    }
    std::stringstream ss(out.substr(pos));
    for (std::string line; std::getline(ss, line);) {
      if (line.rfind("OP ", 0) == 0) {
        std::stringstream ls(line.substr(3));
        OpTime op;
        ls >> op.ms >> op.kept_bytes_per_token;
        std::getline(ls >> std::ws, op.name);
        c.ops.push_back(op);
      } else if (line.rfind("PROF ", 0) == 0) {
        std::stringstream ls(line.substr(5));
        OpShare r;
        ls >> r.calls >> r.self_ms;
        std::getline(ls >> std::ws, r.name);
        c.profile.push_back(r);
      } else if (line.rfind("PROFILED ", 0) == 0) {
        c.profiled_ms = std::stod(line.substr(9));
      }
    }
  }
  if (!c.ok) {
    if (WIFSIGNALED(status))
      c.error = fmt::format("killed by signal {} (out of memory?)", WTERMSIG(status));
    else {
      auto nl = out.find_last_of('\n', out.size() >= 2 ? out.size() - 2 : 0);
      c.error = out.substr(nl == std::string::npos ? 0 : nl + 1);
      while (!c.error.empty() && c.error.back() == '\n') c.error.pop_back();
      if (c.error.size() > 120) c.error = c.error.substr(0, 120) + "...";
    }
  }
  return c;
}

double gemm_gflops(const BenchOptions& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  return cpu_gemm_gflops();
}

int gemm_bench(const BenchOptions& o) {
  const double g = gemm_gflops(o);
  std::printf("fp32 matmul 2048x2048: %.1f GFLOP/s on %d threads (best of 5)\n", g, torch::get_num_threads());
  return 0;
}

std::string combo_label(const Cell& c) {
  if (c.model == "transformer") return to_string(resolve_baseline_attention(BaselineAttention::auto_select));
  if (c.model == "transformer-explicit") return "explicit";
  return c.kernels == "reference" ? c.kernels : c.kernels + "/" + c.fused;
}

std::string json_escape(const std::string& in) {
  std::string out;
  for (char ch : in) {
    if (ch == '"' || ch == '\\') out += '\\', out += ch;
    else if (static_cast<unsigned char>(ch) < 0x20) out += ' ';
    else out += ch;
  }
  return out;
}

std::string fmt_ratio(double a, double b) { return b > 0 && a > 0 ? fmt::format("{:.2f}x", a / b) : "n/a"; }

}  // namespace

int bench_model_main(const std::vector<std::string>& args) {
  BenchOptions o;
  std::vector<std::string> passthrough;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument("option " + a + " needs a value");
      passthrough.push_back(a);
      passthrough.push_back(args[i + 1]);
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kBenchHelp, stdout);
      return 0;
    } else if (a == "--cell") {
      if (i + 4 >= args.size()) throw std::invalid_argument("--cell needs MODEL LENGTH KERNELS FUSED");
      finish_defaults(o);
      return run_cell(o, args[i + 1], std::stoll(args[i + 2]), args[i + 3], args[i + 4]);
    } else if (a == "--lengths") o.lengths = parse_ints(next()), o.lengths_set = true;
    else if (a == "--models") o.models = parse_strs(next());
    else if (a == "--explicit-max-length") o.explicit_max = std::stoll(next());
    else if (a == "--transformer-max-length") o.transformer_max = std::stoll(next());
    else if (a == "--checkpoint") o.checkpoint = true, passthrough.push_back(a);
    else if (a == "--no-cache-allocator") o.cache_allocator = false, passthrough.push_back(a);
    else if (a == "--gemm-gflops") o.gemm_gflops = std::stod(next());
    else if (a == "--dim") o.dim = std::stoll(next()), o.shape_set = true;
    else if (a == "--layers") o.layers = std::stoll(next()), o.shape_set = true;
    else if (a == "--heads") o.heads = std::stoll(next()), o.shape_set = true;
    else if (a == "--chunk") o.chunk = std::stoll(next()), o.shape_set = true;
    else if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--vocab") o.vocab = std::stoll(next()), o.vocab_set = true;
    else if (a == "--cema-ndim") o.cema_ndim = std::stoll(next()), o.shape_set = true;
    else if (a == "--repeats") o.repeats = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--device") o.device = next();
    else if (a == "--preset") o.preset = next();
    else if (a == "--kernels") o.kernels = parse_strs(next());
    else if (a == "--fused-attention") o.fused_attention = parse_strs(next());
    else if (a == "--precision") o.precision = next();
    else if (a == "--peak-tflops") o.peak_tflops = std::stod(next());
    else if (a == "--breakdown" || a == "--no-breakdown") {
      o.breakdown = a == "--breakdown";
      passthrough.push_back(a);
    } else if (a == "--json") { o.json = args.at(++i); }
    else if (a == "--gemm") o.gemm = true;
    else throw std::invalid_argument("unknown option '" + a + "' (see megalodon bench model --help)");
  }
  if (o.gemm) return gemm_bench(o);
  for (auto& m : o.models)
    if (m != "megalodon" && !is_transformer(m))
      throw std::invalid_argument("unknown model '" + m + "' (megalodon, transformer, transformer-explicit)");
  finish_defaults(o);
  megalodon_config(o).validate("bench");

  const auto mcfg = megalodon_config(o);
  const auto tcfg = TransformerConfig::matched(mcfg);
  const bool cuda = torch::Device(o.device).is_cuda();
  if (!cuda && o.gemm_gflops <= 0) o.gemm_gflops = gemm_gflops(o);
  std::printf("megalodon bench model: forward+backward, batch %ld, device %s, %s, %d intra-op threads%s\n", o.batch,
              o.device.c_str(), o.precision == "bf16" ? "bf16 autocast" : "fp32",
              o.threads > 0 ? o.threads : torch::get_num_threads(), o.checkpoint ? ", activation checkpointing" : "");
  std::printf("  Megalodon%s: %ld layers, D=%ld, H=%ld, Z=%ld, E=%ld, F=%ld, N=%ld, C=%ld, V=%ld\n",
              o.preset.empty() ? "" : (" " + o.preset).c_str(), mcfg.num_layers, mcfg.model_dim, mcfg.num_heads,
              mcfg.z_dim, mcfg.value_dim, mcfg.ffn_hidden_dim, mcfg.cema_ndim, mcfg.chunk_size, mcfg.vocab_size);
  std::printf("  Transformer: %ld layers, D=%ld, H=%ld, F=%ld (SwiGLU), full causal attention: `transformer` %s, "
              "`transformer-explicit` the L×L softmax (LibTorch %s)\n",
              tcfg.num_layers, tcfg.model_dim, tcfg.num_heads, tcfg.ffn_hidden_dim,
              ops::sdpa_available() ? "scaled_dot_product_attention" : "blocked online softmax (ops::blocked_attention)",
              TORCH_VERSION);
  std::printf("  loss: nll() over slices (no B×L×V logits); memory: %s\n",
              cuda ? "CUDA caching-allocator peak (allocated)"
                   : "peak RSS of the process's own pages (mapped library pages left out) and peak live tensor bytes (tensor_memory), over the model's baseline");
  if (cuda)
    std::printf("  MFU: 3 x analytic forward matmul FLOPs per token x tokens/s / %.0f TFLOP/s\n", o.peak_tflops);
  else
    std::printf("  GEMM rate (fp32 2048² matmul, best of 5): %.1f GFLOP/s; the share column is GFLOP/s (3 x analytic "
                "forward matmul FLOPs per token x tokens/s) over it\n", o.gemm_gflops);
  std::fflush(stdout);

  // Megalodon: one cell per kernels value (and per fused attention backend when not reference);
  // the Transformers have none of our kernels: one cell per length.
  std::vector<std::pair<std::string, std::string>> combos;
  for (const auto& k : o.kernels) {
    if (k == "reference") combos.emplace_back(k, "kernel");
    else
      for (const auto& f : o.fused_attention) combos.emplace_back(k, f);
  }
  std::vector<Cell> cells;
  for (int64_t L : o.lengths)
    for (const auto& m : o.models) {
      const size_t n = m == "megalodon" ? combos.size() : 1;
      for (size_t i = 0; i < n; ++i) {
        const bool over_explicit = m == "transformer-explicit" && L > o.explicit_max;
        const bool over_transformer = m == "transformer" && o.transformer_max > 0 && L > o.transformer_max;
        if (over_explicit || over_transformer) {
          Cell c;
          c.model = m;
          c.length = L;
          c.skipped = true;
          c.error = over_explicit ? fmt::format("skipped: L×L attention above --explicit-max-length {}", o.explicit_max)
                                  : fmt::format("skipped: above --transformer-max-length {}", o.transformer_max);
          cells.push_back(c);
          continue;
        }
        std::fprintf(stderr, "  running %s L=%ld kernels=%s ...\n", m.c_str(), L, combos[i].first.c_str());
        cells.push_back(spawn_cell(o, passthrough, m, L, combos[i].first, combos[i].second));
      }
    }

  auto per_token_kib = [&](const Cell& c, double mib) { return mib * 1024.0 / static_cast<double>(o.batch * c.length); };
  std::printf("\n| L | model | attention / kernels | params | tokens/s | ms/iter | GFLOP/s | %s | peak %s MiB | over "
              "baseline MiB | KiB/token |%s\n",
              cuda ? "MFU" : "share of GEMM", cuda ? "allocated" : "RSS",
              cuda ? "" : " tensor peak KiB/token | sys/user |");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|%s\n", cuda ? "" : "---|---|");
  for (const auto& c : cells) {
    if (c.ok)
      std::printf("| %ld | %s | %s | %.2fM | %.0f | %.1f | %.1f | %.1f%% | %.0f | %.0f | %.1f |%s\n", c.length,
                  c.model.c_str(), combo_label(c).c_str(), c.params / 1e6, c.tokens_per_s, c.ms_per_iter, c.gflops,
                  cuda ? 100 * c.mfu : 100 * c.gflops / o.gemm_gflops, c.peak_mib, c.over_mib(),
                  per_token_kib(c, c.over_mib()),
                  cuda ? "" : fmt::format(" {:.1f} | {:.1f}% |", per_token_kib(c, c.tensor_peak_mib),
                                          c.user_s > 0 ? 100 * c.sys_s / c.user_s : 0.0).c_str());
    else
      std::printf("| %ld | %s | %s | - | %s%s | | | | | | |%s\n", c.length, c.model.c_str(), combo_label(c).c_str(),
                  c.skipped ? "" : "failed: ", c.error.c_str(), cuda ? "" : " | |");
  }
  std::printf("\n| L | Megalodon kernels | tokens/s vs Transformer (%s) | memory vs it | tokens/s vs Transformer "
              "(explicit) | memory vs it |\n|---|---|---|---|---|---|\n",
              to_string(resolve_baseline_attention(BaselineAttention::auto_select)));
  for (int64_t L : o.lengths) {
    const Cell *t = nullptr, *e = nullptr;
    for (auto& c : cells) {
      if (c.model == "transformer" && c.length == L && c.ok) t = &c;
      if (c.model == "transformer-explicit" && c.length == L && c.ok) e = &c;
    }
    for (auto& a : cells) {
      if (a.model != "megalodon" || a.length != L) continue;
      auto speed = [&](const Cell* b) { return a.ok && b ? fmt_ratio(a.tokens_per_s, b->tokens_per_s) : "n/a"; };
      auto mem = [&](const Cell* b) { return a.ok && b ? fmt_ratio(a.over_mib(), b->over_mib()) : "n/a"; };
      std::printf("| %ld | %s | %s | %s | %s | %s |\n", L, combo_label(a).c_str(), speed(t).c_str(), mem(t).c_str(),
                  speed(e).c_str(), mem(e).c_str());
    }
  }
  bool any_ops = false, any_prof = false;
  for (auto& c : cells) any_ops = any_ops || !c.ops.empty(), any_prof = any_prof || !c.profile.empty();
  if (any_ops) {
    std::printf("\nPer sub-module: each alone, forward+backward at the cell's shapes, times the layer count (ms per "
                "step; share of the measured step), and the activation memory its forward keeps for the backward "
                "(output included; one layer, per token)\n\n| L | model | attention / kernels | sub-module | "
                "ms/step | share | kept bytes/token |\n|---|---|---|---|---|---|---|\n");
    for (auto& c : cells)
      for (auto& op : c.ops) {
        if (op.ms < 0)
          std::printf("| %ld | %s | %s | %s | failed | | |\n", c.length, c.model.c_str(), combo_label(c).c_str(),
                      op.name.c_str());
        else
          std::printf("| %ld | %s | %s | %s | %.1f | %.0f%% | %.0f |\n", c.length, c.model.c_str(),
                      combo_label(c).c_str(), op.name.c_str(), op.ms,
                      c.ms_per_iter > 0 ? 100 * op.ms / c.ms_per_iter : 0.0, op.kept_bytes_per_token);
      }
  }
  if (any_prof) {
    std::printf("\nWhere one step's time goes: self time per ATen operator and autograd node (the 15 largest; one "
                "profiled step, share of its wall time)\n\n| L | model | operator | calls | self ms | share |\n"
                "|---|---|---|---|---|---|\n");
    for (auto& c : cells)
      for (auto& r : c.profile)
        std::printf("| %ld | %s | %s | %ld | %.1f | %.1f%% |\n", c.length, c.model.c_str(), r.name.c_str(), r.calls,
                    r.self_ms, c.profiled_ms > 0 ? 100 * r.self_ms / c.profiled_ms : 0.0);
  }

  if (!o.json.empty()) {
    std::string j = "{\n  \"device\": \"" + o.device + "\",\n  \"batch\": " + std::to_string(o.batch) +
                    ",\n  \"precision\": \"" + o.precision + "\",\n  \"preset\": \"" + o.preset +
                    "\",\n  \"libtorch\": \"" + TORCH_VERSION + "\",\n  \"threads\": " +
                    std::to_string(o.threads > 0 ? o.threads : torch::get_num_threads()) +
                    ",\n  \"checkpoint_activations\": " + (o.checkpoint ? "true" : "false") +
                    ",\n  \"memory\": \"" + (cuda ? "cuda_allocator_peak" : "peak_rss") +
                    "\",\n  \"gemm_gflops\": " + fmt::format("{:.6g}", o.gemm_gflops) +
                    ",\n  \"peak_tflops\": " + fmt::format("{:.6g}", o.peak_tflops) + ",\n  \"cells\": [\n";
    for (size_t i = 0; i < cells.size(); ++i) {
      const auto& c = cells[i];
      std::string ops_json, prof_json;
      for (size_t k = 0; k < c.ops.size(); ++k)
        ops_json += fmt::format("{}{{\"op\": \"{}\", \"ms_per_step\": {:.6g}, \"kept_bytes_per_token\": {:.6g}}}",
                                k ? ", " : "", c.ops[k].name, c.ops[k].ms, c.ops[k].kept_bytes_per_token);
      for (size_t k = 0; k < c.profile.size(); ++k)
        prof_json += fmt::format("{}{{\"op\": \"{}\", \"calls\": {}, \"self_ms\": {:.6g}}}", k ? ", " : "",
                                 json_escape(c.profile[k].name), c.profile[k].calls, c.profile[k].self_ms);
      j += fmt::format(
          "    {{\"model\": \"{}\", \"length\": {}, \"kernels\": \"{}\", \"ok\": {}, \"skipped\": {}, "
          "\"error\": \"{}\", \"params\": {}, \"tokens_per_s\": {:.6g}, \"ms_per_iter\": {:.6g}, "
          "\"gflops\": {:.6g}, \"gemm_share\": {:.6g}, \"mfu\": {:.6g}, \"peak_rss_mib\": {:.6g}, "
          "\"base_rss_mib\": {:.6g}, \"kib_per_token\": {:.6g}, \"tensor_peak_mib\": {:.6g}, \"user_s\": {:.6g}, "
          "\"sys_s\": {:.6g}, \"profiled_ms\": {:.6g}, \"ops\": [{}], \"profile\": [{}]}}{}\n",
          c.model, c.length, combo_label(c), c.ok ? "true" : "false", c.skipped ? "true" : "false", json_escape(c.error),
          c.params,
          c.tokens_per_s, c.ms_per_iter, c.gflops, o.gemm_gflops > 0 ? c.gflops / o.gemm_gflops : 0.0, c.mfu,
          c.peak_mib, c.base_mib, c.ok ? per_token_kib(c, c.over_mib()) : 0.0, c.tensor_peak_mib, c.user_s, c.sys_s,
          c.profiled_ms, ops_json, prof_json, i + 1 < cells.size() ? "," : "");
    }
    j += "  ]\n}\n";
    harness::write_file_atomic(o.json, j);
    std::printf("\nwrote %s\n", o.json.c_str());
  }
  return 0;
}

static const BenchOp kModel{"model", "time forward+backward of Megalodon and the Transformer baseline (CPU or GPU)",
                            bench_model_main};

}  // namespace mgl::cli
