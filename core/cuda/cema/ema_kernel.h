// CUDA kernel library (no torch headers: compiles wherever nvcc exists).
// First kernel: the CEMA length-L kernel of spec §1.4, k[d, j] = Re Σ_n p·η·q^j, computed without
// any D×N×L intermediate: one block per channel, q^j = exp(j·log q) per thread.
// The fused forward/backward family (issue: fused CUDA CEMA) builds on this library.
#pragma once
#include <cstdint>

namespace mgl::cuda {

// p: D×N real; log_q, eta: D×N complex stored as interleaved (re, im); k: D×L output.
// All device pointers; `stream` is a cudaStream_t (void* to keep this header CUDA-free).
template <typename T>
void ema_kernel_forward(const T* p, const T* log_q, const T* eta, T* k, int64_t D, int64_t N, int64_t L,
                        void* stream);

// Number of CUDA devices visible (0 if the runtime has none or fails).
int device_count();

}  // namespace mgl::cuda
