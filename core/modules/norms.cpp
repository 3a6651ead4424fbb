#include "core/modules/norms.h"

#include "core/kernels.h"
#include "core/ops/norms.h"
#include "core/ops/timestep_norm_lowmem.h"
#ifdef MEGALODON_WITH_CUDA_GLUE
#include "core/cuda/row_norm/row_norm_glue.h"
#include "core/cuda/timestep_norm/timestep_norm_glue.h"
#endif

namespace mgl {

using torch::Tensor;

namespace {
// The fused row norm for this call, or an undefined tensor when the reference path should run.
Tensor fused_row_norm(KernelImpl kernel, const Tensor& x, const Tensor& w, const Tensor& b, bool subtract_mean,
                      double eps) {
  const int64_t D = x.dim() > 0 ? x.size(-1) : 0;
  if (!kernels::use_fused(kernel, x, "model.kernel_row_norm",
                          kernels::row_norm_unsupported(D > 0 ? x.numel() / D : 0, D, x.scalar_type())))
    return {};
#ifdef MEGALODON_WITH_CUDA_GLUE
  return cuda::row_norm_cuda(x, w, b, subtract_mean, eps);
#else
  (void)w, (void)b, (void)subtract_mean, (void)eps;
#endif
  return {};
}
}  // namespace

RMSNormImpl::RMSNormImpl(int64_t dim, bool affine, double eps_, KernelImpl kernel_) : eps(eps_), kernel(kernel_) {
  if (affine) weight = register_parameter("weight", torch::zeros({dim}));
}
Tensor RMSNormImpl::forward(const Tensor& x) {
  Tensor w = weight.defined() ? weight + 1.0 : Tensor();
  Tensor y = fused_row_norm(kernel, x, w, Tensor(), false, eps);
  return y.defined() ? y : ops::rms_norm_lowmem(x, w, eps);
}

LayerNormImpl::LayerNormImpl(int64_t dim, bool affine, double eps_, KernelImpl kernel_) : eps(eps_), kernel(kernel_) {
  if (affine) {
    weight = register_parameter("weight", torch::zeros({dim}));
    bias = register_parameter("bias", torch::zeros({dim}));
  }
}
Tensor LayerNormImpl::forward(const Tensor& x) {
  Tensor w = weight.defined() ? weight + 1.0 : Tensor();
  Tensor y = fused_row_norm(kernel, x, w, bias, true, eps);
  return y.defined() ? y : ops::layer_norm_lowmem(x, w, bias, eps);
}

const char* sequence_norm_name(NormKind kind) {
  switch (kind) {
    case NormKind::timestep: return "timenorm";
    case NormKind::layer: return "layernorm";
    case NormKind::group: return "groupnorm";
    case NormKind::sequence: return "seqnorm";
  }
  return "norm";
}

SequenceNormImpl::SequenceNormImpl(NormKind kind_, int64_t dim, int64_t G, double eps_, int64_t prior, bool affine,
                                   KernelImpl kernel_)
    : kind(kind_), kernel(kernel_), num_groups(G), eps(eps_) {
  TORCH_CHECK(dim % G == 0, "SequenceNorm: num_groups=", G, " must divide dim=", dim);
  if (kind == NormKind::timestep) {
    prior_count = register_buffer("prior_count", torch::tensor(prior, torch::kInt64));
    if (prior > 0) {
      prior_mean = register_parameter("prior_mean", torch::zeros({G}));
      prior_logv = register_parameter("prior_logv", torch::zeros({G}));
    } else {
      prior_mean = register_buffer("prior_mean", torch::zeros({G}));
      prior_logv = register_buffer("prior_logv", torch::zeros({G}));
    }
  }
  // The official modules always have weight and bias (TimestepNorm has no affine switch).
  if (affine || kind == NormKind::timestep) {
    weight = register_parameter("weight", torch::zeros({dim}));
    bias = register_parameter("bias", torch::zeros({dim}));
  }
}

ops::NormState SequenceNormImpl::initial_state(int64_t B, const torch::Device& device) const {
  TORCH_CHECK(kind == NormKind::timestep, "only a timestep norm has a carried state");
  const auto sd = prior_mean.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  ops::NormState s;
  // Module::to(dtype) also converts integer buffers: read the count back as int64.
  s.count = prior_count.to(device, torch::kInt64).expand({B}).clone();
  s.mean = prior_mean.to(device, sd).unsqueeze(0).expand({B, num_groups});
  s.var = prior_logv.to(device, sd).exp().unsqueeze(0).expand({B, num_groups});
  return s;
}

Tensor SequenceNormImpl::forward(const Tensor& x_in, ops::NormState* state, const Tensor& padding_mask,
                                 const ops::DocumentPlan* documents) {
  // Norm statistics are computed in fp32 even under bf16 autocast (the carried timestep-norm
  // state is fp32 by construction); the output returns in the input's dtype.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  if (documents && kind == NormKind::timestep) {
    TORCH_CHECK(!padding_mask.defined(), "document resets take unpadded (packed) rows");
    TORCH_CHECK(kernel != KernelImpl::fused,
                "model.kernel_timestep_norm = \"fused\": the kernel has no document resets (task.document_boundaries = "
                "\"reset\"); use \"auto\" or \"reference\"");
    const bool low = x_in.scalar_type() == torch::kBFloat16 || x_in.scalar_type() == torch::kHalf;
    Tensor x = low ? x_in.to(torch::kFloat32) : x_in;
    Tensor w = weight + 1.0;
    const ops::NormState prior = initial_state(x.size(0), x.device());
    const ops::NormState prev = (state && state->defined()) ? *state : prior;
    auto out = ops::timestep_norm_segmented(x, num_groups, w, bias, prev, prior, *documents, eps);
    if (state) *state = out.state;
    return low ? out.y.to(x_in.scalar_type()) : out.y;
  }
  TORCH_CHECK(!(documents && kind == NormKind::sequence), "document resets are for causal norms, not model.norm = 'sequence'");
  if (kind == NormKind::timestep && x_in.dim() == 3 &&
      kernels::use_fused(kernel, x_in, "model.kernel_timestep_norm",
                         kernels::timestep_norm_unsupported(x_in.size(0), x_in.size(1), x_in.size(2), num_groups,
                                                            x_in.scalar_type()))) {
#ifdef MEGALODON_WITH_CUDA_GLUE
    // The kernel reads fp32 or bf16 x directly (fp32 statistics) and returns y in x's dtype.
    const auto f32 = x_in.options().dtype(torch::kFloat32);
    Tensor w = weight.defined() ? weight + 1.0 : torch::ones({x_in.size(-1)}, f32);
    Tensor b = bias.defined() ? bias : torch::zeros({x_in.size(-1)}, f32);
    ops::NormState prev = (state && state->defined()) ? *state : initial_state(x_in.size(0), x_in.device());
    auto out = cuda::timestep_norm_cuda(x_in, num_groups, w, b, prev, padding_mask, eps);
    if (state) *state = out.state;
    return out.y;
#endif
  }
  const bool low = x_in.scalar_type() == torch::kBFloat16 || x_in.scalar_type() == torch::kHalf;
  Tensor x = low ? x_in.to(torch::kFloat32) : x_in;
  auto back = [&](const Tensor& y) { return low ? y.to(x_in.scalar_type()) : y; };
  Tensor w = weight.defined() ? weight + 1.0 : torch::ones({x.size(-1)}, x.options());
  Tensor b = bias.defined() ? bias : torch::zeros({x.size(-1)}, x.options());
  switch (kind) {
    case NormKind::timestep: {
      ops::NormState prev = (state && state->defined()) ? *state : initial_state(x.size(0), x.device());
      // The reference maths with a hand-written backward that keeps x and the per-step statistics
      // only (issue 22); ops::timestep_norm is its autograd oracle.
      auto out = ops::timestep_norm_lowmem(x, num_groups, w, b, prev, padding_mask, eps);
      if (state) *state = out.state;
      return back(out.y);
    }
    case NormKind::layer:
      return back(ops::layer_norm_lowmem(x, w, b, eps));
    case NormKind::group:
      return back(ops::group_norm_per_token(x, num_groups, w, b, eps));
    case NormKind::sequence:
      return back(ops::group_norm_sequence(x, num_groups, w, b, padding_mask, eps));
  }
  return x_in;
}

}  // namespace mgl
