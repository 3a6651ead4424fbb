// The moving-average sub-module of the MEGA layer: Megalodon's multi-head complex EMA (spec §1)
// or, for the ablation, a real EMA (§1.9, §8.1). Parameter names are the official ones:
//   cema:                alpha D×N×1, delta D×N×1, theta D×1×1, gamma D×N×2 (re, im), omega D×1
//   ema (single axis):   alpha D×N×1, delta D×N×1,              gamma D×N   (real),   omega D×1
//   ema, mega_exact:     delta, alpha D×N×1, beta D×N×1,       gamma D×N,            omega D
// Note the alpha/delta role swap (§1.9): Megalodon's input weight is σ(alpha); Mega's is σ(delta).
// In bidirectional (encoder) form the kernel parameters have 2D rows: rows [0, D) give the
// forward kernel, rows [D, 2D) the backward one (§1.8); omega stays D.
#pragma once
#include <torch/torch.h>

#include <utility>

#include "core/config.h"
#include "core/ops/cema.h"
#include "core/ops/documents.h"

namespace mgl {

struct ComplexEMAOptions {
  ComplexEMAOptions(int64_t dim, int64_t ndim) : dim_(dim), ndim_(ndim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, ndim);
  TORCH_ARG(EmaKind, kind) = EmaKind::cema;
  TORCH_ARG(bool, mega_exact) = false;
  TORCH_ARG(bool, bidirectional) = false;
  // Reference (LibTorch) path or the fused CUDA scan (core/cuda/cema/cema_glue.h): `model.kernel_cema`.
  TORCH_ARG(KernelImpl, kernel) = KernelImpl::reference;
};

class ComplexEMAImpl : public torch::nn::Module {
 public:
  explicit ComplexEMAImpl(const ComplexEMAOptions& options);
  void reset_parameters();

  // The closed-form coefficients (§1.3), in fp32 (fp64 when the parameters are fp64), for the
  // forward kernel (direction 0) or the backward kernel of the bidirectional form (direction 1).
  ops::EmaCoeffs coeffs(int direction = 0) const;

  // x: B×D×L. h0: carried state B×D×N (complex for cema, real for ema) or undefined (zero).
  // Returns y (B×D×L, x's dtype) and, when want_state, the state after the last step (else an
  // undefined tensor). y = conv(x, k) + bias(h0) + ω·x  [silu(...) when mega_exact].
  // With options.kernel() selecting the fused kernels (mgl::kernels::use_fused) the EMA runs as
  // one fused scan per direction on CUDA (complex CEMA; the real EMA as a CEMA with zero phases);
  // what the scan does not cover (N > 256) takes the reference path.
  // documents: packed documents (core/ops/documents.h): the state restarts from zero at every
  // document start (the convolution is split there), h0 enters only the segment that continues it,
  // and the state returned is that of the last segment. Reference path only; causal only.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& h0 = {},
                                                  bool want_state = false,
                                                  const ops::DocumentPlan* documents = nullptr);

  std::pair<torch::Tensor, torch::Tensor> forward_documents(const torch::Tensor& x, const torch::Tensor& h0,
                                                            bool want_state, const ops::DocumentPlan& plan);

  ComplexEMAOptions options;
  double scale;  // √(1/N)
  torch::Tensor alpha, delta, theta, gamma, omega, beta;
};
TORCH_MODULE(ComplexEMA);

}  // namespace mgl
