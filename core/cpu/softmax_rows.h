// Fused CPU kernels for the rows of a softmax (issue 22): the LM loss's log-sum-exp and its gradient
// over V = 8192 logits per row ran as LibTorch's max, sub, exp, sum, log (logsumexp) and sub_, exp_,
// scatter_add_, mul_ (backward): eight passes over a 16 MiB slice that does not fit the cache, a third
// of the 32K-token bench step. These make one or two passes over a row while it is in L1/L2.
// exp is a Cody–Waite reduction and a degree-7 polynomial (relative error < 1e-7 on [−87, 88]; below
// −87 the result is ~1e−38, not 0); built for AVX-512, AVX2 and baseline x86-64, picked at load time.
// The plain LibTorch expressions stay the oracle (tests/core/test_cpu_kernels.cpp).
#pragma once
#include <cstdint>

namespace mgl::cpu {

// log Σ_j exp(x_j), with the row's maximum taken out first; NaN anywhere gives NaN.
float logsumexp_row(const float* x, int64_t n);

// x_j ← scale · exp(x_j − shift): the softmax of a row times `scale`, given shift = its log-sum-exp.
void exp_shifted_row(float* x, int64_t n, float shift, float scale);

// The LM loss's two passes over a rows×V block of logits (row-major), rows in parallel on the
// intra-op threads; targets are in [0, V).
// lse_r = log-sum-exp of row r, nll_r = lse_r − x[r, t_r].
void lse_and_nll_rows(const float* x, int64_t rows, int64_t V, const int64_t* targets, float* lse, float* nll);
// x[r] ← g_r · (softmax(x[r]) − onehot(t_r)), given lse_r: the gradient of g_r · nll_r.
void softmax_grad_rows(float* x, int64_t rows, int64_t V, const int64_t* targets, const float* lse, const float* g);

// An attention tile's rows: batch × rows × n logits (row-major), row r of every batch entry sees
// its first visible(r) keys, visible(r) = causal ? clamp(first + r, 0, n) : n, the rest hidden.
// lse and delta hold one value per row at lse[b·lse_stride + r].
struct TileRows {
  int64_t batch, rows, n;
  bool causal;
  int64_t first;  // keys visible to row 0 (causal)
  int64_t lse_stride;
  int64_t visible(int64_t r) const {
    if (!causal) return n;
    const int64_t v = first + r;
    return v < 0 ? 0 : (v > n ? n : v);
  }
};
// s ← softmax(s) over each row's visible keys (0 on hidden ones), lse ← its log-sum-exp; a row
// with no visible key becomes 0 with lse = +inf.
void tile_softmax(float* s, const TileRows& t, float* lse);
// s ← exp(s − lse) on visible keys, 0 on hidden ones (and on rows whose lse is +inf): the forward's
// probabilities, recomputed from the logits.
void tile_probabilities(float* s, const TileRows& t, const float* lse);
// dp ← p ⊙ (dp − delta_r): the softmax backward, delta_r = Σ_j p_j dp_j (= rowsum(dO ⊙ O)).
void tile_softmax_backward(const float* p, float* dp, const TileRows& t, const float* delta);

}  // namespace mgl::cpu
