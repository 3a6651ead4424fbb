// Small CUDA kernels, each showing one thing the SIMT executor must get right or must report
// (test_executor.cpp runs them). Compiled like the real kernel sources: by g++ with the stand-in
// cuda_runtime.h, under the sanitizers of the build flavour.
#include "simt/toy_kernels.h"

#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda/common/launch.h"

namespace toy {
namespace {

// Block sum through shared memory (tree, a barrier per level), then a warp butterfly.
__global__ void block_sum(const float* x, float* out, int n) {
  MGL_DYNAMIC_SMEM(16, float, s);
  const int t = threadIdx.x;
  s[t] = t < n ? x[blockIdx.x * blockDim.x + t] : 0.f;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w) s[t] += s[t + w];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

// Every shuffle form the kernels use: xor and up, float, double and 64-bit integers, width 16.
__global__ void shuffles(float* xor_out, double* up_out, long long* up64_out, float* half_out) {
  const int lane = threadIdx.x % 32;
  float v = static_cast<float>(lane);
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  xor_out[threadIdx.x] = v;
  up_out[threadIdx.x] = __shfl_up_sync(0xffffffffu, 0.5 * lane, 3);
  up64_out[threadIdx.x] = __shfl_up_sync(0xffffffffu, (1LL << 40) + lane, 1);
  float h = static_cast<float>(lane);
  for (int off = 8; off > 0; off >>= 1) h += __shfl_xor_sync(0xffffffffu, h, off, 16);
  half_out[threadIdx.x] = h;
}

// Static shared memory: one array per block (thread 0 writes, all read after the barrier).
__global__ void static_per_block(float* out) {
  MGL_STATIC_SMEM(float, s, 4);
  if (threadIdx.x == 0) s[0] = static_cast<float>(blockIdx.x + 1);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[0];
}

// Reads dynamic shared memory nobody wrote: NaN (and an uninitialized-read finding in the race build).
__global__ void read_unwritten(float* out) {
  MGL_DYNAMIC_SMEM(16, float, s);
  out[threadIdx.x] = s[threadIdx.x];
}

// Uses the last of `n` floats of dynamic shared memory.
__global__ void touch_last(int n, float* out) {
  MGL_DYNAMIC_SMEM(16, float, s);
  if (threadIdx.x == 0) s[n - 1] = 1.f;
  __syncthreads();
  out[threadIdx.x] = s[n - 1];
}

__global__ void noop(float* out) {
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0 && blockIdx.x == 0 && blockIdx.y == 0)
    out[0] = 1.f;
}

// Defects, one per kernel.
__global__ void barrier_in_branch(float* out) {
  if (threadIdx.x < 10) __syncthreads();
  __syncthreads();
  out[threadIdx.x] = 1.f;
}
__global__ void exit_before_barrier(float* out) {
  if (threadIdx.x >= 32) return;
  __syncthreads();
  out[threadIdx.x] = 1.f;
}
__global__ void shuffle_vs_barrier(float* out) {  // warp 0 shuffles while warp 1's lanes wait at a barrier
  float v = 1.f;
  if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 16);
  __syncthreads();
  out[threadIdx.x] = v;
}
__global__ void partial_mask(float* out) {
  float v = static_cast<float>(threadIdx.x);
  v += __shfl_xor_sync(0x0000ffffu, v, 16);
  out[threadIdx.x] = v;
}
__global__ void shuffle_sites(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x % 2)
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  else
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}
__global__ void race_raw(float* out) {  // write, then a neighbour's read, no barrier
  MGL_DYNAMIC_SMEM(16, float, s);
  s[threadIdx.x] = 1.f;
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}
__global__ void race_war(float* out) {  // read a neighbour's value, then overwrite it, no barrier
  MGL_DYNAMIC_SMEM(16, float, s);
  s[threadIdx.x] = 1.f;
  __syncthreads();
  const float a = s[(threadIdx.x + 1) % blockDim.x];
  s[threadIdx.x] = a + 1.f;
  out[threadIdx.x] = a;
}
__global__ void race_waw(float* out) {  // every thread writes word 0
  MGL_DYNAMIC_SMEM(16, float, s);
  s[0] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[0];
}
__global__ void race_loop(float* out, int iters) {  // the barrier at the end of the loop body is missing:
  MGL_DYNAMIC_SMEM(16, float, s);                   // iteration i + 1's write races with iteration i's read
  float acc = 0.f;
  for (int i = 0; i < iters; ++i) {
    s[threadIdx.x] = static_cast<float>(i + threadIdx.x);
    __syncthreads();
    acc += s[(threadIdx.x + 1) % blockDim.x];
  }
  out[threadIdx.x] = acc;
}

}  // namespace

void launch_block_sum(const float* x, float* out, int blocks, int threads, size_t smem) {
  MGL_LAUNCH(block_sum, blocks, threads, smem, nullptr)(x, out, threads);
}
void launch_shuffles(float* xor_out, double* up_out, long long* up64_out, float* half_out) {
  MGL_LAUNCH(shuffles, 1, 64, 0, nullptr)(xor_out, up_out, up64_out, half_out);
}
void launch_static_per_block(float* out, int blocks, int threads) {
  MGL_LAUNCH(static_per_block, blocks, threads, 0, nullptr)(out);
}
void launch_read_unwritten(float* out, int threads) {
  MGL_LAUNCH(read_unwritten, 1, threads, threads * sizeof(float), nullptr)(out);
}
int launch_touch_last(int n, float* out, bool opt_in) {
  const auto kernel = touch_last;
  if (opt_in) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(n * sizeof(float)));
    if (e != cudaSuccess) return e;
  }
  MGL_LAUNCH(kernel, 1, 32, n * sizeof(float), nullptr)(n, out);
  return cudaGetLastError();
}
int launch_config(unsigned gx, unsigned gy, unsigned bx, unsigned by, unsigned bz, float* out) {
  MGL_LAUNCH(noop, dim3(gx, gy), dim3(bx, by, bz), 0, nullptr)(out);
  return cudaGetLastError();
}

void launch_defect(Defect d, float* out) {
  switch (d) {
    case Defect::barrier_in_branch:
      MGL_LAUNCH(barrier_in_branch, 1, 64, 0, nullptr)(out);
      break;
    case Defect::exit_before_barrier:
      MGL_LAUNCH(exit_before_barrier, 1, 64, 0, nullptr)(out);
      break;
    case Defect::shuffle_vs_barrier:
      MGL_LAUNCH(shuffle_vs_barrier, 1, 64, 0, nullptr)(out);
      break;
    case Defect::partial_mask:
      MGL_LAUNCH(partial_mask, 1, 32, 0, nullptr)(out);
      break;
    case Defect::shuffle_sites:
      MGL_LAUNCH(shuffle_sites, 1, 32, 0, nullptr)(out);
      break;
    case Defect::race_raw:
      MGL_LAUNCH(race_raw, 1, 64, 64 * sizeof(float), nullptr)(out);
      break;
    case Defect::race_war:
      MGL_LAUNCH(race_war, 1, 64, 64 * sizeof(float), nullptr)(out);
      break;
    case Defect::race_waw:
      MGL_LAUNCH(race_waw, 1, 64, 64 * sizeof(float), nullptr)(out);
      break;
    case Defect::race_loop:
      MGL_LAUNCH(race_loop, 1, 64, 64 * sizeof(float), nullptr)(out, 3);
      break;
  }
}

}  // namespace toy
