// Host/device arithmetic of the fused CEMA scan (core/cuda/cema/cema_scan.cuh). Compiles with nvcc
// and with a plain C++ compiler, so that tests/core/test_cema_kernel_math.cpp checks the
// arithmetic and an emulation of the kernel's blocking on the CPU.
//
// The scan evaluates the CEMA layer through its recurrence (spec §1.3), which is exact for any L
// because the length-L kernel k is a sum of N complex exponentials:
//   h_t = p ⊙ x_t + q ⊙ h_{t−1},   y_t = Re Σ_n η_n h_t,n (+ ω x_t),   h_{−1} = h0.
// Blocking (one thread block per row (b, d)): the row is cut into chunks of C = G·S steps, each
// chunk into G segments of S = 16 steps. Forward, per chunk:
//   1. thread (n, g) forms segment g's total for mode n, T = Σ_k p q^(S−1−k) x_k (a dot product
//      with weights built once in fp64);
//   2. one thread per mode chains the segments in fp64: start_0 = carry, start_{g+1} = q^S start_g + T_g;
//   3. one thread per step t = (segment g, offset k) writes
//        y_t = ω x_t + Σ_{j≤k} k_j x_{t−j} + Σ_n Re(η_n q_n^(k+1) · start_g,n),
//      an in-segment convolution with the first S taps of k plus the carried-state term
//      (tables V[n][k] = η q^(k+1) and k_j = Re Σ p η q^j, built once per block in fp64).
// Per element that is ≈ S/2 + 2N multiply-adds for y and 2N for the totals: O(N), linear in L,
// no FFT, no length limit and no cliff. The backward (cema_scan.cuh) recomputes the states h_t
// per segment from the saved chunk starts and runs the adjoint recurrence in reverse order.
#pragma once
#include <math.h>

#include <cstddef>
#include <cstdint>

#include "core/cuda/common/bf16.h"
#include "core/cuda/common/host_device.h"

