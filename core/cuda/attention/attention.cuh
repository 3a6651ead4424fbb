// Implementation of the IO-aware chunked attention kernels (API: attention.h); instantiated once
// per storage type in attention_{f32,bf16}.cu.
//
// Tiling. A block of 256 threads owns a 64-row tile (queries in the forward and dQ kernels, keys in
// the dK and dV kernels) and streams 64-row tiles of the other side through shared memory. Every
// contraction is a 64×N outer-product loop over a staged slice: thread (ty, tx) = (tid / 16,
// tid % 16) accumulates rows ty + 16i (i < 4) and columns tx + 16j in fp32 registers, so the 16
// threads of a row sit in one half-warp and row reductions (max, sum) are 4 xor-shuffles. Operands
// are staged in fp32 (bf16 widened exactly on load); the A operand of a contraction is stored
// transposed with a padded leading dimension (65) so that both the transposing writes and the
// broadcast reads are free of bank conflicts.
//
// Forward (per query tile and value-column tile of 16·NJ ≤ 256 columns): for each key tile,
// S = scale·Q Kᵀ (head dim staged 32 at a time), mask, online softmax (attention_math.h: running
// max m and sum l, accumulator rescaled by exp(m_old − m_new)), O += P V with P passed through
// shared memory. Only O (in the input dtype) and lse = m + log l (fp32) are written: memory is
// O(L·d), never O(L·C). Causal tiles beyond the diagonal are skipped.
//
// Backward (FlashAttention-2 identities, P recomputed from lse): δ_i = Σ dO_i·O_i (one warp per
// row); dQ = scale·dS K per query tile; dK = scale·dSᵀ Q and dV = Pᵀ dO per key tile, with
// dS = P ⊙ (dO Vᵀ − δ). Each output has its own kernel and is written once (no atomics, so results
// are deterministic); the price is recomputing S three or more times, which the large value head
// dim of the Megalodon presets (d_v = 2048 against d_z = 256) makes cheap relative to dO Vᵀ.
//
// The arithmetic runs on the fp32 CUDA cores (no tensor cores): simple and exact to fp32 rounding,
// but well short of an mma.sync kernel; see the report of issue 11 for the expected speed.
#pragma once
#include <cuda_runtime.h>

#include "core/cuda/attention/attention.h"
#include "core/cuda/attention/attention_math.h"
#include "core/cuda/common/bf16.h"
#include "core/cuda/common/launch.h"

