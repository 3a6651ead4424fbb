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
#include <new>
#include <unordered_map>
#include <vector>

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
// The most tensor bytes ever alive at once (never reset), and the pool's cached bytes (a copy of
// Pool::cached_bytes readable without its lock).
std::atomic<int64_t> g_high{0}, g_cached{0};
std::atomic<bool> g_cache{false};

void trim_pool(int64_t allowed);

void raise_max(std::atomic<int64_t>& m, int64_t now) {
  int64_t p = m.load();
  while (now > p && !m.compare_exchange_weak(p, now)) {
  }
}

// Counts an allocation. Cached large blocks are memory the process holds without tensors in it:
// they may fill the room below the most tensor memory the process has needed (their reuse saves
// page faults), never more. Checked at every allocation, not only at the pool's: at stop 30 the
// pool, kept to its own high-water mark, held 288 MiB of cached blocks at a 16K-token step's peak
// of RSS while glibc's heap (blocks of 1–32 MiB then) was at its own (issue 22).
void add(int64_t n) {
  const int64_t now = g_current.fetch_add(n) + n;
  raise_max(g_peak, now);
  raise_max(g_high, now);
  const int64_t cached = g_cached.load(std::memory_order_relaxed);
  if (cached > 0 && now + cached > g_high.load(std::memory_order_relaxed)) trim_pool(g_high.load() - now);
}

// Blocks from 4 MiB up are pooled (mapped by the pool, cached for reuse); smaller ones stay with
// malloc. Above 32 MiB glibc would map and unmap every block itself (its largest mmap threshold):
// page faults at every step. From 4 to 32 MiB the pool replaced glibc's heap at stop 31: the heap
// and the pool each kept their own high-water mark, at different moments of the step, and the
// heap's never went back (16K tokens: 106 KiB/token of RSS against 74.7 of tensors; pooled: 75.0).
// From 1 MiB, system time rose to 13 % of user time at 1K–16K tokens (unmapping interrupts the
// other cores). From 4 MiB it is 3–9 % from 4K tokens but 10–18 % at 1K, against about 10 % with
// the heap: cached blocks trimmed below the peak are mapped again in the next step. From 8 MiB, 4K
// tokens took 90 KiB/token against the Transformer's 73. Letting cached blocks exceed the all-time
// tensor peak by 1/8 halved the page faults but took 4K to 1.02× the Transformer's memory.
constexpr size_t kPooled = size_t{4} << 20;
// Threads with an Owner (loader threads) put a header on every block below this (see Header).
constexpr size_t kLarge = size_t{32} << 20;

// Size class of a large request: rounded up to 1/8 of its power of two (≤ 12.5 % slack).
size_t size_class(size_t n) {
  size_t p = size_t{1} << 20;
  while (p < n) p <<= 1;
  const size_t step = std::max<size_t>(p / 8, 4096);
  return (n + step - 1) / step * step;
}

// The large-block pool: mapped blocks by size class, in use or cached for reuse.
struct Pool {
  std::mutex mu;
  std::multimap<size_t, void*> cached;  // class size → block
  int64_t cached_bytes = 0, in_use = 0;

  void* map(size_t bytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    // No MADV_HUGEPAGE (stop 31): with blocks from 4 MiB pooled, advising them for transparent
    // huge pages doubled system time at 1K tokens (20 % of user time against 10 %: the kernel
    // zeroes, and compacts memory for, 2 MiB pages at every fault) and ran 4–10 % slower at 1K,
    // 4K and 32K; advising only blocks above 32 MiB was slower at 32K too.
    return p;
  }
  // A block of at least `bytes` (a size class); `bytes` becomes the block's size. A cached block
  // of the class or up to 1/8 larger is reused as it is; else a new block is mapped. (Cutting a
  // larger cached block down, or growing a smaller one with mremap, faulted fewer pages in but
  // cost more system time: every unmapping interrupts the cores running this process's threads.)
  // What stays cached is bounded in add().
  void* take(size_t& bytes) {
    std::unique_lock<std::mutex> lock(mu);
    auto it = cached.lower_bound(bytes);
    void* p = nullptr;
    if (it != cached.end() && it->first <= bytes + bytes / 8) {
      p = it->second;
      bytes = it->first;
      cached.erase(it);
      cached_bytes -= static_cast<int64_t>(bytes);
      g_cached.store(cached_bytes);
    }
    in_use += static_cast<int64_t>(bytes);
    lock.unlock();
    if (!p) p = map(bytes);
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
      g_cached.store(cached_bytes);
    } else {
      munmap(p, bytes);
    }
  }
};
Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: tensors may be freed during static destruction
  return *p;
}

