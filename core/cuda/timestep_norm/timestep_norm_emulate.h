// CPU emulation of the fused timestep-norm kernels (timestep_norm.cuh), in fp32 with the
// kernels' own arithmetic (timestep_norm_math.h) and scan structure (timestep_norm_scan.h): the
// warp reductions' summation order, the tiles, warps, chunks and compensated carries. It lets the
// CPU tests check the kernels' algorithm and numerics without a GPU, and gives the timestep-norm benchmark
// its error-growth table. Reference oracles here are fp64. Header-only (LibTorch CPU tensors).
#pragma once
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "core/cuda/timestep_norm/timestep_norm_scan.h"

namespace mgl::cuda::timestep_norm::emu {

// Sum of v[0..g) as a warp computes it: lane-strided partial sums, then the xor butterfly.
inline float warp_row_sum(const float* v, int64_t g, int64_t stride = 1) {
  float p[32] = {};
  for (int64_t c = 0; c < g; ++c) p[c % 32] += v[c * stride];
  for (int off = 16; off > 0; off >>= 1) {
    float q[32];
    for (int l = 0; l < 32; ++l) q[l] = p[l] + p[l ^ off];
    for (int l = 0; l < 32; ++l) p[l] = q[l];
  }
  return p[0];
}

struct Forward {
  torch::Tensor y;                  // B×L×D fp32
  torch::Tensor mean, rstd;         // B×G×L fp32 (saved for backward)
  torch::Tensor mean_out, var_out;  // B×G fp32
};

// x: B×L×D fp32; w (effective scale), b: D fp32; prev_count B int64; prev_mean/var B×G fp32;
// mask B×L bool or undefined. All CPU, contiguous.
inline Forward forward(const torch::Tensor& x_in, int64_t G, const torch::Tensor& w_in, const torch::Tensor& b_in,
                       const torch::Tensor& prev_count, const torch::Tensor& prev_mean, const torch::Tensor& prev_var,
                       const torch::Tensor& mask_in, float eps) {
  const torch::Tensor x = x_in.to(torch::kFloat32).contiguous(), w = w_in.to(torch::kFloat32).contiguous(),
                      bb = b_in.to(torch::kFloat32).contiguous();
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), g = D / G;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  Forward out{torch::empty({B, L, D}, f32), torch::empty({B, G, L}, f32), torch::empty({B, G, L}, f32),
              torch::empty({B, G}, f32), torch::empty({B, G}, f32)};
  const torch::Tensor mask = mask_in.defined() ? mask_in.to(torch::kBool).contiguous() : mask_in;
  const float* xp = x.data_ptr<float>();
  const bool* mp = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  const int64_t* pc = prev_count.data_ptr<int64_t>();
  const torch::Tensor pm = prev_mean.to(torch::kFloat32).contiguous(), pv = prev_var.to(torch::kFloat32).contiguous();
  std::vector<float> gm(B * G * L), gv(B * G * L), tmp(g);
  for (int64_t bt = 0; bt < B * L; ++bt)
    for (int64_t grp = 0; grp < G; ++grp) {
      const float* row = xp + bt * D + grp * g;
      const float m = warp_row_sum(row, g) / static_cast<float>(g);
      for (int64_t c = 0; c < g; ++c) tmp[c] = (row[c] - m) * (row[c] - m);
      const int64_t idx = ((bt / L) * G + grp) * L + bt % L;
      gm[idx] = m;
      gv[idx] = warp_row_sum(tmp.data(), g) / static_cast<float>(g);
    }
  float* mean = out.mean.data_ptr<float>();
  float* rstd = out.rstd.data_ptr<float>();
  for (int64_t col = 0; col < B * G; ++col) {
    const int64_t b = col / G;
    auto load = [&](int64_t t) {
      return observation(gm[col * L + t], gv[col * L + t], mp == nullptr || !mp[b * L + t]);
    };
    auto store = [&](int64_t t, const Moments& s) {
      mean[col * L + t] = s.m;
      rstd[col * L + t] = rstd_of(s.v, eps);
    };
    const MomentsCarry init = carry_init(Moments{pc[b], pm.data_ptr<float>()[col], pv.data_ptr<float>()[col]});
    const MomentsCarry fin = L > 0 ? column_scan<Moments>(L, init, moments_identity, load, store) : init;
    out.mean_out.data_ptr<float>()[col] = corrected(fin).m;
    out.var_out.data_ptr<float>()[col] = corrected(fin).v;
  }
  float* y = out.y.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = bb.data_ptr<float>();
  for (int64_t e = 0; e < B * L * D; ++e) {
    const int64_t c = e % D, bt = e / D, b = bt / L, t = bt % L, idx = (b * G + c / g) * L + t;
    y[e] = (mp != nullptr && mp[bt]) ? 0.f : (xp[e] - mean[idx]) * rstd[idx] * wp[c] + bp[c];
  }
  return out;
}

