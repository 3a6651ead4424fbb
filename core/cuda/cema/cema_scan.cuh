// Implementation of the fused CEMA scan (cema_scan.h); instantiated once per dtype in
// cema_scan_{f32,bf16,f64}.cu. Blocking and per-step arithmetic: cema_scan_math.h.
//
// Forward, one block per row (b, d), chunks in order, the carried state in shared memory (fp64):
//   load the chunk's x → segment totals (dot products with p q^(S−1−k)) → chain the segments from
//   the carry (one thread per mode; also records the chunk's start state for the backward) → one
//   thread per step: in-segment convolution with k_0..k_15 + Σ_n Re(η q^(k+1) start_n) + ω x.
// Global traffic is x in, y out, plus N complex states per chunk (C = 128 steps for N = 16):
// the minimum for the op. There is no FFT, so any L costs the same per element.
//
// Backward, one block per row, chunks in reverse order, carrying the adjoint m = q·μ_{t+1}
// (started at conj(∂L/∂h_last)):
//   recompute the chunk's forward states h (segment totals, chain from the saved chunk start,
//   rescan into registers: S states per thread) → adjoint segment totals from zero, in reverse →
//   chain them from the adjoint carry → rescan in reverse with the true adjoint μ_t = η g_t + m,
//   accumulating per thread ∂p, grad η, Σ μ q h_{t−1} (→ grad log q) and p Re μ per (step, mode)
//   → reduce over the modes: grad x_t = Σ_n p Re μ_t,n + ω g_t.
// At the end grad h0 = conj(q μ_0) and the per-thread sums are reduced to per-row partials.
#pragma once
#include <cuda_runtime.h>

#include "core/cuda/cema/cema_scan.h"
#include "core/cuda/common/launch.h"

