// Implementation of the fused timestep norm (timestep_norm.h); instantiated once per dtype in
// timestep_norm_{f32,bf16}.cu.
//
// Forward, three passes over x-sized data (bytes model in the timestep-norm benchmark):
//   1. row_moments:  one warp per (b, t, group): two-pass mean and population variance of the
//                    g channels (fp32) → gm, gv (B×G×L).
//   2. scan:         per (b, group) column the Welford/Chan scan over time of timestep_norm_scan.h
//                    (short path: one block per column; long path: chunk reduce → compensated
//                    scan of the chunk totals → chunk re-scan) → mean, rstd (B×G×L), final state.
//   3. normalize:    y = (x − μ_t) rstd_t w + β, 0 at padded steps.
// Backward:
//   1. row_grads:    one warp per (b, t, group): gm and the row sums db = Σ dy w, ds = Σ dy w (x − μ)
//                    → the per-step terms (P, Q) of timestep_norm_math.h (the final state's
//                    gradients enter at t = L − 1).
//   2. scan:         the same block scan, reverse in time, of plain sums (compensated carry)
//                    → ∂ℓ/∂gv, ∂ℓ/∂gm per step, and the prior's gradients.
//   3. dx + partial: dx elementwise; dweight/dbias partial sums over row blocks (Kahan), then a
//                    deterministic reduction over the row blocks.
#pragma once
#include <cuda_runtime.h>

#include "core/cuda/common/launch.h"
#include "core/cuda/common/reduce.cuh"
#include "core/cuda/timestep_norm/timestep_norm.h"
#include "core/cuda/timestep_norm/timestep_norm_scan.h"

