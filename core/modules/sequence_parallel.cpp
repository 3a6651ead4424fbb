#include "core/modules/sequence_parallel.h"

namespace mgl {

using torch::Tensor;

namespace {
// Makes `y` depend on every element of `stack` without changing its value, so that the backward
// of the gather runs on every rank (rank 0 uses none of the others' summaries, but the gather's
// backward is a collective that all ranks must enter).
Tensor touch(const Tensor& y, const Tensor& stack) {
  return y + (stack.sum() * 0.0).to(y.scalar_type());
}
}  // namespace

namespace sequence_parallel {

void merge_moments(Tensor& count, Tensor& mean, Tensor& var, const Tensor& count_b, const Tensor& mean_b,
                   const Tensor& var_b) {
  // n = na + nb; δ = μb − μa; μ = μa + δ·nb/n; σ² = (na σa² + nb σb²)/n + δ² na nb / n².
  const Tensor na = count.to(mean.scalar_type()).unsqueeze(-1), nb = count_b.to(mean.scalar_type()).unsqueeze(-1);
  const Tensor n = na + nb;
  const Tensor safe = torch::where(n > 0, n, torch::ones_like(n));
  const Tensor delta = mean_b - mean;
  const Tensor new_mean = mean + delta * (nb / safe);
  const Tensor new_var = (na * var + nb * var_b) / safe + delta * delta * (na * nb) / (safe * safe);
  mean = torch::where(n > 0, new_mean, mean);
  var = torch::where(n > 0, new_var, var);
  count = count + count_b;
}

ops::NormState norm_incoming(SequenceExchange& ex, const Tensor& x, int64_t G, const ops::NormState& initial) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) % G == 0, "chunk parallelism: the norm input must be B×L×D with D a multiple "
              "of the groups, got ", x.sizes());
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  const auto sd = initial.mean.scalar_type();
  // The segment's group moments, in fp64 like the reference path's prefix sums.
  Tensor xg = x.to(torch::kFloat64).reshape({B, L, G, D / G});
  Tensor mean = xg.mean({1, 3});
  Tensor var = (xg - mean.unsqueeze(1).unsqueeze(-1)).pow(2).mean({1, 3});
  Tensor stack = ex.all_gather(torch::stack({mean, var}));  // P×2×B×G
  const int64_t r = ex.rank();
  Tensor count = initial.count.clone();
  Tensor m = initial.mean.to(torch::kFloat64), v = initial.var.to(torch::kFloat64);
  const Tensor seg = torch::full({B}, L, count.options());
  for (int64_t s = 0; s < r; ++s) merge_moments(count, m, v, seg, stack[s][0], stack[s][1]);
  ops::NormState out;
  out.count = count;
  out.mean = touch(m, stack).to(sd);
  out.var = v.to(sd);
  return out;
}

Tensor ema_incoming(SequenceExchange& ex, const Tensor& x, const ops::EmaCoeffs& c) {
  const int64_t L = x.size(2), r = ex.rank();
  Tensor h = ops::ema_hidden(x, c, Tensor());  // B×D×N from a zero state
  const bool cplx = h.is_complex();
  Tensor stack = ex.all_gather(cplx ? torch::view_as_real(h) : h);
  if (cplx) stack = torch::view_as_complex(stack);
  // q^S, S = this segment's length (every rank's segment has the same length).
  Tensor qS = torch::exp(c.log_q * static_cast<double>(L));  // D×N
  Tensor H = torch::zeros_like(h);
  for (int64_t s = 0; s < r; ++s) H = qS * H + stack[s];
  if (cplx) return torch::view_as_complex(touch(torch::view_as_real(H), torch::view_as_real(stack)));
  return touch(H, stack);
}

}  // namespace sequence_parallel
}  // namespace mgl
