// The SIMT test executor's runtime (simt.h): fibers, the block scheduler, barriers, shuffles,
// launch checks, shared memory and the race detector's bookkeeping. Compiled with the sanitizers
// of its build flavour; never with the race detector's instrumentation itself (race_hooks.cpp
// holds the entry points that the instrumented kernels call).
#include "simt/simt.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <tuple>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define SIMT_ASAN 1
#else
#define SIMT_ASAN 0
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

uint3 threadIdx{0, 0, 0};
uint3 blockIdx{0, 0, 0};
dim3 blockDim;
dim3 gridDim;

// The race-detector build links race_hooks.cpp, whose definition replaces this weak one.
extern "C" __attribute__((weak)) int simt_race_hooks_linked() { return 0; }

// ---- context switching ---------------------------------------------------------------------
// x86-64 System V: save the callee-saved registers, the SSE control word and the x87 control
// word on the current stack, store the stack pointer, load the other one and restore from it.
#if defined(__x86_64__)
extern "C" void simt_switch(void** save_sp, void* load_sp);
extern "C" void simt_fiber_start();
asm(R"(
  .text
  .globl simt_switch
  .type simt_switch, @function
simt_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size simt_switch, .-simt_switch

  .globl simt_fiber_start
  .type simt_fiber_start, @function
simt_fiber_start:
  movq %r12, %rdi
  andq $-16, %rsp
  call simt_fiber_main
  ud2
  .size simt_fiber_start, .-simt_fiber_start
)");
#endif

namespace simt {
namespace {

constexpr int kWarp = 32;
constexpr size_t kStackBytes = 64 * 1024;  // per thread, reused across blocks and launches: the
                                           // deepest kernel uses < 10 KB under ASan (main prints it)
constexpr size_t kGuardBytes = 4096;
constexpr size_t kSmallSmem = 48 * 1024, kMaxSmem = 227 * 1024;
constexpr size_t kSlack = 64;  // race build: bytes watched around each shared buffer
constexpr int kMaxReportsPerLaunch = 12;

enum class State { runnable, at_barrier, at_shuffle, exited };

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;  // lowest usable byte (above the guard page)
  size_t size = 0;
  int tid = 0;
  State state = State::runnable;
  bool clean = true;  // the stack holds no frame of an unfinished kernel
  const char* file = nullptr;
  int line = 0;
  // the pending shuffle
  unsigned mask = 0;
  int kind = 0, arg = 0, width = 32;
  uint64_t value = 0, result = 0;
#if SIMT_ASAN
  void* fake_stack = nullptr;
#endif
#if !defined(__x86_64__)
  ucontext_t ctx;
#endif
};

// Race detector shadow: one cell per byte of a shared buffer.
struct Cell {
  uint32_t w_epoch = 0, r_epoch = 0;
  uint16_t writer = 0, reader = 0;
  bool multi = false;
  const void* w_pc = nullptr;
  const void* r_pc = nullptr;
};

struct Region {
  char* base;  // the allocation (freed with the block)
  char* lo;
  char* hi;          // exclusive: the requested size
  size_t slack;      // watched bytes on either side (race build)
  std::string what;  // "dynamic shared memory" or "shared array at file:line"
  std::vector<Cell> cells;
  bool shared;
  std::vector<uint8_t> written;  // global initcheck regions
};

struct Runtime {
  // fibers
  std::vector<std::unique_ptr<Fiber>> pool;
  void* sched_sp = nullptr;
#if SIMT_ASAN
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;
  void* sched_fake_stack = nullptr;
#endif
#if !defined(__x86_64__)
  ucontext_t sched_ctx;
#endif
  Fiber* current = nullptr;
  // the running launch and block
  const LaunchConfig* cfg = nullptr;
  void (*body)(void*) = nullptr;
  void* body_ctx = nullptr;
  int T = 0;
  bool fatal = false;
  int reports = 0, suppressed = 0;
  char* dyn_smem = nullptr;
  size_t dyn_smem_bytes = 0;
  std::map<std::pair<const char*, int>, char*> static_smem;
  size_t static_smem_bytes = 0;
  std::vector<std::unique_ptr<Region>> regions;  // shared buffers of the block, then tracked globals
  char* watch_lo = nullptr;
  char* watch_hi = nullptr;  // the hull of all regions (quick reject)
  uint32_t epoch = 1;
  // host state
  std::map<const void*, int> max_dyn_smem;  // cudaFuncSetAttribute
  int last_error = 0;
  std::vector<Finding> findings;
  Stats stats;
};

Runtime g_runtime;
inline Runtime& rt() { return g_runtime; }

std::string where(const char* file, int line) {
  std::string f = file ? file : "?";
  const size_t p = f.find("core/cuda/");
  if (p != std::string::npos) f = f.substr(p);
  return f + ":" + std::to_string(line);
}

std::string launch_name() {
  const Runtime& r = rt();
  if (!r.cfg) return "?";
  return std::string(r.cfg->name) + " (launched at " + where(r.cfg->file, r.cfg->line) + ")";
}

std::string thread_name(int tid) {
  return "thread " + std::to_string(tid) + " of block (" + std::to_string(blockIdx.x) + "," +
         std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + ")";
}

void report(Kind k, const std::string& msg, bool fatal = false) {
  Runtime& r = rt();
  if (fatal) r.fatal = true;
  if (r.reports >= kMaxReportsPerLaunch) {
    ++r.suppressed;
    return;
  }
  ++r.reports;
  r.findings.push_back({k, msg});
}

// "file:line (function)" for a code address, for race reports: one addr2line process per binary,
// kept open (loading the debug information takes seconds; each lookup then takes microseconds),
// answers cached. Without addr2line: the symbol name from dladdr.
class Symbolizer {
 public:
  std::string lookup(const void* pc) {
    auto it = cache_.find(pc);
    if (it != cache_.end()) return it->second;
    Dl_info info{};
    std::string out;
    if (dladdr(pc, &info) && info.dli_fname) {
      if (start(info.dli_fname))
        out = query(reinterpret_cast<uintptr_t>(pc) - reinterpret_cast<uintptr_t>(info.dli_fbase) - 1);
      if (out.empty() && info.dli_sname) out = info.dli_sname;
    }
    if (out.empty()) out = "?";
    cache_[pc] = out;
    return out;
  }