namespace mgl::cuda {
namespace detail {

// Shared-memory layout of the backward kernel (offsets in units of R).
template <typename R>
struct CemaSmem {
  R* xs;             // C: x of the chunk
  R* gs;             // C: grad y of the chunk (backward only)
  R* red;            // C×P (P = cema_red_stride(N)): per-(step, mode) contributions
  Cx<R>* seg_tot;    // G×N
  Cx<R>* seg_start;  // G×N
  Cx<double>* carry;  // N: the carried state, fp64 (first, for alignment)
  R* scratch;         // T
  __device__ CemaSmem(unsigned char* raw, int N, const CemaScanPlan& pl, bool backward) {
    carry = reinterpret_cast<Cx<double>*>(raw);
    R* s = reinterpret_cast<R*>(raw + 2 * N * sizeof(double));
    xs = s;
    s += pl.chunk;
    gs = s;
    if (backward) s += pl.chunk;
    red = s;
    s += static_cast<size_t>(pl.chunk) * cema_red_stride(N);
    seg_tot = reinterpret_cast<Cx<R>*>(s);
    s += 2 * pl.groups * N;
    seg_start = reinterpret_cast<Cx<R>*>(s);
    s += 2 * pl.groups * N;
    scratch = s;
  }
};

__device__ inline int64_t cema_time(int64_t pos, int64_t L, bool reverse) { return reverse ? L - 1 - pos : pos; }

template <typename X, typename R>
__global__ void __launch_bounds__(256)
    cema_scan_fwd_kernel(const X* __restrict__ x, const R* __restrict__ p, const R* __restrict__ log_q,
                         const R* __restrict__ eta, const R* __restrict__ omega, const R* __restrict__ h0,
                         X* __restrict__ y, R* __restrict__ h_last, R* __restrict__ states, int64_t D, int N,
                         int64_t L, bool reverse) {
  constexpr int S = kCemaSeg;
  MGL_DYNAMIC_SMEM(16, unsigned char, cema_smem_raw);
  const CemaScanPlan pl = cema_scan_plan(N);
  const int T = blockDim.x, tid = threadIdx.x, n = tid % N, g = tid / N, C = pl.chunk, G = pl.groups;
  // Shared layout: carry (N, fp64) | xs (C) | V (N×S complex) | kc (S) | seg_tot, seg_start (G×N complex)
  Cx<double>* carry = reinterpret_cast<Cx<double>*>(cema_smem_raw);
  R* xs = reinterpret_cast<R*>(cema_smem_raw + 2 * N * sizeof(double));
  Cx<R>* V = reinterpret_cast<Cx<R>*>(xs + C);
  R* kc = reinterpret_cast<R*>(V + N * S);
  Cx<R>* seg_tot = reinterpret_cast<Cx<R>*>(kc + S);
  Cx<R>* seg_start = seg_tot + G * N;
  const bool active = g < G;
  const int64_t row = blockIdx.x, d = row % D, nc = (L + C - 1) / C;
  const X* xr = x + row * L;
  X* yr = y + row * L;

  // Per-thread coefficients of mode n: q (rounded, for the partial-segment scan), q^S (fp64, for the
  // chain) and the segment-total weights W[k] = p q^(S−1−k), built in fp64 by repeated products.
  CxPow<R> q{};
  Cx<double> qS = cx<double>(1, 0);
  R pn = 0, lqr = 0, lqi = 0;
  Cx<R> W[S];
  if (active) {
    const int64_t i = d * N + n;
    lqr = log_q[2 * i];
    lqi = log_q[2 * i + 1];
    q = cema_pow<R>(lqr, lqi, 1.0);
    qS = cema_pow_wide<R>(lqr, lqi, static_cast<double>(S));
    pn = p[i];
    const Cx<double> qd = cema_pow_wide<R>(lqr, lqi, 1.0);
    Cx<double> w = cx<double>(pn, 0);
#pragma unroll
    for (int k = S - 1; k >= 0; --k) {
      W[k] = cema_narrow<R>(w);
      w = cmul(w, qd);
    }
  }
  // Block tables: V[n][k] = η q^(k+1) (carry term of step k of a segment) and the taps
  // kc[j] = Re Σ_n p η q^j, j < S (the in-segment convolution), both formed in fp64.
  for (int m = tid; m < N; m += T) {
    const int64_t i = d * N + m;
    const Cx<double> qd = cema_pow_wide<R>(log_q[2 * i], log_q[2 * i + 1], 1.0);
    Cx<double> v = cx<double>(eta[2 * i], eta[2 * i + 1]);
    for (int k = 0; k < S; ++k) {
      v = cmul(v, qd);
      V[m * S + k] = cema_narrow<R>(v);
    }
    const int64_t r = row * N + m;
    carry[m] = h0 ? cx<double>(h0[2 * r], h0[2 * r + 1]) : cx<double>(0, 0);
  }
  for (int j = tid; j < S; j += T) {
    double a = 0;
    for (int m = 0; m < N; ++m) {
      const int64_t i = d * N + m;
      const Cx<double> qj = cema_pow_wide<R>(log_q[2 * i], log_q[2 * i + 1], static_cast<double>(j));
      a += static_cast<double>(p[i]) * (static_cast<double>(eta[2 * i]) * qj.re - static_cast<double>(eta[2 * i + 1]) * qj.im);
    }
    kc[j] = static_cast<R>(a);
  }
  const R om = omega ? omega[d] : R(0);

  for (int64_t c = 0; c < nc; ++c) {
    const int64_t base = c * C;
    const int len = static_cast<int>(L - base < C ? L - base : C);
    __syncthreads();  // the previous chunk's readers of xs / seg_* are done (and the tables are built)
    for (int s = tid; s < C; s += T) xs[s] = s < len ? R(cema_load(xr[cema_time(base + s, L, reverse)])) : R(0);
    __syncthreads();
    // (1) segment totals Σ_k p q^(sl−1−k) x_k: a dot product with W for a full segment, the
    // recurrence for the row's final partial segment.
    if (active) {
      const int s0 = g * S, sl = cema_seg_len(len, g);
      Cx<R> t = cx<R>(0, 0);
      if (sl == S) {
#pragma unroll
        for (int k = 0; k < S; ++k) {
          const R xv = xs[s0 + k];
          t.re += W[k].re * xv;
          t.im += W[k].im * xv;
        }
      } else {
        for (int k = 0; k < sl; ++k) t = cema_step(q, pn, t, xs[s0 + k]);
      }
      seg_tot[g * N + n] = t;
    }
    __syncthreads();
    // (2) chain the segments in fp64 from the carried state; record the chunk's start state.
    if (tid < N) {  // thread tid is (n = tid, g = 0): its q^S is mode tid's
      Cx<double> E = carry[tid];
      if (states) {
        R* st = states + ((row * nc + c) * N + tid) * 2;
        st[0] = static_cast<R>(E.re);
        st[1] = static_cast<R>(E.im);
      }
      for (int gg = 0; gg < G; ++gg) {
        const int lg = cema_seg_len(len, gg);
        if (lg == 0) break;
        seg_start[gg * N + tid] = cema_narrow<R>(E);
        const Cx<double> f = lg == S ? qS : cema_pow_wide<R>(lqr, lqi, static_cast<double>(lg));
        E = cema_chain(f, E, seg_tot[gg * N + tid]);
      }
      carry[tid] = E;
    }
    __syncthreads();
    // (3) one thread per step: y = ω x + Σ_{j≤k} kc[j] x_{s−j} + Σ_n Re(V[n][k] · start_n).
    for (int s = tid; s < len; s += T) {
      const int gs = s / S, k = s % S;
      R acc = om * xs[s];
#pragma unroll
      for (int j = 0; j < S; ++j)
        if (j <= k) acc += kc[j] * xs[s - j];
      const Cx<R>* st = seg_start + gs * N;
      for (int m = 0; m < N; ++m) {
        const Cx<R> v = V[m * S + k], h = st[m];
        acc += v.re * h.re - v.im * h.im;
      }
      cema_store(acc, yr + cema_time(base + s, L, reverse));
    }
  }
  __syncthreads();
  if (h_last && tid < N) {
    const int64_t i = row * N + tid;
    h_last[2 * i] = static_cast<R>(carry[tid].re);
    h_last[2 * i + 1] = static_cast<R>(carry[tid].im);
  }
}

template <typename X, typename R>
__global__ void __launch_bounds__(256)
    cema_scan_bwd_kernel(const X* __restrict__ grad_y, const R* __restrict__ grad_h_last, const X* __restrict__ x,
                         const R* __restrict__ p, const R* __restrict__ log_q, const R* __restrict__ eta,
                         const R* __restrict__ omega, const R* __restrict__ states, X* __restrict__ grad_x,
                         R* __restrict__ part_p, R* __restrict__ part_log_q, R* __restrict__ part_eta,
                         R* __restrict__ part_omega, R* __restrict__ grad_h0, int64_t D, int N, int64_t L,
                         bool reverse) {
  MGL_DYNAMIC_SMEM(16, unsigned char, cema_smem_raw);
  const CemaScanPlan pl = cema_scan_plan(N);
  const CemaSmem<R> sm(cema_smem_raw, N, pl, true);
  const int T = blockDim.x, tid = threadIdx.x, n = tid % N, g = tid / N, C = pl.chunk, G = pl.groups,
            P = cema_red_stride(N);
  const bool active = g < G;
  const int64_t row = blockIdx.x, d = row % D, nc = (L + C - 1) / C;
  const X* xr = x + row * L;
  const X* gr = grad_y + row * L;
  X* dxr = grad_x + row * L;

  CxPow<R> q{};
  Cx<double> qS = cx<double>(1, 0);
  R pn = 0, lqr = 0, lqi = 0;
  Cx<R> en = cx<R>(0, 0);
  if (active) {
    const int64_t i = d * N + n;
    lqr = log_q[2 * i];
    lqi = log_q[2 * i + 1];
    q = cema_pow<R>(lqr, lqi, 1.0);
    qS = cema_pow_wide<R>(lqr, lqi, static_cast<double>(kCemaSeg));
    pn = p[i];
    en = cx<R>(eta[2 * i], eta[2 * i + 1]);
  }
  const R om = omega ? omega[d] : R(0);
  if (tid < N) {  // adjoint carry m = q μ_{t+1}; after the last step it is conj(∂L/∂h_last)
    const int64_t i = row * N + tid;
    sm.carry[tid] = grad_h_last ? cx<double>(grad_h_last[2 * i], -grad_h_last[2 * i + 1]) : cx<double>(0, 0);
  }
  CemaGradSum<R> acc;
  R acc_om = 0, acc_om_c = 0;
  Cx<R> hseg[kCemaSeg];

  for (int64_t c = nc - 1; c >= 0; --c) {
    const int64_t base = c * C;
    const int len = static_cast<int>(L - base < C ? L - base : C);
    __syncthreads();
    for (int s = tid; s < C; s += T) {
      const bool v = s < len;
      const int64_t t = cema_time(base + s, L, reverse);
      sm.xs[s] = v ? R(cema_load(xr[t])) : R(0);
      sm.gs[s] = v ? R(cema_load(gr[t])) : R(0);
    }
    __syncthreads();
    const int s0 = g * kCemaSeg, sl = active ? cema_seg_len(len, g) : 0;
    // (1) forward segment totals from zero.
    if (active) {
      Cx<R> l = cx<R>(0, 0);
#pragma unroll
      for (int k = 0; k < kCemaSeg; ++k)
        if (k < sl) l = cema_step(q, pn, l, sm.xs[s0 + k]);
      sm.seg_tot[g * N + n] = l;
    }
    __syncthreads();
    // (2) chain them from the chunk's saved start state.
    if (tid < N) {
      const R* st = states + ((row * nc + c) * N + tid) * 2;
      Cx<double> E = cx<double>(st[0], st[1]);
      for (int gg = 0; gg < G; ++gg) {
        const int lg = cema_seg_len(len, gg);
        if (lg == 0) break;
        sm.seg_start[gg * N + tid] = cema_narrow<R>(E);
        const Cx<double> f = lg == kCemaSeg ? qS : cema_pow_wide<R>(lqr, lqi, static_cast<double>(lg));
        E = cema_chain(f, E, sm.seg_tot[gg * N + tid]);
      }
    }
    __syncthreads();
    // (3) forward states of the segment into registers; adjoint segment totals from zero.
    if (sl > 0) {
      Cx<R> h = sm.seg_start[g * N + n];
#pragma unroll
      for (int k = 0; k < kCemaSeg; ++k) {
        if (k < sl) h = cema_step(q, pn, h, sm.xs[s0 + k]);
        hseg[k] = h;
      }
      Cx<R> m = cx<R>(0, 0);
#pragma unroll
      for (int k = kCemaSeg - 1; k >= 0; --k)
        if (k < sl) m = cema_seg_mul(q, cema_adjoint(en, sm.gs[s0 + k], m));
      sm.seg_tot[g * N + n] = m;  // (2) has consumed the forward totals before the barrier
    }
    __syncthreads();
    // (4) chain the adjoint totals backwards from the adjoint carry.
    if (tid < N) {
      Cx<double> E = sm.carry[tid];
      for (int gg = G - 1; gg >= 0; --gg) {
        const int lg = cema_seg_len(len, gg);
        if (lg == 0) continue;
        sm.seg_start[gg * N + tid] = cema_narrow<R>(E);
        const Cx<double> f = lg == kCemaSeg ? qS : cema_pow_wide<R>(lqr, lqi, static_cast<double>(lg));
        E = cema_chain(f, E, sm.seg_tot[gg * N + tid]);
      }
      sm.carry[tid] = E;  // q μ at the chunk's first step: the carry into the previous chunk
    }
    __syncthreads();
    // (5) the true adjoint, in reverse: gradients and p Re μ per (step, mode).
    if (sl > 0) {
      Cx<R> m = sm.seg_start[g * N + n];
      CemaGradAcc<R> part;
#pragma unroll
      for (int k = kCemaSeg - 1; k >= 0; --k) {
        if (k < sl) {
          const int s = s0 + k;
          const R gv = sm.gs[s], xv = sm.xs[s];
          const Cx<R> mu = cema_adjoint(en, gv, m);
          cema_grad_step(part, hseg[k], mu, pn, xv, gv);
          sm.red[s * P + n] = pn * mu.re;
          m = cema_seg_mul(q, mu);
        }
      }
      acc.add(part);
    }
    __syncthreads();
    for (int s = tid; s < len; s += T) {
      const R gv = sm.gs[s];
      R a = om * gv;
      const R* r = sm.red + s * P;
      for (int k = 0; k < N; ++k) a += r[k];
      kahan_add(acc_om, acc_om_c, gv * sm.xs[s]);
      cema_store(a, dxr + cema_time(base + s, L, reverse));
    }
  }
  __syncthreads();
  if (grad_h0 && tid < N) {  // grad h0 = conj(q μ_0)
    const int64_t i = row * N + tid;
    grad_h0[2 * i] = static_cast<R>(sm.carry[tid].re);
    grad_h0[2 * i + 1] = static_cast<R>(-sm.carry[tid].im);
  }
  // Per-row partial sums: reduce the (n, g) accumulators over g through shared memory.
  const R vals[5] = {acc.s[0], acc.s[1], acc.s[2], acc.s[3], -acc.s[4]};  // grad log q = conj(Σ μ q h)
#pragma unroll
  for (int v = 0; v < 5; ++v) {
    __syncthreads();
    if (active) sm.red[g * N + n] = vals[v];
    __syncthreads();
    if (tid < N) {
      R s = 0;
      for (int gg = 0; gg < G; ++gg) s += sm.red[gg * N + tid];
      const int64_t i = row * N + tid;
      if (v == 0) part_p[i] = s;
      else if (v <= 2) part_eta[2 * i + (v - 1)] = s;
      else part_log_q[2 * i + (v - 3)] = s;
    }
  }
  if (omega) {
    sm.scratch[tid] = acc_om;
    __syncthreads();
    for (int w = T / 2; w > 0; w /= 2) {
      if (tid < w) sm.scratch[tid] += sm.scratch[tid + w];
      __syncthreads();
    }
    if (tid == 0) part_omega[row] = sm.scratch[0];
  }
}

}  // namespace detail

template <typename X, typename R>
void cema_scan_forward(const X* x, const R* p, const R* log_q, const R* eta, const R* omega, const R* h0, X* y,
                       R* h_last, R* chunk_states, int64_t B, int64_t D, int64_t N, int64_t L, bool reverse,
                       void* stream) {
  if (B * D == 0 || L == 0) return;
  const CemaScanPlan pl = cema_scan_plan(N);
  const size_t smem = cema_scan_smem<R>(N, pl, false);
  auto kernel = detail::cema_scan_fwd_kernel<X, R>;
  if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  MGL_LAUNCH(kernel, static_cast<unsigned>(B * D), pl.threads, smem, static_cast<cudaStream_t>(stream))(
      x, p, log_q, eta, omega, h0, y, h_last, chunk_states, D, static_cast<int>(N), L, reverse);
}

template <typename X, typename R>
void cema_scan_backward(const X* grad_y, const R* grad_h_last, const X* x, const R* p, const R* log_q,
                        const R* eta, const R* omega, const R* chunk_states, X* grad_x, R* part_p, R* part_log_q,
                        R* part_eta, R* part_omega, R* grad_h0, int64_t B, int64_t D, int64_t N, int64_t L,
                        bool reverse, void* stream) {
  if (B * D == 0 || L == 0) return;
  const CemaScanPlan pl = cema_scan_plan(N);
  const size_t smem = cema_scan_smem<R>(N, pl, true);
  auto kernel = detail::cema_scan_bwd_kernel<X, R>;
  if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  MGL_LAUNCH(kernel, static_cast<unsigned>(B * D), pl.threads, smem, static_cast<cudaStream_t>(stream))(
      grad_y, grad_h_last, x, p, log_q, eta, omega, chunk_states, grad_x, part_p, part_log_q, part_eta, part_omega,
      grad_h0, D, static_cast<int>(N), L, reverse);
}

}  // namespace mgl::cuda