namespace mgl::cuda {

// Segment length S (steps per thread per chunk); a compile-time constant so that per-thread
// arrays of S states stay in registers.
constexpr int kCemaSeg = 16;
// Largest N the scan supports (the official kernels stop at 32).
constexpr int64_t kCemaMaxN = 256;

// Thread-block geometry of the scan for N modes.
struct CemaScanPlan {
  int threads;  // block size T
  int groups;   // segments per chunk G = min(⌊T / N⌋, 32) (threads (n, g), n fastest)
  int chunk;    // steps per chunk C = G·S
};
MGL_HD CemaScanPlan cema_scan_plan(int64_t N) {
  CemaScanPlan p;
  p.threads = N > 128 ? 256 : 128;
  p.groups = static_cast<int>(p.threads / (N < 1 ? 1 : N));
  if (p.groups > 32) p.groups = 32;  // N < 4: keep chunks (and shared memory) bounded
  if (p.groups < 1) p.groups = 1;
  p.chunk = p.groups * kCemaSeg;
  return p;
}
MGL_HD int64_t cema_num_chunks(int64_t L, const CemaScanPlan& p) { return (L + p.chunk - 1) / p.chunk; }

// Row stride of the per-(step, mode) buffer: odd, so that the per-step reduction (thread s reads
// row s) is free of shared-memory bank conflicts.
MGL_HD int cema_red_stride(int64_t N) { return static_cast<int>(N % 2 ? N : N + 1); }

// Shared memory of the forward and backward kernels, in bytes, for real type R.
template <typename R>
MGL_HD size_t cema_scan_smem(int64_t N, const CemaScanPlan& p, bool backward) {
  const size_t C = static_cast<size_t>(p.chunk), G = static_cast<size_t>(p.groups), n = static_cast<size_t>(N);
  size_t reals = 2 * 2 * G * n  // segment totals and starts (complex)
                 + static_cast<size_t>(p.threads);  // block reductions
  if (backward)
    reals += 2 * C                                          // x and dy of the chunk
             + C * static_cast<size_t>(cema_red_stride(N));  // per-(step, mode) contributions
  else
    reals += C                      // x of the chunk
             + 2 * kCemaSeg * n     // V[n][k] = η q^(k+1) (complex)
             + kCemaSeg;            // the first S taps of the kernel k
  return 2 * n * sizeof(double)  // the carried state (complex fp64), first
         + reals * sizeof(R);
}

// A minimal complex number for the kernels (std::complex is not usable in device code).
template <typename R>
struct Cx {
  R re, im;
};
template <typename R>
MGL_HD Cx<R> cx(R re, R im) {
  Cx<R> z;
  z.re = re;
  z.im = im;
  return z;
}
template <typename R>
MGL_HD Cx<R> cadd(Cx<R> a, Cx<R> b) {
  return cx<R>(a.re + b.re, a.im + b.im);
}
template <typename R>
MGL_HD Cx<R> cmul(Cx<R> a, Cx<R> b) {
  return cx<R>(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re);
}
template <typename R>
MGL_HD Cx<R> cconj(Cx<R> a) {
  return cx<R>(a.re, -a.im);
}
template <typename R>
MGL_HD Cx<R> cscale(Cx<R> a, R s) {
  return cx<R>(a.re * s, a.im * s);
}

// A power of q held as a rounded value plus the rounding remainder (hi + lo ≈ exact, both
// formed from the fp64 value). Multiplying by both parts keeps the systematic error of the
// rounded decay out of long recurrences: with |q| near 1 the rounded q̃ alone would bias
// q̃^j by j·ε, up to ε/(e·(1−|q|)) overall.
template <typename R>
struct CxPow {
  Cx<R> hi, lo;
};
// exp(e · log q) with the product and the exponential in fp64.
template <typename R>
MGL_HD CxPow<R> cema_pow(R log_re, R log_im, double e) {
  const double m = ::exp(e * static_cast<double>(log_re));
  const double a = e * static_cast<double>(log_im);
  const double re = m * ::cos(a), im = m * ::sin(a);
  CxPow<R> out;
  out.hi = cx<R>(static_cast<R>(re), static_cast<R>(im));
  out.lo = cx<R>(static_cast<R>(re - static_cast<double>(out.hi.re)), static_cast<R>(im - static_cast<double>(out.hi.im)));
  return out;
}
// q^e · h with the compensated power (chaining segments).
template <typename R>
MGL_HD Cx<R> cema_mul(const CxPow<R>& q, Cx<R> h) {
  return cadd(cmul(q.hi, h), cmul(q.lo, h));
}

// q · h inside a segment: the rounded q alone. Within S = 16 steps its bias is at most 16·ε;
// the segments are chained with the compensated q^S, so the bias does not compound along L.
template <typename R>
MGL_HD Cx<R> cema_seg_mul(const CxPow<R>& q, Cx<R> h) {
  return cmul(q.hi, h);
}

// The chains across segments and chunks run in fp64: E ← q^len·E + T with q^len = exp(len·log q)
// formed in fp64, the carried state held in fp64 between chunks, and only the segment starts
// rounded to R. One thread per mode does G such steps per chunk, so this costs nothing, and it
// keeps the long-memory regime (|q| → 1, ~1/(1−|q|) chained steps) at the fp32 reference
// path's accuracy instead of accumulating one rounding per chained step.
template <typename R>
MGL_HD Cx<double> cema_pow_wide(R log_re, R log_im, double e) {
  const double m = ::exp(e * static_cast<double>(log_re));
  const double a = e * static_cast<double>(log_im);
  return cx<double>(m * ::cos(a), m * ::sin(a));
}
template <typename R>
MGL_HD Cx<double> cema_chain(Cx<double> f, Cx<double> E, Cx<R> t) {
  const Cx<double> r = cmul(f, E);
  return cx<double>(r.re + static_cast<double>(t.re), r.im + static_cast<double>(t.im));
}
template <typename R>
MGL_HD Cx<R> cema_narrow(Cx<double> z) {
  return cx<R>(static_cast<R>(z.re), static_cast<R>(z.im));
}

// One forward step inside a segment: h ← q·h + p·x (p real).
template <typename R>
MGL_HD Cx<R> cema_step(const CxPow<R>& q, R p, Cx<R> h, R x) {
  Cx<R> r = cema_seg_mul(q, h);
  r.re += p * x;
  return r;
}

// One adjoint step, in reverse order. `m` carries q·μ_{t+1} (for the last step: conj(∂L/∂h_L)
// in PyTorch's convention); returns μ_t = η·g_t + m, the adjoint of h_t such that
// dL = Re(μ_t · dh_t) through everything downstream of h_t.
template <typename R>
MGL_HD Cx<R> cema_adjoint(Cx<R> eta, R g, Cx<R> m) {
  return cx<R>(eta.re * g + m.re, eta.im * g + m.im);
}

// Per-step parameter-gradient contributions at step t, given h_t, μ_t, x_t, g_t = ∂L/∂y_t:
//   ∂L/∂p       += x_t Re μ_t
//   grad η      += g_t conj(h_t)                  (PyTorch's complex convention: ∂/∂Re + i ∂/∂Im)
//   Σ μ q h_{t−1} += μ_t (h_t − p x_t)             (grad log q = conj of the sum, taken at the end)
template <typename R>
struct CemaGradAcc {
  R p = 0;
  Cx<R> eta{0, 0};
  Cx<R> mqh{0, 0};
};
template <typename R>
MGL_HD void cema_grad_step(CemaGradAcc<R>& a, Cx<R> h, Cx<R> mu, R p, R x, R g) {
  a.p += x * mu.re;
  a.eta.re += g * h.re;
  a.eta.im -= g * h.im;
  const Cx<R> qh = cx<R>(h.re - p * x, h.im);
  const Cx<R> t = cmul(mu, qh);
  a.mqh.re += t.re;
  a.mqh.im += t.im;
}

// Activation loads and stores: fp32 and fp64 as they are, bf16 (common/bf16.h) widened exactly and
// rounded to nearest even, as the hardware does.
MGL_HD float cema_load(float v) { return v; }
MGL_HD double cema_load(double v) { return v; }
MGL_HD float cema_load(bf16 v) { return bf16_to_float(v); }
MGL_HD void cema_store(float v, float* out) { *out = v; }
MGL_HD void cema_store(double v, double* out) { *out = v; }
MGL_HD void cema_store(float v, bf16* out) { *out = float_to_bf16(v); }

// Running sums over the whole row (L/G terms per thread) use Kahan compensation (kahan_add,
// common/host_device.h); each chunk's segment contributes a plain sum of at most S terms. Without
// it, the fp32 gradient sums at L = 64K would carry ~L/G·ε of rounding, above the reference path's
// blocked reductions.
template <typename R>
struct CemaGradSum {
  R s[5] = {0, 0, 0, 0, 0};  // ∂p, Re/Im grad η, Re/Im Σ μ q h
  R c[5] = {0, 0, 0, 0, 0};
  MGL_HD void add(const CemaGradAcc<R>& a) {
    kahan_add(s[0], c[0], a.p);
    kahan_add(s[1], c[1], a.eta.re);
    kahan_add(s[2], c[2], a.eta.im);
    kahan_add(s[3], c[3], a.mqh.re);
    kahan_add(s[4], c[4], a.mqh.im);
  }
};

// Number of valid steps of segment g in a chunk of `len` valid steps.
MGL_HD int cema_seg_len(int len, int g) {
  const int v = len - g * kCemaSeg;
  return v < 0 ? 0 : (v > kCemaSeg ? kCemaSeg : v);
}

}  // namespace mgl::cuda
