// The per-element and combine arithmetic of the fused timestep-norm kernels (spec §2), as
// __host__ __device__ inline functions: the CUDA kernels (timestep_norm.cuh) and the CPU
// emulation of their scan (tests/core/test_timestep_norm_scan.cpp, the timestep-norm benchmark) call the
// very same code, so the CPU tests check the kernels' arithmetic bit for bit up to FMA contraction.
// Compiles with g++ (no CUDA headers).
#pragma once
#include <cmath>
#include <cstdint>

#include "core/cuda/common/host_device.h"

namespace mgl::cuda::timestep_norm {

// ---- forward: Welford/Chan moments -------------------------------------------------------
// The statistics of a run of timesteps: n observations (each timestep is one observation with the
// token's group moments, §2.1), their mean m and population variance v. The count is exact
// (int64: streams may be long); the moments are fp32.
struct Moments {
  long long n;
  float m;
  float v;
};

MGL_HD Moments moments_identity() { return {0, 0.f, 0.f}; }

// One timestep: the token's group mean and variance, or the identity when it is padded.
MGL_HD Moments observation(float gm, float gv, bool valid) { return valid ? Moments{1, gm, gv} : moments_identity(); }

// Chan et al.'s pairwise merge of `a` (earlier) and `b` (later): pooled mean and variance.
//   m = m_a + c_b δ,   v = v_a + c_b (v_b − v_a) + c_a c_b δ²,   δ = m_b − m_a, c_i = n_i / n.
// Written as increments of a's moments so that the same increments feed the compensated carry
// below; each term is small when b is small next to a, which is the case that loses precision.
MGL_HD Moments combine(const Moments& a, const Moments& b) {
  const long long n = a.n + b.n;
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  const float cb = static_cast<float>(b.n) / static_cast<float>(n);
  const float ca = static_cast<float>(a.n) / static_cast<float>(n);
  const float d = b.m - a.m;
  return {n, a.m + cb * d, a.v + (cb * (b.v - a.v) + ca * cb * d * d)};
}

// The carry of a long scan: moments with Kahan compensation terms on the mean and the variance.
// The carry absorbs one tile (or chunk) total at a time, so over a long sequence it takes
// thousands of merges whose increments are tiny next to the carried mean: plain fp32 would drift
// by O(ε·merges); compensation keeps it at O(ε) (spec §2.5: the official kernel's KahanWrapper).
struct MomentsCarry {
  Moments s;
  float cm;  // compensation of s.m
  float cv;  // compensation of s.v
};

MGL_HD MomentsCarry carry_init(const Moments& s) { return {s, 0.f, 0.f}; }

MGL_HD void carry_absorb(MomentsCarry& c, const Moments& b) {
  if (b.n == 0) return;
  if (c.s.n == 0) {
    c = {b, 0.f, 0.f};
    return;
  }
  const long long n = c.s.n + b.n;
  const float cb = static_cast<float>(b.n) / static_cast<float>(n);
  const float ca = static_cast<float>(c.s.n) / static_cast<float>(n);
  const float d = b.m - c.s.m;
  const float inc_v = cb * (b.v - c.s.v) + ca * cb * d * d;
  kahan_add(c.s.m, c.cm, cb * d);
  kahan_add(c.s.v, c.cv, inc_v);
  c.s.n = n;
}

// The carried value with its compensation applied (s − c is the sum Kahan tracks).
MGL_HD Moments corrected(const MomentsCarry& c) { return {c.s.n, c.s.m - c.cm, c.s.v - c.cv}; }

MGL_HD float rstd_of(float var, float eps) {
#ifdef __CUDA_ARCH__
  return rsqrtf(var + eps);
#else
  return 1.0f / std::sqrt(var + eps);
#endif
}

// ---- backward: suffix sums over time -------------------------------------------------------
// With μ_t = (n0 μ0 + Σ_{s≤t} gm_s)/n_t and σ²_t = (n0(σ0²+μ0²) + Σ_{s≤t}(gv_s + gm_s²))/n_t − μ_t²
// (sums over valid steps), and a_t = ∂ℓ/∂μ_t = −r_t Σ_c dy_c w_c, b_t = ∂ℓ/∂σ²_t = −½ r_t³ Σ_c dy_c w_c (x_c − μ_t):
//   ∂ℓ/∂gv_s = P_s,  ∂ℓ/∂gm_s = 2 (gm_s − K) P_s + Q_s,
//   P_s = Σ_{t≥s} b_t / n_t,  Q_s = Σ_{t≥s} (a_t − 2 (μ_t − K) b_t) / n_t,
// for any per-(b, group) constant K (it cancels). K = the final mean μ_L keeps both terms of ∂ℓ/∂gm
// small when the data sit far from 0 (the same shift as the reference path's forward). The prior
// gets ∂ℓ/∂μ0 = n0 (2 (μ0 − K) P_0 + Q_0) and ∂ℓ/∂σ0² = n0 P_0. This is the official reverse-time
// (U, V) recursion of §2.4 unrolled: two plain suffix sums, so the reverse scan is a sum scan.
struct GradSums {
  float p;
  float q;
};

MGL_HD GradSums gradsums_identity() { return {0.f, 0.f}; }
MGL_HD GradSums combine(const GradSums& a, const GradSums& b) { return {a.p + b.p, a.q + b.q}; }

// One step's terms from the row sums db = Σ dy w and ds = Σ dy w (x − μ_t), and the step's count.
MGL_HD GradSums grad_terms(float db, float ds, float mu, float rstd, float inv_n, float shift, float dmu_extra,
                           float dvar_extra) {
  const float a = -rstd * db + dmu_extra;
  const float b = -0.5f * rstd * rstd * rstd * ds + dvar_extra;
  return {b * inv_n, (a - 2.f * (mu - shift) * b) * inv_n};
}

struct GradCarry {
  GradSums s;
  float cp;
  float cq;
};
MGL_HD GradCarry carry_init(const GradSums& s) { return {s, 0.f, 0.f}; }
MGL_HD void carry_absorb(GradCarry& c, const GradSums& b) {
  kahan_add(c.s.p, c.cp, b.p);
  kahan_add(c.s.q, c.cq, b.q);
}
MGL_HD GradSums corrected(const GradCarry& c) { return {c.s.p - c.cp, c.s.q - c.cq}; }

// dx_c = dy_c r w_c + (∂ℓ/∂gm)/g + 2 (∂ℓ/∂gv)(x_c − gm)/g.
MGL_HD float dx_element(float dy, float x, float w, float rstd, float gm, float dgm, float dgv, float inv_g) {
  return dy * rstd * w + inv_g * (dgm + 2.f * dgv * (x - gm));
}

}  // namespace mgl::cuda::timestep_norm