namespace mgl::cuda {
namespace timestep_norm_detail {

using namespace mgl::cuda::timestep_norm;
using common::reduce_partials_kernel;
using common::warp_sum;

__device__ __forceinline__ Moments shfl_up(const Moments& s, int off) {
  return {__shfl_up_sync(0xffffffffu, s.n, off), __shfl_up_sync(0xffffffffu, s.m, off),
          __shfl_up_sync(0xffffffffu, s.v, off)};
}
__device__ __forceinline__ GradSums shfl_up(const GradSums& s, int off) {
  return {__shfl_up_sync(0xffffffffu, s.p, off), __shfl_up_sync(0xffffffffu, s.q, off)};
}

// Kogge–Stone inclusive scan across the warp (same merge order as emu::warp_inclusive).
template <class S>
__device__ __forceinline__ S warp_inclusive(S v, int lane) {
  for (int off = 1; off < 32; off <<= 1) {
    const S o = shfl_up(v, off);
    if (lane >= off) v = combine(o, v);
  }
  return v;
}

// One tile of the block scan (timestep_norm_scan.h, emu::tile): positions [begin, end) of column
// `col` in scan order. `smem` holds kWarps + 1 states. All threads call it (barriers inside).
template <class Op>
__device__ void block_tile(const Op& op, int64_t col, int64_t begin, int64_t end, typename Op::Carry& carry,
                           bool write, typename Op::State* smem) {
  using S = typename Op::State;
  const int j = threadIdx.x, lane = j & 31, w = j >> 5;
  S items[kItems];
  S part = Op::identity();
#pragma unroll
  for (int k = 0; k < kItems; ++k) {
    const int64_t i = begin + int64_t{j} * kItems + k;
    items[k] = i < end ? op.load(col, i) : Op::identity();
    part = combine(part, items[k]);
  }
  const S incl = warp_inclusive(part, lane);
  S lpre = shfl_up(incl, 1);
  if (lane == 0) lpre = Op::identity();
  if (lane == 31) smem[w] = incl;
  __syncthreads();
  if (w == 0) {
    S v = lane < kWarps ? smem[lane] : Op::identity();
    v = warp_inclusive(v, lane);
    S vpre = shfl_up(v, 1);
    if (lane == 0) vpre = Op::identity();
    if (lane < kWarps) smem[lane] = vpre;
    if (lane == kWarps - 1) smem[kWarps] = v;
  }
  __syncthreads();
  if (write) {  // re-fold from the compensated carry (emu::tile)
    typename Op::Carry s = carry;
    carry_absorb(s, smem[w]);
    carry_absorb(s, lpre);
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      const int64_t i = begin + int64_t{j} * kItems + k;
      carry_absorb(s, items[k]);
      if (i < end) op.store(col, i, corrected(s));
    }
  }
  carry_absorb(carry, smem[kWarps]);
  __syncthreads();  // smem is reused by the next tile
}

// Long path, step 1: grid (columns, chunks − 1): the total of each chunk but the last.
template <class Op>
__global__ void __launch_bounds__(kThreads) scan_reduce_kernel(Op op, int64_t L, typename Op::Carry* totals,
                                                               int64_t nc) {
  MGL_STATIC_SMEM(typename Op::State, smem, kWarps + 1);
  const int64_t col = blockIdx.x, c = blockIdx.y;
  typename Op::Carry tot = carry_init(Op::identity());
  const int64_t e = (c + 1) * kChunk;
  for (int64_t b = c * kChunk; b < e; b += kTile) block_tile(op, col, b, b + kTile < L ? b + kTile : L, tot, false, smem);
  if (threadIdx.x == 0) totals[col * nc + c] = tot;
}

// Long path, step 2: one thread per column turns the chunk totals into each chunk's prefix, in place.
// The last chunk has no total (scan_reduce computes nc − 1 of them): its slot only receives its prefix.
template <class Op>
__global__ void scan_carry_kernel(Op op, int64_t ncols, typename Op::Carry* buf, int64_t nc) {
  const int64_t col = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (col >= ncols) return;
  typename Op::Carry run = op.initial(col);
  for (int64_t c = 0; c + 1 < nc; ++c) {
    const typename Op::Carry tot = buf[col * nc + c];
    buf[col * nc + c] = run;
    carry_absorb(run, tot.s);
  }
  buf[col * nc + nc - 1] = run;
}

// Both paths, last step: grid (columns, chunks): re-scan each chunk from its prefix, write every
// step; the last chunk reports the column's final carry.
template <class Op>
__global__ void __launch_bounds__(kThreads) scan_apply_kernel(Op op, int64_t L, const typename Op::Carry* prefix,
                                                              int64_t nc) {
  MGL_STATIC_SMEM(typename Op::State, smem, kWarps + 1);
  const int64_t col = blockIdx.x, c = blockIdx.y;
  typename Op::Carry carry = nc == 1 ? op.initial(col) : prefix[col * nc + c];
  const int64_t e = (c + 1) * kChunk < L ? (c + 1) * kChunk : L;
  for (int64_t b = c * kChunk; b < e; b += kTile) block_tile(op, col, b, b + kTile < e ? b + kTile : e, carry, true, smem);
  if (c == nc - 1 && threadIdx.x == 0) op.finish(col, carry);
}

template <class Op>
void run_scan(const Op& op, int64_t ncols, int64_t L, typename Op::Carry* buf, cudaStream_t st) {
  const int64_t nc = num_chunks(L);
  if (nc > 1) {
    MGL_LAUNCH(scan_reduce_kernel<Op>, dim3(static_cast<unsigned>(ncols), static_cast<unsigned>(nc - 1)), kThreads, 0, st)(
        op, L, buf, nc);
    MGL_LAUNCH(scan_carry_kernel<Op>, static_cast<unsigned>((ncols + 127) / 128), 128, 0, st)(op, ncols, buf, nc);
  }
  MGL_LAUNCH(scan_apply_kernel<Op>, dim3(static_cast<unsigned>(ncols), static_cast<unsigned>(nc)), kThreads, 0, st)(
      op, L, buf, nc);
}

// ---- forward -----------------------------------------------------------------------------

struct FwdScanOp {
  using State = Moments;
  using Carry = MomentsCarry;
  const float* gm;
  const float* gv;
  const bool* mask;
  const int64_t* prev_count;
  const float* prev_mean;
  const float* prev_var;
  float* mean;
  float* rstd;
  float* mean_out;
  float* var_out;
  int64_t L, G;
  float eps;
  __device__ static State identity() { return moments_identity(); }
  __device__ State load(int64_t col, int64_t t) const {
    const bool valid = mask == nullptr || !mask[(col / G) * L + t];
    return observation(gm[col * L + t], gv[col * L + t], valid);
  }
  __device__ void store(int64_t col, int64_t t, const State& s) const {
    mean[col * L + t] = s.m;
    rstd[col * L + t] = rstd_of(s.v, eps);
  }
  __device__ Carry initial(int64_t col) const {
    return carry_init(Moments{static_cast<long long>(prev_count[col / G]), prev_mean[col], prev_var[col]});
  }
  __device__ void finish(int64_t col, const Carry& c) const {
    const Moments m = corrected(c);
    mean_out[col] = m.m;
    var_out[col] = m.v;
  }
};

template <typename T>
__global__ void row_moments_kernel(const T* __restrict__ x, float* __restrict__ gm, float* __restrict__ gv, int64_t rows,
                                   int64_t L, int64_t G, int64_t g) {
  const int64_t r = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32;  // (b, t, group), group fastest
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;  // whole warps leave together
  const int64_t grp = r % G, bt = r / G, b = bt / L, t = bt % L;
  const T* row = x + bt * G * g + grp * g;
  float s = 0.f;
  for (int64_t c = lane; c < g; c += 32) s += to_float(row[c]);
  const float m = warp_sum(s) / static_cast<float>(g);
  float q = 0.f;
  for (int64_t c = lane; c < g; c += 32) {
    const float d = to_float(row[c]) - m;
    q += d * d;
  }
  const float v = warp_sum(q) / static_cast<float>(g);
  if (lane == 0) {
    gm[(b * G + grp) * L + t] = m;
    gv[(b * G + grp) * L + t] = v;
  }
}

// grid (⌈D/256⌉, R): thread = channel (its group is fixed), block y = a run of rows (b, t) walked
// incrementally: no 64-bit division per element, coalesced along the channels of each row.
template <typename T>
__global__ void normalize_kernel(const T* __restrict__ x, const float* __restrict__ w, const float* __restrict__ beta,
                                 const bool* __restrict__ mask, const float* __restrict__ mean,
                                 const float* __restrict__ rstd, T* __restrict__ y, int64_t rows,
                                 int64_t rows_per_block, int64_t L, int64_t D, int64_t G, int64_t g) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= D) return;
  const int64_t r0 = int64_t{blockIdx.y} * rows_per_block;
  const int64_t r1 = r0 + rows_per_block < rows ? r0 + rows_per_block : rows;
  const float wc = w[c], bc = beta[c];
  const int64_t grp = c / g;
  int64_t b = r0 / L, t = r0 % L;
  for (int64_t bt = r0; bt < r1; ++bt) {
    const int64_t idx = (b * G + grp) * L + t;
    const float out = (mask != nullptr && mask[bt]) ? 0.f : (to_float(x[bt * D + c]) - mean[idx]) * rstd[idx] * wc + bc;
    y[bt * D + c] = from_float<T>(out);
    if (++t == L) {
      t = 0;
      ++b;
    }
  }
}

