// The race-detector build of the SIMT executor: the kernel sources are compiled with GCC's
// ThreadSanitizer instrumentation (-fsanitize=thread), which makes every load and store call
// __tsan_readN / __tsan_writeN. This file defines those entry points itself (ThreadSanitizer's own
// runtime is not linked): each access goes to the executor's shared-memory race detector and
// global-memory initcheck (simt.cpp), which ignore every address they do not watch.
#include <cstddef>
#include <cstdint>

#include "simt/simt.h"

extern "C" {

int simt_race_hooks_linked() { return 1; }

// Most accesses are to memory nobody watches (registers spilled to the stack, global tensors): they
// are rejected here, before any call.
#define SIMT_ACCESS(p, n, w)                                     \
  do {                                                           \
    char* c_ = static_cast<char*>(p);                            \
    if (c_ + (n) > simt::watch_lo && c_ < simt::watch_hi)        \
      simt::detail_access(p, n, w, __builtin_return_address(0)); \
  } while (0)

#define SIMT_HOOK(n)                                                   \
  void __tsan_read##n(void* p) { SIMT_ACCESS(p, n, false); }           \
  void __tsan_write##n(void* p) { SIMT_ACCESS(p, n, true); }           \
  void __tsan_unaligned_read##n(void* p) { SIMT_ACCESS(p, n, false); } \
  void __tsan_unaligned_write##n(void* p) { SIMT_ACCESS(p, n, true); } \
  void __tsan_volatile_read##n(void* p) { SIMT_ACCESS(p, n, false); }  \
  void __tsan_volatile_write##n(void* p) { SIMT_ACCESS(p, n, true); }
SIMT_HOOK(1)
SIMT_HOOK(2)
SIMT_HOOK(4)
SIMT_HOOK(8)
SIMT_HOOK(16)
#undef SIMT_HOOK

void __tsan_read_range(void* p, size_t n) { SIMT_ACCESS(p, n, false); }
void __tsan_write_range(void* p, size_t n) { SIMT_ACCESS(p, n, true); }
void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
void __tsan_atomic_thread_fence(int) {}
void __tsan_atomic_signal_fence(int) {}

}  // extern "C"
