#include "core/cpu/transpose.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace mgl::cpu {

template <typename T>
void transpose(const T* src, T* dst, int64_t batch, int64_t rows, int64_t cols, int64_t src_ld, int64_t dst_ld,
               int64_t src_batch, int64_t dst_batch) {
  constexpr int64_t kTile = 32;
  const int64_t tr = (rows + kTile - 1) / kTile, tc = (cols + kTile - 1) / kTile, tiles = batch * tr * tc;
  if (tiles == 0) return;
  // About 64 tiles (64 K elements) per task: enough to pay for a task, enough tasks to balance.
  at::parallel_for(0, tiles, 64, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t b = t / (tr * tc), r0 = (t / tc) % tr * kTile, c0 = t % tc * kTile;
      const int64_t nr = std::min(kTile, rows - r0), nc = std::min(kTile, cols - c0);
      const T* s = src + b * src_batch + r0 * src_ld + c0;
      T* d = dst + b * dst_batch + c0 * dst_ld + r0;
      if (nr == kTile && nc == kTile) {  // full tiles: constant trip counts the compiler unrolls
        for (int64_t j = 0; j < kTile; ++j)
          for (int64_t i = 0; i < kTile; ++i) d[j * dst_ld + i] = s[i * src_ld + j];
      } else {
        for (int64_t j = 0; j < nc; ++j)
          for (int64_t i = 0; i < nr; ++i) d[j * dst_ld + i] = s[i * src_ld + j];
      }
    }
  });
}

template void transpose<float>(const float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
template void transpose<double>(const double*, double*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                int64_t);

}  // namespace mgl::cpu