namespace mgl::cuda {
namespace attention_detail {

using namespace ::mgl::cuda::attention;

constexpr int kThreads = 256;
constexpr int kSub = 32;         // depth of one staged slice of a head-dim contraction
constexpr int kRowSlice = 16;    // rows of the natural-layout B operand staged at a time (dQ, dK)
constexpr int kLdT = kTile + 1;  // padded leading dimension of transposed tiles

// Global loads and stores of the storage type T (float or bf16), in fp32 (common/bf16.h).
template <typename T>
struct Io {
  static __device__ __forceinline__ float load(const T* p) { return to_float(*p); }
  static __device__ __forceinline__ void store(T* p, float x) { *p = from_float<T>(x); }
};

// dst[d][r] (leading dim kLdT) = src[r·rs + d0 + d] for r < kTile, d < kSub; zero outside
// r < nrows, d0 + d < dmax. Consecutive threads read consecutive d of one row (coalesced).
template <typename T>
__device__ __forceinline__ void stage_t(float* dst, const T* src, int64_t rs, int64_t nrows, int64_t d0,
                                        int64_t dmax) {
  for (int e = threadIdx.x; e < kTile * kSub; e += kThreads) {
    const int r = e / kSub, d = e % kSub;
    float x = 0.f;
    if (r < nrows && d0 + d < dmax) x = Io<T>::load(src + r * rs + d0 + d);
    dst[d * kLdT + r] = x;
  }
}

// dst[r][c] (leading dim W) = src[r·rs + c0 + c] for r < R, c < W; zero outside r < nrows,
// c0 + c < cmax.
template <typename T, int R, int W>
__device__ __forceinline__ void stage_n(float* dst, const T* src, int64_t rs, int64_t nrows, int64_t c0,
                                        int64_t cmax) {
  for (int e = threadIdx.x; e < R * W; e += kThreads) {
    const int r = e / W, c = e % W;
    float x = 0.f;
    if (r < nrows && c0 + c < cmax) x = Io<T>::load(src + r * rs + c0 + c);
    dst[e] = x;
  }
}

// acc[i][j] += Σ_k A[k][ty + 16i] · Bm[k][tx + 16j], k < K.
template <int NJ>
__device__ __forceinline__ void mma_tile(float (&acc)[4][NJ], const float* A, int lda, const float* Bm, int ldb, int K,
                                         int ty, int tx) {
#pragma unroll 4
  for (int kk = 0; kk < K; ++kk) {
    float a[4], b[NJ];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = A[kk * lda + ty + 16 * i];
#pragma unroll
    for (int j = 0; j < NJ; ++j) b[j] = Bm[kk * ldb + tx + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// Reductions over the 16 threads of one row (one half-warp).
__device__ __forceinline__ float row_max(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float row_sum(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ bool key_padded(const uint8_t* pad, int64_t c, int64_t klen) {
  return pad != nullptr && c < klen && pad[c] != 0;
}

// Scaled, masked scores of one 64×64 tile: S[i][j] for row-side index a0 + ty + 16i and
// column-side index b0 + tx + 16j. `keys_are_rows` says which side holds the keys (false: rows are
// queries). Masked entries become −∞.
__device__ __forceinline__ void mask_scores(float (&sc)[4][4], const AttentionShape& s, const ChunkSpan& sp,
                                            const uint8_t* pad, int64_t a0, int64_t b0, bool keys_are_rows, int ty,
                                            int tx) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t a = a0 + ty + 16 * i, b = b0 + tx + 16 * j;
      const int64_t r = keys_are_rows ? b : a, c = keys_are_rows ? a : b;
      const bool ok = visible(r, c, sp, s.causal) && !key_padded(pad, c, sp.klen);
      sc[i][j] = ok ? sc[i][j] * s.scale : neg_inf<float>();
    }
}

// Q Kᵀ (or K Qᵀ) of one tile pair over the whole head dim, staged kSub columns at a time.
template <typename T>
__device__ __forceinline__ void scores(float (&sc)[4][4], float* sa, float* sb, const T* rows_a, int64_t na,
                                       const T* rows_b, int64_t nb, int64_t rs, int64_t dk, int ty, int tx) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) sc[i][j] = 0.f;
  for (int64_t d0 = 0; d0 < dk; d0 += kSub) {
    stage_t(sa, rows_a, rs, na, d0, dk);
    stage_t(sb, rows_b, rs, nb, d0, dk);
    __syncthreads();
    mma_tile<4>(sc, sa, kLdT, sb, kLdT, kSub, ty, tx);
    __syncthreads();
  }
}

// ---- forward -----------------------------------------------------------------------------------
template <int NJ>
constexpr size_t fwd_smem_floats() {
  return (2 * kSub * kLdT > kTile * 16 * NJ ? 2 * kSub * kLdT : kTile * 16 * NJ) + kTile * kLdT;
}

template <typename T, int NJ>
__global__ void __launch_bounds__(kThreads, 1) fwd_kernel(AttentionShape s, int64_t tiles_per_chunk, const T* q,
                                                       const T* k, const T* v, const uint8_t* kpm, T* o,
                                                       float* lse) {
  constexpr int DVT = 16 * NJ;
  MGL_DYNAMIC_SMEM(4, float, smem);
  float* sa = smem;                     // Qᵀ slice
  float* sb = smem + kSub * kLdT;       // Kᵀ slice
  float* vt = smem;                     // V tile [key][col], reuses the slices once S is done
  float* pt = smem + (2 * kSub * kLdT > kTile * DVT ? 2 * kSub * kLdT : kTile * DVT);  // Pᵀ [key][row]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m = blockIdx.x / tiles_per_chunk, r0 = (blockIdx.x % tiles_per_chunk) * kTile;
  const int64_t b = blockIdx.y / s.H, h = blockIdx.y % s.H, cv0 = int64_t(blockIdx.z) * DVT;
  const ChunkSpan sp = chunk_span(m, s.Lq, s.Lk, s.chunk_q, s.chunk_k);
  if (r0 >= sp.qlen) return;
  const int64_t qrs = s.H * s.dk, vrs = s.H * s.dv;
  const T* qb = q + ((b * s.Lq + sp.q0 + r0) * s.H + h) * s.dk;
  const T* kb = k + ((b * s.Lk + sp.k0) * s.H + h) * s.dk;
  const T* vb = v + ((b * s.Lk + sp.k0) * s.H + h) * s.dv;
  const uint8_t* pad = kpm ? kpm + b * s.Lk + sp.k0 : nullptr;
  const int64_t nq = sp.qlen - r0 < kTile ? sp.qlen - r0 : kTile;
  const int64_t nk = keys_needed(r0, kTile, sp, s.causal);

  float acc[4][NJ], mrow[4], lrow[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    mrow[i] = neg_inf<float>();
    lrow[i] = 0.f;
#pragma unroll
    for (int j = 0; j < NJ; ++j) acc[i][j] = 0.f;
  }
  for (int64_t c0 = 0; c0 < nk; c0 += kTile) {
    const int64_t nkt = sp.klen - c0 < kTile ? sp.klen - c0 : kTile;
    float sc[4][4];
    scores(sc, sa, sb, qb, nq, kb + c0 * qrs, nkt, qrs, s.dk, ty, tx);
    mask_scores(sc, s, sp, pad, r0, c0, false, ty, tx);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float mx = neg_inf<float>();
#pragma unroll
      for (int j = 0; j < 4; ++j) mx = fmaxf(mx, sc[i][j]);
      const float mnew = fmaxf(mrow[i], row_max(mx));
      const float alpha = rescale_factor(mrow[i], mnew);
      float sum = 0.f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        sc[i][j] = prob(sc[i][j], mnew);
        sum += sc[i][j];
        pt[(tx + 16 * j) * kLdT + ty + 16 * i] = sc[i][j];
      }
      lrow[i] = lrow[i] * alpha + row_sum(sum);
      mrow[i] = mnew;
#pragma unroll
      for (int j = 0; j < NJ; ++j) acc[i][j] *= alpha;
    }
    stage_n<T, kTile, DVT>(vt, vb + c0 * vrs, vrs, nkt, cv0, s.dv);
    __syncthreads();
    mma_tile<NJ>(acc, pt, kLdT, vt, DVT, kTile, ty, tx);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + ty + 16 * i;
    if (r >= sp.qlen) continue;
    const float inv = inv_sum(lrow[i]);
    T* orow = o + ((b * s.Lq + sp.q0 + r) * s.H + h) * s.dv;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int64_t c = cv0 + tx + 16 * j;
      if (c < s.dv) Io<T>::store(orow + c, acc[i][j] * inv);
    }
    if (blockIdx.z == 0 && tx == 0) lse[(b * s.H + h) * s.Lq + sp.q0 + r] = finish_lse(mrow[i], lrow[i]);
  }
}

