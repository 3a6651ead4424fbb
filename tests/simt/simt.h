// The SIMT test executor: runs the real CUDA kernel sources (core/cuda/**/*.cuh, compiled by g++
// with the stand-in cuda_runtime.h of tests/simt/include/) on the CPU.
//
// Every thread of a block is a fiber (its own stack, switched by hand on x86-64, ucontext
// elsewhere); the blocks of a grid run one after another. A thread runs until it reaches a
// barrier, a warp shuffle or its end, then the next thread runs: all threads of a block meet at
// every __syncthreads (lock-step at barriers), and the 32 lanes of a warp meet at every shuffle.
// What it checks, each a Finding (the tests require none):
//   - barriers: threads waiting at different __syncthreads sites, a thread that exited while
//     others wait, a deadlock (threads blocked on a barrier and a shuffle at once);
//   - shuffles: a lane calling with a mask that does not name it, lanes of the mask that exited
//     or are elsewhere, lanes of one shuffle at different sites or with different masks, a source
//     lane outside the mask;
//   - launches: against the H100's limits (block ≤ 1024 threads, x/y ≤ 1024, z ≤ 64; grid.x <
//     2^31, grid.y/z ≤ 65535; static + dynamic shared memory > 48 KB only after
//     cudaFuncSetAttribute(MaxDynamicSharedMemorySize) for that kernel, ≤ 227 KB);
//   - shared memory: each block gets its dynamic and static shared buffers as separate heap
//     allocations of exactly the requested size, filled with NaN (0xff bytes) — AddressSanitizer
//     sees any access past their ends — and, in the race-detector build, every access is checked:
//     a read-after-write, write-after-read or write-after-write by different threads with no
//     barrier between them (the same barrier interval, so also across loop iterations), a read
//     of a byte no thread of the block has written, and an access just past a buffer's end;
//   - global memory (race-detector build): reads of bytes of a buffer registered with
//     track_uninitialized() before anything wrote them (the initcheck of compute-sanitizer).
// What it cannot see: the GPU memory model (it runs threads one at a time, so a missing fence or
// a racy global access that happens to be ordered here passes), what ptxas generates (register
// pressure, spills, the fp contraction and the precision of the GPU's math functions), timing and
// occupancy, and races in global memory between threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// CUDA's vector types, in the global namespace as in CUDA.
struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
// The built-in variables of the running thread (the scheduler sets them at every switch).
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;

namespace simt {

struct Stream;  // cudaStream_t is a Stream*; the executor has one implicit stream

// ---- findings -------------------------------------------------------------------------------
enum class Kind { launch, barrier, shuffle, race, uninitialized, out_of_bounds };
const char* to_string(Kind k);

struct Finding {
  Kind kind;
  std::string message;
};
// Everything found since the last call, cleared.
std::vector<Finding> take_findings();
// The findings of one kind in `f`.
size_t count(const std::vector<Finding>& f, Kind k);
// "kind: message" lines, for test output.
std::string describe(const std::vector<Finding>& f);

// Whether this binary checks shared-memory accesses (the race-detector build).
bool race_detector_enabled();

// ---- global memory initcheck (race-detector build; no-ops otherwise) -------------------------
// Reads by a kernel of bytes in [p, p + bytes) that nothing has written since this call are
// findings. Writes by kernels and by cudaMemcpyAsync/cudaMemsetAsync count.
void track_uninitialized(const void* p, size_t bytes);
void untrack_all();

// ---- statistics -----------------------------------------------------------------------------
struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, switches = 0, barriers = 0, shuffles = 0;
  size_t max_stack_bytes = 0;  // deepest fiber stack use seen (bytes of the stack reserved per thread)
  size_t stack_reserved = 0;
};
Stats stats();

// ---- the device side: called by the kernels through the stand-in headers ---------------------
void syncthreads(const char* file, int line);

// Raw shuffle on 8 bytes; `kind` 0: xor (arg = lane mask), 1: up (arg = delta).
uint64_t shuffle(unsigned mask, uint64_t bits, int kind, int arg, int width, const char* file, int line);
template <typename T>
T shfl(unsigned mask, T v, int kind, int arg, int width, const char* file, int line) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move 4 or 8 bytes");
  uint64_t b = 0;
  __builtin_memcpy(&b, &v, sizeof v);
  b = shuffle(mask, b, kind, arg, width, file, line);
  T out;
  __builtin_memcpy(&out, &b, sizeof out);
  return out;
}

// The block's dynamic shared memory (exactly the launch's byte count) and a static shared array
// (one per block and declaration site).
void* dynamic_smem_bytes(size_t align);
void* static_smem_bytes(size_t bytes, size_t align, const char* file, int line);
template <typename T>
T* dynamic_smem(size_t align) {
  return static_cast<T*>(dynamic_smem_bytes(align < alignof(T) ? alignof(T) : align));
}
template <typename T>
T* static_smem(size_t count, const char* file, int line) {
  return static_cast<T*>(static_smem_bytes(count * sizeof(T), alignof(T), file, line));
}

// ---- the host side --------------------------------------------------------------------------
struct LaunchConfig {
  const void* kernel;  // identifies the kernel (for cudaFuncSetAttribute)
  const char* name;
  const char* file;
  int line;
  dim3 grid, block;
  size_t smem;
};
// Checks the configuration, then runs body(ctx) once per thread of every block. Returns false
// when the launch was refused (the error is then what cudaGetLastError returns).
bool run(const LaunchConfig& cfg, void (*body)(void*), void* ctx);

template <class... P>
struct Launch {
  void (*fn)(P...);
  LaunchConfig cfg;
  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    // The arguments as the kernel's parameter types, converted once as a CUDA launch does.
    struct Ctx {
      void (*fn)(P...);
      std::tuple<std::decay_t<P>...> params;
    } ctx{fn, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    run(
        cfg,
        [](void* p) {
          auto* c = static_cast<Ctx*>(p);
          std::apply(c->fn, c->params);
        },
        &ctx);
  }
};

inline dim3 to_dim3(dim3 d) { return d; }
template <class I, class = std::enable_if_t<std::is_integral<I>::value>>
dim3 to_dim3(I n) {
  return dim3(static_cast<unsigned>(n));
}

template <class... P, class G, class B>
Launch<P...> launch(void (*fn)(P...), const char* name, G grid, B block, size_t smem, Stream* /*stream*/,
                    const char* file, int line) {
  return Launch<P...>{fn, LaunchConfig{reinterpret_cast<const void*>(fn), name, file, line, to_dim3(grid),
                                       to_dim3(block), smem}};
}

// cudaFuncSetAttribute(kernel, MaxDynamicSharedMemorySize, bytes) and the runtime's last error.
int set_max_dynamic_smem(const void* kernel, int bytes);
int last_error(bool clear);
const char* error_string(int e);
void memcpy_async(void* dst, const void* src, size_t n);
void memset_async(void* dst, int v, size_t n);

}  // namespace simt

namespace simt {
// Internal: the race-detector build's access hooks (race_hooks.cpp) and the emulated copies.
// [watch_lo, watch_hi) holds every watched byte (the hooks' quick reject; null when none).
extern char* watch_lo;
extern char* watch_hi;
void detail_access(const void* addr, size_t n, bool write, const void* pc);
void detail_mark_written(const void* addr, size_t n);
}  // namespace simt
