// The one definition of MGL_HD, for functions shared by the CUDA kernels and plain C++ (the CPU
// tests, the emulations, the SIMT test executor of tests/simt/): under nvcc they are
// __host__ __device__ and always inlined, under any other compiler plain inline functions. Either
// way they are `inline`, so headers defining them may be included in any order and in many
// translation units (a definition without `inline` fails to link once two files include it).
// Write `MGL_HD T f(...)`, never `MGL_HD inline T f(...)`.
#pragma once

#ifdef __CUDACC__
#define MGL_HD __host__ __device__ __forceinline__
#else
#define MGL_HD inline
#endif

namespace mgl::cuda {

// Kahan-compensated accumulation: s + v with the rounding error kept in c (s − c is the sum).
// Used wherever one thread sums many terms in fp32 (long scans, per-channel gradient sums).
template <typename R>
MGL_HD void kahan_add(R& s, R& c, R v) {
  const R y = v - c;
  const R t = s + y;
  c = (t - s) - y;
  s = t;
}

}  // namespace mgl::cuda
