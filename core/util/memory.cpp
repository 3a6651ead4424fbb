#include "core/util/memory.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace mgl {

int64_t current_rss_bytes() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
  std::fclose(f);
  return n == 2 ? static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE) : 0;
}

int64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

int64_t file_rss_bytes() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  int64_t kib = 0;
  while (std::fgets(line, sizeof line, f)) {
    long v = 0;
    if (std::sscanf(line, "RssFile: %ld kB", &v) == 1 || std::sscanf(line, "RssShmem: %ld kB", &v) == 1) kib += v;
  }
  std::fclose(f);
  return kib * 1024;
}

namespace tensor_memory {
namespace {

std::atomic<int64_t> g_current{0}, g_peak{0};
std::atomic<bool> g_cache{false};

void add(int64_t n) {
  const int64_t now = g_current.fetch_add(n) + n;
  int64_t p = g_peak.load();
  while (now > p && !g_peak.compare_exchange_weak(p, now)) {
  }
}

// Blocks glibc would serve by mmap (above its largest mmap threshold, 32 MiB) are pooled; smaller
// ones stay with malloc, whose heap already reuses them.
constexpr size_t kLarge = size_t{32} << 20;
constexpr size_t kHuge = size_t{2} << 20;  // advised for transparent huge pages

// Size class of a large request: rounded up to 1/8 of its power of two (≤ 12.5 % slack).
size_t size_class(size_t n) {
  size_t p = kLarge;
  while (p < n) p <<= 1;
  const size_t step = std::max<size_t>(p / 8, 4096);
  return (n + step - 1) / step * step;
}

// The large-block pool: mapped blocks by size class, in use or cached for reuse.
struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> cached;  // class size → block
  int64_t cached_bytes = 0, in_use = 0, peak_in_use = 0;

  void* map(size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    if (bytes >= kHuge && !std::getenv("MGL_NO_HUGE")) madvise(p, bytes, MADV_HUGEPAGE);
    return p;
  }
  // A block of at least `bytes` (a size class); `bytes` becomes the block's size.
  void* take(size_t& bytes) {
    std::unique_lock<std::mutex> lock(mu);
    // The smallest cached block of this class or up to 1/8 larger (the caller records its size).
    auto it = cached.lower_bound(bytes);
    if (it != cached.end() && it->first <= bytes + bytes / 8) {
      void* p = it->second;
      bytes = it->first;
      cached.erase(it);
      cached_bytes -= static_cast<int64_t>(bytes);
      in_use += static_cast<int64_t>(bytes);
      peak_in_use = std::max(peak_in_use, in_use);
      return p;
    }
    // Give cached blocks back (largest first) while mapping this one would exceed what the
    // process has needed at most so far.
    const int64_t budget = std::max(peak_in_use, in_use + static_cast<int64_t>(bytes));
    while (!cached.empty() && in_use + cached_bytes + static_cast<int64_t>(bytes) > budget) {
      auto last = std::prev(cached.end());
      munmap(last->second, last->first);
      cached_bytes -= static_cast<int64_t>(last->first);
      cached.erase(last);
    }
    in_use += static_cast<int64_t>(bytes);
    peak_in_use = std::max(peak_in_use, in_use);
    lock.unlock();
    void* p = map(bytes);
    if (!p) {
      std::lock_guard<std::mutex> relock(mu);
      in_use -= static_cast<int64_t>(bytes);
    }
    return p;
  }
  void give(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    in_use -= static_cast<int64_t>(bytes);
    if (g_cache.load()) {
      cached.emplace(bytes, p);
      cached_bytes += static_cast<int64_t>(bytes);
    } else {
      munmap(p, bytes);
    }
  }
};
Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: tensors may be freed during static destruction
  return *p;
}

