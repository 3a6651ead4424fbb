// Planted bugs (issue 20): scratch copies of real kernel sources with one defect each, generated at
// configure time by tests/simt/CMakeLists.txt (megalodon_simt_plant: the text to replace must occur
// exactly once, so a plant that no longer applies fails the build), compiled under a renamed
// top-level namespace beside the real kernels, and launched through these entry points.
#pragma once
#include <cstdint>

namespace planted {

// (a) cema_scan.cuh forward without the barrier between loading a chunk's x and reading it.
void cema_forward_missing_sync(const float* x, const float* p, const float* log_q, const float* eta,
                               const float* omega, const float* h0, float* y, float* h_last, float* states,
                               int64_t B, int64_t D, int64_t N, int64_t L);
// (c) cema_scan.cuh forward with the barrier after the chain step moved inside `if (tid < N)`.
void cema_forward_barrier_in_branch(const float* x, const float* p, const float* log_q, const float* eta,
                                    const float* omega, const float* h0, float* y, float* h_last,
                                    float* states, int64_t B, int64_t D, int64_t N, int64_t L);
// (b) cema_scan.cuh backward launched with dynamic shared memory one element short.
void cema_backward_smem_short(const float* grad_y, const float* grad_h_last, const float* x, const float* p,
                              const float* log_q, const float* eta, const float* omega, const float* states,
                              float* grad_x, float* part_p, float* part_log_q, float* part_eta,
                              float* part_omega, float* grad_h0, int64_t B, int64_t D, int64_t N, int64_t L);
// (d) attention.cuh's row maximum with a shuffle mask naming half the warp.
const char* attention_forward_partial_mask(int64_t B, int64_t H, int64_t L, int64_t chunk, int64_t dk,
                                           int64_t dv, const float* q, const float* k, const float* v,
                                           float* o, float* lse);

}  // namespace planted
