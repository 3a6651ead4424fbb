// Per-element arithmetic and tile bookkeeping of the IO-aware chunked attention kernels
// (core/cuda/attention/attention.cuh), written once as host+device inline functions so that the CPU
// test (tests/core/test_attention_kernel_math.cpp) runs the very same code in its emulation of
// the tiling. Plain C++ when not compiled by nvcc; no torch, no CUDA headers.
//
// Semantics (spec §3.4): queries and keys are split into chunks; chunk m holds queries
// [m·Cq, min((m+1)·Cq, Lq)) and keys [m·Ck, min((m+1)·Ck, Lk)). Inside a chunk, with chunk-local
// indices r (query) and c (key), qlen and klen the chunk's lengths and off = klen − qlen, the key
// is visible when c < klen, r < qlen, not padded, and (causal only) c ≤ r + off. The chunked
// training form has Cq = Ck and off = 0 (block-diagonal causal); the decode step is one chunk with
// Lq new queries after a cache of Lk − Lq keys (bottom-right aligned, off = Lk − Lq).
#pragma once
#include <cmath>
#include <cstdint>

#include "core/cuda/common/host_device.h"

namespace mgl::cuda::attention {

// Tile sizes shared by the kernels and the CPU emulation: a block owns kTile query rows (or key
// rows in the key-major backward kernels) and streams kTile-wide tiles of the other side.
constexpr int kTile = 64;

// ---- chunk geometry -----------------------------------------------------------------------
struct ChunkSpan {
  int64_t q0, qlen;  // first query (global index) and number of queries of the chunk
  int64_t k0, klen;  // same for keys
  int64_t off;       // klen − qlen: bottom-right alignment of the causal mask
};

MGL_HD ChunkSpan chunk_span(int64_t m, int64_t Lq, int64_t Lk, int64_t cq, int64_t ck) {
  ChunkSpan s;
  s.q0 = m * cq;
  s.k0 = m * ck;
  s.qlen = (Lq - s.q0 < cq) ? Lq - s.q0 : cq;
  s.klen = (Lk - s.k0 < ck) ? Lk - s.k0 : ck;
  s.off = s.klen - s.qlen;
  return s;
}

// Whether chunk-local key c is visible from chunk-local query r (padding is checked separately).
MGL_HD bool visible(int64_t r, int64_t c, const ChunkSpan& s, bool causal) {
  return r < s.qlen && c < s.klen && (!causal || c <= r + s.off);
}

// Number of keys a tile of queries [r0, r0 + rows) needs to look at: all klen keys, or under the
// causal mask up to the last row's diagonal. Key tiles beyond it are skipped entirely.
MGL_HD int64_t keys_needed(int64_t r0, int64_t rows, const ChunkSpan& s, bool causal) {
  if (!causal) return s.klen;
  int64_t last = r0 + rows - 1;
  if (last > s.qlen - 1) last = s.qlen - 1;
  const int64_t n = last + s.off + 1;
  return n < 0 ? 0 : (n > s.klen ? s.klen : n);
}

// First query row that can see any key of the tile [c0, …): the key-major backward kernels start
// their sweep over query tiles there.
MGL_HD int64_t first_query(int64_t c0, const ChunkSpan& s, bool causal) {
  if (!causal) return 0;
  const int64_t r = c0 - s.off;
  return r < 0 ? 0 : r;
}

// ---- online softmax (one row, streamed over key tiles) ---------------------------------------
// State after some key tiles: running max m of the scaled logits seen so far and running sum
// l = Σ exp(s − m). The output accumulator is kept unnormalised (Σ exp(s − m)·v) and rescaled by
// `alpha` whenever the max grows; at the end o = acc / l and lse = m + log l are saved for the
// backward pass, which recomputes P = exp(s − lse) exactly (no second normalisation).
// −∞ (masked) logits are handled without NaNs: a row that has seen only masked keys keeps
// m = −∞, l = 0, and its probabilities are 0.
template <typename A>
MGL_HD A neg_inf() {
  return -static_cast<A>(INFINITY);
}

// Factor by which the old accumulator and sum are multiplied when the max moves m_old → m_new.
template <typename A>
MGL_HD A rescale_factor(A m_old, A m_new) {
  if (m_new == neg_inf<A>()) return A(1);  // nothing visible yet: accumulator is 0 anyway
  return exp(m_old - m_new);               // m_old = −∞ → 0
}

// exp(s − m) with a masked logit (−∞) or an all-masked row (m = −∞) giving 0.
template <typename A>
MGL_HD A prob(A s, A m) {
  if (s == neg_inf<A>() || m == neg_inf<A>()) return A(0);
  return exp(s - m);
}

// Log-sum-exp of a finished row; +∞ for a row with no visible key, so that the backward's
// exp(s − lse) is 0 there (the reference outputs zeros for such rows).
template <typename A>
MGL_HD A finish_lse(A m, A l) {
  return l > A(0) ? m + log(l) : static_cast<A>(INFINITY);
}

// 1/l for the final normalisation, 0 for a row with no visible key.
template <typename A>
MGL_HD A inv_sum(A l) {
  return l > A(0) ? A(1) / l : A(0);
}

// Recomputed probability in the backward pass from the saved lse.
template <typename A>
MGL_HD A prob_from_lse(A s, A lse) {
  if (s == neg_inf<A>() || lse == static_cast<A>(INFINITY)) return A(0);
  return exp(s - lse);
}

// Softmax backward for one element: dS = P ⊙ (dP − δ) with δ = Σ_c dO·O over the row (which
// equals Σ_j P·dP, the FlashAttention-2 identity that avoids a second pass over the keys).
template <typename A>
MGL_HD A dscore(A p, A dp, A delta) {
  return p * (dp - delta);
}

}  // namespace mgl::cuda::attention
