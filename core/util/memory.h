// Process memory readings for the benchmarks (Linux).
#pragma once
#include <cstdint>

namespace mgl {
// Resident set size now, in bytes (from /proc/self/statm); 0 if unavailable.
int64_t current_rss_bytes();
// Peak resident set size of this process so far, in bytes (getrusage).
int64_t peak_rss_bytes();
// Resident pages of mapped files (shared libraries, mmap'd data) and shared memory now, in bytes
// (RssFile + RssShmem of /proc/self/status); 0 if unavailable. How many library pages a process
// has mapped depends on the page cache (the kernel maps cached neighbours of a faulting page), so
// memory figures subtract them: peak_rss_bytes() − file_rss_bytes() is the peak of the process's own
// memory, as file pages, once mapped, stay.
int64_t file_rss_bytes();

// Bytes of CPU tensor storage alive now and at most since the last reset, counted by the harness's
// CPU allocator (installed in LibTorch's place, 64-byte aligned like LibTorch's own) (issue 22: the per-op memory breakdown of the benchmark). Exact
// for tensors; memory that libraries take with malloc themselves (BLAS and FFT work buffers) and
// the allocator's own slack are not counted (peak RSS shows those). install() is idempotent and
// counts from then on; before it, current and peak are 0.
namespace tensor_memory {
void install();
int64_t current_bytes();
int64_t peak_bytes();
void reset_peak();  // peak := current

// CPU tensors of 4 MiB and more reuse freed blocks instead of going back to the kernel (issue 22).
// glibc serves anything above 32 MiB by mmap/munmap, so every step of a long sequence page-faults
// its big temporaries in again (kernel time, and the process-wide page-fault lock that loader
// threads contend on); from 4 to 32 MiB its heap keeps a high-water mark of its own, on top of the
// pool's. Cached blocks are kept by size class (1/8 of the next power of two), and at most as many
// bytes stay cached as fit below the most tensor memory the process has ever had alive (largest
// given back first), so peak RSS stays that of the tensors. Installs the allocator (as install())
// on the first call.
void set_cache_large_blocks(bool on);
// While alive, blocks below 32 MiB allocated by this thread carry their bookkeeping in a header,
// and go back to this thread when another thread frees them: it reuses them (still in its core's
// cache) or frees them itself, in its own malloc arena. For threads whose tensors other threads
// free: the data loader's. Blocks that outlive the thread are freed by their last holder.
class HeaderBlocksInThisThread {
 public:
  HeaderBlocksInThisThread();
  ~HeaderBlocksInThisThread();
  HeaderBlocksInThisThread(const HeaderBlocksInThisThread&) = delete;
  HeaderBlocksInThisThread& operator=(const HeaderBlocksInThisThread&) = delete;

 private:
  bool old_;
};
int64_t cached_bytes();  // held for reuse now
void release_cached();   // gives every cached block back to the kernel
}  // namespace tensor_memory

}  // namespace mgl
