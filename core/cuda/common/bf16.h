// The one bf16 storage type of the kernel library: the top 16 bits of an IEEE fp32, stored as raw
// bits so that the kernels' APIs stay CUDA-free. Layout-compatible with __nv_bfloat16 and
// at::BFloat16 (the glue reinterprets the tensors' pointers). Widening is exact; narrowing rounds
// to nearest even. Device code converts with the hardware instructions (cvt.f32.bf16,
// cvt.rn.bf16.f32); host code (the CPU tests, the SIMT test executor) with the bit arithmetic
// below, which gives the same bits for every non-NaN input (a NaN stays a quiet NaN; its payload
// may differ). The CPU tests compare the host form with LibTorch's own conversion.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#include <cuda_bf16.h>
#endif

#include "core/cuda/common/host_device.h"

namespace mgl::cuda {

struct bf16 {
  uint16_t bits;
};

MGL_HD float bf16_to_float(bf16 v) {
#ifdef __CUDA_ARCH__
  return __bfloat162float(__ushort_as_bfloat16(v.bits));
#else
  const uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

MGL_HD bf16 float_to_bf16(float f) {
#ifdef __CUDA_ARCH__
  return bf16{__bfloat16_as_ushort(__float2bfloat16_rn(f))};
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
    return bf16{static_cast<uint16_t>((u >> 16) | 0x0040u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<uint16_t>(u >> 16)};
#endif
}

// Activations in fp32 arithmetic: to_float widens a stored element, from_float<T> rounds back to
// the storage type T (float or bf16).
MGL_HD float to_float(float v) { return v; }
MGL_HD float to_float(bf16 v) { return bf16_to_float(v); }
template <typename T>
MGL_HD T from_float(float v);
template <>
MGL_HD float from_float<float>(float v) {
  return v;
}
template <>
MGL_HD bf16 from_float<bf16>(float v) {
  return float_to_bf16(v);
}

}  // namespace mgl::cuda
