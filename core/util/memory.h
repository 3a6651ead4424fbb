// Process memory readings for the benchmarks (Linux).
#pragma once
#include <cstdint>

namespace mgl {
// Resident set size now, in bytes (from /proc/self/statm); 0 if unavailable.
int64_t current_rss_bytes();
// Peak resident set size of this process so far, in bytes (getrusage).
int64_t peak_rss_bytes();

// Bytes of CPU tensor storage alive now and at most since the last reset, counted by a wrapper
// around LibTorch's CPU allocator (issue 22: the per-op memory breakdown of the benchmark). Exact
// for tensors; memory that libraries take with malloc themselves (BLAS and FFT work buffers) and
// the allocator's own slack are not counted (peak RSS shows those). install() is idempotent and
// counts from then on; before it, current and peak are 0.
namespace tensor_memory {
void install();
int64_t current_bytes();
int64_t peak_bytes();
void reset_peak();  // peak := current
}  // namespace tensor_memory

}  // namespace mgl
