#include "core/util/memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include <atomic>
#include <cstdio>
#include <mutex>

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

namespace tensor_memory {
namespace {

std::atomic<int64_t> g_current{0}, g_peak{0};

void add(int64_t n) {
  const int64_t now = g_current.fetch_add(n) + n;
  int64_t p = g_peak.load();
  while (now > p && !g_peak.compare_exchange_weak(p, now)) {
  }
}

// One allocation: the underlying allocator's DataPtr, kept alive until ours is deleted.
struct Block {
  c10::DataPtr inner;
  int64_t bytes;
};

void release(void* ctx) {
  auto* b = static_cast<Block*>(ctx);
  g_current.fetch_sub(b->bytes);
  delete b;
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
#define MGL_ALLOC_CONST
#else
#define MGL_ALLOC_CONST const
#endif

struct CountingAllocator final : c10::Allocator {
  explicit CountingAllocator(c10::Allocator* inner) : inner_(inner) {}
  c10::DataPtr allocate(size_t n) MGL_ALLOC_CONST override {
    c10::DataPtr d = inner_->allocate(n);
    void* data = d.get();
    const c10::Device dev = d.device();
    auto* b = new Block{std::move(d), static_cast<int64_t>(n)};
    add(b->bytes);
    return c10::DataPtr(data, b, &release, dev);
  }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#endif

 private:
  c10::Allocator* inner_;
};

}  // namespace

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    static CountingAllocator counting(c10::GetCPUAllocator());
    c10::SetCPUAllocator(&counting, /*priority=*/100);
  });
}
int64_t current_bytes() { return g_current.load(); }
int64_t peak_bytes() { return g_peak.load(); }
void reset_peak() { g_peak.store(g_current.load()); }

}  // namespace tensor_memory
}  // namespace mgl
