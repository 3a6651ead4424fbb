// Launchers of the SIMT executor's toy kernels (toy_kernels.cpp), for test_executor.cpp.
#pragma once
#include <cstddef>

namespace toy {

void launch_block_sum(const float* x, float* out, int blocks, int threads, size_t smem);
// xor_out, half_out: 64 floats; up_out: 64 doubles; up64_out: 64 long longs.
void launch_shuffles(float* xor_out, double* up_out, long long* up64_out, float* half_out);
void launch_static_per_block(float* out, int blocks, int threads);
void launch_read_unwritten(float* out, int threads);
// 32 threads use the last of n floats of dynamic shared memory; returns the CUDA error code.
int launch_touch_last(int n, float* out, bool opt_in);
// A kernel that does nearly nothing, with an arbitrary grid and block; returns the CUDA error code.
int launch_config(unsigned gx, unsigned gy, unsigned bx, unsigned by, unsigned bz, float* out);

enum class Defect {
  barrier_in_branch,
  exit_before_barrier,
  shuffle_vs_barrier,
  partial_mask,
  shuffle_sites,
  race_raw,
  race_war,
  race_waw,
  race_loop,
};
// out: 64 floats.
void launch_defect(Defect d, float* out);

}  // namespace toy
