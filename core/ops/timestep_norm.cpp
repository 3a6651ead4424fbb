#include "core/ops/timestep_norm.h"

namespace mgl::ops {

using torch::Tensor;

namespace {
torch::Dtype stat_dtype(const Tensor& x) {
  return x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}
void check_groups(const Tensor& x, int64_t G, const char* who) {
  TORCH_CHECK(x.dim() == 3, who, ": x must be B×L×D, got ", x.sizes());
  TORCH_CHECK(G >= 1 && x.size(2) % G == 0, who, ": num_groups=", G, " must divide D=", x.size(2));
}
}  // namespace

TimestepNormOutput timestep_norm(const Tensor& x, int64_t G, const Tensor& weight, const Tensor& bias,
                                 const NormState& prev, const Tensor& padding_mask, double eps) {
  check_groups(x, G, "timestep_norm");
  TORCH_CHECK(prev.defined(), "timestep_norm: a previous state (possibly the prior) is required");
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), g = D / G;
  TORCH_CHECK(prev.count.sizes() == torch::IntArrayRef{B} && prev.mean.sizes() == torch::IntArrayRef({B, G}) &&
                  prev.var.sizes() == torch::IntArrayRef({B, G}),
              "timestep_norm: state must be count B, mean/var B×G with B=", B, " G=", G);
  const auto acc = torch::TensorOptions().dtype(torch::kFloat64).device(x.device());

  // Per-token group moments (population variance over the g channels), in fp64.
  Tensor xg = x.to(torch::kFloat64).view({B, L, G, g});
  Tensor gm = xg.mean(-1);                                   // B×L×G
  Tensor gv = (xg - gm.unsqueeze(-1)).pow(2).mean(-1);       // B×L×G

  Tensor valid = padding_mask.defined() ? padding_mask.logical_not().to(acc).unsqueeze(-1)
                                        : torch::ones({B, L, 1}, acc);
  Tensor n0 = prev.count.to(acc).view({B, 1, 1});
  Tensor mu0 = prev.mean.to(torch::kFloat64).unsqueeze(1);   // B×1×G
  Tensor var0 = prev.var.to(torch::kFloat64).unsqueeze(1);

  // Shift: a constant per (b, group) close to the data (the first token's mean, or the prior mean
  // when the prior has weight). Any constant gives the same maths; a close one avoids cancellation.
  Tensor shift = torch::where(n0 > 0, mu0, gm.narrow(1, 0, 1)).detach();
  Tensor n = n0 + valid.cumsum(1);                           // B×L×1
  Tensor n_safe = n.clamp_min(1.0);
  Tensor s1 = n0 * (mu0 - shift) + (valid * (gm - shift)).cumsum(1);
  Tensor s2 = n0 * (var0 + (mu0 - shift).pow(2)) + (valid * (gv + (gm - shift).pow(2))).cumsum(1);
  Tensor dmean = s1 / n_safe;                                // μ_t − shift
  Tensor mean = shift + dmean;
  Tensor var = (s2 / n_safe - dmean.pow(2)).clamp_min(0.0);  // B×L×G

  const auto sd = stat_dtype(x);
  Tensor rstd = torch::rsqrt(var + eps).to(sd);
  Tensor xs = x.to(sd).view({B, L, G, g});
  Tensor y = ((xs - mean.to(sd).unsqueeze(-1)) * rstd.unsqueeze(-1)).view({B, L, D});
  y = y * weight.to(sd) + bias.to(sd);
  if (padding_mask.defined()) y = y.masked_fill(padding_mask.unsqueeze(-1), 0.0);

  NormState out;
  out.count = prev.count + (padding_mask.defined() ? padding_mask.logical_not().sum(1) : torch::full_like(prev.count, L));
  // A segment that was entirely padding (and had no prior weight) leaves the state as it was.
  Tensor seen = n.select(1, L - 1) > 0;                      // B×1
  out.mean = torch::where(seen, mean.select(1, L - 1), prev.mean.to(torch::kFloat64)).to(sd);
  out.var = torch::where(seen, var.select(1, L - 1), prev.var.to(torch::kFloat64)).to(sd);
  return {y.to(x.scalar_type()), out};
}

Tensor group_norm_per_token(const Tensor& x, int64_t G, const Tensor& weight, const Tensor& bias, double eps) {
  check_groups(x, G, "group_norm");
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  const auto sd = stat_dtype(x);
  Tensor xg = x.to(sd).view({B, L, G, D / G});
  Tensor mean = xg.mean(-1, true);
  Tensor var = (xg - mean).pow(2).mean(-1, true);
  Tensor y = ((xg - mean) * torch::rsqrt(var + eps)).view({B, L, D}) * weight.to(sd) + bias.to(sd);
  return y.to(x.scalar_type());
}

Tensor group_norm_sequence(const Tensor& x, int64_t G, const Tensor& weight, const Tensor& bias,
                           const Tensor& padding_mask, double eps) {
  check_groups(x, G, "group_norm_sequence");
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  const auto sd = stat_dtype(x);
  Tensor xg = x.to(sd).view({B, L, G, D / G});
  Tensor w = padding_mask.defined() ? padding_mask.logical_not().to(sd).view({B, L, 1, 1})
                                    : torch::ones({B, L, 1, 1}, xg.options());
  // A sequence with no valid position gets count 1 (its output is never used).
  Tensor cnt = (w.sum(1, true) * static_cast<double>(D / G)).clamp_min(1.0);  // B×1×1×1
  Tensor mean = (xg * w).sum({1, 3}, true) / cnt;                           // B×1×G×1
  Tensor var = ((xg - mean).pow(2) * w).sum({1, 3}, true) / cnt;
  Tensor y = ((xg - mean) * torch::rsqrt(var + eps)).view({B, L, D}) * weight.to(sd) + bias.to(sd);
  return y.to(x.scalar_type());
}

std::pair<Tensor, Tensor> sequence_group_moments(const Tensor& x, int64_t G, const Tensor& padding_mask) {
  check_groups(x, G, "sequence_group_moments");
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  Tensor xg = x.to(torch::kFloat64).view({B, L, G, D / G});
  Tensor w = padding_mask.defined() ? padding_mask.logical_not().to(torch::kFloat64).view({B, L, 1, 1})
                                    : torch::ones({B, L, 1, 1}, xg.options());
  Tensor cnt = w.sum({1, 3}) * static_cast<double>(D / G);          // B×1 → broadcast
  Tensor mean = (xg * w).sum({1, 3}) / cnt;                          // B×G
  Tensor var = ((xg - mean.view({B, 1, G, 1})).pow(2) * w).sum({1, 3}) / cnt;
  return {mean, var};
}

}  // namespace mgl::ops