// ---- backward ----------------------------------------------------------------------------

template <typename T>
__global__ void row_grads_kernel(const T* __restrict__ x, const T* __restrict__ dy, const float* __restrict__ w,
                                 const bool* __restrict__ mask, const double* __restrict__ counts,
                                 const int64_t* __restrict__ prev_count, const int64_t* __restrict__ count_out,
                                 const float* __restrict__ mean, const float* __restrict__ rstd,
                                 const float* __restrict__ mean_out, const float* __restrict__ dmean_out,
                                 const float* __restrict__ dvar_out, float* __restrict__ gm, float* __restrict__ P,
                                 float* __restrict__ Q, int64_t rows, int64_t L, int64_t G, int64_t g) {
  const int64_t r = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (r >= rows) return;
  const int64_t grp = r % G, bt = r / G, b = bt / L, t = bt % L, col = b * G + grp, idx = col * L + t;
  const float mu = mean[idx], rs = rstd[idx];
  float sx = 0.f, sdb = 0.f, sds = 0.f;
  if (mask == nullptr || !mask[bt]) {
    const T* xr = x + bt * G * g + grp * g;
    const T* dr = dy + bt * G * g + grp * g;
    for (int64_t c = lane; c < g; c += 32) {
      const float xv = to_float(xr[c]), dw = to_float(dr[c]) * w[grp * g + c];
      sx += xv;
      sdb += dw;
      sds += dw * (xv - mu);
    }
    sx = warp_sum(sx);
    sdb = warp_sum(sdb);
    sds = warp_sum(sds);
  }
  if (lane != 0) return;
  const double n = counts != nullptr ? counts[bt] : static_cast<double>(prev_count[b] + t + 1);
  const float inv_n = n > 0 ? static_cast<float>(1.0 / n) : 0.f;
  // The final state (μ_L, σ²_L) is the statistics of the last step, padded or not.
  const bool last = t == L - 1 && count_out[b] > 0;
  const float dmu = last && dmean_out != nullptr ? dmean_out[col] : 0.f;
  const float dvar = last && dvar_out != nullptr ? dvar_out[col] : 0.f;
  const GradSums term = grad_terms(sdb, sds, mu, rs, inv_n, mean_out[col], dmu, dvar);
  gm[idx] = sx / static_cast<float>(g);
  P[idx] = term.p;
  Q[idx] = term.q;
}

