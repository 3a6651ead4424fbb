// Process memory readings for the benchmarks (Linux).
#pragma once
#include <cstdint>

namespace mgl {
// Resident set size now, in bytes (from /proc/self/statm); 0 if unavailable.
int64_t current_rss_bytes();
// Peak resident set size of this process so far, in bytes (getrusage).
int64_t peak_rss_bytes();
}  // namespace mgl
