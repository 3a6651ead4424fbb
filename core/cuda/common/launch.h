// Launching kernels and declaring shared memory, one source for two compilers.
//
// The kernel sources (*.cuh) write
//   MGL_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...);   instead of  kernel<<<...>>>(args...)
//   MGL_DYNAMIC_SMEM(align, type, name);                            instead of  extern __shared__ ...
//   MGL_STATIC_SMEM(type, name, count);                             instead of  __shared__ type name[count]
// Under nvcc they expand to exactly those CUDA forms. Under the SIMT test executor (tests/simt/,
// plain g++ with the stand-in cuda_runtime.h there, which defines MGL_SIMT) they become calls into
// the executor: a checked launch that runs every block's threads as fibers, and per-block shared
// buffers allocated at exactly the requested size, filled with NaN and watched by its race
// detector. `kernel` must not contain a top-level comma (name a template instance in a local
// variable first: `const auto kernel = fwd_kernel<T, NJ>;`).
//
// Also here: the launch checks the host side of every kernel family uses (CUDA-free declarations,
// defined in launch.cu).
#pragma once

#if defined(__CUDACC__)
#define MGL_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define MGL_DYNAMIC_SMEM(align, type, name) extern __shared__ __align__(align) type name[]
#define MGL_STATIC_SMEM(type, name, count) __shared__ type name[count]
#elif defined(MGL_SIMT)
#define MGL_LAUNCH(kernel, grid, block, smem, stream) \
  ::simt::launch(kernel, #kernel, grid, block, smem, stream, __FILE__, __LINE__)
#define MGL_DYNAMIC_SMEM(align, type, name) type* const name = ::simt::dynamic_smem<type>(align)
#define MGL_STATIC_SMEM(type, name, count) type* const name = ::simt::static_smem<type>(count, __FILE__, __LINE__)
#endif

namespace mgl::cuda {

// The error of the last kernel launch (or runtime call) of this host thread, clearing it: null
// when there is none, else the CUDA runtime's description.
const char* launch_error();

// Number of CUDA devices visible (0 if the runtime has none or fails).
int device_count();

}  // namespace mgl::cuda
