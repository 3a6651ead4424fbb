// `megalodon bench timestep-norm`: the fused timestep norm (core/cuda/timestep_norm/) against the reference
// path: time, achieved bandwidth and speed-up over L, plus the CPU-emulated error growth with L of
// the kernel's scan next to a naive fp32 running sum and the reference path (fp64 oracle).
// On a CPU-only build it times the reference path and prints the error table.
#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/args.h"
#include "cli/bench/bench.h"
#include "core/cuda/timestep_norm/timestep_norm_emulate.h"
#include "core/ops/timestep_norm.h"
#include "core/ops/timestep_norm_lowmem.h"
#include "core/ops/timestep_norm_lowmem.h"
#include "harness/util/files.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include <c10/cuda/CUDAStream.h>

#include "core/cuda/timestep_norm/timestep_norm_glue.h"
#endif

namespace mgl::cli {
namespace {

using torch::Tensor;

const char* kBenchTsnHelp =
    "usage: megalodon bench timestep-norm [options]\n"
    "Times timestep normalisation (spec §2) forward and forward+backward: the reference path and,\n"
    "on CUDA in a build with the CUDA glue, the fused kernel; then prints the error growth with L\n"
    "of the kernel's scan (emulated on the CPU in fp32), a naive fp32 running sum and the\n"
    "reference path, each against an fp64 oracle.\n\n"
    "  --lengths 1024,4096,...      sequence lengths (default 1K..256K on cuda, 1K..16K on cpu)\n"
    "  --batch 1 --dim D --groups G  shape B×L×D, G groups (default D 1024 cuda / 256 cpu, G 16)\n"
    "  --dtype fp32|bf16            input dtype (statistics are fp32)\n"
    "  --device cpu|cuda\n"
    "  --repeats 5 --warmup 2\n"
    "  --error-lengths 1024,...     lengths of the error table (default 1K..256K; 0 = skip)\n"
    "  --json FILE                  also write the figures as JSON\n\n"
    "Bytes model (the traffic the kernels make; N = B·L·D elements of s bytes, S = B·G·L steps):\n"
    "  forward  3·N·s + 32·S  (x read twice: moments, normalise; y written; fp32 gm, gv, mean, rstd)\n"
    "  backward 5·N·s + 60·S  (x, dy read twice; dx written; the per-step fp32 terms)\n"
    "Bandwidth is reported as a fraction of the H100 SXM's 3.35 TB/s.\n";

std::vector<int64_t> parse_tsn_lengths(const std::string& key, const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) {
    const double d = parse_number(key, t);
    if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d)))
      throw std::invalid_argument(key + " expects non-negative integers, got '" + t + "'");
    if (d > 0) v.push_back(static_cast<int64_t>(d));
  }
  return v;
}

struct TimeRow {
  int64_t L;
  double ref_fwd_ms = 0, ref_fb_ms = 0, ker_fwd_ms = 0, ker_fb_ms = 0;
  double fwd_bytes = 0, bwd_bytes = 0;
};

struct ErrRow {
  int64_t L;
  double kernel, naive, reference;
};

constexpr double kPeakHbmBytesPerS = 3.35e12;

}  // namespace