 private:
  bool start(const char* exe) {
    if (tried_) return to_ != nullptr;
    tried_ = true;
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return false;
    const pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execlp("addr2line", "addr2line", "-C", "-f", "-i", "-e", exe, static_cast<char*>(nullptr));
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_ = fdopen(in[1], "w");
    from_ = fdopen(out[0], "r");
    return to_ && from_;
  }
  // The (function, file:line) pairs of `off`, innermost first, up to three frames; a sentinel
  // address (0, answered "??" / "??:0") marks the end of the answer.
  std::string query(uintptr_t off) {
    std::fprintf(to_, "0x%zx\n0x0\n", static_cast<size_t>(off));
    std::fflush(to_);
    std::vector<std::string> lines;
    char buf[2048];
    while (std::fgets(buf, sizeof buf, from_)) {
      std::string l(buf);
      while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
      lines.push_back(l);
      const size_t n = lines.size();
      if (n >= 2 && lines[n - 2] == "??" && (lines[n - 1] == "??:0" || lines[n - 1] == "??:?")) {
        lines.resize(n - 2);
        break;
      }
    }
    std::string out;
    for (size_t i = 0; i + 1 < lines.size() && i < 6; i += 2) {
      std::string loc = lines[i + 1], fn = lines[i];
      const size_t q = loc.find("core/cuda/");
      if (q != std::string::npos) loc = loc.substr(q);
      if (fn.size() > 60) fn = fn.substr(0, 57) + "...";
      out += (out.empty() ? "" : " <- ") + loc + " (" + fn + ")";
    }
    return out;
  }
  bool tried_ = false;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  std::map<const void*, std::string> cache_;
};

std::string symbolize(const void* pc) {
  static Symbolizer s;
  return pc ? s.lookup(pc) : "?";
}

// ---- fibers ------------------------------------------------------------------------------

// The fibers of the running block (the pool is grown before a launch's first block).
inline Fiber& at(int i) { return *rt().pool[static_cast<size_t>(i)]; }

Fiber& fiber(int i) {
  Runtime& r = rt();
  while (static_cast<int>(r.pool.size()) <= i) {
    auto f = std::make_unique<Fiber>();
    void* m = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) throw std::runtime_error("simt: cannot map a fiber stack");
    mprotect(m, kGuardBytes, PROT_NONE);  // an overflow faults instead of corrupting the next stack
    f->stack = static_cast<char*>(m) + kGuardBytes;
    f->size = kStackBytes;
    r.pool.push_back(std::move(f));
  }
  return *r.pool[static_cast<size_t>(i)];
}

void set_thread_index(int tid) {
  const unsigned bx = blockDim.x, by = blockDim.y;
  threadIdx.x = static_cast<unsigned>(tid) % bx;
  threadIdx.y = (static_cast<unsigned>(tid) / bx) % by;
  threadIdx.z = static_cast<unsigned>(tid) / (bx * by);
}

}  // namespace
}  // namespace simt

extern "C" void simt_fiber_main(simt::Fiber* f);

