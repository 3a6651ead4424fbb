// `megalodon bench cema`: times the CEMA pieces (spec §1.4–§1.6) and the whole CEMA layer on the
// LibTorch reference path and on the fused CUDA scan, forward and forward+backward, and reports
// achieved bandwidth against the H100's 3.35 TB/s and the fused/reference speed-up.
//
// Bytes model (the minimum traffic of each op; sx = bytes per activation, coefficients fp32):
//   kernel   fwd: write k (D·L·4);            fwd+bwd: + read grad k (D·L·4)
//   fftconv  fwd: read x, write y (2·B·D·L·sx) + read k (D·L·4);
//            fwd+bwd: + read dy, x, write dx (3·B·D·L·sx) + read k, write dk (2·D·L·4)
//   hidden   fwd: read x (B·D·L·sx);          fwd+bwd: + write dx (B·D·L·sx)
//   layer    fwd: read x, write y (2·B·D·L·sx); fwd+bwd: + read dy, x, write dx (3·B·D·L·sx)
// (the B·D·N carried states are negligible). The fused scan computes kernel, fftconv, bias, ω·x
// and hidden state in one pass, so the fused column exists for the layer rows (and for the
// kernel forward, the CEMA impulse-response CUDA kernel); the other pieces have no separate fused
// kernel and say so. On CPU, or without the CUDA glue, only the reference path runs and the fused column says so.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "cli/args.h"
#include "cli/bench/bench.h"
#include "core/modules/cema.h"
#include "harness/util/files.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include "core/cuda/cema/cema_glue.h"
#include "core/cuda/common/glue.h"
#endif

namespace mgl::cli {
namespace {

using torch::Tensor;

constexpr double kPeakBytesPerS = 3.35e12;  // H100 SXM HBM3

const char* kBenchCemaHelp =
    "usage: megalodon bench cema [options]\n"
    "Times the CEMA kernel/fftconv/hidden-state pieces and the whole CEMA layer (reference path vs\n"
    "the fused CUDA scan), forward and forward+backward, at several lengths.\n\n"
    "  --lengths 1024,4096,16384,65536\n"
    "  --batch B --dim D --ndim N      (default 4, 1024, 16 on CUDA; 1, 16, 16 on CPU)\n"
    "  --dtype fp32|bf16               activation dtype (coefficients are fp32)\n"
    "  --device cuda|cpu               (default cuda when available)\n"
    "  --repeats 10 --warmup 2\n"
    "  --json FILE                     also write the figures as JSON\n";

struct Row {
  std::string op, mode;
  int64_t L = 0;
  double bytes = 0, ref_s = 0, fused_s = -1;  // fused_s < 0: unavailable
  std::string fused_note;
};

std::vector<int64_t> parse_lengths(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) {
    const double d = parse_number("--lengths", t);
    if (d < 1 || d != static_cast<double>(static_cast<int64_t>(d)))
      throw std::invalid_argument("--lengths expects positive integers, got '" + t + "'");
    v.push_back(static_cast<int64_t>(d));
  }
  if (v.empty()) throw std::invalid_argument("--lengths is empty");
  return v;
}

// Mean seconds per call of fn (synchronising the device around the timed loop).
double time_it(const std::function<void()>& fn, const torch::Device& dev, int warmup, int repeats) {
  auto sync = [&] {
    if (dev.is_cuda()) torch::cuda::synchronize();
  };
  for (int i = 0; i < warmup; ++i) fn();
  sync();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) fn();
  sync();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

int bench_cema_main(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::printf("%s", kBenchCemaHelp);
      return 0;
    }
  std::map<std::string, std::string> opt;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    static const std::set<std::string> known = {"--lengths", "--batch", "--dim", "--ndim", "--dtype",
                                                "--device",  "--repeats", "--warmup", "--json"};
    if (!known.count(a)) throw std::invalid_argument("unknown option '" + a + "' (see megalodon bench cema --help)");
    if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
    opt[a] = args[++i];
  }
  auto get = [&](const std::string& k, const std::string& def) { return opt.count(k) ? opt[k] : def; };
  auto get_int = [&](const std::string& k, int64_t def, int64_t lo = 1) {
    if (!opt.count(k)) return def;
    const double d = parse_number(k, opt[k]);
    if (d < static_cast<double>(lo) || d != static_cast<double>(static_cast<int64_t>(d)))
      throw std::invalid_argument(k + " expects an integer >= " + std::to_string(lo) + ", got '" + opt[k] + "'");
    return static_cast<int64_t>(d);
  };
  const std::string device = get("--device", torch::cuda::is_available() ? "cuda" : "cpu");
  if (device != "cpu" && device != "cuda") throw std::invalid_argument("--device expects cpu or cuda, got '" + device + "'");
  if (device == "cuda" && !torch::cuda::is_available())
    throw std::invalid_argument("--device cuda: this LibTorch has no CUDA or no device is present");
  const bool cuda = device == "cuda";
  const auto lengths = parse_lengths(get("--lengths", "1024,4096,16384,65536"));
  const int64_t B = get_int("--batch", cuda ? 4 : 1), D = get_int("--dim", cuda ? 1024 : 16),
                N = get_int("--ndim", 16);
  const int repeats = static_cast<int>(get_int("--repeats", 10)), warmup = static_cast<int>(get_int("--warmup", 2, 0));
  const std::string dts = get("--dtype", "fp32");
  if (dts != "fp32" && dts != "bf16") throw std::invalid_argument("--dtype expects fp32 or bf16, got '" + dts + "'");
  const auto xdt = dts == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  const double sx = dts == "bf16" ? 2 : 4;
  const torch::Device dev(cuda ? torch::kCUDA : torch::kCPU);

  bool fused_ok = false;
  std::string why_not = "unavailable: ";
