// The chunked EMA's CPU loops (core/ops/ema_chunked.cpp): its scan across chunks in fp64, one
// sequence of M chunk states per (d, b), those in parallel on the intra-op threads. Complex values
// are (re, im) pairs, the layout of std::complex<double> and c10::complex<double>. Also its Toeplitz
// tables, which LibTorch built by index_select and reduced by index_add_ over D×c² elements.
#pragma once
#include <complex>
#include <cstdint>

namespace mgl::cpu {

using cdouble = std::complex<double>;

// H_0 = 0, H_m = q_d H_{m−1} + S_{m−1} for every (d, b, n). S, H: D×B×M×N; q: D×N. The recurrence
// runs in fp64 whatever the storage T (float or double): an fp32 S is read and H written in fp32,
// with the values of converting them to fp64 and back around an fp64 scan, without the copies.
template <typename T>
void ema_carry_scan(const std::complex<T>* S, const cdouble* q, std::complex<T>* H, int64_t D, int64_t B, int64_t M,
                    int64_t N);

// Its adjoint: G_m = gH_m + conj(q) G_{m+1}, gS_{m−1} = G_m (gS_{M−1} = 0), and
// gq[d, b] = Σ_{m≥1} conj(H_{m−1}) G_m. gH, H, gS: D×B×M×N in T; gq: D×B×N in fp64 (overwritten).
template <typename T>
void ema_carry_scan_adjoint(const std::complex<T>* gH, const std::complex<T>* H, const cdouble* q,
                            std::complex<T>* gS, cdouble* gq, int64_t D, int64_t B, int64_t M, int64_t N);

// The chunk tables of the EMA with coefficients p (real), log q and η (complex), all D×N, chunk c,
// computed in fp64 for every (d, n) (ema_chunked.cpp's Tables, one loop instead of a dozen LibTorch
// ops), the real ones stored in T (float or double: rounded once, as converting would):
//   k[d,j] = Re Σ_n p η q^j (j < c)      Vr[d,s,2n|2n+1] = Re|Im V[d,n,s]    Wr[d,2n|2n+1,t] = Re W | −Im W
// and, where the pointer is not null, in fp64:
//   qc[d,n] = q^c                         P[d,n,j] = q^j (j = 0..c)
//   V[d,n,s] = p q^{c−1−s}                W[d,n,t] = η q^{t+1}
// q^j is a running product, restarted from exp(j log q) every 16 steps (relative error ≲ 1e−14).
template <typename T>
void ema_tables(const double* p, const cdouble* log_q, const cdouble* eta, int64_t D, int64_t N, int64_t c, T* k, T* Vr,
                T* Wr, cdouble* qc, cdouble* P = nullptr, cdouble* V = nullptr, cdouble* W = nullptr);

// The gradients of the coefficients from those of the tables (ema_chunked's backward), in fp64,
// with q^j recomputed as in ema_tables:
//   gk: D×c (∂/∂k_j);  gVr: D×c×2N (∂/∂ the columns of Vr);  gWr: D×2N×c (∂/∂ the rows of Wr);
//   g_qc: D×N (∂/∂q^c). Writes g_p (D×N real), g_lq and g_eta (D×N complex), with LibTorch's
//   convention for complex gradients (the conjugate Wirtinger derivative), as the autograd
//   expressions they replace.
void ema_table_gradients(const double* p, const cdouble* log_q, const cdouble* eta, int64_t D, int64_t N, int64_t c,
                         const double* gk, const double* gVr, const double* gWr, const cdouble* g_qc, double* g_p,
                         cdouble* g_lq, cdouble* g_eta);

// The intra-chunk Toeplitz tables, per d < D of c×c row-major blocks (T = float or double):
// toeplitz_upper:  Kt[d, s, t] = k[d, t − s] for t ≥ s, else 0   (k: D×c)
// diagonal_sums:   gk[d, j] = Σ_s G[d, s, s + j]                   (its adjoint; G: D×c×c)
template <typename T>
void toeplitz_upper(const T* k, T* Kt, int64_t D, int64_t c);
template <typename T>
void diagonal_sums(const T* G, T* gk, int64_t D, int64_t c);

}  // namespace mgl::cpu
