// `megalodon bench`: forward+backward throughput and peak memory of Megalodon against the
// Transformer baseline of matched width and depth, measured side by side in one run.
//
// Every (model, length) cell runs in a fresh child process (this executable with --cell) so that
// its peak resident memory is its own; the parent prints the table and optionally writes JSON.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "core/models/factory.h"
#include "core/util/memory.h"

namespace mgl::cli {
namespace {

struct BenchOptions {
  std::vector<int64_t> lengths{1024, 4096, 16384};
  std::vector<std::string> models{"megalodon", "transformer"};
  int64_t dim = 256, layers = 4, heads = 1, chunk = 1024, batch = 1, vocab = 8192, cema_ndim = 16;
  int repeats = 3, warmup = 1, threads = 0;
  std::string device = "cpu", json;
  bool gemm = false;
};

const char* kHelp =
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
    "  --device cpu|cuda\n"
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

struct Cell {
  std::string model;
  int64_t length = 0;
  bool ok = false;
  std::string error;
  double tokens_per_s = 0, ms_per_iter = 0, peak_mib = 0, base_mib = 0, gflops = 0;
  int64_t params = 0;
};

// Runs in the child: build, warm up, time, report one line.
int run_cell(const BenchOptions& o, const std::string& model, int64_t L) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
  torch::manual_seed(0);
  torch::Device dev(o.device);
  auto mcfg = megalodon_config(o);
  CausalLM lm = model == "megalodon" ? make_megalodon_lm(mcfg) : make_transformer_lm(TransformerConfig::matched(mcfg));
  lm->to(dev);
  lm->train();
  auto tokens = torch::randint(o.vocab, {o.batch, L + 1}, torch::TensorOptions().dtype(torch::kInt64).device(dev));
  auto x = tokens.narrow(1, 0, L), y = tokens.narrow(1, 1, L);
  const double base = current_rss_bytes() / 1048576.0;
  auto step = [&] {
    auto logits = lm->forward(x);
    auto loss = torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), y.reshape({-1}));
    loss.backward();
    for (auto& p : lm->parameters()) p.mutable_grad() = torch::Tensor();
    if (dev.is_cuda()) torch::cuda::synchronize();
  };
  for (int i = 0; i < o.warmup; ++i) step();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.repeats; ++i) step();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / o.repeats;
  const double tps = o.batch * L / s;
  std::printf("CELL %.6g %.6g %.6g %.6g %ld %.6g\n", tps, s * 1e3, peak_rss_bytes() / 1048576.0, base,
              count_parameters(*lm), 3.0 * lm->flops_per_token(L) * tps / 1e9);
  return 0;
}

