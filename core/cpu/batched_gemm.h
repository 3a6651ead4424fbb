// A fused CPU kernel for many small fp32 matrix products (issue 22): the chunked EMA's GEMMs are
// D = 256 independent products of, e.g., 512×64 by 64×64 per layer. LibTorch 1.13 without MKL runs
// bmm as a loop of one BLAS call per batch entry, each split over the intra-op threads: at these
// sizes about 6 GFLOP/s, 10 % of the 32K-token bench step. This kernel hands whole batch entries to
// the threads and keeps a 4-row × 64-column block of C in registers.
// Built for AVX-512, AVX2 and baseline x86-64 (target_clones), like softmax_rows.
#pragma once
#include <cstdint>

namespace mgl::cpu {

// For every b < batch: C_b = (accumulate ? C_b : 0) + op(A_b) · B_b, all fp32 and row-major:
//   op(A_b) is m×k: A_b itself (a_transposed = false, stored m×k) or the transpose of A_b stored k×m;
//   B_b is k×n, C_b is m×n; entry b of each starts at b·stride_{a,b,c} floats.
// n must be a multiple of 16 (batched_gemm_takes); the batch entries run in parallel (at::parallel_for).
void batched_gemm(const float* A, const float* B, float* C, int64_t batch, int64_t m, int64_t n, int64_t k,
                  bool a_transposed, bool accumulate, int64_t stride_a, int64_t stride_b, int64_t stride_c);

inline bool batched_gemm_takes(int64_t n) { return n > 0 && n % 16 == 0; }

}  // namespace mgl::cpu