// ---- backward ------------------------------------------------------------------------------------
// δ = Σ_c dO·O per query row, one warp per row (rows in memory order b, i, h).
template <typename T>
__global__ void __launch_bounds__(kThreads, 1) delta_kernel(AttentionShape s, const T* o, const T* d_o, float* delta) {
  const int64_t row = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= s.B * s.Lq * s.H) return;  // whole warps leave together
  float sum = 0.f;
  for (int64_t c = lane; c < s.dv; c += 32) sum += Io<T>::load(o + row * s.dv + c) * Io<T>::load(d_o + row * s.dv + c);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) {
    const int64_t h = row % s.H, i = (row / s.H) % s.Lq, b = row / (s.H * s.Lq);
    delta[(b * s.H + h) * s.Lq + i] = sum;
  }
}

template <int ND>
constexpr size_t dqk_smem_floats() {
  return 2 * kSub * kLdT + kTile * kLdT + kRowSlice * 16 * ND;
}

// dQ for one query tile: for each visible key tile, P from lse, dP = dO Vᵀ (value dim staged),
// dS = P ⊙ (dP − δ), dQ += scale · dS K (keys staged kRowSlice at a time).
template <typename T, int ND>
__global__ void __launch_bounds__(kThreads, 1) dq_kernel(AttentionShape s, int64_t tiles_per_chunk, const T* q,
                                                      const T* k, const T* v, const uint8_t* kpm, const T* d_o,
                                                      const float* lse, const float* delta, T* dq) {
  MGL_DYNAMIC_SMEM(4, float, smem);
  float* sa = smem;
  float* sb = smem + kSub * kLdT;
  float* dst = smem + 2 * kSub * kLdT;       // dSᵀ [key][row]
  float* kn = dst + kTile * kLdT;            // K rows [kRowSlice][16·ND]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m = blockIdx.x / tiles_per_chunk, r0 = (blockIdx.x % tiles_per_chunk) * kTile;
  const int64_t b = blockIdx.y / s.H, h = blockIdx.y % s.H;
  const ChunkSpan sp = chunk_span(m, s.Lq, s.Lk, s.chunk_q, s.chunk_k);
  if (r0 >= sp.qlen) return;
  const int64_t qrs = s.H * s.dk, vrs = s.H * s.dv;
  const T* qb = q + ((b * s.Lq + sp.q0 + r0) * s.H + h) * s.dk;
  const T* dob = d_o + ((b * s.Lq + sp.q0 + r0) * s.H + h) * s.dv;
  const T* kb = k + ((b * s.Lk + sp.k0) * s.H + h) * s.dk;
  const T* vb = v + ((b * s.Lk + sp.k0) * s.H + h) * s.dv;
  const uint8_t* pad = kpm ? kpm + b * s.Lk + sp.k0 : nullptr;
  const int64_t nq = sp.qlen - r0 < kTile ? sp.qlen - r0 : kTile;
  const int64_t nk = keys_needed(r0, kTile, sp, s.causal);
  const float* lse_b = lse + (b * s.H + h) * s.Lq + sp.q0;
  const float* delta_b = delta + (b * s.H + h) * s.Lq + sp.q0;

  float lr[4], dr[4], acc[4][ND];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + ty + 16 * i;
    lr[i] = r < sp.qlen ? lse_b[r] : static_cast<float>(INFINITY);
    dr[i] = r < sp.qlen ? delta_b[r] : 0.f;
#pragma unroll
    for (int j = 0; j < ND; ++j) acc[i][j] = 0.f;
  }
  for (int64_t c0 = 0; c0 < nk; c0 += kTile) {
    const int64_t nkt = sp.klen - c0 < kTile ? sp.klen - c0 : kTile;
    float p[4][4], dp[4][4];
    scores(p, sa, sb, qb, nq, kb + c0 * qrs, nkt, qrs, s.dk, ty, tx);
    mask_scores(p, s, sp, pad, r0, c0, false, ty, tx);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) p[i][j] = prob_from_lse(p[i][j], lr[i]);
    scores(dp, sa, sb, dob, nq, vb + c0 * vrs, nkt, vrs, s.dv, ty, tx);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        dst[(tx + 16 * j) * kLdT + ty + 16 * i] = s.scale * dscore(p[i][j], dp[i][j], dr[i]);
    for (int kk0 = 0; kk0 < nkt; kk0 += kRowSlice) {
      stage_n<T, kRowSlice, 16 * ND>(kn, kb + (c0 + kk0) * qrs, qrs, nkt - kk0, 0, s.dk);
      __syncthreads();
      mma_tile<ND>(acc, dst + kk0 * kLdT, kLdT, kn, 16 * ND, kRowSlice, ty, tx);
      __syncthreads();
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + ty + 16 * i;
    if (r >= sp.qlen) continue;
    T* row = dq + ((b * s.Lq + sp.q0 + r) * s.H + h) * s.dk;
#pragma unroll
    for (int j = 0; j < ND; ++j) {
      const int64_t c = tx + 16 * j;
      if (c < s.dk) Io<T>::store(row + c, acc[i][j]);
    }
  }
}