namespace simt {
namespace {

void start_fiber(Fiber& f, int tid) {
  f.tid = tid;
  f.state = State::runnable;
  f.file = nullptr;
  f.line = 0;
#if SIMT_ASAN
  // A fiber that ran to its end has unpoisoned its frames on the way out; one abandoned mid-kernel
  // (after a fatal finding) left its frames' redzones poisoned.
  if (!f.clean) __asan_unpoison_memory_region(f.stack, f.size);
  f.fake_stack = nullptr;
#endif
  f.clean = false;
#if defined(__x86_64__)
  uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + f.size) & ~uintptr_t{15};
  auto* s = reinterpret_cast<uint64_t*>(top);
  s[-1] = 0;                                              // no return address above the entry
  s[-2] = reinterpret_cast<uint64_t>(&simt_fiber_start);  // `ret` of the first switch lands here
  s[-3] = 0;                                              // rbp
  s[-4] = 0;                                              // rbx
  s[-5] = reinterpret_cast<uint64_t>(&f);                 // r12: the entry's argument
  s[-6] = 0;                                              // r13
  s[-7] = 0;                                              // r14
  s[-8] = 0;                                              // r15
  s[-9] = 0x1F80u | (uint64_t{0x037Fu} << 32);            // MXCSR, x87 control word: defaults
  f.sp = &s[-9];
#else
  getcontext(&f.ctx);
  f.ctx.uc_stack.ss_sp = f.stack;
  f.ctx.uc_stack.ss_size = f.size;
  f.ctx.uc_link = nullptr;
  makecontext(&f.ctx, reinterpret_cast<void (*)()>(&simt_fiber_main), 1, &f);
#endif
}

// Scheduler → fiber f; returns when f yields.
void resume(Fiber& f) {
  Runtime& r = rt();
  r.current = &f;
  set_thread_index(f.tid);
  ++r.stats.switches;
#if SIMT_ASAN
  __sanitizer_start_switch_fiber(&r.sched_fake_stack, f.stack, f.size);
#endif
#if defined(__x86_64__)
  simt_switch(&r.sched_sp, f.sp);
#else
  swapcontext(&r.sched_ctx, &f.ctx);
#endif
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(r.sched_fake_stack, nullptr, nullptr);
#endif
  r.current = nullptr;
}

// Fiber → scheduler. `exiting`: the fiber will never be resumed (its fake stack can go).
void yield_to_scheduler(bool exiting) {
  Runtime& r = rt();
  Fiber& f = *r.current;
#if SIMT_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &f.fake_stack, r.sched_stack_bottom, r.sched_stack_size);
#else
  (void)exiting;
#endif
#if defined(__x86_64__)
  simt_switch(&f.sp, r.sched_sp);
#else
  swapcontext(&f.ctx, &r.sched_ctx);
#endif
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

}  // namespace
}  // namespace simt

extern "C" void simt_fiber_main(simt::Fiber* f) {
  using namespace simt;
  Runtime& r = rt();
#if SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &r.sched_stack_bottom, &r.sched_stack_size);
#endif
  r.body(r.body_ctx);
  f->state = State::exited;
  f->clean = true;
  yield_to_scheduler(true);
  std::abort();  // never resumed
}

