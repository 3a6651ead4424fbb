#include "core/cpu/batched_gemm.h"

#include <ATen/Parallel.h>

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MGL_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MGL_CPU_CLONES
#endif

namespace mgl::cpu {
namespace {

constexpr int kLanes = 16;
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));

inline __attribute__((always_inline)) vfloat load(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline __attribute__((always_inline)) void store(float* p, vfloat v) { std::memcpy(p, &v, sizeof v); }

// Rows [i, i+R) and vector columns [j, j+NV·16) of one product: R × NV accumulators in registers,
// k rank-one updates. A element (r, p) is at a[r·row + p·col].
template <int R, int NV>
inline __attribute__((always_inline)) void block(const float* a, int64_t row, int64_t col, const float* b, int64_t ldb,
                                                 float* c, int64_t ldc, int64_t k, bool accumulate) {
  vfloat acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? load(c + r * ldc + v * kLanes) : vfloat{};
  for (int64_t p = 0; p < k; ++p) {
    vfloat bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = load(b + p * ldb + v * kLanes);
    for (int r = 0; r < R; ++r) {
      const float av = a[r * row + p * col];  // vector × scalar: one broadcast, no + 0
      for (int v = 0; v < NV; ++v) acc[r][v] += bv[v] * av;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store(c + r * ldc + v * kLanes, acc[r][v]);
}

template <int R>
inline __attribute__((always_inline)) void rows(const float* a, int64_t row, int64_t col, const float* b, float* c,
                                                int64_t n, int64_t k, bool accumulate) {
  int64_t j = 0;
  for (; j + 4 * kLanes <= n; j += 4 * kLanes) block<R, 4>(a, row, col, b + j, n, c + j, n, k, accumulate);
  switch ((n - j) / kLanes) {
    case 3: block<R, 3>(a, row, col, b + j, n, c + j, n, k, accumulate); break;
    case 2: block<R, 2>(a, row, col, b + j, n, c + j, n, k, accumulate); break;
    case 1: block<R, 1>(a, row, col, b + j, n, c + j, n, k, accumulate); break;
    default: break;
  }
}

MGL_CPU_CLONES void one_product(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k,
                                bool a_transposed, bool accumulate) {
  const int64_t row = a_transposed ? 1 : k, col = a_transposed ? m : 1;
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) rows<4>(a + i * row, row, col, b, c + i * n, n, k, accumulate);
  for (; i < m; ++i) rows<1>(a + i * row, row, col, b, c + i * n, n, k, accumulate);
}

}  // namespace

void batched_gemm(const float* A, const float* B, float* C, int64_t batch, int64_t m, int64_t n, int64_t k,
                  bool a_transposed, bool accumulate, int64_t stride_a, int64_t stride_b, int64_t stride_c) {
  // About 64K multiply-adds per task, so that small batches still spread over the threads.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, m * n * k));
  at::parallel_for(0, batch, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b)
      one_product(A + b * stride_a, B + b * stride_b, C + b * stride_c, m, n, k, a_transposed, accumulate);
  });
}

}  // namespace mgl::cpu