// What a block needs at free time. LibTorch's raw_allocate requires a DataPtr whose context is its
// data pointer (freed by raw_deleter()), so the free sees the data pointer alone.
//  - Small blocks (below kSmall) carry it in a 64-byte header just before the data: no process-wide
//    table and lock, which every allocation and free in every thread would otherwise take (loader
//    threads allocate batches that the training thread frees; speech with two loader threads went
//    from 1.6× to 2.0× the calling thread's rate).
//  - Larger blocks are allocated at exactly their size (a header made glibc's heap hold about 5 %
//    more for the long-sequence tensors) and recorded in a table; they are few.
// The two are told apart by the data pointer's offset within 128 bytes: 64 for a small block (its
// base is 128-aligned), 0 for a large one (128-aligned itself, or a page from the pool).
constexpr size_t kSmall = size_t{1} << 20;
// Threads that build batches for another thread (loader threads) put the header on every block
// below the pool's size: their blocks are freed by the consumer, and the table's lock would be
// shared by every loader thread and the consumer (speech, 2 MB batches, two loader threads: 1.8×
// with the table, 2.0× with headers).
thread_local bool t_header_blocks = false;
constexpr size_t kAlign = 128, kHeader = 64;
struct Header {
  int64_t bytes;  // requested
  void* base;     // what posix_memalign handed out
};
static_assert(sizeof(Header) <= kHeader, "the block header must fit its slot");

struct Large {
  int64_t bytes;        // requested
  size_t mapped_bytes;  // > 0: a pool block of this size; 0: posix_memalign's
};
std::mutex g_large_mu;
std::unordered_map<void*, Large>& large() {
  static auto* m = new std::unordered_map<void*, Large>;  // never destroyed (see pool())
  return *m;
}

void release(void* ptr) {
  if (!ptr) return;  // a zero-byte allocation
  if (reinterpret_cast<uintptr_t>(ptr) % kAlign == kHeader) {
    Header h;
    std::memcpy(&h, static_cast<char*>(ptr) - kHeader, sizeof h);
    g_current.fetch_sub(h.bytes);
    std::free(h.base);
    return;
  }
  Large l;
  {
    std::lock_guard<std::mutex> lock(g_large_mu);
    auto it = large().find(ptr);
    if (it == large().end()) return;  // not ours (cannot happen: every large block is recorded)
    l = it->second;
    large().erase(it);
  }
  g_current.fetch_sub(l.bytes);
  if (l.mapped_bytes > 0) pool().give(ptr, l.mapped_bytes);
  else std::free(ptr);
}

void* aligned(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, bytes) != 0 || !p)
    TORCH_CHECK(false, "the harness CPU allocator could not allocate ", bytes, " bytes (out of memory)");
  return p;
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define MGL_ALLOC_CONST
#else
#define MGL_ALLOC_CONST const
#endif

struct HarnessAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) MGL_ALLOC_CONST override {
    if (n == 0) return c10::DataPtr(nullptr, nullptr, &release, c10::Device(c10::kCPU));
    add(static_cast<int64_t>(n));
    if (n < kSmall || (t_header_blocks && n < kLarge)) {
      void* base = aligned(n + kHeader);
      const Header h{static_cast<int64_t>(n), base};
      std::memcpy(base, &h, sizeof h);
      void* p = static_cast<char*>(base) + kHeader;
      return c10::DataPtr(p, p, &release, c10::Device(c10::kCPU));
    }
    void* p = nullptr;
    size_t mapped = 0;
    if (n >= kLarge && g_cache.load()) {
      mapped = size_class(n);
      p = pool().take(mapped);
      if (!p) mapped = 0;
    }
    if (!p) p = aligned(n);
    {
      std::lock_guard<std::mutex> lock(g_large_mu);
      large()[p] = Large{static_cast<int64_t>(n), mapped};
    }
    return c10::DataPtr(p, p, &release, c10::Device(c10::kCPU));
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif
};

}  // namespace

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    static HarnessAllocator harness;
    c10::SetCPUAllocator(&harness, /*priority=*/100);
  });
}
HeaderBlocksInThisThread::HeaderBlocksInThisThread() : old_(t_header_blocks) { t_header_blocks = true; }
HeaderBlocksInThisThread::~HeaderBlocksInThisThread() { t_header_blocks = old_; }
int64_t current_bytes() { return g_current.load(); }
int64_t peak_bytes() { return g_peak.load(); }
void reset_peak() { g_peak.store(g_current.load()); }
void set_cache_large_blocks(bool on) {
  install();
  g_cache.store(on);
}
int64_t cached_bytes() {
  std::lock_guard<std::mutex> lock(pool().mu);
  return pool().cached_bytes;
}
void release_cached() {
  std::lock_guard<std::mutex> lock(pool().mu);
  for (auto& [bytes, p] : pool().cached) munmap(p, bytes);
  pool().cached.clear();
  pool().cached_bytes = 0;
}

}  // namespace tensor_memory
}  // namespace mgl