struct Backward {
  torch::Tensor dx, dweight, dbias, dprev_mean, dprev_var;
};

// The backward kernels' algorithm: row sums → per-step terms → reverse compensated scan → dx and
// the weight/bias sums. dmean_out / dvar_out may be undefined (zero).
inline Backward backward(const torch::Tensor& x_in, const torch::Tensor& dy_in, int64_t G, const torch::Tensor& w_in,
                         const torch::Tensor& prev_count, const torch::Tensor& prev_mean, const torch::Tensor& mask_in,
                         const Forward& f, const torch::Tensor& dmean_out, const torch::Tensor& dvar_out) {
  const torch::Tensor x = x_in.to(torch::kFloat32).contiguous(), dy = dy_in.to(torch::kFloat32).contiguous(),
                      w = w_in.to(torch::kFloat32).contiguous();
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), g = D / G;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  const torch::Tensor mask = mask_in.defined() ? mask_in.to(torch::kBool).contiguous() : mask_in;
  const bool* mp = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  const float *xp = x.data_ptr<float>(), *dp = dy.data_ptr<float>(), *wp = w.data_ptr<float>();
  const float *mean = f.mean.data_ptr<float>(), *rstd = f.rstd.data_ptr<float>(), *mout = f.mean_out.data_ptr<float>();
  const int64_t* pc = prev_count.data_ptr<int64_t>();
  const torch::Tensor pm = prev_mean.to(torch::kFloat32).contiguous();
  const torch::Tensor dmo = dmean_out.defined() ? dmean_out.to(torch::kFloat32).contiguous() : torch::zeros({B, G}, f32);
  const torch::Tensor dvo = dvar_out.defined() ? dvar_out.to(torch::kFloat32).contiguous() : torch::zeros({B, G}, f32);
  std::vector<int64_t> count_out(B), valid_before(B * L);
  for (int64_t b = 0; b < B; ++b) {
    int64_t n = pc[b];
    for (int64_t t = 0; t < L; ++t) {
      n += (mp == nullptr || !mp[b * L + t]) ? 1 : 0;
      valid_before[b * L + t] = n;  // n_t
    }
    count_out[b] = n;
  }
  std::vector<float> gm(B * G * L), P(B * G * L), Q(B * G * L), a(g), bsum(g), s(g);
  for (int64_t bt = 0; bt < B * L; ++bt)
    for (int64_t grp = 0; grp < G; ++grp) {
      const int64_t b = bt / L, t = bt % L, col = b * G + grp, idx = col * L + t;
      float sx = 0.f, sdb = 0.f, sds = 0.f;
      if (mp == nullptr || !mp[bt]) {
        for (int64_t c = 0; c < g; ++c) {
          const float xv = xp[bt * D + grp * g + c], dw = dp[bt * D + grp * g + c] * wp[grp * g + c];
          a[c] = xv;
          bsum[c] = dw;
          s[c] = dw * (xv - mean[idx]);
        }
        sx = warp_row_sum(a.data(), g);
        sdb = warp_row_sum(bsum.data(), g);
        sds = warp_row_sum(s.data(), g);
      }
      const double n = static_cast<double>(valid_before[bt]);
      const float inv_n = n > 0 ? static_cast<float>(1.0 / n) : 0.f;
      const bool last = t == L - 1 && count_out[b] > 0;
      const GradSums term = grad_terms(sdb, sds, mean[idx], rstd[idx], inv_n, mout[col],
                                       last ? dmo.data_ptr<float>()[col] : 0.f, last ? dvo.data_ptr<float>()[col] : 0.f);
      gm[idx] = sx / static_cast<float>(g);
      P[idx] = term.p;
      Q[idx] = term.q;
    }
  Backward out{torch::empty({B, L, D}, f32), torch::zeros({D}, f32), torch::zeros({D}, f32), torch::empty({B, G}, f32),
               torch::empty({B, G}, f32)};
  for (int64_t col = 0; col < B * G; ++col) {
    const int64_t b = col / G;
    std::vector<GradSums> res(L);
    auto load = [&](int64_t i) { return GradSums{P[col * L + L - 1 - i], Q[col * L + L - 1 - i]}; };
    auto store = [&](int64_t i, const GradSums& v) { res[L - 1 - i] = v; };
    const GradCarry fin = L > 0 ? column_scan<GradSums>(L, carry_init(gradsums_identity()), gradsums_identity, load, store)
                                : carry_init(gradsums_identity());
    for (int64_t t = 0; t < L; ++t) {
      const int64_t idx = col * L + t;
      const bool valid = mp == nullptr || !mp[b * L + t];
      P[idx] = valid ? res[t].p : 0.f;
      Q[idx] = valid ? 2.f * (gm[idx] - mout[col]) * res[t].p + res[t].q : 0.f;
    }
    float& dpm = out.dprev_mean.data_ptr<float>()[col];
    float& dpv = out.dprev_var.data_ptr<float>()[col];
    if (count_out[b] == 0) {
      dpm = dmo.data_ptr<float>()[col];
      dpv = dvo.data_ptr<float>()[col];
    } else {
      const float n0 = static_cast<float>(pc[b]);
      const GradSums tot = corrected(fin);
      dpm = n0 * (2.f * (pm.data_ptr<float>()[col] - mout[col]) * tot.p + tot.q);
      dpv = n0 * tot.p;
    }
  }
  float* dx = out.dx.data_ptr<float>();
  std::vector<double> dw(D, 0.0), db(D, 0.0);  // (the kernel sums these in blocks with Kahan: ~fp64 quality)
  for (int64_t e = 0; e < B * L * D; ++e) {
    const int64_t c = e % D, bt = e / D, b = bt / L, t = bt % L, idx = (b * G + c / g) * L + t;
    if (mp != nullptr && mp[bt]) {
      dx[e] = 0.f;
      continue;
    }
    dx[e] = dx_element(dp[e], xp[e], wp[c], rstd[idx], gm[idx], Q[idx], P[idx], 1.f / static_cast<float>(g));
    dw[c] += dp[e] * (xp[e] - mean[idx]) * rstd[idx];
    db[c] += dp[e];
  }
  for (int64_t c = 0; c < D; ++c) {
    out.dweight.data_ptr<float>()[c] = static_cast<float>(dw[c]);
    out.dbias.data_ptr<float>()[c] = static_cast<float>(db[c]);
  }
  return out;
}

