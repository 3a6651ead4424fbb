#include "core/ops/timestep_norm_lowmem.h"

#include "core/cpu/timestep_norm.h"

namespace mgl::ops {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The fp64 prefix statistics shared by forward and backward (B×L×G unless noted).
struct Prefix {
  Tensor n_safe;  // B×L×1: steps counted so far (prior included), at least 1
  Tensor shift;   // B×1×G
  Tensor mean;    // μ_t
  Tensor raw;     // S2/n − (S1/n)², before the clamp at 0
};

// valid: B×L×1 fp64 (1 = real step); n0: B×1×1; mu0, var0: B×1×G fp64; gm, gv: per-token moments.
Prefix prefix_statistics(const Tensor& gm, const Tensor& gv, const Tensor& valid, const Tensor& n0, const Tensor& mu0,
                         const Tensor& var0) {
  Prefix p;
  Tensor gmd = gm.to(torch::kFloat64);
  // A constant per (b, group) close to the data (the prior mean when it has weight, else the
  // first token's mean), as in the reference: any constant gives the same maths.
  p.shift = torch::where(n0 > 0, mu0, gmd.narrow(1, 0, 1));
  p.n_safe = (n0 + valid.cumsum(1)).clamp_min(1.0);
  Tensor dg = gmd - p.shift;
  Tensor m0 = mu0 - p.shift;
  Tensor s1 = (valid * dg).cumsum(1).add_(n0 * m0);
  Tensor s2 = (valid * (gv.to(torch::kFloat64) + dg.square())).cumsum(1).add_(n0 * (var0 + m0.square()));
  Tensor dmean = s1.div_(p.n_safe);
  p.raw = s2.div_(p.n_safe).sub_(dmean.square());
  p.mean = dmean.add_(p.shift);
  return p;
}

Tensor suffix_sum(const Tensor& t) { return t.flip(1).cumsum(1).flip(1); }

struct TimestepNormFunction : public torch::autograd::Function<TimestepNormFunction> {
  // x: B×L×D (fp32/fp64), weight/bias: D, prev_mean/prev_var: B×G, count: B int64, pad: B×L bool or
  // undefined. Returns {y, mean after the last step, var after the last step}.
  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Tensor& weight, const Tensor& bias,
                               const Tensor& prev_mean, const Tensor& prev_var, const Tensor& count,
                               const c10::optional<Tensor>& pad_opt, int64_t G, double eps, bool cpu_kernel) {
    const Tensor pad = pad_opt.has_value() ? *pad_opt : Tensor();  // a Function's Tensor inputs must be defined
    const int64_t B = x.size(0), L = x.size(1), D = x.size(2), g = D / G;
    const auto sd = x.scalar_type();
    const auto f64 = x.options().dtype(torch::kFloat64);
    Tensor valid = pad.defined() ? pad.logical_not().to(torch::kFloat64).unsqueeze(-1) : torch::ones({B, L, 1}, f64);
    Tensor n0 = count.to(torch::kFloat64).view({B, 1, 1});
    Tensor mu0 = prev_mean.to(torch::kFloat64).unsqueeze(1), var0 = prev_var.to(torch::kFloat64).unsqueeze(1);
    Prefix p;
    Tensor y;
    if (cpu_kernel) {
      y = torch::empty_like(x);
      p.mean = torch::empty({B, L, G}, f64);
      p.raw = torch::empty({B, L, G}, f64);
      const Tensor n0c = n0.contiguous(), mu0c = mu0.contiguous(), var0c = var0.contiguous();
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "timestep_norm_cpu", [&] {
        const Tensor w = weight.to(sd).contiguous(), b = bias.to(sd).contiguous();
        cpu::timestep_norm_forward<scalar_t>(x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                             pad.defined() ? pad.data_ptr<bool>() : nullptr, n0c.data_ptr<double>(),
                                             mu0c.data_ptr<double>(), var0c.data_ptr<double>(), {B, L, D, G}, eps,
                                             y.data_ptr<scalar_t>(), p.mean.data_ptr<double>(),
                                             p.raw.data_ptr<double>());
      });
    } else {
      Tensor xg = x.view({B, L, G, g});
      Tensor gm = xg.mean(-1);                                 // B×L×G
      Tensor gv = (xg - gm.unsqueeze(-1)).square_().mean(-1);  // population variance per token
      p = prefix_statistics(gm, gv, valid, n0, mu0, var0);
      Tensor rstd = p.raw.clamp_min(0.0).add_(eps).rsqrt_();
      y = (xg - p.mean.to(sd).unsqueeze(-1)).mul_(rstd.to(sd).unsqueeze(-1)).view({B, L, D});
      y.mul_(weight.to(sd)).add_(bias.to(sd));
      if (pad.defined()) y.masked_fill_(pad.unsqueeze(-1), 0.0);
    }
    // A segment that was entirely padding (and had no prior weight) leaves the state as it was.
    Tensor seen = (n0.view({B, 1}) + valid.sum(1)) > 0;  // B×1
    Tensor mean_last = torch::where(seen, p.mean.select(1, L - 1), mu0.squeeze(1)).to(prev_mean.scalar_type());
    Tensor var_last =
        torch::where(seen, p.raw.select(1, L - 1).clamp_min(0.0), var0.squeeze(1)).to(prev_var.scalar_type());
    ctx->save_for_backward({x, weight, prev_mean, prev_var, count, pad, p.mean, p.raw, seen});
    ctx->saved_data["G"] = G;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["cpu_kernel"] = cpu_kernel;
    return {y, mean_last, var_last};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    const Tensor &x = s[0], &weight = s[1], &prev_mean = s[2], &prev_var = s[3], &count = s[4], &pad = s[5],
                 &mean = s[6], &raw = s[7], &seen = s[8];
    const int64_t G = ctx->saved_data["G"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    const int64_t B = x.size(0), L = x.size(1), D = x.size(2), g = D / G;
    const auto sd = x.scalar_type();
    const auto f64 = x.options().dtype(torch::kFloat64);
    if (ctx->saved_data["cpu_kernel"].toBool()) {
      const Tensor n0 = count.to(torch::kFloat64).contiguous();
      const Tensor mu0 = prev_mean.to(torch::kFloat64).contiguous();
      const Tensor gy = grads[0].defined() ? grads[0].to(sd).contiguous() : Tensor();
      const Tensor gml = grads[1].defined() ? grads[1].to(torch::kFloat64).contiguous() : Tensor();
      const Tensor gvl = grads[2].defined() ? grads[2].to(torch::kFloat64).contiguous() : Tensor();
      const Tensor seen_c = seen.contiguous();
      Tensor dx = torch::empty_like(x), gw = torch::empty({D}, f64), gb = torch::empty({D}, f64);
      Tensor gpm = torch::empty({B, G}, f64), gpv = torch::empty({B, G}, f64), work = torch::empty({2, B, L, G}, f64);
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "timestep_norm_cpu_backward", [&] {
        const Tensor w = weight.to(sd).contiguous();
        cpu::timestep_norm_backward<scalar_t>(
            x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), pad.defined() ? pad.data_ptr<bool>() : nullptr,
            n0.data_ptr<double>(), mu0.data_ptr<double>(), mean.data_ptr<double>(), raw.data_ptr<double>(),
            gy.defined() ? gy.data_ptr<scalar_t>() : nullptr, gml.defined() ? gml.data_ptr<double>() : nullptr,
            gvl.defined() ? gvl.data_ptr<double>() : nullptr, seen_c.data_ptr<bool>(), {B, L, D, G}, eps,
            dx.data_ptr<scalar_t>(), gw.data_ptr<double>(), gb.data_ptr<double>(), gpm.data_ptr<double>(),
            gpv.data_ptr<double>(), work.data_ptr<double>());
      });
      return {dx,
              gw.to(weight.scalar_type()),
              gb.to(weight.scalar_type()),
              gpm.to(prev_mean.scalar_type()),
              gpv.to(prev_var.scalar_type()),
              Tensor(),
              Tensor(),
              Tensor(),
              Tensor(),
              Tensor()};
    }
    Tensor valid = pad.defined() ? pad.logical_not().to(torch::kFloat64).unsqueeze(-1) : torch::ones({B, L, 1}, f64);
    Tensor n0 = count.to(torch::kFloat64).view({B, 1, 1});
    Tensor mu0 = prev_mean.to(torch::kFloat64).unsqueeze(1), var0 = prev_var.to(torch::kFloat64).unsqueeze(1);
    // Recompute the cheap parts of the forward: shift and counts (B×L×G and B×L×1, fp64).
    Tensor xg = x.view({B, L, G, g});
    Tensor gm0 = xg.select(1, 0).mean(-1).to(torch::kFloat64).unsqueeze(1);  // B×1×G
    Tensor shift = torch::where(n0 > 0, mu0, gm0);
    Tensor n_safe = (n0 + valid.cumsum(1)).clamp_min(1.0);
    Tensor rstd = raw.clamp_min(0.0).add_(eps).rsqrt_();  // B×L×G fp64
    Tensor rs = rstd.to(sd).unsqueeze(-1);

    Tensor gy = grads[0].defined() ? grads[0].to(sd) : torch::zeros_like(x);
    if (pad.defined()) gy = gy.masked_fill(pad.unsqueeze(-1), 0.0);  // y is the constant 0 there
    Tensor xhat = (xg - mean.to(sd).unsqueeze(-1)).mul_(rs).view({B, L, D});
    Tensor g_bias = gy.sum(torch::IntArrayRef{0, 1});
    Tensor g_weight = (gy * xhat).sum(torch::IntArrayRef{0, 1});
    Tensor gh = (gy * weight.to(sd)).view({B, L, G, g});               // ĝ
    Tensor sum_gh = gh.sum(-1).to(torch::kFloat64);                     // Σ_c ĝ
    Tensor sum_ghx = (gh * xhat.view({B, L, G, g})).sum(-1).to(torch::kFloat64);  // r Σ_c ĝ (x − μ)
    Tensor g_mu = -rstd * sum_gh;
    Tensor g_var = (-0.5 * sum_ghx) * rstd.square();
    // The output state is μ, var of the last step where the segment saw a step, else the prior's.
    Tensor gml = grads[1].defined() ? grads[1].to(torch::kFloat64) : Tensor();
    Tensor gvl = grads[2].defined() ? grads[2].to(torch::kFloat64) : Tensor();
    if (gml.defined()) g_mu.select(1, L - 1).add_(gml * seen);
    if (gvl.defined()) g_var.select(1, L - 1).add_(gvl * seen);
    g_var.masked_fill_(raw < 0, 0.0);  // var = max(raw, 0) (the output state's too)
    Tensor gs1 = (g_mu - 2.0 * (mean - shift) * g_var).div_(n_safe);
    Tensor gs2 = g_var.div_(n_safe);
    Tensor A = suffix_sum(gs1), Bs = suffix_sum(gs2);  // B×L×G
    Tensor coef_a = (valid * A / static_cast<double>(g)).to(sd).unsqueeze(-1);
    Tensor coef_b = (valid * Bs * (2.0 / static_cast<double>(g))).to(sd).unsqueeze(-1);
    Tensor dx = (gh * rs).add_(coef_a).add_((xg - shift.to(sd).unsqueeze(-1)).mul_(coef_b)).view({B, L, D});

    // The previous state enters every S1_t as n0 (μ0 − s) and every S2_t as n0 (var0 + (μ0 − s)²).
    Tensor a0 = A.select(1, 0), b0 = Bs.select(1, 0), n0v = n0.view({B, 1});  // B×G
    Tensor g_prev_mean = n0v * (a0 + 2.0 * (mu0.squeeze(1) - shift.squeeze(1)) * b0);
    Tensor g_prev_var = n0v * b0;
    Tensor unseen = seen.logical_not();
    if (gml.defined()) g_prev_mean = g_prev_mean + gml * unseen;
    if (gvl.defined()) g_prev_var = g_prev_var + gvl * unseen;
    return {dx,
            g_weight.to(weight.scalar_type()),
            g_bias.to(weight.scalar_type()),
            g_prev_mean.to(prev_mean.scalar_type()),
            g_prev_var.to(prev_var.scalar_type()),
            Tensor(),
            Tensor(),
            Tensor(),
            Tensor(),
            Tensor()};
  }
};

}  // namespace

