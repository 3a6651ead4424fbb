#include "core/cpu/ema_scan.h"

#include <ATen/Parallel.h>

#include <vector>

namespace mgl::cpu {

template <typename T>
void ema_carry_scan(const std::complex<T>* S, const cdouble* q, std::complex<T>* H, int64_t D, int64_t B, int64_t M,
                    int64_t N) {
  at::parallel_for(0, D * B, 1, [&](int64_t lo, int64_t hi) {
    std::vector<cdouble> h(static_cast<size_t>(N));  // the running state, in fp64 whatever H's precision
    for (int64_t db = lo; db < hi; ++db) {
      const cdouble* qd = q + (db / B) * N;
      const std::complex<T>* in = S + db * M * N;
      std::complex<T>* out = H + db * M * N;
      for (int64_t n = 0; n < N; ++n) {
        h[n] = cdouble(0, 0);
        out[n] = std::complex<T>(0, 0);
      }
      for (int64_t m = 1; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          const std::complex<T> s = in[(m - 1) * N + n];
          h[n] = qd[n] * h[n] + cdouble(s.real(), s.imag());
          out[m * N + n] = std::complex<T>(static_cast<T>(h[n].real()), static_cast<T>(h[n].imag()));
        }
    }
  });
}

template <typename T>
void ema_carry_scan_adjoint(const std::complex<T>* gH, const std::complex<T>* H, const cdouble* q,
                            std::complex<T>* gS, cdouble* gq, int64_t D, int64_t B, int64_t M, int64_t N) {
  auto wide = [](const std::complex<T>& z) { return cdouble(z.real(), z.imag()); };
  at::parallel_for(0, D * B, 1, [&](int64_t lo, int64_t hi) {
    std::vector<cdouble> G(static_cast<size_t>(N));
    for (int64_t db = lo; db < hi; ++db) {
      const cdouble* qd = q + (db / B) * N;
      const std::complex<T>* gh = gH + db * M * N;
      const std::complex<T>* h = H + db * M * N;
      std::complex<T>* o = gS + db * M * N;
      cdouble* acc = gq + db * N;
      for (int64_t n = 0; n < N; ++n) {
        G[n] = cdouble(0, 0);
        acc[n] = cdouble(0, 0);
        o[(M - 1) * N + n] = std::complex<T>(0, 0);
      }
      for (int64_t m = M - 1; m >= 1; --m)
        for (int64_t n = 0; n < N; ++n) {
          G[n] = wide(gh[m * N + n]) + std::conj(qd[n]) * G[n];
          o[(m - 1) * N + n] = std::complex<T>(static_cast<T>(G[n].real()), static_cast<T>(G[n].imag()));
          acc[n] += std::conj(wide(h[(m - 1) * N + n])) * G[n];
        }
    }
  });
}

template void ema_carry_scan<float>(const std::complex<float>*, const cdouble*, std::complex<float>*, int64_t,
                                    int64_t, int64_t, int64_t);
template void ema_carry_scan<double>(const cdouble*, const cdouble*, cdouble*, int64_t, int64_t, int64_t, int64_t);
template void ema_carry_scan_adjoint<float>(const std::complex<float>*, const std::complex<float>*, const cdouble*,
                                            std::complex<float>*, cdouble*, int64_t, int64_t, int64_t, int64_t);
template void ema_carry_scan_adjoint<double>(const cdouble*, const cdouble*, const cdouble*, cdouble*, cdouble*,
                                             int64_t, int64_t, int64_t, int64_t);

template <typename T>
void ema_tables(const double* p, const cdouble* log_q, const cdouble* eta, int64_t D, int64_t N, int64_t c, T* k, T* Vr,
                T* Wr, cdouble* qc, cdouble* P, cdouble* V, cdouble* W) {
  at::parallel_for(0, D, 1, [&](int64_t lo, int64_t hi) {
    std::vector<cdouble> own(P ? 0 : static_cast<size_t>(c + 1));  // q^j when P is not wanted
    std::vector<double> kacc(static_cast<size_t>(c));
    for (int64_t d = lo; d < hi; ++d) {
      for (int64_t j = 0; j < c; ++j) kacc[j] = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t dn = d * N + n;
        const cdouble lq = log_q[dn], e = eta[dn], q = std::exp(lq);
        const double pv = p[dn];
        cdouble* Pd = P ? P + dn * (c + 1) : own.data();
        for (int64_t j = 0; j <= c; ++j) Pd[j] = j % 16 == 0 ? std::exp(lq * static_cast<double>(j)) : Pd[j - 1] * q;
        if (qc) qc[dn] = Pd[c];
        const cdouble pe = pv * e;
        for (int64_t j = 0; j < c; ++j) {
          kacc[j] += (pe * Pd[j]).real();
          const cdouble v = pv * Pd[c - 1 - j], w = e * Pd[j + 1];
          if (V) V[dn * c + j] = v;
          if (W) W[dn * c + j] = w;
          Vr[(d * c + j) * 2 * N + 2 * n] = static_cast<T>(v.real());
          Vr[(d * c + j) * 2 * N + 2 * n + 1] = static_cast<T>(v.imag());
          Wr[(d * 2 * N + 2 * n) * c + j] = static_cast<T>(w.real());
          Wr[(d * 2 * N + 2 * n + 1) * c + j] = static_cast<T>(-w.imag());
        }
      }
      for (int64_t j = 0; j < c; ++j) k[d * c + j] = static_cast<T>(kacc[j]);
    }
  });
}

