// Reference (LibTorch) path of the complex/real EMA ops, spec §1.3–§1.8.
//
// Everything here is differentiable through LibTorch autograd and works for complex (CEMA) and
// real (EMA ablation, §8.1) coefficients alike: when log_q and eta are real tensors, all the maths
// below is real and the carried state is real.
//
// Powers q^j are computed as exp(j·log q) (as the official kernels do). To avoid materialising the
// D×N×L Vandermonde tensor, every length-L power sum is blocked as j = a·T + b with T ≈ √L:
//   Σ_n c_n q_n^(aT+b) = Σ_n (c_n q_n^(aT)) · q_n^b,   a matrix product (D × A×N) · (N × T),
// which keeps the intermediates at O(D·N·√L) and turns the work into a (complex) batched GEMM.
#pragma once
#include <torch/torch.h>

#include <utility>

namespace mgl::ops {

// Closed-form coefficients of the recurrence
//   h_t = p ⊙ x_t + q ⊙ h_{t−1},   y_t = Re Σ_n η_n h_t,n
struct EmaCoeffs {
  torch::Tensor p;      // D×N real input weight
  torch::Tensor log_q;  // D×N log of the decay: complex (CEMA) or real (EMA)
  torch::Tensor eta;    // D×N output projection (including √(1/N)): complex or real
  bool is_complex() const { return log_q.is_complex(); }
  int64_t dim() const { return p.size(0); }
  int64_t ndim() const { return p.size(1); }
};

// FFT length used for a length-L causal convolution: the smallest power of two ≥ L (§1.5); the
// real FFT then has size 2·fft_size(L).
int64_t fft_size(int64_t L);

// k[d, j] = Re Σ_n p η q^j, j = 0..L−1 (§1.4).                                  → D×L
torch::Tensor ema_kernel(const EmaCoeffs& c, int64_t L);
// bias[b, d, j] = Re Σ_n η h0 q^(j+1), j = 0..L−1 (§1.4).                         → B×D×L
torch::Tensor ema_bias(const EmaCoeffs& c, const torch::Tensor& h0, int64_t L);
// h_L = p Σ_j q^(L−1−j) x_j + q^L h0 (§1.6). x: B×D×L (any float dtype); h0 may be undefined.
//                                                                                 → B×D×N
torch::Tensor ema_hidden(const torch::Tensor& x, const EmaCoeffs& c, const torch::Tensor& h0);

// y[b,d,t] = Σ_{j≤t} k[d,j] x[b,d,t−j] for any L (§1.5). Computed in fp32 (fp64 for fp64 inputs)
// by zero-padded real FFTs; returned in x's dtype.
torch::Tensor causal_fftconv(const torch::Tensor& x, const torch::Tensor& k);
// y_t = Σ_{j≥0} k_fwd[j] x_{t−j} + Σ_{j≥0} k_bwd[j] x_{t+j} (Mega's bidirectional form, §1.8: the
// j = 0 tap appears in both sums).
torch::Tensor bidirectional_fftconv(const torch::Tensor& x, const torch::Tensor& k_fwd,
                                    const torch::Tensor& k_bwd);

// causal_fftconv(x, ema_kernel(c, L)) as one differentiable op (issue 22), what ComplexEMA runs:
// the forward keeps x and the D×N coefficients only. Autograd would keep the kernel (D×L), both
// spectra and the O(D·N·√L) fp64 powers; here the backward transforms x and the recomputed kernel
// again and maps the kernel's gradient gk back to the coefficients in closed form, by the same
// √L-blocked power sums as the forward:
//   with c = p·η and k_j = Re Σ_n c_n q_n^j:  ∂L/∂c = conj(Σ_j gk_j q^j),  ∂L/∂log q = conj(c Σ_j j gk_j q^j)
// (PyTorch's convention for complex gradients; for the real EMA conj is the identity). x: B×D×L.
torch::Tensor ema_convolve(const torch::Tensor& x, const EmaCoeffs& c);

// The same convolution as a chunked scan (issue 22; core/ops/ema_chunked.cpp), what ComplexEMA runs
// on the CPU: within chunks of `chunk` steps a Toeplitz GEMM, across chunks the (q^c-decayed) state
// carried in fp64; three GEMMs and an O(D·N·L/chunk) scan, so its cost is linear in L (the FFT's is
// L log L and its transforms run far below the GEMM rate). Keeps x and the coefficients only; the
// backward is the adjoint of each step. x: B×D×L (any layout; the result is stored like x).
torch::Tensor ema_chunked(const torch::Tensor& x, const EmaCoeffs& c, int64_t chunk = 64);

// The sequential recurrence itself (§1.3), one step at a time: the naive oracle the closed forms
// are tested against. Returns (Re Σ η h_t for every t: B×D×L, final state B×D×N).
std::pair<torch::Tensor, torch::Tensor> ema_recurrence(const torch::Tensor& x, const EmaCoeffs& c,
                                                       const torch::Tensor& h0);

}  // namespace mgl::ops
