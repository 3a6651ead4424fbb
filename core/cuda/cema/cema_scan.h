// Fused CEMA layer kernels (no torch headers): the whole causal CEMA of spec §1.4–§1.6 in one
// pass over the sequence, forward and backward (algorithm in cema_scan_math.h / cema_scan.cuh).
//
//   y[b,d,t]  = Re Σ_n η h_t + ω_d x_t,   h_t = p x_t + q h_{t−1},  h_{−1} = h0     (one row per (b, d))
//   h_last    = the state after the last step (= ema_hidden of §1.6)
// which equals fftconv(x, k) + bias(h0) + ω x of the reference path for every L.
// With `reverse`, time runs backwards (t ↦ L−1−t): the anti-causal half of the bidirectional
// form (§1.8).
//
// Layouts (all contiguous, device pointers): x, y, grad_y, grad_x: B×D×L of type X (float,
// bf16 or double); p: D×N; log_q, eta: D×N×2 (interleaved re, im); omega: D (or null: no skip
// term); h0, h_last, grad_h_last, grad_h0: B×D×N×2 (h0 / grad_h_last null = zero);
// chunk_states: B×D×num_chunks×N×2, the state at the start of every chunk (written by the
// forward, read by the backward; null in a forward that no backward follows). Real type R = float
// for X = float/bf16, double for X = double. `stream` is a cudaStream_t. Launch errors:
// launch_error() (common/launch.h).
#pragma once
#include <cstdint>

#include "core/cuda/cema/cema_scan_math.h"

namespace mgl::cuda {

// Null when the scan takes B×D×L activations with N modes, else why not. The glue and
// mgl::kernels::cema_unsupported check it before launching; the launchers assume it.
inline const char* cema_scan_shape_error(int64_t B, int64_t D, int64_t N, int64_t L) {
  if (N < 1 || N > kCemaMaxN) return "the fused CEMA scan needs 1 <= N <= 256 modes";
  if (L < 1) return "the fused CEMA scan needs L >= 1 (an empty sequence takes the reference path)";
  if (B < 0 || D < 0) return "negative dimensions";
  if (B * D > 2147483647) return "the fused CEMA scan runs one block per row: B·D must be < 2^31";
  return nullptr;
}

template <typename X, typename R>
void cema_scan_forward(const X* x, const R* p, const R* log_q, const R* eta, const R* omega, const R* h0, X* y,
                       R* h_last, R* chunk_states, int64_t B, int64_t D, int64_t N, int64_t L, bool reverse,
                       void* stream);

// Gradients. Parameter gradients come back as per-row partial sums (reduced over the batch by
// the caller, which keeps them deterministic): part_p B×D×N; part_log_q, part_eta B×D×N×2;
// part_omega B×D (ignored when omega is null). grad_h0 may be null.
template <typename X, typename R>
void cema_scan_backward(const X* grad_y, const R* grad_h_last, const X* x, const R* p, const R* log_q,
                        const R* eta, const R* omega, const R* chunk_states, X* grad_x, R* part_p, R* part_log_q,
                        R* part_eta, R* part_omega, R* grad_h0, int64_t B, int64_t D, int64_t N, int64_t L,
                        bool reverse, void* stream);

}  // namespace mgl::cuda
