// Choosing between the fused CUDA kernels (core/cuda/) and the LibTorch reference path
// (core/ops/) for one op call. The reference path is the oracle and runs everywhere; a kernel runs
// only on CUDA tensors, in a build whose LibTorch has CUDA (MEGALODON_WITH_CUDA_GLUE), and only
// for the operands its kernels take.
#pragma once
#include <torch/torch.h>

#include <string>

#include "core/config.h"

namespace mgl::kernels {

// True when the torch-facing CUDA glue was compiled into this build.
constexpr bool glue_compiled() {
#ifdef MEGALODON_WITH_CUDA_GLUE
  return true;
#else
  return false;
#endif
}

// Whether the call on `x` takes the fused kernel under `impl`; `unsupported` is why the kernels
// cannot take this call's shapes and dtypes ("" when they can; the *_unsupported functions below):
//   reference → false;
//   auto      → x is a CUDA tensor, the glue is compiled in and `unsupported` is empty;
//   fused     → true when it can run, else a ConfigError naming `key` (e.g. "model.kernel_cema")
//               and why: the kernels do not take these operands (`unsupported`), no CUDA glue in
//               this build, or a tensor that is not on a CUDA device.
bool use_fused(KernelImpl impl, const torch::Tensor& x, const char* key, const std::string& unsupported = {});

// The kernels' own limits, from shapes and dtypes only (devices are use_fused's business): the
// same rules the glue checks before launching (core/cuda/<op>/<op>.h), so that `auto` falls back
// to the reference path exactly where a kernel would refuse, and `fused` refuses with the reason.
// Each returns "" when the kernels take the call, else the reason with the offending values.
//
// The fused CEMA scan on x B×D×L with N modes, real coefficient dtype `coeff` and activation
// dtype `x`: fp32 coefficients with fp32/bf16 x or fp64 with fp64; 1 ≤ N ≤ 256; L ≥ 1; B·D < 2^31.
std::string cema_unsupported(int64_t B, int64_t D, int64_t N, int64_t L, torch::ScalarType coeff,
                             torch::ScalarType x);
// The fused timestep norm on x B×L×D in G groups: fp32 or bf16; G divides D; grid limits.
std::string timestep_norm_unsupported(int64_t B, int64_t L, int64_t D, int64_t G, torch::ScalarType x);
// The fused RMSNorm / LayerNorm on R rows of D channels: fp32 or bf16.
std::string row_norm_unsupported(int64_t R, int64_t D, torch::ScalarType x);
// The chunked attention kernels on q B×Lq×H×d, k B×Lk×H×d, v B×Lk×H×dv, chunk m pairing queries
// [m·chunk_q, …) with keys [m·chunk_k, …): fp32 or bf16 (q and k cast to v's dtype); d ≤ 256;
// B·H ≤ 65535; as many key chunks as query chunks; causal chunks with no fewer keys than queries.
std::string attention_unsupported(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  int64_t chunk_q, int64_t chunk_k, bool causal);

}  // namespace mgl::kernels