// dK for one key tile: rows are keys now (Sᵀ = K Qᵀ), swept over the query tiles that can see
// them; dK += scale · dSᵀ Q (queries staged kRowSlice at a time).
template <typename T, int ND>
__global__ void __launch_bounds__(kThreads, 1) dk_kernel(AttentionShape s, int64_t tiles_per_chunk, const T* q,
                                                      const T* k, const T* v, const uint8_t* kpm, const T* d_o,
                                                      const float* lse, const float* delta, T* dk) {
  MGL_DYNAMIC_SMEM(4, float, smem);
  float* sa = smem;
  float* sb = smem + kSub * kLdT;
  float* dsq = smem + 2 * kSub * kLdT;  // dS [query][key]
  float* qn = dsq + kTile * kLdT;       // Q rows [kRowSlice][16·ND]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m = blockIdx.x / tiles_per_chunk, c0 = (blockIdx.x % tiles_per_chunk) * kTile;
  const int64_t b = blockIdx.y / s.H, h = blockIdx.y % s.H;
  const ChunkSpan sp = chunk_span(m, s.Lq, s.Lk, s.chunk_q, s.chunk_k);
  if (c0 >= sp.klen) return;
  const int64_t qrs = s.H * s.dk, vrs = s.H * s.dv;
  const T* qb = q + ((b * s.Lq + sp.q0) * s.H + h) * s.dk;
  const T* dob = d_o + ((b * s.Lq + sp.q0) * s.H + h) * s.dv;
  const T* kb = k + ((b * s.Lk + sp.k0 + c0) * s.H + h) * s.dk;
  const T* vb = v + ((b * s.Lk + sp.k0 + c0) * s.H + h) * s.dv;
  const uint8_t* pad = kpm ? kpm + b * s.Lk + sp.k0 : nullptr;
  const int64_t nkt = sp.klen - c0 < kTile ? sp.klen - c0 : kTile;
  const float* lse_b = lse + (b * s.H + h) * s.Lq + sp.q0;
  const float* delta_b = delta + (b * s.H + h) * s.Lq + sp.q0;

  float acc[4][ND];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < ND; ++j) acc[i][j] = 0.f;
  for (int64_t r0 = first_query(c0, sp, s.causal) / kTile * kTile; r0 < sp.qlen; r0 += kTile) {
    const int64_t nq = sp.qlen - r0 < kTile ? sp.qlen - r0 : kTile;
    float p[4][4], dp[4][4];
    scores(p, sa, sb, kb, nkt, qb + r0 * qrs, nq, qrs, s.dk, ty, tx);
    mask_scores(p, s, sp, pad, c0, r0, true, ty, tx);
    scores(dp, sa, sb, vb, nkt, dob + r0 * vrs, nq, vrs, s.dv, ty, tx);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t r = r0 + tx + 16 * j;
      const float l = r < sp.qlen ? lse_b[r] : static_cast<float>(INFINITY);
      const float d = r < sp.qlen ? delta_b[r] : 0.f;
#pragma unroll
      for (int i = 0; i < 4; ++i)
        dsq[(tx + 16 * j) * kLdT + ty + 16 * i] = s.scale * dscore(prob_from_lse(p[i][j], l), dp[i][j], d);
    }
    for (int rr0 = 0; rr0 < nq; rr0 += kRowSlice) {
      stage_n<T, kRowSlice, 16 * ND>(qn, qb + (r0 + rr0) * qrs, qrs, nq - rr0, 0, s.dk);
      __syncthreads();
      mma_tile<ND>(acc, dsq + rr0 * kLdT, kLdT, qn, 16 * ND, kRowSlice, ty, tx);
      __syncthreads();
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t c = c0 + ty + 16 * i;
    if (c >= sp.klen) continue;
    T* row = dk + ((b * s.Lk + sp.k0 + c) * s.H + h) * s.dk;
#pragma unroll
    for (int j = 0; j < ND; ++j) {
      const int64_t d = tx + 16 * j;
      if (d < s.dk) Io<T>::store(row + d, acc[i][j]);
    }
  }
}

