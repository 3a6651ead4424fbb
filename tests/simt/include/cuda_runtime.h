// Stand-in for the CUDA runtime header, for g++ builds of the real kernel sources under the SIMT
// test executor (tests/simt/simt.h). Only what the kernels of core/cuda/ use: the execution-space
// keywords become nothing (kernels and device functions are plain C++ functions), the built-in
// variables and intrinsics call into the executor, and the few runtime calls of the launchers are
// emulated on host memory. `__shared__` is deliberately not defined as `static` or empty (either
// would compile and silently share one array among all blocks, or give every thread its own):
// kernels declare shared memory through MGL_STATIC_SMEM / MGL_DYNAMIC_SMEM (common/launch.h), and
// a bare __shared__ is a compile error here.
#pragma once
#define MGL_SIMT 1

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "simt/simt.h"

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static_assert(false, "declare shared memory with MGL_STATIC_SMEM / MGL_DYNAMIC_SMEM");

#define __syncthreads() ::simt::syncthreads(__FILE__, __LINE__)
#define __shfl_xor_sync(mask, v, lane_mask, ...) \
  ::simt::shfl((mask), (v), 0, (lane_mask), ::simt::shfl_width(__VA_ARGS__ + 0), __FILE__, __LINE__)
#define __shfl_up_sync(mask, v, delta, ...) \
  ::simt::shfl((mask), (v), 1, (delta), ::simt::shfl_width(__VA_ARGS__ + 0), __FILE__, __LINE__)

namespace simt {
// The optional width argument of the shuffles (absent: 32).
constexpr int shfl_width(int w) { return w == 0 ? 32 : w; }
}  // namespace simt

// CUDA's math functions on float in device code: the float overloads of <cmath> in the global
// namespace (glibc's, not the GPU's: results differ from the device's in the last bits).
using std::cos;
using std::exp;
using std::fabs;
using std::fmax;
using std::fmin;
using std::log;
using std::sin;
using std::sqrt;
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline void sincos(float x, float* s, float* c) { ::sincosf(x, s, c); }

// ---- runtime API ----------------------------------------------------------------------------
typedef simt::Stream* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind { cudaMemcpyDeviceToDevice = 3 };

inline cudaError_t cudaGetLastError() { return static_cast<cudaError_t>(simt::last_error(true)); }
inline cudaError_t cudaPeekAtLastError() { return static_cast<cudaError_t>(simt::last_error(false)); }
inline const char* cudaGetErrorString(cudaError_t e) { return simt::error_string(e); }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
template <class F>
cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return static_cast<cudaError_t>(simt::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), value));
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
  simt::memcpy_async(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int v, size_t n, cudaStream_t = nullptr) {
  simt::memset_async(dst, v, n);
  return cudaSuccess;
}
