// A blocked matrix transpose for the CPU (issue 22). LibTorch's copy_ of a transposed view walks the
// destination in order and reads the source a stride apart, one cache line per element once a row
// is wider than the cache: the chunked EMA's layout changes (B×L×D tokens ↔ D rows of the sequence)
// ran at 2–3 GB/s and took 3–5 % of a training step. This moves 32×32 tiles, so both sides are read
// and written a cache line at a time, and the tiles run in parallel on the intra-op threads.
#pragma once
#include <cstdint>

namespace mgl::cpu {

// For b < batch, i < rows, j < cols: dst[b·dst_batch + j·dst_ld + i] = src[b·src_batch + i·src_ld + j].
// The source and destination must not overlap. T = float or double.
template <typename T>
void transpose(const T* src, T* dst, int64_t batch, int64_t rows, int64_t cols, int64_t src_ld, int64_t dst_ld,
               int64_t src_batch, int64_t dst_batch);

}  // namespace mgl::cpu