// Reverse-time suffix sums; store() overwrites P with ∂ℓ/∂gv and Q with ∂ℓ/∂gm (0 at padded steps).
struct BwdScanOp {
  using State = GradSums;
  using Carry = GradCarry;
  float* P;
  float* Q;
  const float* gm;
  const bool* mask;
  const int64_t* prev_count;
  const int64_t* count_out;
  const float* prev_mean;
  const float* mean_out;
  const float* dmean_out;
  const float* dvar_out;
  float* dprev_mean;
  float* dprev_var;
  int64_t L, G;
  __device__ static State identity() { return gradsums_identity(); }
  __device__ State load(int64_t col, int64_t i) const {
    const int64_t idx = col * L + (L - 1 - i);
    return {P[idx], Q[idx]};
  }
  __device__ void store(int64_t col, int64_t i, const State& s) const {
    const int64_t t = L - 1 - i, idx = col * L + t;
    const bool valid = mask == nullptr || !mask[(col / G) * L + t];
    P[idx] = valid ? s.p : 0.f;
    Q[idx] = valid ? 2.f * (gm[idx] - mean_out[col]) * s.p + s.q : 0.f;
  }
  __device__ Carry initial(int64_t) const { return carry_init(identity()); }
  __device__ void finish(int64_t col, const Carry& c) const {
    const int64_t b = col / G;
    if (count_out[b] == 0) {  // nothing seen: the state passed through unchanged
      dprev_mean[col] = dmean_out != nullptr ? dmean_out[col] : 0.f;
      dprev_var[col] = dvar_out != nullptr ? dvar_out[col] : 0.f;
      return;
    }
    const float n0 = static_cast<float>(prev_count[b]);
    const GradSums t = corrected(c);
    dprev_mean[col] = n0 * (2.f * (prev_mean[col] - mean_out[col]) * t.p + t.q);
    dprev_var[col] = n0 * t.p;
  }
};

// grid (⌈D/256⌉, R): thread = channel, block y = a run of rows; dx, plus per-row-block partial sums
// of dweight = Σ dy (x − μ) rstd and dbias = Σ dy (Kahan), skipping padded rows.
template <typename T>
__global__ void dx_kernel(const T* __restrict__ x, const T* __restrict__ dy, const float* __restrict__ w,
                          const bool* __restrict__ mask, const float* __restrict__ mean, const float* __restrict__ rstd,
                          const float* __restrict__ gm, const float* __restrict__ dgv, const float* __restrict__ dgm,
                          T* __restrict__ dx, float* __restrict__ pw, float* __restrict__ pb, int64_t rows,
                          int64_t rows_per_block, int64_t L, int64_t D, int64_t G, int64_t g) {
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= D) return;
  const int64_t r0 = int64_t{blockIdx.y} * rows_per_block;
  const int64_t r1 = r0 + rows_per_block < rows ? r0 + rows_per_block : rows;
  const float wc = w[c], inv_g = 1.f / static_cast<float>(g);
  const int64_t grp = c / g;
  float aw = 0.f, cw = 0.f, ab = 0.f, cb = 0.f;
  int64_t b = r0 / L, t = r0 % L - 1;  // walked incrementally (no 64-bit division per element)
  for (int64_t bt = r0; bt < r1; ++bt) {
    if (++t == L) {
      t = 0;
      ++b;
    }
    const int64_t e = bt * D + c;
    if (mask != nullptr && mask[bt]) {
      dx[e] = from_float<T>(0.f);
      continue;
    }
    const int64_t idx = (b * G + grp) * L + t;
    const float xv = to_float(x[e]), dv = to_float(dy[e]), rs = rstd[idx];
    dx[e] = from_float<T>(dx_element(dv, xv, wc, rs, gm[idx], dgm[idx], dgv[idx], inv_g));
    kahan_add(aw, cw, dv * (xv - mean[idx]) * rs);
    kahan_add(ab, cb, dv);
  }
  pw[int64_t{blockIdx.y} * D + c] = aw;
  pb[int64_t{blockIdx.y} * D + c] = ab;
}