template <int NJ>
constexpr size_t dv_smem_floats() {
  return (2 * kSub * kLdT > kTile * 16 * NJ ? 2 * kSub * kLdT : kTile * 16 * NJ) + kTile * kLdT;
}

// dV for one key tile and 16·NJ value columns: dV += Pᵀ dO over the query tiles that see the keys.
template <typename T, int NJ>
__global__ void __launch_bounds__(kThreads, 1) dv_kernel(AttentionShape s, int64_t tiles_per_chunk, const T* q,
                                                      const T* k, const uint8_t* kpm, const T* d_o, const float* lse,
                                                      T* dv) {
  constexpr int DVT = 16 * NJ;
  MGL_DYNAMIC_SMEM(4, float, smem);
  float* sa = smem;
  float* sb = smem + kSub * kLdT;
  float* don = smem;  // dO tile [query][col], reuses the slices
  float* pq = smem + (2 * kSub * kLdT > kTile * DVT ? 2 * kSub * kLdT : kTile * DVT);  // P [query][key]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m = blockIdx.x / tiles_per_chunk, c0 = (blockIdx.x % tiles_per_chunk) * kTile;
  const int64_t b = blockIdx.y / s.H, h = blockIdx.y % s.H, cv0 = int64_t(blockIdx.z) * DVT;
  const ChunkSpan sp = chunk_span(m, s.Lq, s.Lk, s.chunk_q, s.chunk_k);
  if (c0 >= sp.klen) return;
  const int64_t qrs = s.H * s.dk, vrs = s.H * s.dv;
  const T* qb = q + ((b * s.Lq + sp.q0) * s.H + h) * s.dk;
  const T* dob = d_o + ((b * s.Lq + sp.q0) * s.H + h) * s.dv;
  const T* kb = k + ((b * s.Lk + sp.k0 + c0) * s.H + h) * s.dk;
  const uint8_t* pad = kpm ? kpm + b * s.Lk + sp.k0 : nullptr;
  const int64_t nkt = sp.klen - c0 < kTile ? sp.klen - c0 : kTile;
  const float* lse_b = lse + (b * s.H + h) * s.Lq + sp.q0;

  float acc[4][NJ];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < NJ; ++j) acc[i][j] = 0.f;
  for (int64_t r0 = first_query(c0, sp, s.causal) / kTile * kTile; r0 < sp.qlen; r0 += kTile) {
    const int64_t nq = sp.qlen - r0 < kTile ? sp.qlen - r0 : kTile;
    float p[4][4];
    scores(p, sa, sb, kb, nkt, qb + r0 * qrs, nq, qrs, s.dk, ty, tx);
    mask_scores(p, s, sp, pad, c0, r0, true, ty, tx);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t r = r0 + tx + 16 * j;
      const float l = r < sp.qlen ? lse_b[r] : static_cast<float>(INFINITY);
#pragma unroll
      for (int i = 0; i < 4; ++i) pq[(tx + 16 * j) * kLdT + ty + 16 * i] = prob_from_lse(p[i][j], l);
    }
    stage_n<T, kTile, DVT>(don, dob + r0 * vrs, vrs, nq, cv0, s.dv);
    __syncthreads();
    mma_tile<NJ>(acc, pq, kLdT, don, DVT, kTile, ty, tx);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t c = c0 + ty + 16 * i;
    if (c >= sp.klen) continue;
    T* row = dv + ((b * s.Lk + sp.k0 + c) * s.H + h) * s.dv;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int64_t d = cv0 + tx + 16 * j;
      if (d < s.dv) Io<T>::store(row + d, acc[i][j]);
    }
  }
}