// ---- error growth with L (the benchmark's table and the scan test) -----------------------------
// One column (B = 1, G = 1, g channels) of data with a large offset (N(offset, 1)): max |Δy| against
// an fp64 oracle for the kernel's scheme, a naive fp32 running sum of Σx and Σx² per step, and the
// reference path (ops::timestep_norm, given separately by the caller since it needs core/ops).
struct GrowthRow {
  int64_t L;
  double kernel, naive;
};

// The fp64 oracle: y of the TSN definition (§2.1) with fp64 Welford statistics.
inline torch::Tensor oracle_y(const torch::Tensor& x) {
  const torch::Tensor xd = x.to(torch::kFloat64).contiguous();
  const int64_t L = xd.size(1), D = xd.size(2);
  torch::Tensor y = torch::empty_like(xd);
  const double* xp = xd.data_ptr<double>();
  double* yp = y.data_ptr<double>();
  double m = 0, v = 0;
  for (int64_t t = 0; t < L; ++t) {
    double gm = 0, gv = 0;
    for (int64_t c = 0; c < D; ++c) gm += xp[t * D + c];
    gm /= D;
    for (int64_t c = 0; c < D; ++c) gv += (xp[t * D + c] - gm) * (xp[t * D + c] - gm);
    gv /= D;
    const double n = t + 1, c1 = (n - 1) / n, c2 = 1 / n, d = gm - m;
    v = c1 * v + c2 * gv + c1 * c2 * d * d;
    m = m + c2 * d;
    for (int64_t c = 0; c < D; ++c) yp[t * D + c] = (xp[t * D + c] - m) / std::sqrt(v + 1e-5);
  }
  return y;
}

// Naive fp32: running Σx and Σx² over all elements seen, mean = S1/N, var = S2/N − mean².
inline torch::Tensor naive_y(const torch::Tensor& x) {
  const torch::Tensor xf = x.to(torch::kFloat32).contiguous();
  const int64_t L = xf.size(1), D = xf.size(2);
  torch::Tensor y = torch::empty_like(xf);
  const float* xp = xf.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  float s1 = 0, s2 = 0;
  for (int64_t t = 0; t < L; ++t) {
    for (int64_t c = 0; c < D; ++c) {
      s1 += xp[t * D + c];
      s2 += xp[t * D + c] * xp[t * D + c];
    }
    const float n = static_cast<float>((t + 1) * D), m = s1 / n, v = std::max(s2 / n - m * m, 0.f);
    for (int64_t c = 0; c < D; ++c) yp[t * D + c] = (xp[t * D + c] - m) / std::sqrt(v + 1e-5f);
  }
  return y;
}

inline torch::Tensor kernel_y(const torch::Tensor& x) {
  const int64_t D = x.size(2);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  return forward(x, 1, torch::ones({D}, f32), torch::zeros({D}, f32), torch::zeros({1}, torch::kInt64),
                 torch::zeros({1, 1}, f32), torch::ones({1, 1}, f32), {}, 1e-5f)
      .y;
}

inline double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace mgl::cuda::timestep_norm::emu