// ---- workspace layout ---------------------------------------------------------------------

inline size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

// Row blocks of the normalize and dx kernels: about 2048 blocks in all, at least one row each.
inline int64_t dx_row_blocks(const TimestepNormShape& s) {
  const int64_t ctiles = (s.D + 255) / 256, rows = s.B * s.L;
  int64_t R = 2048 / ctiles;
  if (R < 1) R = 1;
  return R < rows ? R : rows;
}

struct FwdWorkspace {
  float* gm;
  float* gv;
  MomentsCarry* carries;
};
inline size_t fwd_layout(const TimestepNormShape& s, void* base, FwdWorkspace* ws) {
  const size_t col = static_cast<size_t>(s.B * s.G), n = col * static_cast<size_t>(s.L);
  const size_t a = align_up(n * sizeof(float)), c = align_up(col * num_chunks(s.L) * sizeof(MomentsCarry));
  if (ws != nullptr) {
    char* p = static_cast<char*>(base);
    ws->gm = reinterpret_cast<float*>(p);
    ws->gv = reinterpret_cast<float*>(p + a);
    ws->carries = reinterpret_cast<MomentsCarry*>(p + 2 * a);
  }
  return 2 * a + c;
}

struct BwdWorkspace {
  float* gm;
  float* P;
  float* Q;
  GradCarry* carries;
  float* pw;
  float* pb;
};
inline size_t bwd_layout(const TimestepNormShape& s, void* base, BwdWorkspace* ws) {
  const size_t col = static_cast<size_t>(s.B * s.G), n = col * static_cast<size_t>(s.L);
  const size_t a = align_up(n * sizeof(float)), c = align_up(col * num_chunks(s.L) * sizeof(GradCarry));
  const size_t p = align_up(static_cast<size_t>(dx_row_blocks(s) * s.D) * sizeof(float));
  if (ws != nullptr) {
    char* q = static_cast<char*>(base);
    ws->gm = reinterpret_cast<float*>(q);
    ws->P = reinterpret_cast<float*>(q + a);
    ws->Q = reinterpret_cast<float*>(q + 2 * a);
    ws->carries = reinterpret_cast<GradCarry*>(q + 3 * a);
    ws->pw = reinterpret_cast<float*>(q + 3 * a + c);
    ws->pb = reinterpret_cast<float*>(q + 3 * a + c + p);
  }
  return 3 * a + c + 2 * p;
}

inline unsigned warp_row_blocks(int64_t rows) { return static_cast<unsigned>((rows * 32 + 255) / 256); }

}  // namespace timestep_norm_detail

