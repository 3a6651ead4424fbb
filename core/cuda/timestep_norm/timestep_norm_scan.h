// The block structure of the fused timestep-norm scan over time (spec §2.5), shared by the CUDA
// kernels (timestep_norm.cuh) and their CPU emulation (emu::column_scan below, used by
// tests/core/test_timestep_norm_scan.cpp and the timestep-norm benchmark). Compiles with g++.
//
// One column = one (batch, group) pair; its L steps are scanned in "scan order" (forward in time
// for the statistics, reverse for the backward's suffix sums). Work-efficient reduce-then-scan:
//   tile  = kThreads × kItems consecutive positions. Thread j owns positions j·kItems .. +kItems−1:
//           it folds them sequentially (1), the block takes an exclusive scan of the kThreads
//           partial states (2: Kogge–Stone inside each warp, then over the warp totals), and each
//           thread re-folds its items from its prefix, writing every inclusive state (3). The
//           re-fold starts from the compensated carry and stays compensated, so each output is
//           the carried sum corrected by its Kahan term (≈ ½ ulp, not one rounding per merge).
//   carry = the state of everything before the tile, merged with Kahan compensation (§2.5).
//   chunk = kTilesPerChunk tiles. Columns with L ≤ kChunk run in one block (the short path: one
//           kernel). Longer ones (the long path) split into chunks: a kernel reduces each chunk
//           to its total, one thread per column scans the chunk totals (compensated), and a third
//           kernel re-scans every chunk from its prefix; so B·G·⌈L/kChunk⌉ blocks share the work.
// Total work O(L) merges per column, depth O(kItems + log kThreads + tiles per chunk + chunks).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cuda/timestep_norm/timestep_norm_math.h"

namespace mgl::cuda::timestep_norm {

constexpr int kThreads = 256;      // threads per scan block (8 warps)
constexpr int kWarps = kThreads / 32;
constexpr int kItems = 4;          // consecutive positions per thread in a tile
constexpr int kTile = kThreads * kItems;  // 1024
constexpr int kTilesPerChunk = 4;
constexpr int64_t kChunk = int64_t{kTile} * kTilesPerChunk;  // 4096: longer columns take the long path

inline int64_t num_chunks(int64_t L) { return L <= kChunk ? 1 : (L + kChunk - 1) / kChunk; }

// ---- CPU emulation -----------------------------------------------------------------------
// Runs the scan of one column exactly as the kernels order their merges (same functions from
// timestep_norm_math.h, same tiles, warps and chunks), sequentially. `load(i)` gives the state at
// scan position i, `store(i, inclusive_state)` receives every result; returns the final carry.
namespace emu {

// Kogge–Stone inclusive scan over 32 lanes, as the warp shuffles do it (lane reads lane − off).
template <class S>
void warp_inclusive(S* v) {
  for (int off = 1; off < 32; off <<= 1) {
    S prev[32];
    for (int l = 0; l < 32; ++l) prev[l] = v[l];
    for (int l = off; l < 32; ++l) v[l] = combine(prev[l - off], prev[l]);
  }
}

template <class S, class C, class Id, class Load, class Store>
void tile(int64_t begin, int64_t end, C& carry, Id identity, Load& load, Store& store, bool write) {
  std::vector<S> items(kTile, identity()), part(kThreads, identity()), incl(kThreads);
  for (int j = 0; j < kThreads; ++j)
    for (int k = 0; k < kItems; ++k) {
      const int64_t i = begin + int64_t{j} * kItems + k;
      if (i < end) items[j * kItems + k] = load(i);
      part[j] = combine(part[j], items[j * kItems + k]);
    }
  S wtot[32];
  for (int w = 0; w < 32; ++w) wtot[w] = identity();
  for (int w = 0; w < kWarps; ++w) {
    for (int l = 0; l < 32; ++l) incl[w * 32 + l] = part[w * 32 + l];
    warp_inclusive(&incl[w * 32]);
    wtot[w] = incl[w * 32 + 31];
  }
  warp_inclusive(wtot);  // warp 0 scans the warp totals (lanes ≥ kWarps hold the identity)
  const S tile_total = wtot[kWarps - 1];
  if (write) {
    for (int j = 0; j < kThreads; ++j) {
      const int w = j / 32, l = j % 32;
      const S wpre = w == 0 ? identity() : wtot[w - 1];
      const S lpre = l == 0 ? identity() : incl[j - 1];
      C s = carry;  // the thread's running state stays compensated: every output is within ~½ ulp
      carry_absorb(s, wpre);
      carry_absorb(s, lpre);
      for (int k = 0; k < kItems; ++k) {
        const int64_t i = begin + int64_t{j} * kItems + k;
        carry_absorb(s, items[j * kItems + k]);
        if (i < end) store(i, corrected(s));
      }
    }
  }
  carry_absorb(carry, tile_total);
}

template <class S, class C, class Id, class Load, class Store>
C column_scan(int64_t L, C init, Id identity, Load load, Store store) {
  const int64_t nc = num_chunks(L);
  // Chunk totals (reduce kernel), then the compensated scan over chunks (one thread per column).
  std::vector<C> prefix(nc, init);
  C run = init;
  for (int64_t c = 0; c + 1 < nc; ++c) {
    C tot = carry_init(identity());
    const int64_t e = (c + 1) * kChunk;
    for (int64_t b = c * kChunk; b < e; b += kTile)
      tile<S>(b, std::min(b + kTile, L), tot, identity, load, store, false);
    carry_absorb(run, tot.s);
    prefix[c + 1] = run;
  }
  // Re-scan of each chunk from its prefix (the apply kernel); the last chunk's carry is the result.
  C last = init;
  for (int64_t c = 0; c < nc; ++c) {
    C carry = prefix[c];
    const int64_t e = std::min((c + 1) * kChunk, L);
    for (int64_t b = c * kChunk; b < e; b += kTile) tile<S>(b, std::min(b + kTile, e), carry, identity, load, store, true);
    last = carry;
  }
  return last;
}

}  // namespace emu
}  // namespace mgl::cuda::timestep_norm
