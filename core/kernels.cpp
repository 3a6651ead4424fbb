#include "core/kernels.h"

#include <fmt/format.h>

#include "core/cuda/attention/attention.h"
#include "core/cuda/cema/cema_scan.h"
#include "core/cuda/row_norm/row_norm.h"
#include "core/cuda/timestep_norm/timestep_norm.h"

namespace mgl::kernels {

bool use_fused(KernelImpl impl, const torch::Tensor& x, const char* key, const std::string& unsupported) {
  switch (impl) {
    case KernelImpl::reference:
      return false;
    case KernelImpl::auto_select:
      return glue_compiled() && x.defined() && x.is_cuda() && unsupported.empty();
    case KernelImpl::fused:
      if (!unsupported.empty())
        throw ConfigError(
            key, fmt::format("\"fused\": the kernel does not take this call: {} (use \"auto\" to fall "
                             "back to the reference path where it does not, or \"reference\")",
                             unsupported));
      if (!glue_compiled())
        throw ConfigError(key,
                          "\"fused\" needs the CUDA kernels, but this build's LibTorch has no CUDA "
                          "(use \"reference\" or \"auto\")");
      if (!x.defined() || !x.is_cuda())
        throw ConfigError(
            key, fmt::format("\"fused\" runs on CUDA tensors only, got a {} tensor (use \"reference\" "
                             "or \"auto\")",
                             x.defined() ? c10::DeviceTypeName(x.device().type()) : "undefined"));
      return true;
  }
  return false;
}

namespace {
bool fp32_or_bf16(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }
const char* name(torch::ScalarType t) { return c10::toString(t); }
}  // namespace

std::string cema_unsupported(int64_t B, int64_t D, int64_t N, int64_t L, torch::ScalarType coeff,
                             torch::ScalarType x) {
  if (const char* e = cuda::cema_scan_shape_error(B, D, N, L))
    return fmt::format("{} (B={}, D={}, N={}, L={})", e, B, D, N, L);
  if ((coeff == torch::kFloat32 && fp32_or_bf16(x)) || (coeff == torch::kFloat64 && x == torch::kFloat64))
    return {};
  return fmt::format(
      "the fused CEMA scan takes fp32 coefficients with fp32 or bf16 activations, or fp64 with fp64 "
      "(got {} coefficients, {} activations)",
      name(coeff), name(x));
}

std::string timestep_norm_unsupported(int64_t B, int64_t L, int64_t D, int64_t G, torch::ScalarType x) {
  if (!fp32_or_bf16(x))
    return fmt::format("the fused timestep norm takes fp32 or bf16 input, got {}", name(x));
  if (const char* e = cuda::timestep_norm_shape_error(cuda::TimestepNormShape{B, L, D, G}))
    return fmt::format("{} (B={}, L={}, D={}, groups={})", e, B, L, D, G);
  return {};
}

std::string row_norm_unsupported(int64_t R, int64_t D, torch::ScalarType x) {
  if (!fp32_or_bf16(x))
    return fmt::format("the fused RMSNorm/LayerNorm take fp32 or bf16 input, got {}", name(x));
  if (const char* e = cuda::row_norm_shape_error(R, D)) return fmt::format("{} (R={}, D={})", e, R, D);
  return {};
}

std::string attention_unsupported(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  int64_t chunk_q, int64_t chunk_k, bool causal) {
  if (!q.defined() || !k.defined() || !v.defined() || q.dim() != 4 || k.dim() != 4 || v.dim() != 4)
    return "the attention kernels take q, k, v of shape B×L×H×d";
  if (!fp32_or_bf16(v.scalar_type()) || !fp32_or_bf16(q.scalar_type()) || !fp32_or_bf16(k.scalar_type()))
    return fmt::format("the attention kernels take fp32 or bf16, got q {}, k {}, v {}", name(q.scalar_type()),
                       name(k.scalar_type()), name(v.scalar_type()));
  if (q.size(0) != k.size(0) || q.size(2) != k.size(2) || q.size(3) != k.size(3) || v.size(0) != k.size(0) ||
      v.size(1) != k.size(1) || v.size(2) != k.size(2))
    return "q, k, v disagree in batch, heads, key length or head dim";
  cuda::AttentionShape s;
  s.B = q.size(0);
  s.Lq = q.size(1);
  s.H = q.size(2);
  s.dk = q.size(3);
  s.Lk = k.size(1);
  s.dv = v.size(3);
  s.chunk_q = chunk_q;
  s.chunk_k = chunk_k;
  s.causal = causal;
  if (const char* e = cuda::attention_shape_error(s))
    return fmt::format("{} (B={}, H={}, Lq={}, Lk={}, chunks {}/{}, head dims {}/{})", e, s.B, s.H, s.Lq,
                       s.Lk, chunk_q, chunk_k, s.dk, s.dv);
  return {};
}

}  // namespace mgl::kernels