// ---- launching ---------------------------------------------------------------------------------
template <typename Kernel>
cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

inline int64_t num_chunks(const AttentionShape& s) { return (s.Lq + s.chunk_q - 1) / s.chunk_q; }
inline int64_t tiles(int64_t chunk, int64_t len) {
  const int64_t n = chunk < len ? chunk : len;
  return (n + kTile - 1) / kTile;
}
inline const char* status(cudaError_t e) { return e == cudaSuccess ? nullptr : cudaGetErrorString(e); }

template <typename T, int NJ>
cudaError_t launch_fwd(const AttentionShape& s, const T* q, const T* k, const T* v, const uint8_t* kpm, T* o,
                       float* lse, cudaStream_t st) {
  const size_t bytes = fwd_smem_floats<NJ>() * sizeof(float);
  const auto kernel = fwd_kernel<T, NJ>;
  if (cudaError_t e = allow_smem(kernel, bytes)) return e;
  const int64_t tpc = tiles(s.chunk_q, s.Lq);
  const dim3 grid(static_cast<unsigned>(num_chunks(s) * tpc), static_cast<unsigned>(s.B * s.H),
                  static_cast<unsigned>((s.dv + 16 * NJ - 1) / (16 * NJ)));
  MGL_LAUNCH(kernel, grid, kThreads, bytes, st)(s, tpc, q, k, v, kpm, o, lse);
  return cudaGetLastError();
}

