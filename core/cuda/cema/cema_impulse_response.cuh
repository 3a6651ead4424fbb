// Implementation of cema_impulse_response_forward; instantiated once per dtype in its own .cu file.
#pragma once
#include <cuda_runtime.h>

#include "core/cuda/cema/cema_impulse_response.h"
#include "core/cuda/common/launch.h"

namespace mgl::cuda {
namespace cema_impulse_detail {

template <typename T>
__device__ inline void cexp(T re, T im, T& out_re, T& out_im) {
  const T m = exp(re);
  T s, c;
  sincos(im, &s, &c);
  out_re = m * c;
  out_im = m * s;
}

// grid.x = D, block = up to 256 threads striding over j. The N coefficients of the block's
// channel (p·η and log q) are staged in shared memory.
template <typename T>
__global__ void impulse_response_kernel(const T* __restrict__ p, const T* __restrict__ log_q,
                                        const T* __restrict__ eta, T* __restrict__ k, int64_t N, int64_t L) {
  MGL_DYNAMIC_SMEM(16, unsigned char, smem_raw);
  T* s = reinterpret_cast<T*>(smem_raw);  // [N][4]: pη re, pη im, log q re, log q im
  const int64_t d = blockIdx.x;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) {
    const int64_t i = d * N + n;
    const T pe_re = p[i] * eta[2 * i], pe_im = p[i] * eta[2 * i + 1];
    s[4 * n + 0] = pe_re;
    s[4 * n + 1] = pe_im;
    s[4 * n + 2] = log_q[2 * i];
    s[4 * n + 3] = log_q[2 * i + 1];
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < L; j += blockDim.x) {
    T acc = 0;
    const T jj = static_cast<T>(j);
    for (int64_t n = 0; n < N; ++n) {
      T qr, qi;
      cexp(jj * s[4 * n + 2], jj * s[4 * n + 3], qr, qi);
      acc += s[4 * n + 0] * qr - s[4 * n + 1] * qi;  // Re(pη · q^j)
    }
    k[d * L + j] = acc;
  }
}

}  // namespace cema_impulse_detail

template <typename T>
void cema_impulse_response_forward(const T* p, const T* log_q, const T* eta, T* k, int64_t D, int64_t N, int64_t L,
                                   void* stream) {
  if (D == 0 || L == 0) return;
  const int threads = L >= 256 ? 256 : static_cast<int>(((L + 31) / 32) * 32);
  const size_t smem = static_cast<size_t>(4 * N) * sizeof(T);
  MGL_LAUNCH(cema_impulse_detail::impulse_response_kernel<T>, static_cast<unsigned>(D), threads, smem,
             static_cast<cudaStream_t>(stream))(p, log_q, eta, k, N, L);
}

}  // namespace mgl::cuda