// Gives cached blocks back, largest first, until at most `allowed` bytes stay cached.
void trim_pool(int64_t allowed) {
  Pool& pl = pool();
  std::lock_guard<std::mutex> lock(pl.mu);
  while (!pl.cached.empty() && pl.cached_bytes > allowed) {
    auto last = std::prev(pl.cached.end());
    munmap(last->second, last->first);
    pl.cached_bytes -= static_cast<int64_t>(last->first);
    pl.cached.erase(last);
  }
  g_cached.store(pl.cached_bytes);
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
// with the table, 2.0× with headers). Those threads are the ones with an `Owner` (below).
constexpr size_t kAlign = 128, kHeader = 64;
struct Owner;
struct Header {
  int64_t bytes;    // requested
  size_t capacity;  // bytes after the header
  void* base;       // what posix_memalign handed out
  Owner* owner;     // the loader thread that allocated it (null: any other thread)
  Header* next;     // in the owner's list of blocks freed by other threads
};
static_assert(sizeof(Header) <= kHeader, "the block header must fit its slot");

// Blocks a loader thread allocates go back to it. glibc's free() takes the lock of the arena the
// block came from, so a consumer freeing batches while their loader thread allocates the next ones
// contends for that arena's lock (`perf`: a tenth of an LM bench in futex waits and wakes). Another
// thread's free pushes the block on its owner's lock-free list instead, and the owner takes the
// list at its next allocation: it reuses the most recently returned block of the size it needs
// (still in its core's cache, as a block freed and allocated again by one thread would be) and
// frees the rest, in its own arena, without contention.
//  - The owner object lives while its thread runs or any block it allocated is alive (`refs`: one
//    for the thread, one per block, one for a releaser between its push and its last look).
//  - A block pushed after the thread has gone is freed by whoever pushed it: a releaser that pushes
//    and then sees `alive` still set pushed before the owner's last drain, which frees it.
struct Owner {
  std::atomic<Header*> freed{nullptr};
  std::atomic<int64_t> refs{1};
  std::atomic<bool> alive{true};
  std::vector<Header*> cache, scratch;  // the owner thread's: returned blocks, most recent last
  size_t cache_bytes = 0;
};
// What a loader thread keeps for reuse: at most 16 blocks and 32 MiB (the oldest go first).
constexpr size_t kOwnerCacheBlocks = 16, kOwnerCacheBytes = size_t{32} << 20;
thread_local Owner* t_owner = nullptr;  // set while HeaderBlocksInThisThread lives

void unref(Owner* o, int64_t n = 1) {
  if (n > 0 && o->refs.fetch_sub(n, std::memory_order_acq_rel) == n) delete o;
}
// Frees every block on `o`'s list; returns how many (the caller drops their references).
int64_t drain(Owner* o) {
  int64_t n = 0;
  for (Header* h = o->freed.exchange(nullptr); h; ++n) {
    Header* next = h->next;
    std::free(h->base);
    h = next;
  }
  return n;
}
// In the owner thread: a returned block of `n` bytes (up to 1/8 more) to reuse, or null.
Header* reuse(Owner* o, size_t n) {
  if (o->freed.load(std::memory_order_relaxed)) {
    o->scratch.clear();
    for (Header* h = o->freed.exchange(nullptr); h; h = h->next) o->scratch.push_back(h);  // newest first
    for (auto it = o->scratch.rbegin(); it != o->scratch.rend(); ++it) {
      o->cache.push_back(*it);
      o->cache_bytes += (*it)->capacity;
    }
    std::ptrdiff_t extra = 0;
    while (o->cache.size() - static_cast<size_t>(extra) > kOwnerCacheBlocks || o->cache_bytes > kOwnerCacheBytes) {
      o->cache_bytes -= o->cache[static_cast<size_t>(extra)]->capacity;
      std::free(o->cache[static_cast<size_t>(extra++)]->base);
    }
    o->cache.erase(o->cache.begin(), o->cache.begin() + extra);
    unref(o, extra);
  }
  for (auto it = o->cache.rbegin(); it != o->cache.rend(); ++it) {
    Header* h = *it;
    if (h->capacity >= n && h->capacity - n <= n / 8) {
      o->cache.erase(std::next(it).base());
      o->cache_bytes -= h->capacity;
      return h;
    }
  }
  return nullptr;
}

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
    auto* h = reinterpret_cast<Header*>(static_cast<char*>(ptr) - kHeader);
    g_current.fetch_sub(h->bytes);
    Owner* o = h->owner;
    if (!o || o == t_owner) {
      std::free(h->base);
      if (o) unref(o);
      return;
    }
    o->refs.fetch_add(1, std::memory_order_relaxed);  // keeps `o` while this thread looks at it
    Header* top = o->freed.load(std::memory_order_relaxed);
    do h->next = top;
    while (!o->freed.compare_exchange_weak(top, h));  // sequentially consistent with `alive`
    unref(o, 1 + (o->alive.load() ? 0 : drain(o)));
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
    Owner* o = t_owner;
    if (n < kSmall || (o && n < kLarge)) {
      Header* h = o ? reuse(o, n) : nullptr;
      if (h) {
        h->bytes = static_cast<int64_t>(n);
      } else {
        void* base = aligned(n + kHeader);
        if (o) o->refs.fetch_add(1, std::memory_order_relaxed);
        h = new (base) Header{static_cast<int64_t>(n), n, base, o, nullptr};
      }
      add(static_cast<int64_t>(n));
      void* p = reinterpret_cast<char*>(h) + kHeader;
      return c10::DataPtr(p, p, &release, c10::Device(c10::kCPU));
    }
    void* p = nullptr;
    size_t mapped = 0;
    if (n >= kPooled && g_cache.load()) {
      mapped = size_class(n);
      p = pool().take(mapped);
      if (!p) mapped = 0;
    }
    if (!p) p = aligned(n);
    add(static_cast<int64_t>(n));  // after the pool's reuse: counting first could trim the block reused
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
HeaderBlocksInThisThread::HeaderBlocksInThisThread() : old_(t_owner != nullptr) {
  if (!t_owner) t_owner = new Owner;
}
HeaderBlocksInThisThread::~HeaderBlocksInThisThread() {
  if (old_ || !t_owner) return;
  Owner* o = t_owner;
  t_owner = nullptr;
  o->alive.store(false);
  for (Header* h : o->cache) std::free(h->base);
  unref(o, 1 + static_cast<int64_t>(o->cache.size()) + drain(o));
}
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
  g_cached.store(0);
}

}  // namespace tensor_memory
}  // namespace mgl
