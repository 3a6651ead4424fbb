#include "core/cpu/timestep_norm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace mgl::cpu {
namespace {

constexpr int64_t kRowsPerTask = 64;  // tokens per parallel task (64 × D elements)

double rstd_of(double raw, double eps) { return 1.0 / std::sqrt(std::max(raw, 0.0) + eps); }

// The per-group shift of the prefix sums (as the reference): the prior's mean when it has weight,
// else the first token's group mean.
template <typename T>
double shift_of(const T* x, const double* n0, const double* mu0, const TsnShape& s, int64_t b, int64_t k) {
  if (n0[b] > 0) return mu0[b * s.G + k];
  const int64_t g = s.D / s.G;
  const T* xr = x + b * s.L * s.D + k * g;
  double m = 0;
  for (int64_t c = 0; c < g; ++c) m += static_cast<double>(xr[c]);
  return m / static_cast<double>(g);
}

}  // namespace

template <typename T>
void timestep_norm_forward(const T* x, const T* w, const T* b, const bool* pad, const double* n0, const double* mu0,
                           const double* var0, TsnShape s, double eps, T* y, double* mean, double* raw) {
  const int64_t L = s.L, D = s.D, G = s.G, g = D / G;
  const double inv_g = 1.0 / static_cast<double>(g);
  // 1. Per-token group moments (mean, population variance) into mean and raw.
  at::parallel_for(0, s.B * L, kRowsPerTask, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t k = 0; k < G; ++k) {
        const T* xr = x + r * D + k * g;
        double m = 0;
        for (int64_t c = 0; c < g; ++c) m += static_cast<double>(xr[c]);
        m *= inv_g;
        double v = 0;
        for (int64_t c = 0; c < g; ++c) {
          const double d = static_cast<double>(xr[c]) - m;
          v += d * d;
        }
        mean[r * G + k] = m;
        raw[r * G + k] = v * inv_g;
      }
  });
  // 2. Prefix sums over the valid steps, per (b, group), in place.
  at::parallel_for(0, s.B * G, 1, [&](int64_t lo, int64_t hi) {
    std::vector<double> shift, s1, s2;
    for (int64_t b0 = lo / G; b0 * G < hi; ++b0) {
      const int64_t k0 = std::max(lo, b0 * G) - b0 * G, k1 = std::min(hi, (b0 + 1) * G) - b0 * G;
      shift.resize(k1 - k0);
      s1.resize(k1 - k0);
      s2.resize(k1 - k0);
      for (int64_t k = k0; k < k1; ++k) {
        shift[k - k0] = shift_of(x, n0, mu0, s, b0, k);
        const double m0 = mu0[b0 * G + k] - shift[k - k0];
        s1[k - k0] = n0[b0] * m0;
        s2[k - k0] = n0[b0] * (var0[b0 * G + k] + m0 * m0);
      }
      double n = n0[b0];
      for (int64_t t = 0; t < L; ++t) {
        const int64_t r = b0 * L + t;
        const bool valid = !pad || !pad[r];
        if (valid) n += 1;
        const double inv_n = 1.0 / std::max(n, 1.0);
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t i = r * G + k;
          if (valid) {
            const double dg = mean[i] - shift[k - k0];
            s1[k - k0] += dg;
            s2[k - k0] += raw[i] + dg * dg;
          }
          const double dm = s1[k - k0] * inv_n;
          raw[i] = s2[k - k0] * inv_n - dm * dm;
          mean[i] = dm + shift[k - k0];
        }
      }
    }
  });
  // 3. Normalise.
  at::parallel_for(0, s.B * L, kRowsPerTask, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      T* yr = y + r * D;
      if (pad && pad[r]) {
        std::fill(yr, yr + D, T(0));
        continue;
      }
      const T* xr = x + r * D;
      for (int64_t k = 0; k < G; ++k) {
        const T m = static_cast<T>(mean[r * G + k]), rs = static_cast<T>(rstd_of(raw[r * G + k], eps));
        for (int64_t c = k * g; c < (k + 1) * g; ++c) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
      }
    }
  });
}

