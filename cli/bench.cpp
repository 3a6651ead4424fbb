// `megalodon bench`: forward+backward throughput and peak memory of Megalodon against the
// Transformer baseline of matched width and depth, measured side by side in one run.
//
// Every (model, length, kernels) cell runs in a fresh child process (this executable with --cell)
// so that its peak memory is its own; the parent prints the table and optionally writes JSON.
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
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/models/factory.h"
#include "core/models/megalodon.h"
#include "core/models/transformer.h"
#include "core/ops/attention.h"
#include "core/util/memory.h"
#include "harness/autocast.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace mgl::cli {
namespace {

struct BenchOptions {
  std::vector<int64_t> lengths{1024, 4096, 16384};
  std::vector<std::string> models{"megalodon", "transformer"};
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

// CPU keeps the historical defaults (results/bench/cpu_core.*); CUDA defaults to the quoted figure.
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
    "usage: megalodon bench [options]\n"
    "Times forward+backward (tokens/s) and peak memory of Megalodon and a Llama-style Transformer of\n"
    "matched width and depth at several sequence lengths, one child process per cell.\n\n"
    "  --lengths 1024,4096,16384   sequence lengths (tokens per sequence)\n"
    "  --models megalodon,transformer\n"
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
    "  --breakdown | --no-breakdown  per-op times (each sub-module alone, forward+backward)\n"
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
};

struct Cell {
  std::string model, kernels, fused;
  int64_t length = 0;
  bool ok = false;
  std::string error;
  double tokens_per_s = 0, ms_per_iter = 0, peak_mib = 0, base_mib = 0, gflops = 0, mfu = 0;
  int64_t params = 0;
  std::vector<OpTime> ops;
};

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
  return current_rss_bytes() / 1048576.0;
}
double memory_peak_mib(const torch::Device& d) {
#ifdef MEGALODON_WITH_CUDA_GLUE
  if (is_cuda(d)) return c10::cuda::CUDACachingAllocator::getDeviceStats(d.index() < 0 ? 0 : d.index())
                             .allocated_bytes[0].peak / 1048576.0;
#endif
  (void)d;
  return peak_rss_bytes() / 1048576.0;
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
// seeds a random gradient. Returns ms per call, or a negative value when it failed.
template <typename F>
double time_module(const BenchOptions& o, const torch::Device& dev, const torch::Tensor& x0, bool bf16, F fn) {
  try {
    torch::Tensor x = x0.detach().clone().requires_grad_();
    harness::AutocastScope ac(bf16);
    torch::Tensor g;
    return 1e3 * time_it(o, dev, [&] {
             torch::Tensor y = fn(x);
             if (!g.defined()) g = torch::randn_like(y);
             y.backward(g);
             x.mutable_grad() = torch::Tensor();
           });
  } catch (const std::exception&) {
    return -1.0;
  }
}

std::vector<OpTime> breakdown(const BenchOptions& o, const torch::Device& dev, const std::string& model,
                              const MegalodonConfig& mcfg, int64_t L, bool bf16) {
  std::vector<OpTime> out;
  const int64_t B = o.batch, D = mcfg.model_dim;
  auto opts = torch::TensorOptions().device(dev);
  torch::Tensor x = torch::randn({B, L, D}, opts);
  const double layers = static_cast<double>(mcfg.num_layers);
  auto add = [&](const std::string& name, double ms) { out.push_back({name, ms < 0 ? -1.0 : ms * layers}); };
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
    // RoPE + chunked attention on already projected q, k (normalised, as in the layer) and v.
    torch::Tensor qk = torch::nn::functional::normalize(torch::randn({B, L, H, 2 * dz}, opts),
                                                        torch::nn::functional::NormalizeFuncOptions().dim(-1));
    torch::Tensor v = torch::randn({B, L, H, dv}, opts);
    torch::Tensor qkv = torch::cat({qk, v}, -1);
    add("RoPE + chunked attention", time_module(o, dev, qkv, bf16, [&](const torch::Tensor& t) {
          auto parts = t.split_with_sizes({dz, dz, dv}, -1);
          torch::Tensor vv = bf16 ? parts[2].to(torch::kBFloat16) : parts[2];
          return mega->attend(parts[0], parts[1], vv, nullptr, torch::Tensor());
        }));
    add("MEGA layer (all)", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return mega(t); }));
    add("NFFN", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block->nffn(t, t); }));
    add("block (all)", time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block(t); }));
  } else {
    const auto tcfg = TransformerConfig::matched(mcfg);
    TransformerBlock block(tcfg, 0);
    block->to(dev);
    block->train();
    add("attention (RoPE + SDPA or reference + projections)",
        time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block->attention(t, 0, nullptr, nullptr); }));
    add("block (all)",
        time_module(o, dev, x, bf16, [&](const torch::Tensor& t) { return block(t, 0, nullptr, nullptr); }));
  }
  return out;
}

