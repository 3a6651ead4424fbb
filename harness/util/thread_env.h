#pragma once
// LibTorch's CPU ops run on libgomp's OpenMP threads and its matrix products on OpenBLAS's own
// pthreads. Both pools busy-wait between parallel regions (OpenBLAS with sched_yield, for up to 2^28
// cycles), so on cores they share each spins while the other has work: perf showed a third of a
// 1K-token Megalodon step in libgomp's spin loop and OpenBLAS's sched_yield, 11 % in the GEMM kernel,
// and system time at 40 % of user time. Idle threads therefore sleep sooner: OMP_WAIT_POLICY=PASSIVE
// and OPENBLAS_THREAD_TIMEOUT=20 (2^20 cycles, about 0.3 ms). On 2 cores, against the libraries'
// defaults, Megalodon forward+backward ran 2.6× tokens/s at 1K, 1.6× at 8K, 1.2× at 32K. A shorter
// OpenBLAS timeout (4) helps Megalodon a little more but halves SDPA's speed on LibTorch 2.6 (its
// flash kernel calls small GEMMs in quick succession); 20 is within a few percent of the best for
// both (results/bench/README.md, issue 22).
//
// Both libraries read their variable when they are loaded, before main, so a process that wants them
// starts itself again once with them set (execv of /proc/self/exe with the same argv). A value the
// user set is kept (GOMP_SPINCOUNT counts as a choice for OpenMP); child processes inherit them.
// `GOMP_SPINCOUNT=300000 OPENBLAS_THREAD_TIMEOUT=28` gives back the libraries' defaults.
namespace mgl::harness {
// Call first thing in main(). Returns only when nothing had to be set, or when execv failed (then the
// process runs on with the libraries' defaults, only slower).
void restart_with_sleeping_idle_threads(char** argv);
}  // namespace mgl::harness