#ifdef MEGALODON_WITH_CUDA_GLUE
  if (cuda && cuda::kernels_available()) fused_ok = true;
  else why_not += "no CUDA device";
#else
  why_not += "this build has no CUDA glue";
#endif
  if (!cuda) why_not = "unavailable: CPU run (reference only)";

  std::printf("megalodon bench cema: B=%ld D=%ld N=%ld x=%s device=%s, %d repeats (+%d warm-up)\n", B, D, N,
              dts.c_str(), device.c_str(), repeats, warmup);
  if (!fused_ok) std::printf("fused column %s\n", why_not.c_str());
  std::fflush(stdout);

  torch::manual_seed(0);
  ComplexEMA ref_m(ComplexEMAOptions(D, N));
  ComplexEMA fused_m(ComplexEMAOptions(D, N).kernel(KernelImpl::fused));
  {
    torch::NoGradGuard g;
    ref_m->gamma.normal_(0.0, 1.0);
    for (auto& kv : ref_m->named_parameters()) fused_m->named_parameters()[kv.key()].copy_(kv.value());
  }
  ref_m->to(dev);
  fused_m->to(dev);

  std::vector<Row> rows;
  for (int64_t L : lengths) {
    std::fprintf(stderr, "  L=%ld ...\n", L);
    const double BDL = static_cast<double>(B * D * L), DL = static_cast<double>(D * L);
    auto opts = torch::TensorOptions().device(dev);
    Tensor x = torch::randn({B, D, L}, opts).to(xdt);
    Tensor h0 = torch::complex(torch::randn({B, D, N}, opts), torch::randn({B, D, N}, opts));
    Tensor gy = torch::randn({B, D, L}, opts).to(xdt);
    Tensor xg = x.detach().requires_grad_(true);

    auto coeffs = [&](bool grad) {
      ops::EmaCoeffs c = ref_m->coeffs();
      if (!grad) c = {c.p.detach(), c.log_q.detach(), c.eta.detach()};
      return c;
    };
    auto zero_grads = [&] {
      for (auto& p : ref_m->parameters()) p.mutable_grad() = Tensor();
      for (auto& p : fused_m->parameters()) p.mutable_grad() = Tensor();
      xg.mutable_grad() = Tensor();
    };
    auto add = [&](const std::string& op, const std::string& mode, double bytes, const std::function<void()>& ref,
                   const std::function<void()>& fused, const std::string& note) {
      Row r;
      r.op = op;
      r.mode = mode;
      r.L = L;
      r.bytes = bytes;
      r.ref_s = time_it(ref, dev, warmup, repeats);
      if (fused && fused_ok) r.fused_s = time_it(fused, dev, warmup, repeats);
      else r.fused_note = fused_ok ? note : why_not;
      rows.push_back(r);
    };

    // Coefficients → length-L kernel (§1.4).
    std::function<void()> kernel_fused;
#ifdef MEGALODON_WITH_CUDA_GLUE
    if (fused_ok) kernel_fused = [&] { cuda::cema_impulse_response_cuda(coeffs(false), L); };
#endif
    add("kernel", "fwd", DL * 4, [&] { torch::NoGradGuard g; ops::ema_kernel(coeffs(false), L); }, kernel_fused,
        "n/a");
    add("kernel", "fwd+bwd", DL * 8,
        [&] {
          zero_grads();
          ops::ema_kernel(coeffs(true), L).sum().backward();
        },
        nullptr, "n/a (the fused layer never forms k)");
    // Causal FFT convolution (§1.5), k fixed.
    Tensor k = ops::ema_kernel(coeffs(false), L);
    Tensor kg = k.detach().requires_grad_(true);
    add("fftconv", "fwd", BDL * 2 * sx + DL * 4, [&] { torch::NoGradGuard g; ops::causal_fftconv(x.to(torch::kFloat32), k); },
        nullptr, "n/a (fused into the layer scan)");
    add("fftconv", "fwd+bwd", BDL * 5 * sx + DL * 12,
        [&] {
          zero_grads();
          kg.mutable_grad() = Tensor();
          ops::causal_fftconv(xg.to(torch::kFloat32), kg).backward(gy.to(torch::kFloat32));
        },
        nullptr, "n/a (fused into the layer scan)");
    // Final hidden state (§1.6).
    add("hidden", "fwd", BDL * sx,
        [&] { torch::NoGradGuard g; ops::ema_hidden(x.to(torch::kFloat32), coeffs(false), h0); }, nullptr,
        "n/a (fused into the layer scan)");
    add("hidden", "fwd+bwd", BDL * 2 * sx,
        [&] {
          zero_grads();
          torch::real(ops::ema_hidden(xg.to(torch::kFloat32), coeffs(true), h0)).sum().backward();
        },
        nullptr, "n/a (fused into the layer scan)");
    // The whole layer (module forward with carried state in and out).
    add("layer", "fwd", BDL * 2 * sx, [&] { torch::NoGradGuard g; ref_m->forward(x, h0, true); },
        [&] { torch::NoGradGuard g; fused_m->forward(x, h0, true); }, "");
    add("layer", "fwd+bwd", BDL * 5 * sx,
        [&] {
          zero_grads();
          ref_m->forward(xg, h0, true).first.backward(gy);
        },
        [&] {
          zero_grads();
          fused_m->forward(xg, h0, true).first.backward(gy);
        },
        "");
  }

  auto frac = [](double bytes, double s) { return bytes / s / kPeakBytesPerS; };
  std::printf("\n| op | mode | L | ref ms | ref BW/3.35TB/s | fused ms | fused BW/3.35TB/s | speed-up |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    if (r.fused_s >= 0)
      std::printf("| %s | %s | %ld | %.4g | %.3g | %.4g | %.3g | %.2fx |\n", r.op.c_str(), r.mode.c_str(), r.L,
                  r.ref_s * 1e3, frac(r.bytes, r.ref_s), r.fused_s * 1e3, frac(r.bytes, r.fused_s),
                  r.ref_s / r.fused_s);
    else
      std::printf("| %s | %s | %ld | %.4g | %.3g | %s | | |\n", r.op.c_str(), r.mode.c_str(), r.L, r.ref_s * 1e3,
                  frac(r.bytes, r.ref_s), r.fused_note.c_str());
  }
  std::printf("\nbytes model: minimum traffic per op (see cli/bench/cema.cpp); BW fraction of 3.35 TB/s\n");

  const std::string json = get("--json", "");
  if (!json.empty()) {
    std::string j = fmt::format(
        "{{\n  \"device\": \"{}\", \"batch\": {}, \"dim\": {}, \"ndim\": {}, \"dtype\": \"{}\", \"peak_bytes_per_s\": "
        "{:.6g},\n  \"fused_available\": {},\n  \"rows\": [\n",
        device, B, D, N, dts, kPeakBytesPerS, fused_ok ? "true" : "false");
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      const std::string fused =
          r.fused_s >= 0 ? fmt::format("{:.6g}", r.fused_s * 1e3) : std::string("null");
      const std::string speed = r.fused_s >= 0 ? fmt::format("{:.6g}", r.ref_s / r.fused_s) : std::string("null");
      const std::string fbw = r.fused_s >= 0 ? fmt::format("{:.6g}", frac(r.bytes, r.fused_s)) : std::string("null");
      j += fmt::format(
          "    {{\"op\": \"{}\", \"mode\": \"{}\", \"L\": {}, \"bytes\": {:.6g}, \"ref_ms\": {:.6g}, "
          "\"ref_bw_fraction\": {:.6g}, \"fused_ms\": {}, \"fused_bw_fraction\": {}, \"speedup\": {}, "
          "\"fused_note\": \"{}\"}}{}\n",
          r.op, r.mode, r.L, r.bytes, r.ref_s * 1e3, frac(r.bytes, r.ref_s), fused, fbw, speed, r.fused_note,
          i + 1 < rows.size() ? "," : "");
    }
    j += "  ]\n}\n";
    harness::write_file_atomic(json, j);
    std::printf("wrote %s\n", json.c_str());
  }
  return 0;
}

static const BenchOp kCema{"cema", "time the CEMA kernel/fftconv/hidden state and layer: reference vs fused CUDA scan",
                           bench_cema_main};

}  // namespace
}  // namespace mgl::cli