TimestepNormOutput timestep_norm_lowmem(const Tensor& x_in, int64_t G, const Tensor& weight, const Tensor& bias,
                                        const NormState& prev, const Tensor& padding_mask, double eps,
                                        bool cpu_kernel) {
  TORCH_CHECK(x_in.dim() == 3, "timestep_norm: x must be B×L×D, got ", x_in.sizes());
  TORCH_CHECK(G >= 1 && x_in.size(2) % G == 0, "timestep_norm: num_groups=", G, " must divide D=", x_in.size(2));
  TORCH_CHECK(prev.defined(), "timestep_norm: a previous state (possibly the prior) is required");
  const int64_t B = x_in.size(0), L = x_in.size(1);
  TORCH_CHECK(prev.count.sizes() == torch::IntArrayRef{B} && prev.mean.sizes() == torch::IntArrayRef({B, G}) &&
                  prev.var.sizes() == torch::IntArrayRef({B, G}),
              "timestep_norm: state must be count B, mean/var B×G with B=", B, " G=", G);
  TORCH_CHECK(L >= 1, "timestep_norm: empty sequence");
  TORCH_CHECK(!padding_mask.defined() || padding_mask.sizes() == torch::IntArrayRef({B, L}),
              "timestep_norm: padding_mask must be B×L");
  // Statistics in fp32 (fp64 for fp64 input), as the reference; the output in x's dtype.
  const auto sd = x_in.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  Tensor x = x_in.to(sd).contiguous();
  Tensor pad = padding_mask.defined() ? padding_mask.to(torch::kBool).contiguous() : Tensor();
  c10::optional<Tensor> pad_opt;
  if (pad.defined()) pad_opt = pad;
  Tensor count = prev.count.to(torch::kInt64);
  cpu_kernel = cpu_kernel && x.device().is_cpu();
  auto out = TimestepNormFunction::apply(x, weight, bias, prev.mean.to(sd), prev.var.to(sd), count, pad_opt, G, eps,
                                         cpu_kernel);
  TimestepNormOutput r;
  r.y = out[0].to(x_in.scalar_type());
  r.state.count = prev.count + (pad.defined() ? pad.logical_not().sum(1) : torch::full_like(prev.count, L));
  r.state.mean = out[1];
  r.state.var = out[2];
  return r;
}

}  // namespace mgl::ops
