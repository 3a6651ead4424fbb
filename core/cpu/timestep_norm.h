// The timestep norm's CPU loops (ops::timestep_norm_lowmem, spec §2): the same maths as its
// LibTorch expressions, in three passes over the B×L×D input instead of about forty LibTorch ops
// (issue 22: 9 % of a 32K-token step). Per-token moments and the D-wide work run on the intra-op
// threads over blocks of tokens; the prefix (forward) and suffix (backward) sums run in fp64, one
// sequence per (b, group), the groups of a row split among the threads. T = float or double.
//
// Layouts: x, y, gy, dx: B×L×D; w, b: D; pad: B×L (true = padded) or null; n0: B; mu0, var0, gpm,
// gpv, gml, gvl: B×G; mean, raw (S2/n − (S1/n)², before the clamp): B×L×G; all row-major.
#pragma once
#include <cstdint>

namespace mgl::cpu {

struct TsnShape {
  int64_t B, L, D, G;
};

// y = (x − μ_t) r_t w + b (0 where padded), with μ_t and var_t the pooled statistics of the prior
// (n0 steps of mean mu0 and variance var0) and the valid steps up to t; r_t = 1/√(max(raw, 0) + eps).
template <typename T>
void timestep_norm_forward(const T* x, const T* w, const T* b, const bool* pad, const double* n0, const double* mu0,
                           const double* var0, TsnShape s, double eps, T* y, double* mean, double* raw);

// The backward of the forward above for the incoming gradients gy (of y; null: 0), gml and gvl (of
// the state after the last step; null: 0), which reaches the output where `seen[b]` (else the
// prior passes through). Writes dx, gw and gb (D, summed over B×L), gpm and gpv (the prior's mean
// and variance). work: 2·B·L·G doubles of scratch.
template <typename T>
void timestep_norm_backward(const T* x, const T* w, const bool* pad, const double* n0, const double* mu0,
                            const double* mean, const double* raw, const T* gy, const double* gml, const double* gvl,
                            const bool* seen, TsnShape s, double eps, T* dx, double* gw, double* gb, double* gpm,
                            double* gpv, double* work);

}  // namespace mgl::cpu