// Runs in the child: build, warm up, time, report one CELL line (and OP lines).
int run_cell(const BenchOptions& o, const std::string& model, int64_t L, const std::string& kernels,
             const std::string& fused) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  torch::manual_seed(0);
  torch::Device dev(o.device);
  auto mcfg = megalodon_config(o);
  const KernelImpl impl = parse_kernel_impl("--kernels", kernels);
  mcfg.kernel_cema = mcfg.kernel_timestep_norm = mcfg.kernel_attention = impl;
  ops::set_fused_attention_backend(ops::parse_fused_attention_backend(fused));
  const bool bf16 = o.precision == "bf16";
  CausalLM lm = model == "megalodon" ? make_megalodon_lm(mcfg) : make_transformer_lm(TransformerConfig::matched(mcfg));
  lm->to(dev);
  lm->train();
  auto tokens = torch::randint(o.vocab, {o.batch, L + 1}, torch::TensorOptions().dtype(torch::kInt64).device(dev));
  auto x = tokens.narrow(1, 0, L), y = tokens.narrow(1, 1, L);
  sync(dev);
  const double base = memory_now_mib(dev);
  auto step = [&] {
    {
      harness::AutocastScope ac(bf16);
      auto logits = lm->forward(x);
      auto loss = torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}).to(torch::kFloat32),
                                                       y.reshape({-1}));
      loss.backward();
    }
    for (auto& p : lm->parameters()) p.mutable_grad() = torch::Tensor();
  };
  const double s = time_it(o, dev, step);
  const double peak = memory_peak_mib(dev);
  const double tps = o.batch * L / s;
  const double flops = 3.0 * lm->flops_per_token(L) * tps;  // forward + backward (2×) matmul FLOPs
  std::printf("CELL %.6g %.6g %.6g %.6g %ld %.6g %.6g\n", tps, s * 1e3, peak, base, count_parameters(*lm), flops / 1e9,
              flops / (o.peak_tflops * 1e12));
  if (o.breakdown) {
    lm = nullptr;  // free the model before timing the parts
    for (const auto& op : breakdown(o, dev, model, mcfg, L, bf16)) std::printf("OP %.6g %s\n", op.ms, op.name.c_str());
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
  std::string cmd = "'" + std::string(self) + "' bench";
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
    if (std::sscanf(out.c_str() + pos, "CELL %lf %lf %lf %lf %ld %lf %lf", &c.tokens_per_s, &c.ms_per_iter,
                    &c.peak_mib, &c.base_mib, &params, &c.gflops, &c.mfu) == 7) {
      c.params = params;
      c.ok = true;
    }
    std::stringstream ss(out.substr(pos));
    for (std::string line; std::getline(ss, line);) {
      if (line.rfind("OP ", 0) != 0) continue;
      std::stringstream ls(line.substr(3));
      OpTime op;
      ls >> op.ms;
      std::getline(ls >> std::ws, op.name);
      c.ops.push_back(op);
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

int gemm_bench(const BenchOptions& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  const int64_t n = 2048;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  torch::mm(a, b);
  auto t0 = std::chrono::steady_clock::now();
  const int reps = 5;
  for (int i = 0; i < reps; ++i) torch::mm(a, b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  std::printf("fp32 matmul %ldx%ld: %.1f ms, %.1f GFLOP/s on %d threads\n", n, n, s * 1e3, 2.0 * n * n * n / s / 1e9,
              torch::get_num_threads());
  return 0;
}

std::string combo_label(const Cell& c) {
  if (c.model == "transformer") return ops::sdpa_available() ? "sdpa" : "reference";
  return c.kernels == "reference" ? c.kernels : c.kernels + "/" + c.fused;
}

}  // namespace

int bench_main(const std::vector<std::string>& args) {
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
    else throw std::invalid_argument("unknown option '" + a + "' (see megalodon bench --help)");
  }
  if (o.gemm) return gemm_bench(o);
  for (auto& m : o.models)
    if (m != "megalodon" && m != "transformer") throw std::invalid_argument("unknown model '" + m + "'");
  finish_defaults(o);
  megalodon_config(o).validate("bench");

  const auto mcfg = megalodon_config(o);
  const auto tcfg = TransformerConfig::matched(mcfg);
  const bool cuda = torch::Device(o.device).is_cuda();
  std::printf("megalodon bench: forward+backward, batch %ld, device %s, %s, %d intra-op threads\n", o.batch,
              o.device.c_str(), o.precision == "bf16" ? "bf16 autocast" : "fp32",
              o.threads > 0 ? o.threads : torch::get_num_threads());
  std::printf("  Megalodon%s: %ld layers, D=%ld, H=%ld, Z=%ld, E=%ld, F=%ld, N=%ld, C=%ld, V=%ld\n",
              o.preset.empty() ? "" : (" " + o.preset).c_str(), mcfg.num_layers, mcfg.model_dim, mcfg.num_heads,
              mcfg.z_dim, mcfg.value_dim, mcfg.ffn_hidden_dim, mcfg.cema_ndim, mcfg.chunk_size, mcfg.vocab_size);
  std::printf("  Transformer: %ld layers, D=%ld, H=%ld, F=%ld (SwiGLU), full causal attention (%s)\n", tcfg.num_layers,
              tcfg.model_dim, tcfg.num_heads, tcfg.ffn_hidden_dim,
              ops::sdpa_available() ? "scaled_dot_product_attention" : "reference attention");
  std::printf("  memory: %s; MFU: 3 x analytic forward matmul FLOPs per token x tokens/s / %.0f TFLOP/s\n",
              cuda ? "CUDA caching-allocator peak (allocated)" : "peak RSS", o.peak_tflops);
  std::fflush(stdout);

  // Megalodon: one cell per kernels value (and per fused attention backend when not reference);
  // the Transformer has none of our kernels: one cell per length.
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
        std::fprintf(stderr, "  running %s L=%ld kernels=%s ...\n", m.c_str(), L, combos[i].first.c_str());
        cells.push_back(spawn_cell(o, passthrough, m, L, combos[i].first, combos[i].second));
      }
    }

  std::printf("\n| L | model | kernels | params | tokens/s | ms/iter | GFLOP/s |%s %s MiB | over baseline MiB |\n",
              cuda ? " MFU |" : "", cuda ? "peak allocated" : "peak RSS");
  std::printf("|---|---|---|---|---|---|---|%s---|---|\n", cuda ? "---|" : "");
  for (const auto& c : cells) {
    if (c.ok)
      std::printf("| %ld | %s | %s | %.2fM | %.0f | %.1f | %.1f |%s %.0f | %.0f |\n", c.length, c.model.c_str(),
                  combo_label(c).c_str(), c.params / 1e6, c.tokens_per_s, c.ms_per_iter, c.gflops,
                  cuda ? fmt::format(" {:.1f}% |", 100 * c.mfu).c_str() : "", c.peak_mib, c.peak_mib - c.base_mib);
    else
      std::printf("| %ld | %s | %s | - | failed: %s | | |%s | |\n", c.length, c.model.c_str(), combo_label(c).c_str(),
                  c.error.c_str(), cuda ? " |" : "");
  }
  std::printf("\n| L | Megalodon kernels | Megalodon/Transformer tokens/s | Megalodon/Transformer peak memory |\n"
              "|---|---|---|---|\n");
  for (int64_t L : o.lengths) {
    const Cell* t = nullptr;
    for (auto& c : cells)
      if (c.model == "transformer" && c.length == L) t = &c;
    for (auto& a : cells) {
      if (a.model != "megalodon" || a.length != L) continue;
      if (t && a.ok && t->ok)
        std::printf("| %ld | %s | %.2fx | %.2fx |\n", L, combo_label(a).c_str(), a.tokens_per_s / t->tokens_per_s,
                    (a.peak_mib - a.base_mib) / std::max(1.0, t->peak_mib - t->base_mib));
      else
        std::printf("| %ld | %s | n/a | n/a |\n", L, combo_label(a).c_str());
    }
  }
  bool any_ops = false;
  for (auto& c : cells) any_ops = any_ops || !c.ops.empty();
  if (any_ops) {
    std::printf("\nPer-op breakdown: each sub-module alone, forward+backward at the cell's shapes, times the layer "
                "count (ms per step; share of the measured step)\n\n| L | model | kernels | op | ms/step | share |\n"
                "|---|---|---|---|---|---|\n");
    for (auto& c : cells)
      for (auto& op : c.ops) {
        if (op.ms < 0)
          std::printf("| %ld | %s | %s | %s | failed | |\n", c.length, c.model.c_str(), combo_label(c).c_str(),
                      op.name.c_str());
        else
          std::printf("| %ld | %s | %s | %s | %.1f | %.0f%% |\n", c.length, c.model.c_str(), combo_label(c).c_str(),
                      op.name.c_str(), op.ms, c.ms_per_iter > 0 ? 100 * op.ms / c.ms_per_iter : 0.0);
      }
  }

  if (!o.json.empty()) {
    std::string j = "{\n  \"device\": \"" + o.device + "\",\n  \"batch\": " + std::to_string(o.batch) +
                    ",\n  \"precision\": \"" + o.precision + "\",\n  \"preset\": \"" + o.preset +
                    "\",\n  \"memory\": \"" + (cuda ? "cuda_allocator_peak" : "peak_rss") +
                    "\",\n  \"peak_tflops\": " + fmt::format("{:.6g}", o.peak_tflops) + ",\n  \"cells\": [\n";
    for (size_t i = 0; i < cells.size(); ++i) {
      const auto& c = cells[i];
      std::string ops_json;
      for (size_t k = 0; k < c.ops.size(); ++k)
        ops_json += fmt::format("{}{{\"op\": \"{}\", \"ms_per_step\": {:.6g}}}", k ? ", " : "", c.ops[k].name,
                                c.ops[k].ms);
      j += fmt::format(
          "    {{\"model\": \"{}\", \"length\": {}, \"kernels\": \"{}\", \"ok\": {}, \"params\": {}, "
          "\"tokens_per_s\": {:.6g}, \"ms_per_iter\": {:.6g}, \"gflops\": {:.6g}, \"mfu\": {:.6g}, "
          "\"peak_rss_mib\": {:.6g}, \"base_rss_mib\": {:.6g}, \"ops\": [{}]}}{}\n",
          c.model, c.length, combo_label(c), c.ok ? "true" : "false", c.params, c.tokens_per_s, c.ms_per_iter,
          c.gflops, c.mfu, c.peak_mib, c.base_mib, ops_json, i + 1 < cells.size() ? "," : "");
    }
    j += "  ]\n}\n";
    const std::string tmp = o.json + ".tmp";
    {
      std::ofstream f(tmp);
      if (!f) throw std::runtime_error("cannot write " + tmp);
      f << j;
    }
    if (std::rename(tmp.c_str(), o.json.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + o.json);
    std::printf("\nwrote %s\n", o.json.c_str());
  }
  return 0;
}

static const Command kBench{"bench", "time forward+backward of Megalodon and the Transformer baseline (CPU or GPU)",
                           bench_main};

}  // namespace mgl::cli