template <typename T>
void timestep_norm_forward(const TimestepNormShape& s, const T* x, const float* weight, const float* bias, const bool* mask,
                           const int64_t* prev_count, const float* prev_mean, const float* prev_var, float eps,
                           T* y, float* mean, float* rstd, float* mean_out, float* var_out, void* workspace,
                           void* stream) {
  using namespace timestep_norm_detail;
  if (s.B == 0) return;
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int64_t g = s.D / s.G, ncols = s.B * s.G;
  if (s.L == 0) {  // nothing to scan: the state passes through
    cudaMemcpyAsync(mean_out, prev_mean, ncols * sizeof(float), cudaMemcpyDeviceToDevice, st);
    cudaMemcpyAsync(var_out, prev_var, ncols * sizeof(float), cudaMemcpyDeviceToDevice, st);
    return;
  }
  FwdWorkspace ws;
  fwd_layout(s, workspace, &ws);
  const int64_t rows = s.B * s.L * s.G;
  MGL_LAUNCH(row_moments_kernel<T>, warp_row_blocks(rows), 256, 0, st)(x, ws.gm, ws.gv, rows, s.L, s.G, g);
  FwdScanOp op{ws.gm, ws.gv, mask, prev_count, prev_mean, prev_var, mean, rstd, mean_out, var_out, s.L, s.G, eps};
  run_scan(op, ncols, s.L, ws.carries, st);
  const int64_t R = dx_row_blocks(s), rpb = (s.B * s.L + R - 1) / R;
  MGL_LAUNCH(normalize_kernel<T>, dim3(static_cast<unsigned>((s.D + 255) / 256), static_cast<unsigned>(R)), 256, 0, st)(
      x, weight, bias, mask, mean, rstd, y, s.B * s.L, rpb, s.L, s.D, s.G, g);
}

template <typename T>
void timestep_norm_backward(const TimestepNormShape& s, const T* x, const T* dy, const float* weight, const bool* mask,
                            const double* counts, const int64_t* prev_count, const float* prev_mean,
                            const int64_t* count_out, const float* mean, const float* rstd, const float* mean_out,
                            const float* dmean_out, const float* dvar_out, T* dx, float* dweight, float* dbias,
                            float* dprev_mean, float* dprev_var, void* workspace, void* stream) {
  using namespace timestep_norm_detail;
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int64_t g = s.D / s.G, ncols = s.B * s.G;
  if (s.B == 0 || s.L == 0) {
    cudaMemsetAsync(dweight, 0, s.D * sizeof(float), st);
    cudaMemsetAsync(dbias, 0, s.D * sizeof(float), st);
    if (ncols > 0) {
      if (dmean_out != nullptr) cudaMemcpyAsync(dprev_mean, dmean_out, ncols * sizeof(float), cudaMemcpyDeviceToDevice, st);
      else cudaMemsetAsync(dprev_mean, 0, ncols * sizeof(float), st);
      if (dvar_out != nullptr) cudaMemcpyAsync(dprev_var, dvar_out, ncols * sizeof(float), cudaMemcpyDeviceToDevice, st);
      else cudaMemsetAsync(dprev_var, 0, ncols * sizeof(float), st);
    }
    return;
  }
  BwdWorkspace ws;
  bwd_layout(s, workspace, &ws);
  const int64_t rows = s.B * s.L * s.G;
  MGL_LAUNCH(row_grads_kernel<T>, warp_row_blocks(rows), 256, 0, st)(x, dy, weight, mask, counts, prev_count, count_out, mean,
                                                              rstd, mean_out, dmean_out, dvar_out, ws.gm, ws.P, ws.Q,
                                                              rows, s.L, s.G, g);
  BwdScanOp op{ws.P,      ws.Q,      ws.gm,      mask,       prev_count, count_out, prev_mean,
               mean_out, dmean_out, dvar_out, dprev_mean, dprev_var,  s.L,       s.G};
  run_scan(op, ncols, s.L, ws.carries, st);
  const int64_t R = dx_row_blocks(s), rpb = (s.B * s.L + R - 1) / R;
  MGL_LAUNCH(dx_kernel<T>, dim3(static_cast<unsigned>((s.D + 255) / 256), static_cast<unsigned>(R)), 256, 0, st)(
      x, dy, weight, mask, mean, rstd, ws.gm, ws.P, ws.Q, dx, ws.pw, ws.pb, s.B * s.L, rpb, s.L, s.D, s.G, g);
  MGL_LAUNCH(reduce_partials_kernel<T>, static_cast<unsigned>((s.D + 255) / 256), 256, 0, st)(ws.pw, ws.pb, dweight, dbias, R,
                                                                                  s.D);
}


}  // namespace mgl::cuda