Cell spawn_cell(const BenchOptions& o, const std::vector<std::string>& args, const std::string& model, int64_t L) {
  Cell c;
  c.model = model;
  c.length = L;
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
  cmd += fmt::format(" --cell {} {} 2>&1", model, L);
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
    if (std::sscanf(out.c_str() + pos, "CELL %lf %lf %lf %lf %ld %lf", &c.tokens_per_s, &c.ms_per_iter, &c.peak_mib,
                    &c.base_mib, &params, &c.gflops) == 6) {
      c.params = params;
      c.ok = true;
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
      std::fputs(kHelp, stdout);
      return 0;
    } else if (a == "--cell") {
      if (i + 2 >= args.size()) throw std::invalid_argument("--cell needs MODEL LENGTH");
      return run_cell(o, args[i + 1], std::stoll(args[i + 2]));
    } else if (a == "--lengths") o.lengths = parse_ints(next());
    else if (a == "--models") o.models = parse_strs(next());
    else if (a == "--dim") o.dim = std::stoll(next());
    else if (a == "--layers") o.layers = std::stoll(next());
    else if (a == "--heads") o.heads = std::stoll(next());
    else if (a == "--chunk") o.chunk = std::stoll(next());
    else if (a == "--batch") o.batch = std::stoll(next());
    else if (a == "--vocab") o.vocab = std::stoll(next());
    else if (a == "--cema-ndim") o.cema_ndim = std::stoll(next());
    else if (a == "--repeats") o.repeats = std::stoi(next());
    else if (a == "--warmup") o.warmup = std::stoi(next());
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--device") o.device = next();
    else if (a == "--json") { o.json = args.at(++i); }
    else if (a == "--gemm") o.gemm = true;
    else throw std::invalid_argument("unknown option '" + a + "' (see megalodon bench --help)");
  }
  if (o.gemm) return gemm_bench(o);
  for (auto& m : o.models)
    if (m != "megalodon" && m != "transformer") throw std::invalid_argument("unknown model '" + m + "'");
  megalodon_config(o).validate("bench");

  const auto mcfg = megalodon_config(o);
  const auto tcfg = TransformerConfig::matched(mcfg);
  std::printf("megalodon bench: forward+backward, batch %ld, device %s, %d intra-op threads\n", o.batch,
              o.device.c_str(), o.threads > 0 ? o.threads : torch::get_num_threads());
  std::printf("  Megalodon: %ld layers, D=%ld, H=%ld, Z=%ld, E=%ld, F=%ld, N=%ld, C=%ld, V=%ld\n", mcfg.num_layers,
              mcfg.model_dim, mcfg.num_heads, mcfg.z_dim, mcfg.value_dim, mcfg.ffn_hidden_dim, mcfg.cema_ndim,
              mcfg.chunk_size, mcfg.vocab_size);
  std::printf("  Transformer: %ld layers, D=%ld, H=%ld, F=%ld (SwiGLU), full causal attention\n", tcfg.num_layers,
              tcfg.model_dim, tcfg.num_heads, tcfg.ffn_hidden_dim);
  std::fflush(stdout);

  std::vector<Cell> cells;
  for (int64_t L : o.lengths)
    for (const auto& m : o.models) {
      std::fprintf(stderr, "  running %s L=%ld ...\n", m.c_str(), L);
      cells.push_back(spawn_cell(o, passthrough, m, L));
    }

  auto find = [&](const std::string& m, int64_t L) -> const Cell* {
    for (auto& c : cells)
      if (c.model == m && c.length == L) return &c;
    return nullptr;
  };
  std::printf("\n| L | model | params | tokens/s | ms/iter | GFLOP/s | peak RSS MiB | over baseline MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto& c : cells) {
    if (c.ok)
      std::printf("| %ld | %s | %.2fM | %.0f | %.1f | %.1f | %.0f | %.0f |\n", c.length, c.model.c_str(), c.params / 1e6,
                  c.tokens_per_s, c.ms_per_iter, c.gflops, c.peak_mib, c.peak_mib - c.base_mib);
    else
      std::printf("| %ld | %s | - | failed: %s | | | | |\n", c.length, c.model.c_str(), c.error.c_str());
  }
  std::printf("\n| L | Megalodon/Transformer tokens/s | Megalodon/Transformer peak memory |\n|---|---|---|\n");
  for (int64_t L : o.lengths) {
    auto a = find("megalodon", L), b = find("transformer", L);
    if (a && b && a->ok && b->ok)
      std::printf("| %ld | %.2fx | %.2fx |\n", L, a->tokens_per_s / b->tokens_per_s,
                  (a->peak_mib - a->base_mib) / std::max(1.0, b->peak_mib - b->base_mib));
    else
      std::printf("| %ld | n/a | n/a |\n", L);
  }

  if (!o.json.empty()) {
    std::string j = "{\n  \"device\": \"" + o.device + "\",\n  \"batch\": " + std::to_string(o.batch) + ",\n  \"cells\": [\n";
    for (size_t i = 0; i < cells.size(); ++i) {
      const auto& c = cells[i];
      j += fmt::format(
          "    {{\"model\": \"{}\", \"length\": {}, \"ok\": {}, \"params\": {}, \"tokens_per_s\": {:.6g}, "
          "\"ms_per_iter\": {:.6g}, \"gflops\": {:.6g}, \"peak_rss_mib\": {:.6g}, \"base_rss_mib\": {:.6g}}}{}\n",
          c.model, c.length, c.ok ? "true" : "false", c.params, c.tokens_per_s, c.ms_per_iter, c.gflops, c.peak_mib,
          c.base_mib, i + 1 < cells.size() ? "," : "");
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