static int bench_timestep_norm_main(const std::vector<std::string>& args) {
  const ParsedArgs a = parse_args(
      args, {"--lengths", "--batch", "--dim", "--groups", "--dtype", "--device", "--repeats", "--warmup",
             "--error-lengths", "--json"},
      {"--help", "-h"});
  if (a.flag("--help")) {
    std::printf("%s", kBenchTsnHelp);
    return 0;
  }
  const std::string device = a.option("--device", "cpu");
  if (device != "cpu" && device != "cuda") throw std::invalid_argument("--device expects cpu or cuda, got '" + device + "'");
  const bool cuda = device == "cuda";
  if (cuda && !torch::cuda::is_available()) throw std::runtime_error("--device cuda: no CUDA device is available");
  const std::string dts = a.option("--dtype", "fp32");
  if (dts != "fp32" && dts != "bf16") throw std::invalid_argument("--dtype expects fp32 or bf16, got '" + dts + "'");
  const torch::Dtype dt = dts == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const int64_t B = a.int_option("--batch", 1, 1), D = a.int_option("--dim", cuda ? 1024 : 256, 1);
  const int64_t G = a.int_option("--groups", 16, 1);
  if (D % G != 0) throw std::invalid_argument("--groups " + std::to_string(G) + " must divide --dim " + std::to_string(D));
  const int repeats = static_cast<int>(a.int_option("--repeats", 5, 1)), warmup = static_cast<int>(a.int_option("--warmup", 2, 0));
  const std::vector<int64_t> lengths = parse_tsn_lengths(
      "--lengths", a.option("--lengths", cuda ? "1024,4096,16384,65536,262144" : "1024,4096,16384"));
  const std::vector<int64_t> err_lengths =
      parse_tsn_lengths("--error-lengths", a.option("--error-lengths", "1024,4096,16384,65536,262144"));
  bool kernel = false;
#ifdef MEGALODON_WITH_CUDA_GLUE
  kernel = cuda;
#endif
  auto sync = [&] {
#ifdef MEGALODON_WITH_CUDA_GLUE
    if (cuda) c10::cuda::getCurrentCUDAStream().synchronize();
#endif
  };
  auto time_ms = [&](const std::function<void()>& fn) {
    for (int i = 0; i < warmup; ++i) fn();
    sync();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) fn();
    sync();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeats;
  };

  const auto opts = torch::TensorOptions().device(cuda ? torch::kCUDA : torch::kCPU);
  std::printf("timestep norm: B=%lld D=%lld G=%lld %s on %s%s\n", static_cast<long long>(B), static_cast<long long>(D),
              static_cast<long long>(G), dts.c_str(), device.c_str(), kernel ? " (fused kernel built)" : " (reference path only)");
  std::vector<TimeRow> rows;
  if (!lengths.empty()) {
    std::printf("\n| L | ref fwd ms | ref fwd+bwd ms | fused fwd ms | fused fwd+bwd ms | fused fwd BW | fused bwd BW | speed-up fwd | speed-up fwd+bwd |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|\n");
  }
  for (int64_t L : lengths) {
    torch::manual_seed(0);
    TimeRow r;
    r.L = L;
    const double s = dt == torch::kBFloat16 ? 2 : 4, N = static_cast<double>(B * L * D), S = static_cast<double>(B * G * L);
    r.fwd_bytes = 3 * N * s + 32 * S;
    r.bwd_bytes = 5 * N * s + 60 * S;
    Tensor x = (torch::randn({B, L, D}, opts) + 3).to(dt);
    Tensor dy = torch::randn({B, L, D}, opts).to(dt);
    Tensor w = torch::ones({D}, opts).requires_grad_(), b = torch::zeros({D}, opts).requires_grad_();
    ops::NormState st{torch::zeros({B}, opts.dtype(torch::kInt64)), torch::zeros({B, G}, opts), torch::ones({B, G}, opts)};
    auto ref = [&](const Tensor& xx) {  // the module's reference path: statistics on the fp32 upcast
      auto o = ops::timestep_norm(xx.scalar_type() == torch::kBFloat16 ? xx.to(torch::kFloat32) : xx, G, w, b, st, {}, 1e-5);
      return o.y.to(xx.scalar_type());
    };
    std::function<Tensor(const Tensor&)> ker;
#ifdef MEGALODON_WITH_CUDA_GLUE
    if (kernel) ker = [&](const Tensor& xx) { return cuda::timestep_norm_cuda(xx, G, w, b, st, {}, 1e-5).y; };
#endif
    auto fwd = [&](const std::function<Tensor(const Tensor&)>& f) {
      return time_ms([&] {
        torch::NoGradGuard ng;
        f(x);
      });
    };
    auto fb = [&](const std::function<Tensor(const Tensor&)>& f) {
      return time_ms([&] {
        Tensor xx = x.detach().requires_grad_();
        torch::autograd::grad({f(xx)}, {xx, w, b}, {dy});
      });
    };
    r.ref_fwd_ms = fwd(ref);
    r.ref_fb_ms = fb(ref);
    if (ker) {
      r.ker_fwd_ms = fwd(ker);
      r.ker_fb_ms = fb(ker);
      const double bw_f = r.fwd_bytes / (r.ker_fwd_ms * 1e-3) / kPeakHbmBytesPerS;
      const double bw_b = r.bwd_bytes / ((r.ker_fb_ms - r.ker_fwd_ms) * 1e-3) / kPeakHbmBytesPerS;
      std::printf("| %lld | %.3f | %.3f | %.3f | %.3f | %.1f%% | %.1f%% | %.2fx | %.2fx |\n", static_cast<long long>(L),
                  r.ref_fwd_ms, r.ref_fb_ms, r.ker_fwd_ms, r.ker_fb_ms, 100 * bw_f, 100 * bw_b,
                  r.ref_fwd_ms / r.ker_fwd_ms, r.ref_fb_ms / r.ker_fb_ms);
    } else {
      std::printf("| %lld | %.3f | %.3f | n/a | n/a | n/a | n/a | n/a | n/a |\n", static_cast<long long>(L), r.ref_fwd_ms,
                  r.ref_fb_ms);
    }
    std::fflush(stdout);
    rows.push_back(r);
  }

  // On the CPU, the module's path (ops::timestep_norm_lowmem): its loops against its LibTorch
  // expressions, at the same shapes.
  if (!cuda && !lengths.empty()) {
    std::printf("\nthe module's CPU path (timestep_norm_lowmem), fwd+bwd ms: its LibTorch expressions against its loops "
                "(core/cpu/timestep_norm)\n\n| L | LibTorch expressions | loops | speed-up |\n|---|---|---|---|\n");
    for (int64_t L : lengths) {
      torch::manual_seed(0);
      Tensor x = (torch::randn({B, L, D}) + 3).to(dt), dy = torch::randn({B, L, D}).to(dt);
      Tensor w = torch::ones({D}).requires_grad_(), b = torch::zeros({D}).requires_grad_();
      ops::NormState st{torch::zeros({B}, torch::kInt64), torch::zeros({B, G}), torch::ones({B, G})};
      auto fb = [&](bool loops) {
        return time_ms([&] {
          Tensor xx = x.detach().to(torch::kFloat32).requires_grad_();
          auto o = ops::timestep_norm_lowmem(xx, G, w, b, st, {}, 1e-5, loops);
          torch::autograd::grad({o.y}, {xx, w, b}, {dy.to(torch::kFloat32)});
        });
      };
      const double plain = fb(false), loops = fb(true);
      std::printf("| %lld | %.3f | %.3f | %.2fx |\n", static_cast<long long>(L), plain, loops, plain / loops);
      std::fflush(stdout);
    }
  }

  // Error growth: one column, g = 16 channels of N(10, 1) data; max |Δy| against the fp64 oracle.
  std::vector<ErrRow> errs;
  if (!err_lengths.empty()) {
    std::printf("\nerror growth with L (max |y − y_fp64|, 1×L×16, one group, data N(10, 1); CPU):\n");
    std::printf("| L | kernel scan (fp32, emulated) | naive fp32 running sums | reference path (fp32 in, fp64 stats) |\n");
    std::printf("|---|---|---|---|\n");
  }
  for (int64_t L : err_lengths) {
    torch::manual_seed(13);
    Tensor x = torch::randn({1, L, 16}) + 10;
    Tensor oracle = cuda::timestep_norm::emu::oracle_y(x);
    ops::NormState st{torch::zeros({1}, torch::kInt64), torch::zeros({1, 1}), torch::ones({1, 1})};
    Tensor yref = ops::timestep_norm(x, 1, torch::ones({16}), torch::zeros({16}), st, {}, 1e-5).y;
    ErrRow e{L, cuda::timestep_norm::emu::max_abs(cuda::timestep_norm::emu::kernel_y(x), oracle),
             cuda::timestep_norm::emu::max_abs(cuda::timestep_norm::emu::naive_y(x), oracle), cuda::timestep_norm::emu::max_abs(yref, oracle)};
    std::printf("| %lld | %.3g | %.3g | %.3g |\n", static_cast<long long>(L), e.kernel, e.naive, e.reference);
    std::fflush(stdout);
    errs.push_back(e);
  }

  const std::string json = a.option("--json");
  if (!json.empty()) {
    std::string j = fmt::format(
        "{{\n  \"device\": \"{}\", \"dtype\": \"{}\", \"batch\": {}, \"dim\": {}, \"groups\": {}, \"kernel\": {},\n"
        "  \"peak_bytes_per_s\": {:.4g},\n"
        "  \"bytes_model\": \"forward 3*N*s + 32*S, backward 5*N*s + 60*S (N = B*L*D, s = bytes/element, S = B*G*L)\",\n"
        "  \"timing\": [\n",
        device, dts, B, D, G, kernel ? "true" : "false", kPeakHbmBytesPerS);
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      j += fmt::format(
          "    {{\"L\": {}, \"ref_fwd_ms\": {:.6g}, \"ref_fwd_bwd_ms\": {:.6g}, \"fused_fwd_ms\": {:.6g}, "
          "\"fused_fwd_bwd_ms\": {:.6g}, \"fwd_bytes\": {:.6g}, \"bwd_bytes\": {:.6g}}}{}\n",
          r.L, r.ref_fwd_ms, r.ref_fb_ms, r.ker_fwd_ms, r.ker_fb_ms, r.fwd_bytes, r.bwd_bytes, i + 1 < rows.size() ? "," : "");
    }
    j += "  ],\n  \"error_growth\": [\n";
    for (size_t i = 0; i < errs.size(); ++i)
      j += fmt::format("    {{\"L\": {}, \"kernel\": {:.4g}, \"naive_fp32\": {:.4g}, \"reference\": {:.4g}}}{}\n", errs[i].L,
                       errs[i].kernel, errs[i].naive, errs[i].reference, i + 1 < errs.size() ? "," : "");
    j += "  ]\n}\n";
    harness::write_file_atomic(json, j);
    std::printf("\nwrote %s\n", json.c_str());
  }
  return 0;
}

static const BenchOp kTimestepNorm{"timestep-norm",
                                   "time the fused timestep norm against the reference path; its error growth with L",
                                   bench_timestep_norm_main};

}  // namespace mgl::cli