namespace simt {
namespace {

// ---- shared memory and the race detector ----------------------------------------------------

bool race_build() { return simt_race_hooks_linked() != 0; }

void update_hull() {
  Runtime& r = rt();
  r.watch_lo = r.watch_hi = nullptr;
  for (auto& g : r.regions) {
    char* lo = g->lo - g->slack;
    char* hi = g->hi + g->slack;
    if (!r.watch_lo || lo < r.watch_lo) r.watch_lo = lo;
    if (!r.watch_hi || hi > r.watch_hi) r.watch_hi = hi;
  }
  watch_lo = r.watch_lo;
  watch_hi = r.watch_hi;
}

// A shared buffer of exactly `bytes`, filled with NaN. Outside the race build it is its own heap
// block, so AddressSanitizer reports any access past its end; in the race build it sits between
// two watched zones of kSlack bytes instead (the access hooks report touches there).
char* alloc_shared(size_t bytes, size_t align, const std::string& what) {
  Runtime& r = rt();
  const bool race = race_build();
  if (align < 16) align = 16;
  auto g = std::make_unique<Region>();
  if (race) {
    const size_t front = (kSlack + align - 1) / align * align;
    const size_t total = (front + bytes + kSlack + align - 1) / align * align;
    g->base = static_cast<char*>(std::aligned_alloc(align, total));
    if (!g->base) throw std::bad_alloc();
    g->lo = g->base + front;
    g->slack = kSlack;
    g->cells.resize(bytes);
  } else {
    void* m = nullptr;
    if (posix_memalign(&m, align, bytes ? bytes : 1) != 0) throw std::bad_alloc();
    g->base = g->lo = static_cast<char*>(m);
    g->slack = 0;
#if SIMT_ASAN
    if (bytes == 0) __asan_poison_memory_region(g->lo, 1);  // nothing requested: any access overruns
#endif
  }
  g->hi = g->lo + bytes;
  g->what = what;
  g->shared = true;
  std::memset(g->lo, 0xff, bytes);  // NaN in fp32 and fp64
  char* p = g->lo;
  r.regions.push_back(std::move(g));
  update_hull();
  return p;
}

void free_shared_regions() {
  Runtime& r = rt();
  std::vector<std::unique_ptr<Region>> keep;
  for (auto& g : r.regions) {
    if (!g->shared) {
      keep.push_back(std::move(g));
      continue;
    }
#if SIMT_ASAN
    if (g->hi == g->lo) __asan_unpoison_memory_region(g->lo, 1);
#endif
    std::free(g->base);
  }
  r.regions = std::move(keep);
  update_hull();
  r.dyn_smem = nullptr;
  r.static_smem.clear();
}

// ---- the race detector: every access of the instrumented kernel code -------------------------

std::set<std::tuple<int, const void*, const void*>>& reported_pairs() {
  static std::set<std::tuple<int, const void*, const void*>> s;
  return s;
}

void report_once(Kind k, const void* pc_a, const void* pc_b, const std::string& msg) {
  // (for shuffles: pc_a is the site's file name, pc_b encodes its line and the kind of problem)
  if (!reported_pairs().insert({static_cast<int>(k), pc_a, pc_b}).second) return;
  report(k, msg);
}

std::string offset_in(const Region& g, const char* p) {
  return "byte " + std::to_string(p - g.lo) + " of the " + std::to_string(g.hi - g.lo) + "-byte " + g.what;
}

void access_shared(Region& g, char* p, size_t n, bool write, const void* pc) {
  Runtime& r = rt();
  const int tid = r.current->tid;
  if (p < g.lo || p + n > g.hi) {
    report_once(Kind::out_of_bounds, pc, nullptr,
                std::string(write ? "write" : "read") + " of " + std::to_string(n) + " bytes at byte " +
                    std::to_string(p - g.lo) + " of the " + std::to_string(g.hi - g.lo) + "-byte " + g.what +
                    " (outside it) by " + thread_name(tid) + " in " + launch_name() + " at " + symbolize(pc));
  }
  char* b0 = std::max(p, g.lo);
  char* b1 = std::min(p + n, g.hi);
  const uint32_t E = r.epoch;
  for (char* b = b0; b < b1; ++b) {
    Cell& c = g.cells[static_cast<size_t>(b - g.lo)];
    if (!write) {
      if (c.w_epoch == 0) {
        report_once(Kind::uninitialized, pc, nullptr,
                    "read of shared memory that no thread of the block has written: " + offset_in(g, b) +
                        ", by " + thread_name(tid) + " in " + launch_name() + " at " + symbolize(pc));
      } else if (c.w_epoch == E && c.writer != tid) {
        report_once(Kind::race, pc, c.w_pc,
                    "read after write without a barrier between them on " + offset_in(g, b) + " in " +
                        launch_name() + ":\n    thread " + std::to_string(c.writer) + " wrote at " +
                        symbolize(c.w_pc) + "\n    thread " + std::to_string(tid) + " read at " +
                        symbolize(pc));
      }
      if (c.r_epoch != E) {
        c.r_epoch = E;
        c.reader = static_cast<uint16_t>(tid);
        c.multi = false;
        c.r_pc = pc;
      } else if (c.reader != tid) {
        c.multi = true;
      }
    } else {
      if (c.w_epoch == E && c.writer != tid) {
        report_once(Kind::race, pc, c.w_pc,
                    "write after write without a barrier between them on " + offset_in(g, b) + " in " +
                        launch_name() + ":\n    thread " + std::to_string(c.writer) + " wrote at " +
                        symbolize(c.w_pc) + "\n    thread " + std::to_string(tid) + " wrote at " +
                        symbolize(pc));
      } else if (c.r_epoch == E && (c.multi || c.reader != tid)) {
        const std::string who = c.reader != tid ? "thread " + std::to_string(c.reader) : "several threads";
        report_once(Kind::race, pc, c.r_pc,
                    "write after read without a barrier between them on " + offset_in(g, b) + " in " +
                        launch_name() + ":\n    " + who + " read at " + symbolize(c.r_pc) + "\n    thread " +
                        std::to_string(tid) + " wrote at " + symbolize(pc));
      }
      c.w_epoch = E;
      c.writer = static_cast<uint16_t>(tid);
      c.w_pc = pc;
    }
  }
}

void access_global(Region& g, char* p, size_t n, bool write, const void* pc) {
  char* b0 = std::max(p, g.lo);
  char* b1 = std::min(p + n, g.hi);
  for (char* b = b0; b < b1; ++b) {
    uint8_t& w = g.written[static_cast<size_t>(b - g.lo)];
    if (write) {
      w = 1;
    } else if (!w) {
      Runtime& r = rt();
      report_once(
          Kind::uninitialized, pc, g.lo,
          "read of global memory nothing has written: " + offset_in(g, b) +
              (r.current ? " by " + thread_name(r.current->tid) + " in " + launch_name() : std::string()) +
              " at " + symbolize(pc));
      return;
    }
  }
}

}  // namespace

char* watch_lo = nullptr;
char* watch_hi = nullptr;

void detail_access(const void* addr, size_t n, bool write, const void* pc) {
  Runtime& r = rt();
  char* p = static_cast<char*>(const_cast<void*>(addr));
  if (p + n <= r.watch_lo || p >= r.watch_hi) return;
  for (auto& g : r.regions) {
    if (p + n <= g->lo - g->slack || p >= g->hi + g->slack) continue;
    if (g->shared) {
      if (r.current) access_shared(*g, p, n, write, pc);
    } else {
      access_global(*g, p, n, write, pc);
    }
  }
}

void detail_mark_written(const void* addr, size_t n) {
  Runtime& r = rt();
  char* p = static_cast<char*>(const_cast<void*>(addr));
  for (auto& g : r.regions) {
    if (g->shared || p + n <= g->lo || p >= g->hi) continue;
    for (char* b = std::max(p, g->lo); b < std::min(p + n, g->hi); ++b)
      g->written[static_cast<size_t>(b - g->lo)] = 1;
  }
}

namespace {

// ---- barriers and shuffles -------------------------------------------------------------------

const char* state_name(State s) {
  switch (s) {
    case State::runnable:
      return "running";
    case State::at_barrier:
      return "at a barrier";
    case State::at_shuffle:
      return "at a shuffle";
    case State::exited:
      return "exited";
  }
  return "?";
}

// One line per distinct (state, site) of the block's threads, with the thread ranges.
std::string block_picture() {
  Runtime& r = rt();
  std::string out;
  int t = 0;
  while (t < r.T) {
    const Fiber& f = at(t);
    int u = t + 1;
    while (u < r.T && at(u).state == f.state && at(u).file == f.file && at(u).line == f.line) ++u;
    out += "\n    threads " + std::to_string(t) + ".." + std::to_string(u - 1) + ": " + state_name(f.state);
    if (f.state == State::at_barrier || f.state == State::at_shuffle) out += " " + where(f.file, f.line);
    t = u;
  }
  return out;
}

// A warp's shuffle is complete when every lane named by the mask of `f` has arrived at a shuffle.
// Returns the number of lanes it released (0: not complete yet, or abandoned as fatal).
int try_resolve_shuffle(Fiber& f) {
  Runtime& r = rt();
  const int w0 = f.tid / kWarp * kWarp;
  for (int l = 0; l < kWarp; ++l) {
    if (!(f.mask >> l & 1u)) continue;
    const int t = w0 + l;
    if (t >= r.T) {
      char b[16];
      std::snprintf(b, sizeof b, "%08x", f.mask);
      report(Kind::shuffle,
             "shuffle at " + where(f.file, f.line) + " in " + launch_name() + ": mask 0x" + b +
                 " names lane " + std::to_string(l) + " of a warp that has only " + std::to_string(r.T - w0) +
                 " threads",
             true);
      return 0;
    }
    const Fiber& o = at(t);
    if (o.state == State::exited) {
      report(Kind::shuffle,
             "shuffle at " + where(f.file, f.line) + " in " + launch_name() + ": lane " + std::to_string(l) +
                 " (" + thread_name(t) + ") named in the mask has exited",
             true);
      return 0;
    }
    if (o.state != State::at_shuffle) return 0;  // not there yet
  }
  // All named lanes are here: they must be at the same shuffle.
  for (int l = 0; l < kWarp; ++l) {
    if (!(f.mask >> l & 1u)) continue;
    const Fiber& o = at(w0 + l);
    if (o.file != f.file || o.line != f.line || o.mask != f.mask || o.kind != f.kind || o.arg != f.arg ||
        o.width != f.width) {
      char b[160];
      std::snprintf(b, sizeof b, "lane %d waits at %s (mask 0x%08x), lane %d at %s (mask 0x%08x)", f.tid - w0,
                    where(f.file, f.line).c_str(), f.mask, l, where(o.file, o.line).c_str(), o.mask);
      report(Kind::shuffle, std::string("shuffle lanes disagree in ") + launch_name() + ": " + b, true);
      return 0;
    }
  }
  int released = 0;
  for (int l = 0; l < kWarp; ++l) {
    if (!(f.mask >> l & 1u)) continue;
    Fiber& o = at(w0 + l);
    const int seg = l / o.width * o.width, rel = l - seg;
    int src = l;
    if (o.kind == 0) {
      const int sx = rel ^ o.arg;
      src = sx < o.width ? seg + sx : l;
    } else {
      src = rel >= o.arg ? l - o.arg : l;
    }
    if (!(o.mask >> src & 1u)) {
      char b[64];
      std::snprintf(b, sizeof b, " (mask 0x%08x)", o.mask);
      report_once(Kind::shuffle, o.file,
                  reinterpret_cast<const void*>(static_cast<uintptr_t>(o.line) * 4 + 1),
                  "shuffle at " + where(o.file, o.line) + " in " + launch_name() + ": lane " +
                      std::to_string(l) + " reads lane " + std::to_string(src) +
                      ", which is outside the mask" + b + " (undefined value; reported once per site)");
      o.result = 0x7ff8dead7fc0deadull;  // a NaN in either width
    } else {
      o.result = at(w0 + src).value;
    }
  }
  for (int l = 0; l < kWarp; ++l)
    if (f.mask >> l & 1u) {
      at(w0 + l).state = State::runnable;
      ++released;
    }
  ++r.stats.shuffles;
  return released;
}

bool at_same_barrier(const Fiber& a, const Fiber& b) { return a.file == b.file && a.line == b.line; }

// ---- one block ---------------------------------------------------------------------------
// Sweeps over the threads in order, running each runnable one until it blocks; counts kept as the
// states change. A shuffle is resolved when its warp has as many waiting lanes as the mask names.

void run_block() {
  Runtime& r = rt();
  const int T = r.T;
  r.epoch += 2;
  for (int t = 0; t < T; ++t) start_fiber(at(t), t);
  int exited = 0, at_barrier = 0, at_shuffle = 0;
  std::vector<int> warp_waiting(static_cast<size_t>((T + kWarp - 1) / kWarp), 0);
  for (;;) {
    for (int t = 0; t < T && !r.fatal; ++t) {
      Fiber& f = at(t);
      if (f.state != State::runnable) continue;
      resume(f);
      if (f.state == State::exited) {
        ++exited;
      } else if (f.state == State::at_barrier) {
        ++at_barrier;
      } else if (f.state == State::at_shuffle) {
        ++at_shuffle;
        int& waiting = warp_waiting[static_cast<size_t>(t / kWarp)];
        ++waiting;
        if (waiting >= __builtin_popcount(f.mask)) {
          const int released = try_resolve_shuffle(f);
          waiting -= released;
          at_shuffle -= released;
        }
      }
    }
    if (r.fatal) return;
    if (exited == T) return;
    if (exited + at_barrier + at_shuffle < T) continue;  // some thread can run
    if (at_barrier > 0 && at_barrier + exited == T) {
      // Every live thread waits at a barrier: they must all be at the same one, and none may have left.
      const Fiber* first = nullptr;
      bool same = true;
      for (int t = 0; t < T; ++t) {
        const Fiber& f = at(t);
        if (f.state != State::at_barrier) continue;
        if (!first)
          first = &f;
        else if (!at_same_barrier(*first, f))
          same = false;
      }
      if (!same)
        report(Kind::barrier, "threads of one block wait at different __syncthreads in " + launch_name() +
                                  ":" + block_picture());
      else if (exited > 0)
        report(Kind::barrier,
               std::to_string(exited) + " thread(s) exited while the others wait at __syncthreads " +
                   where(first->file, first->line) + " in " + launch_name() + ":" + block_picture());
      r.epoch += 2;
      ++r.stats.barriers;
      for (int t = 0; t < T; ++t)
        if (at(t).state == State::at_barrier) at(t).state = State::runnable;
      at_barrier = 0;
      continue;
    }
    report(Kind::barrier, "deadlock in " + launch_name() + ": no thread can continue" + block_picture(),
           true);
    return;
  }
}

// ---- launch checks -------------------------------------------------------------------------

bool check_launch(const LaunchConfig& c) {
  Runtime& r = rt();
  auto refuse = [&](const std::string& why, int err) {
    report(Kind::launch,
           "launch of " + std::string(c.name) + " at " + where(c.file, c.line) + " refused: " + why);
    r.last_error = err;
    return false;
  };
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  if (c.block.x == 0 || c.block.y == 0 || c.block.z == 0 || c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0)
    return refuse("a grid or block dimension is 0", 9);
  if (threads > 1024 || c.block.x > 1024 || c.block.y > 1024 || c.block.z > 64)
    return refuse("block (" + std::to_string(c.block.x) + "," + std::to_string(c.block.y) + "," +
                      std::to_string(c.block.z) +
                      ") exceeds 1024 threads or the per-dimension limits 1024/1024/64",
                  9);
  if (c.grid.x > 2147483647u || c.grid.y > 65535 || c.grid.z > 65535)
    return refuse("grid (" + std::to_string(c.grid.x) + "," + std::to_string(c.grid.y) + "," +
                      std::to_string(c.grid.z) + ") exceeds 2^31-1 / 65535 / 65535",
                  9);
  if (c.smem > kMaxSmem)
    return refuse(std::to_string(c.smem) + " bytes of dynamic shared memory exceed the 227 KB per block", 1);
  if (c.smem > kSmallSmem) {
    auto it = r.max_dyn_smem.find(c.kernel);
    const int allowed = it == r.max_dyn_smem.end() ? 0 : it->second;
    if (static_cast<size_t>(allowed) < c.smem)
      return refuse(std::to_string(c.smem) +
                        " bytes of dynamic shared memory need cudaFuncSetAttribute("
                        "cudaFuncAttributeMaxDynamicSharedMemorySize) >= that for this kernel first (set: " +
                        std::to_string(allowed) + ")",
                    1);
  }
  return true;
}

}  // namespace

// ---- public API ------------------------------------------------------------------------------

const char* to_string(Kind k) {
  switch (k) {
    case Kind::launch:
      return "launch";
    case Kind::barrier:
      return "barrier";
    case Kind::shuffle:
      return "shuffle";
    case Kind::race:
      return "race";
    case Kind::uninitialized:
      return "uninitialized";
    case Kind::out_of_bounds:
      return "out-of-bounds";
  }
  return "?";
}

std::vector<Finding> take_findings() {
  std::vector<Finding> f;
  f.swap(rt().findings);
  return f;
}

size_t count(const std::vector<Finding>& f, Kind k) {
  return static_cast<size_t>(
      std::count_if(f.begin(), f.end(), [&](const Finding& x) { return x.kind == k; }));
}

std::string describe(const std::vector<Finding>& f) {
  std::string out;
  for (const auto& x : f) out += std::string(to_string(x.kind)) + ": " + x.message + "\n";
  return out;
}

bool race_detector_enabled() { return race_build(); }

void track_uninitialized(const void* p, size_t bytes) {
  if (!race_build() || bytes == 0) return;
  Runtime& r = rt();
  auto g = std::make_unique<Region>();
  g->base = nullptr;
  g->lo = static_cast<char*>(const_cast<void*>(p));
  g->hi = g->lo + bytes;
  g->slack = 0;
  g->what = "global buffer";
  g->shared = false;
  g->written.assign(bytes, 0);
  r.regions.push_back(std::move(g));
  update_hull();
}

void untrack_all() {
  Runtime& r = rt();
  r.regions.erase(
      std::remove_if(r.regions.begin(), r.regions.end(), [](const auto& g) { return !g->shared; }),
      r.regions.end());
  update_hull();
}

Stats stats() {
  Runtime& r = rt();
  Stats s = r.stats;
  s.stack_reserved = kStackBytes;
  for (auto& f : r.pool) {  // stacks grow down from the top: the lowest non-zero byte marks the depth
    size_t i = 0;
    while (i < f->size && f->stack[i] == 0) i += 64;
    s.max_stack_bytes = std::max(s.max_stack_bytes, f->size - std::min(i, f->size));
  }
  return s;
}

void syncthreads(const char* file, int line) {
  Runtime& r = rt();
  Fiber& f = *r.current;
  f.state = State::at_barrier;
  f.file = file;
  f.line = line;
  yield_to_scheduler(false);
}

uint64_t shuffle(unsigned mask, uint64_t bits, int kind, int arg, int width, const char* file, int line) {
  Runtime& r = rt();
  Fiber& f = *r.current;
  const int lane = f.tid % kWarp;
  if (!(mask >> lane & 1u)) {
    char b[16];
    std::snprintf(b, sizeof b, "%08x", mask);
    report_once(Kind::shuffle, file, reinterpret_cast<const void*>(static_cast<uintptr_t>(line) * 4 + 2),
                "shuffle at " + where(file, line) + " in " + launch_name() + ": lane " +
                    std::to_string(lane) + " (" + thread_name(f.tid) + ") calls it with mask 0x" + b +
                    ", which does not name it (reported once per site)");
    return bits;
  }
  if (width < 1 || width > kWarp || (width & (width - 1)))
    report(Kind::shuffle, "shuffle at " + where(file, line) + ": width " + std::to_string(width) +
                              " is not a power of 2 in [1, 32]");
  f.state = State::at_shuffle;
  f.file = file;
  f.line = line;
  f.mask = mask;
  f.kind = kind;
  f.arg = arg;
  f.width = width;
  f.value = bits;
  yield_to_scheduler(false);
  return f.result;
}

void* dynamic_smem_bytes(size_t align) {
  Runtime& r = rt();
  if (!r.dyn_smem) {
    r.dyn_smem = alloc_shared(r.cfg->smem, align, "dynamic shared memory");
    r.dyn_smem_bytes = r.cfg->smem;
  }
  return r.dyn_smem;
}

void* static_smem_bytes(size_t bytes, size_t align, const char* file, int line) {
  Runtime& r = rt();
  auto& p = r.static_smem[{file, line}];
  if (!p) {
    p = alloc_shared(bytes, align, "shared array at " + where(file, line));
    r.static_smem_bytes += bytes;
    if (r.static_smem_bytes + r.cfg->smem > kSmallSmem) {
      auto it = r.max_dyn_smem.find(r.cfg->kernel);
      const size_t allowed = it == r.max_dyn_smem.end() ? 0 : static_cast<size_t>(it->second);
      if (r.static_smem_bytes + r.cfg->smem > kMaxSmem || r.cfg->smem > allowed)
        report(Kind::launch, "launch of " + launch_name() + ": " + std::to_string(r.static_smem_bytes) +
                                 " bytes of static and " + std::to_string(r.cfg->smem) +
                                 " of dynamic shared memory exceed 48 KB without the opt-in (or 227 KB)");
    }
  }
  return p;
}

bool run(const LaunchConfig& cfg, void (*body)(void*), void* ctx) {
  Runtime& r = rt();
  if (r.current) throw std::logic_error("simt: a kernel launched a kernel");
  r.reports = 0;
  r.suppressed = 0;
  reported_pairs().clear();
  if (!check_launch(cfg)) return false;
  r.cfg = &cfg;
  r.body = body;
  r.body_ctx = ctx;
  r.fatal = false;
  r.T = static_cast<int>(cfg.block.x * cfg.block.y * cfg.block.z);
  blockDim = cfg.block;
  gridDim = cfg.grid;
  fiber(r.T - 1);  // grow the pool
  ++r.stats.launches;
  for (unsigned z = 0; z < cfg.grid.z && !r.fatal; ++z)
    for (unsigned y = 0; y < cfg.grid.y && !r.fatal; ++y)
      for (unsigned x = 0; x < cfg.grid.x && !r.fatal; ++x) {
        blockIdx = uint3{x, y, z};
        r.static_smem_bytes = 0;
        run_block();
        free_shared_regions();
        ++r.stats.blocks;
        r.stats.threads += static_cast<uint64_t>(r.T);
      }
  if (r.suppressed > 0)
    r.findings.push_back(
        {r.findings.empty() ? Kind::launch : r.findings.back().kind,
         std::to_string(r.suppressed) + " more finding(s) in " + launch_name() + " not shown"});
  if (r.fatal) r.last_error = 719;
  r.cfg = nullptr;
  threadIdx = uint3{0, 0, 0};
  return true;
}

int set_max_dynamic_smem(const void* kernel, int bytes) {
  Runtime& r = rt();
  if (bytes < 0 || static_cast<size_t>(bytes) > kMaxSmem) {
    r.last_error = 1;
    report(Kind::launch, "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, " + std::to_string(bytes) +
                             "): more than the 227 KB an H100 block can have");
    return 1;
  }
  r.max_dyn_smem[kernel] = bytes;
  return 0;
}

int last_error(bool clear) {
  Runtime& r = rt();
  const int e = r.last_error;
  if (clear) r.last_error = 0;
  return e;
}

const char* error_string(int e) {
  switch (e) {
    case 0:
      return "no error";
    case 1:
      return "invalid argument";
    case 9:
      return "invalid configuration argument";
    case 719:
      return "unspecified launch failure (the SIMT executor found an error in the kernel)";
  }
  return "unknown error";
}

void memcpy_async(void* dst, const void* src, size_t n) {
  std::memmove(dst, src, n);
  detail_mark_written(dst, n);
}

void memset_async(void* dst, int v, size_t n) {
  std::memset(dst, v, n);
  detail_mark_written(dst, n);
}

}  // namespace simt
