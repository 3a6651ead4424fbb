// The CEMA impulse response (spec §1.4): the length-L kernel of the EMA convolution,
//   k[d, j] = Re Σ_n p·η·q^j,   j < L,
// (ops::ema_kernel on the reference path), computed without any D×N×L intermediate: one block per
// channel, q^j = exp(j·log q) per thread. Forward only. The fused scan (cema_scan.h) does not need
// it; the CEMA benchmark times it against the reference op. CUDA-free API over device pointers;
// instantiated per dtype in cema_impulse_response_{f32,f64}.cu.
#pragma once
#include <cstdint>

namespace mgl::cuda {

// p: D×N real; log_q, eta: D×N complex stored as interleaved (re, im); k: D×L output.
// All device pointers; `stream` is a cudaStream_t (void* to keep this header CUDA-free).
template <typename T>
void cema_impulse_response_forward(const T* p, const T* log_q, const T* eta, T* k, int64_t D, int64_t N,
                                   int64_t L, void* stream);

}  // namespace mgl::cuda