template void ema_tables<float>(const double*, const cdouble*, const cdouble*, int64_t, int64_t, int64_t, float*,
                                float*, float*, cdouble*, cdouble*, cdouble*, cdouble*);
template void ema_tables<double>(const double*, const cdouble*, const cdouble*, int64_t, int64_t, int64_t, double*,
                                 double*, double*, cdouble*, cdouble*, cdouble*, cdouble*);

void ema_table_gradients(const double* p, const cdouble* log_q, const cdouble* eta, int64_t D, int64_t N, int64_t c,
                         const double* gk, const double* gVr, const double* gWr, const cdouble* g_qc, double* g_p,
                         cdouble* g_lq, cdouble* g_eta) {
  at::parallel_for(0, D * N, 1, [&](int64_t lo, int64_t hi) {
    std::vector<cdouble> P(static_cast<size_t>(c + 1));
    for (int64_t dn = lo; dn < hi; ++dn) {
      const int64_t d = dn / N, n = dn % N;
      const cdouble lq = log_q[dn], e = eta[dn], q = std::exp(lq);
      const double pv = p[dn];
      for (int64_t j = 0; j <= c; ++j) P[j] = j % 16 == 0 ? std::exp(lq * static_cast<double>(j)) : P[j - 1] * q;
      // k_j = Re Σ_n pe q^j:  g_pe = Σ_j gk_j conj(q^j),  g_lq = conj(pe) Σ_j j gk_j conj(q^j)
      // V_s = p q^{c−1−s}:    g_p = Re Σ_s conj(q^{c−1−s}) gV_s,  g_lq += Σ_s (c−1−s) conj(V_s) gV_s
      // W_t = η q^{t+1}:      g_eta = Σ_t conj(q^{t+1}) gW_t,  g_lq += Σ_t (t+1) conj(W_t) gW_t
      cdouble g_pe(0, 0), jk(0, 0), gv_sum(0, 0), lq_v(0, 0), ge(0, 0), lq_w(0, 0);
      for (int64_t j = 0; j < c; ++j) {
        const double gkj = gk[d * c + j];
        const cdouble cq = std::conj(P[j]);
        g_pe += gkj * cq;
        jk += (gkj * static_cast<double>(j)) * cq;
        const cdouble gV(gVr[(d * c + j) * 2 * N + 2 * n], gVr[(d * c + j) * 2 * N + 2 * n + 1]);
        const cdouble cqv = std::conj(P[c - 1 - j]);
        gv_sum += cqv * gV;
        lq_v += (static_cast<double>(c - 1 - j) * pv) * cqv * gV;
        const cdouble gW(gWr[(d * 2 * N + 2 * n) * c + j], -gWr[(d * 2 * N + 2 * n + 1) * c + j]);
        const cdouble cqw = std::conj(P[j + 1]);
        ge += cqw * gW;
        lq_w += static_cast<double>(j + 1) * std::conj(e) * cqw * gW;
      }
      const cdouble pe = pv * e;
      g_lq[dn] = std::conj(pe) * jk + lq_v + lq_w + std::conj(P[c] * static_cast<double>(c)) * g_qc[dn];
      g_p[dn] = gv_sum.real() + (std::conj(e) * g_pe).real();
      g_eta[dn] = ge + pv * g_pe;
    }
  });
}

template <typename T>
void toeplitz_upper(const T* k, T* Kt, int64_t D, int64_t c) {
  at::parallel_for(0, D, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t d = lo; d < hi; ++d) {
      const T* kd = k + d * c;
      T* out = Kt + d * c * c;
      for (int64_t s = 0; s < c; ++s) {
        T* row = out + s * c;
        for (int64_t t = 0; t < s; ++t) row[t] = T(0);
        for (int64_t t = s; t < c; ++t) row[t] = kd[t - s];
      }
    }
  });
}

template <typename T>
void diagonal_sums(const T* G, T* gk, int64_t D, int64_t c) {
  at::parallel_for(0, D, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t d = lo; d < hi; ++d) {
      const T* g = G + d * c * c;
      T* out = gk + d * c;
      for (int64_t j = 0; j < c; ++j) out[j] = T(0);
      for (int64_t s = 0; s < c; ++s) {
        const T* row = g + s * c;
        for (int64_t t = s; t < c; ++t) out[t - s] += row[t];
      }
    }
  });
}

template void toeplitz_upper<float>(const float*, float*, int64_t, int64_t);
template void toeplitz_upper<double>(const double*, double*, int64_t, int64_t);
template void diagonal_sums<float>(const float*, float*, int64_t, int64_t);
template void diagonal_sums<double>(const double*, double*, int64_t, int64_t);

}  // namespace mgl::cpu
