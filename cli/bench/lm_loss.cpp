// `megalodon bench lm-loss`: the LM head's loss over slices (ops::sliced_linear_nll) on the CPU,
// its reference path (LibTorch expressions, logits recomputed in the backward) against the fused
// one (core/cpu/softmax_rows.h, gradients computed in the forward), side by side in one process;
// each as GFLOP/s of the three V×D matmuls the loss needs at least, and as a share of this
// machine's GEMM rate.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "cli/args.h"
#include "cli/bench/bench.h"
#include "core/ops/lm_loss.h"
#include "harness/util/files.h"

namespace mgl::cli {
namespace {

using torch::Tensor;

const char* kLmLossHelp =
    "usage: megalodon bench lm-loss [options]\n"
    "Times forward+backward of the LM loss over slices (mean NLL of log softmax(h Wᵀ)) on the CPU in\n"
    "fp32: the reference path against the fused one, in one process. GFLOP/s counts the 6·R·D·V\n"
    "FLOPs of the three matmuls any implementation needs (logits, dh, dW); the fused path runs\n"
    "exactly those, the reference path one more (the backward's recomputed logits).\n\n"
    "  --tokens 1024,8192,32768   rows R (tokens in the batch)\n"
    "  --dim 256 --vocab 8192     D and V\n"
    "  --rows-per-slice 0         0: the op's default (about 4M logits per slice)\n"
    "  --threads N                intra-op threads (default: LibTorch's choice)\n"
    "  --repeats 3 --warmup 1\n"
    "  --json FILE                also write the figures as JSON\n";

struct LossRow {
  int64_t R;
  double ref_ms, fused_ms, max_rel_diff;
};

int bench_lm_loss_main(const std::vector<std::string>& args) {
  const ParsedArgs a = parse_args(
      args, {"--tokens", "--dim", "--vocab", "--rows-per-slice", "--threads", "--repeats", "--warmup", "--json"},
      {"--help", "-h"});
  if (a.flag("--help")) {
    std::printf("%s", kLmLossHelp);
    return 0;
  }
  const int64_t D = a.int_option("--dim", 256, 1), V = a.int_option("--vocab", 8192, 1);
  const int64_t rows = a.int_option("--rows-per-slice", 0, 0);
  const int threads = static_cast<int>(a.int_option("--threads", 0, 0));
  const int repeats = static_cast<int>(a.int_option("--repeats", 3, 1)), warmup = static_cast<int>(a.int_option("--warmup", 1, 0));
  std::vector<int64_t> tokens;
  {
    std::stringstream ss(a.option("--tokens", "1024,8192,32768"));
    for (std::string t; std::getline(ss, t, ',');) {
      const double d = parse_number("--tokens", t);
      if (d < 1 || d != static_cast<double>(static_cast<int64_t>(d)))
        throw std::invalid_argument("--tokens expects positive integers, got '" + t + "'");
      tokens.push_back(static_cast<int64_t>(d));
    }
  }
  if (threads > 0) torch::set_num_threads(threads);
  const double gemm = cpu_gemm_gflops();
  std::printf("LM loss over slices, forward+backward of the mean NLL, fp32 on the CPU, D=%lld V=%lld, %d threads\n",
              static_cast<long long>(D), static_cast<long long>(V), torch::get_num_threads());
  std::printf("GEMM rate (fp32 2048² matmul, best of 5): %.1f GFLOP/s\n\n", gemm);
  std::printf("| tokens | reference ms | fused ms | speed-up | reference GFLOP/s (share of GEMM) | fused GFLOP/s (share of GEMM) | max rel. diff of dh |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  std::vector<LossRow> out;
  for (int64_t R : tokens) {
    torch::manual_seed(0);
    Tensor h0 = torch::randn({R, D}), w0 = torch::randn({V, D}) * (1.0 / std::sqrt(static_cast<double>(D)));
    Tensor t = torch::randint(V, {R});
    Tensor dh[2];
    auto time_ms = [&](bool plain) {
      double total = 0;
      for (int i = 0; i < warmup + repeats; ++i) {
        Tensor h = h0.clone().requires_grad_(), w = w0.clone().requires_grad_();
        const auto t0 = std::chrono::steady_clock::now();
        ops::sliced_linear_nll(h, w, t, rows, plain).mean().backward();
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (i >= warmup) total += ms;
        dh[plain ? 0 : 1] = h.grad();
      }
      return total / repeats;
    };
    LossRow r{R, time_ms(true), time_ms(false), 0};
    r.max_rel_diff = ((dh[1] - dh[0]).abs().max() / dh[0].abs().max()).item<double>();
    const double flops = 6.0 * static_cast<double>(R) * static_cast<double>(D) * static_cast<double>(V);
    const double gr = flops / (r.ref_ms * 1e6), gf = flops / (r.fused_ms * 1e6);
    std::printf("| %lld | %.1f | %.1f | %.2fx | %.1f (%.1f%%) | %.1f (%.1f%%) | %.2g |\n", static_cast<long long>(R), r.ref_ms,
                r.fused_ms, r.ref_ms / r.fused_ms, gr, 100 * gr / gemm, gf, 100 * gf / gemm, r.max_rel_diff);
    std::fflush(stdout);
    out.push_back(r);
  }
  const std::string json = a.option("--json");
  if (!json.empty()) {
    std::string j = fmt::format("{{\n  \"dim\": {}, \"vocab\": {}, \"threads\": {}, \"gemm_gflops\": {:.1f},\n  \"rows\": [\n", D,
                                V, torch::get_num_threads(), gemm);
    for (size_t i = 0; i < out.size(); ++i)
      j += fmt::format("    {{\"tokens\": {}, \"reference_ms\": {:.2f}, \"fused_ms\": {:.2f}, \"max_rel_diff_dh\": {:.3g}}}{}\n",
                       out[i].R, out[i].ref_ms, out[i].fused_ms, out[i].max_rel_diff, i + 1 < out.size() ? "," : "");
    j += "  ]\n}\n";
    harness::write_file_atomic(json, j);
    std::printf("\nwrote %s\n", json.c_str());
  }
  return 0;
}

}  // namespace

static const BenchOp kLmLoss{"lm-loss", "time the LM loss over slices on the CPU: reference path vs fused rows",
                             bench_lm_loss_main};

}  // namespace mgl::cli
