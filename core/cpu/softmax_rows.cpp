#include "core/cpu/softmax_rows.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>

// One body, compiled three times (x86-64-v4 = AVX-512, v3 = AVX2 + FMA, baseline); the loader's ifunc
// picks the widest the CPU has. GCC's vector extension keeps the body readable and lets each clone
// lower 16 floats to one zmm, two ymm or four xmm registers.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MGL_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MGL_CPU_CLONES
#endif

namespace mgl::cpu {
namespace {

constexpr int kLanes = 16;
typedef float vfloat __attribute__((vector_size(kLanes * sizeof(float))));
typedef int32_t vint __attribute__((vector_size(kLanes * sizeof(int32_t))));

inline __attribute__((always_inline)) vfloat splat(float v) { return vfloat{} + v; }

inline __attribute__((always_inline)) vfloat load(const float* p) {
  vfloat v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// exp(x) = 2^k · exp(r), k = round(x / ln 2), r = x − k·ln 2 in [−ln2/2, ln2/2] (ln 2 split in a
// high part exact in 12 bits and a low part, so k·ln2_hi is exact); exp(r) by its Taylor polynomial of
// degree 7 (truncation < 2e−9 relative). Clamping keeps 2^k a normal float; comparisons are false for
// NaN, so NaN passes through.
inline __attribute__((always_inline)) vfloat vexp(vfloat x) {
  x = x < -87.0f ? splat(-87.0f) : x;
  x = x > 88.0f ? splat(88.0f) : x;
  const float round_magic = 12582912.0f;  // 1.5 · 2^23: adding it rounds to an integer
  const vfloat k = (x * 1.44269504088896341f + round_magic) - round_magic;
  const vfloat r = (x - k * 0.693145751953125f) - k * 1.428606765330187045e-06f;
  vfloat p = splat(1.0f / 5040);
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const vint bits = (__builtin_convertvector(k, vint) + 127) << 23;
  return p * (vfloat)bits;  // a vector cast reinterprets the bits
}

inline __attribute__((always_inline)) float exp1(float x) { return vexp(splat(x))[0]; }

}  // namespace

MGL_CPU_CLONES float logsumexp_row(const float* x, int64_t n) {
  constexpr float lowest = -std::numeric_limits<float>::infinity();
  vfloat m = splat(lowest);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const vfloat v = load(x + i);
    m = v > m ? v : m;
  }
  float mx = lowest;
  for (int j = 0; j < kLanes; ++j) mx = m[j] > mx ? m[j] : mx;
  for (; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  if (std::isinf(mx)) {  // all −inf gives −inf, a +inf logit +inf (as LibTorch), unless a NaN is there
    for (i = 0; i < n; ++i)
      if (std::isnan(x[i])) return x[i];
    return mx;
  }
  vfloat s{};
  for (i = 0; i + kLanes <= n; i += kLanes) s += vexp(load(x + i) - mx);
  float total = 0;
  for (int j = 0; j < kLanes; ++j) total += s[j];
  for (; i < n; ++i) total += exp1(x[i] - mx);
  return mx + std::log(total);
}

MGL_CPU_CLONES void exp_shifted_row(float* x, int64_t n, float shift, float scale) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const vfloat v = vexp(load(x + i) - shift) * scale;
    std::memcpy(x + i, &v, sizeof v);
  }
  for (; i < n; ++i) x[i] = scale * exp1(x[i] - shift);
}

MGL_CPU_CLONES void scaled_difference_row(const float* p, float* dp, int64_t n, float delta) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const vfloat v = load(p + i) * (load(dp + i) - delta);
    std::memcpy(dp + i, &v, sizeof v);
  }
  for (; i < n; ++i) dp[i] = p[i] * (dp[i] - delta);
}

void tile_softmax(float* s, const TileRows& t, float* lse) {
  at::parallel_for(0, t.batch * t.rows, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t b = i / t.rows, r = i % t.rows, vis = t.visible(r);
      float* row = s + i * t.n;
      float& l = lse[b * t.lse_stride + r];
      l = vis > 0 ? logsumexp_row(row, vis) : std::numeric_limits<float>::infinity();
      if (std::isinf(l) && l > 0) {  // no visible key (or a +inf logit): the explicit path's 0 row
        std::fill(row, row + t.n, 0.0f);
        continue;
      }
      exp_shifted_row(row, vis, l, 1.0f);
      std::fill(row + vis, row + t.n, 0.0f);
    }
  });
}

void tile_probabilities(float* s, const TileRows& t, const float* lse) {
  at::parallel_for(0, t.batch * t.rows, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t b = i / t.rows, r = i % t.rows;
      const int64_t vis = t.visible(r);
      const float l = lse[b * t.lse_stride + r];
      float* row = s + i * t.n;
      if (std::isinf(l) && l > 0) {
        std::fill(row, row + t.n, 0.0f);
        continue;
      }
      exp_shifted_row(row, vis, l, 1.0f);
      std::fill(row + vis, row + t.n, 0.0f);
    }
  });
}

void tile_softmax_backward(const float* p, float* dp, const TileRows& t, const float* delta) {
  at::parallel_for(0, t.batch * t.rows, 8, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t b = i / t.rows, r = i % t.rows, vis = t.visible(r);
      scaled_difference_row(p + i * t.n, dp + i * t.n, vis, delta[b * t.lse_stride + r]);
      std::fill(dp + i * t.n + vis, dp + (i + 1) * t.n, 0.0f);
    }
  });
}

void lse_and_nll_rows(const float* x, int64_t rows, int64_t V, const int64_t* targets, float* lse, float* nll) {
  at::parallel_for(0, rows, 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      lse[r] = logsumexp_row(x + r * V, V);
      nll[r] = lse[r] - x[r * V + targets[r]];
    }
  });
}

void softmax_grad_rows(float* x, int64_t rows, int64_t V, const int64_t* targets, const float* lse, const float* g) {
  at::parallel_for(0, rows, 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      exp_shifted_row(x + r * V, V, lse[r], g[r]);
      x[r * V + targets[r]] -= g[r];
    }
  });
}

}  // namespace mgl::cpu