template <typename T, int ND>
cudaError_t launch_dqk(const AttentionShape& s, const T* q, const T* k, const T* v, const uint8_t* kpm, const T* d_o,
                       const float* lse, const float* delta, T* dq, T* dk, cudaStream_t st) {
  const size_t bytes = dqk_smem_floats<ND>() * sizeof(float);
  const auto dq_kern = dq_kernel<T, ND>;
  const auto dk_kern = dk_kernel<T, ND>;
  if (cudaError_t e = allow_smem(dq_kern, bytes)) return e;
  if (cudaError_t e = allow_smem(dk_kern, bytes)) return e;
  const unsigned bh = static_cast<unsigned>(s.B * s.H);
  const int64_t tq = tiles(s.chunk_q, s.Lq), tk = tiles(s.chunk_k, s.Lk);
  MGL_LAUNCH(dq_kern, dim3(static_cast<unsigned>(num_chunks(s) * tq), bh), kThreads, bytes, st)(
      s, tq, q, k, v, kpm, d_o, lse, delta, dq);
  if (cudaError_t e = cudaGetLastError()) return e;
  MGL_LAUNCH(dk_kern, dim3(static_cast<unsigned>(num_chunks(s) * tk), bh), kThreads, bytes, st)(
      s, tk, q, k, v, kpm, d_o, lse, delta, dk);
  return cudaGetLastError();
}

template <typename T, int NJ>
cudaError_t launch_dv(const AttentionShape& s, const T* q, const T* k, const uint8_t* kpm, const T* d_o,
                      const float* lse, T* dv, cudaStream_t st) {
  const size_t bytes = dv_smem_floats<NJ>() * sizeof(float);
  const auto kernel = dv_kernel<T, NJ>;
  if (cudaError_t e = allow_smem(kernel, bytes)) return e;
  const int64_t tk = tiles(s.chunk_k, s.Lk);
  const dim3 grid(static_cast<unsigned>(num_chunks(s) * tk), static_cast<unsigned>(s.B * s.H),
                  static_cast<unsigned>((s.dv + 16 * NJ - 1) / (16 * NJ)));
  MGL_LAUNCH(kernel, grid, kThreads, bytes, st)(s, tk, q, k, kpm, d_o, lse, dv);
  return cudaGetLastError();
}

}  // namespace attention_detail

template <typename T>
const char* attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v,
                                   const uint8_t* key_padding, T* o, float* lse, void* stream) {
  using namespace attention_detail;
  if (s.B * s.H * s.Lq == 0) return nullptr;
  auto st = static_cast<cudaStream_t>(stream);
  // Value columns per block: as many as registers allow (16·NJ), since every extra column tile
  // recomputes Q Kᵀ; 256 for the presets' d_v = 2048 (8 tiles).
  return status(s.dv <= 64    ? launch_fwd<T, 4>(s, q, k, v, key_padding, o, lse, st)
                : s.dv <= 128 ? launch_fwd<T, 8>(s, q, k, v, key_padding, o, lse, st)
                              : launch_fwd<T, 16>(s, q, k, v, key_padding, o, lse, st));
}

template <typename T>
const char* attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v,
                                    const uint8_t* key_padding, const T* o, const T* d_o, const float* lse,
                                    float* delta, T* dq, T* dk, T* dv, void* stream) {
  using namespace attention_detail;
  if (s.B * s.H * (s.Lq + s.Lk) == 0) return nullptr;
  auto st = static_cast<cudaStream_t>(stream);
  if (s.Lq > 0) {
    const int64_t rows = s.B * s.Lq * s.H, per_block = kThreads / 32;
    MGL_LAUNCH(delta_kernel<T>, static_cast<unsigned>((rows + per_block - 1) / per_block), kThreads, 0, st)(s, o, d_o,
                                                                                                     delta);
    if (cudaError_t e = cudaGetLastError()) return status(e);
  }
  cudaError_t e = s.dk <= 64    ? launch_dqk<T, 4>(s, q, k, v, key_padding, d_o, lse, delta, dq, dk, st)
                  : s.dk <= 128 ? launch_dqk<T, 8>(s, q, k, v, key_padding, d_o, lse, delta, dq, dk, st)
                                : launch_dqk<T, 16>(s, q, k, v, key_padding, d_o, lse, delta, dq, dk, st);
  if (e != cudaSuccess) return status(e);
  return status(s.dv <= 64    ? launch_dv<T, 4>(s, q, k, key_padding, d_o, lse, dv, st)
                : s.dv <= 128 ? launch_dv<T, 8>(s, q, k, key_padding, d_o, lse, dv, st)
                              : launch_dv<T, 16>(s, q, k, key_padding, d_o, lse, dv, st));
}

}  // namespace mgl::cuda