template <typename T>
void timestep_norm_backward(const T* x, const T* w, const bool* pad, const double* n0, const double* mu0,
                            const double* mean, const double* raw, const T* gy, const double* gml, const double* gvl,
                            const bool* seen, TsnShape s, double eps, T* dx, double* gw, double* gb, double* gpm,
                            double* gpv, double* work) {
  const int64_t L = s.L, D = s.D, G = s.G, g = D / G, R = s.B * L;
  double* A = work;           // Σ ĝ, then the suffix sums of gS1
  double* Bs = work + R * G;  // Σ ĝ x̂, then the suffix sums of gS2
  // 1. Per token and group: Σ_c ĝ and Σ_c ĝ x̂ (ĝ = gy w, x̂ = (x − μ) r); gw and gb per task.
  const int64_t tasks = std::max<int64_t>(1, (R + kRowsPerTask - 1) / kRowsPerTask);
  std::vector<double> partial(static_cast<size_t>(2 * tasks * D), 0.0);
  at::parallel_for(0, tasks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t task = lo; task < hi; ++task) {
      double* pw = partial.data() + 2 * task * D;
      double* pb = pw + D;
      for (int64_t r = task * kRowsPerTask; r < std::min(R, (task + 1) * kRowsPerTask); ++r) {
        const bool skip = !gy || (pad && pad[r]);  // gy is 0 there (y is the constant 0 where padded)
        for (int64_t k = 0; k < G; ++k) {
          double sg = 0, sgx = 0;
          if (!skip) {
            const T m = static_cast<T>(mean[r * G + k]), rs = static_cast<T>(rstd_of(raw[r * G + k], eps));
            for (int64_t c = k * g; c < (k + 1) * g; ++c) {
              const T gyc = gy[r * D + c], xh = (x[r * D + c] - m) * rs, gh = gyc * w[c];
              pb[c] += static_cast<double>(gyc);
              pw[c] += static_cast<double>(gyc * xh);
              sg += static_cast<double>(gh);
              sgx += static_cast<double>(gh * xh);
            }
          }
          A[r * G + k] = sg;
          Bs[r * G + k] = sgx;
        }
      }
    }
  });
  std::fill(gw, gw + D, 0.0);
  std::fill(gb, gb + D, 0.0);
  for (int64_t task = 0; task < tasks; ++task)
    for (int64_t c = 0; c < D; ++c) {
      gw[c] += partial[2 * task * D + c];
      gb[c] += partial[(2 * task + 1) * D + c];
    }
  // 2. gμ, gvar and their suffix sums over the steps, per (b, group), in place; the prior's share.
  at::parallel_for(0, s.B * G, 1, [&](int64_t lo, int64_t hi) {
    std::vector<double> shift, sa, sb;
    for (int64_t b0 = lo / G; b0 * G < hi; ++b0) {
      const int64_t k0 = std::max(lo, b0 * G) - b0 * G, k1 = std::min(hi, (b0 + 1) * G) - b0 * G;
      shift.resize(k1 - k0);
      sa.assign(k1 - k0, 0.0);
      sb.assign(k1 - k0, 0.0);
      for (int64_t k = k0; k < k1; ++k) shift[k - k0] = shift_of(x, n0, mu0, s, b0, k);
      double n = n0[b0];
      for (int64_t t = 0; t < L; ++t) n += (!pad || !pad[b0 * L + t]) ? 1 : 0;
      for (int64_t t = L - 1; t >= 0; --t) {
        const int64_t r = b0 * L + t;
        const double inv_n = 1.0 / std::max(n, 1.0);
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t i = r * G + k;
          const double rs = rstd_of(raw[i], eps);
          double g_mu = -rs * A[i], g_var = -0.5 * Bs[i] * rs * rs;
          if (t == L - 1 && seen[b0]) {
            if (gml) g_mu += gml[b0 * G + k];
            if (gvl) g_var += gvl[b0 * G + k];
          }
          if (raw[i] < 0) g_var = 0;  // var = max(raw, 0)
          sa[k - k0] += (g_mu - 2.0 * (mean[i] - shift[k - k0]) * g_var) * inv_n;
          sb[k - k0] += g_var * inv_n;
          A[i] = sa[k - k0];
          Bs[i] = sb[k - k0];
        }
        if (!pad || !pad[r]) n -= 1;
      }
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t j = b0 * G + k;
        const bool unseen = !seen[b0];
        gpm[j] = n0[b0] * (sa[k - k0] + 2.0 * (mu0[j] - shift[k - k0]) * sb[k - k0]) + (gml && unseen ? gml[j] : 0.0);
        gpv[j] = n0[b0] * sb[k - k0] + (gvl && unseen ? gvl[j] : 0.0);
      }
    }
  });
  // 3. dx = r ĝ + (v / g) (A + 2 (x − s) Bs).
  at::parallel_for(0, R, kRowsPerTask, [&](int64_t lo, int64_t hi) {
    std::vector<T> sh(static_cast<size_t>(G));
    int64_t shift_b = -1;
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b0 = r / L;
      if (b0 != shift_b) {
        for (int64_t k = 0; k < G; ++k) sh[k] = static_cast<T>(shift_of(x, n0, mu0, s, b0, k));
        shift_b = b0;
      }
      T* dr = dx + r * D;
      const bool valid = !pad || !pad[r];
      const bool has_gy = gy && valid;
      for (int64_t k = 0; k < G; ++k) {
        const int64_t i = r * G + k;
        const T rs = static_cast<T>(rstd_of(raw[i], eps));
        const T ca = valid ? static_cast<T>(A[i] / static_cast<double>(g)) : T(0);
        const T cb = valid ? static_cast<T>(Bs[i] * (2.0 / static_cast<double>(g))) : T(0);
        for (int64_t c = k * g; c < (k + 1) * g; ++c) {
          const T gh = has_gy ? gy[r * D + c] * w[c] : T(0);
          dr[c] = gh * rs + ca + (x[r * D + c] - sh[k]) * cb;
        }
      }
    }
  });
}

template void timestep_norm_forward<float>(const float*, const float*, const float*, const bool*, const double*,
                                           const double*, const double*, TsnShape, double, float*, double*, double*);
template void timestep_norm_forward<double>(const double*, const double*, const double*, const bool*, const double*,
                                            const double*, const double*, TsnShape, double, double*, double*, double*);
template void timestep_norm_backward<float>(const float*, const float*, const bool*, const double*, const double*,
                                            const double*, const double*, const float*, const double*, const double*,
                                            const bool*, TsnShape, double, float*, double*, double*, double*, double*,
                                            double*);
template void timestep_norm_backward<double>(const double*, const double*, const bool*, const double*, const double*,
                                             const double*, const double*, const double*, const double*, const double*,
                                             const bool*, TsnShape, double, double*, double*, double*, double*,
                                             double*, double*);

}  // namespace mgl::cpu
