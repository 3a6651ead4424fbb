// The EMA convolution as a chunked scan on the CPU (issue 22): ops::ema_chunked. See cema.h.
//
// With chunks of c steps (M = ⌈L/c⌉ of them; real GEMMs act on the (re, im) pairs of the complex
// quantities, the "real representation"):
//   intra-chunk  Y  = X · Kᵀ          Kᵀ[s, t] = k_{t−s} (t ≥ s), k_j = Re Σ_n p η q^j, j < c
//   chunk state  S_m = Σ_s p q^{c−1−s} x_{m,s}          (what chunk m adds to the state at its end)
//   carried      H_0 = 0, H_m = q^c H_{m−1} + S_{m−1}    (the state entering chunk m; fp64 scan)
//   inter-chunk  Y += Re Σ_n H_m η q^{t+1}
// so the work is three GEMMs of sizes D × L × (c | 2N) and an O(D·N·L/c) scan: linear in L, and
// no FFT. The backward is the adjoint of each step (the scan runs backwards with conj(q^c)), and the
// coefficient gradients follow from the gradients of K, V = p q^{c−1−s}, W = η q^{t+1} and q^c.
#include "core/cpu/batched_gemm.h"
#include "core/cpu/ema_scan.h"
#include "core/cpu/transpose.h"
#include "core/ops/cema.h"

namespace mgl::ops {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using cdouble = c10::complex<double>;

// q^j for j = 0..n: D×N×(n+1); the exponent products j·log q in fp64, the result rounded.
Tensor power_table(const Tensor& log_q, int64_t n) {
  Tensor e = torch::arange(n + 1, torch::TensorOptions().dtype(torch::kFloat64).device(log_q.device()));
  return torch::exp(log_q.to(torch::kComplexDouble).unsqueeze(-1) * e).to(log_q.scalar_type());
}

// Complex D×N×K → real D×K×2N, (re, im) of each n side by side.
Tensor as_columns(const Tensor& z) { return torch::view_as_real(z.transpose(1, 2).contiguous()).flatten(2); }
// Real D×K×2N → complex D×K×N (the inverse of as_columns, transposed back to D×N×K).
Tensor from_columns(const Tensor& r) {
  return torch::view_as_complex(r.reshape({r.size(0), r.size(1), r.size(2) / 2, 2}).contiguous()).transpose(1, 2);
}

struct Shape {
  int64_t B, D, N, L, c, M;
};

// B×D×L → D×(B·M)×c, zero padded at the end, contiguous (one transposing copy when x is stored
// B×L×D: the GEMMs need unit-stride rows, else LibTorch copies every batch matrix itself).
// The tokens-major layout on the CPU: x is the B×D×L transpose of a contiguous B×L×D tensor.
bool tokens_major(const Tensor& x, const Shape& s) {
  return x.is_cpu() && (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64) && s.D > 1 &&
         x.stride(1) == 1 && x.stride(2) == s.D && (s.B == 1 || x.stride(0) == s.L * s.D);
}

// dst (B×L×D, or D×(B·Mc) rows) from src by the blocked transpose, per batch row b.
template <typename T>
void transpose_batches(const Tensor& src, Tensor& dst, int64_t B, int64_t rows, int64_t cols, int64_t src_ld,
                       int64_t dst_ld, int64_t src_batch, int64_t dst_batch) {
  cpu::transpose(src.data_ptr<T>(), dst.data_ptr<T>(), B, rows, cols, src_ld, dst_ld, src_batch, dst_batch);
}

Tensor to_chunks(const Tensor& x, const Shape& s) {
  const int64_t Mc = s.M * s.c;
  if (tokens_major(x, s)) {  // per b, the L×D matrix into D rows of B·Mc (cpu::transpose), padding zeroed
    Tensor out = torch::empty({s.D, s.B * s.M, s.c}, x.options());
    if (x.scalar_type() == torch::kFloat32)
      transpose_batches<float>(x, out, s.B, s.L, s.D, s.D, s.B * Mc, s.L * s.D, Mc);
    else
      transpose_batches<double>(x, out, s.B, s.L, s.D, s.D, s.B * Mc, s.L * s.D, Mc);
    if (Mc > s.L) out.view({s.D, s.B, Mc}).narrow(2, s.L, Mc - s.L).zero_();
    return out;
  }
  Tensor xp = s.M * s.c > s.L ? torch::constant_pad_nd(x, {0, s.M * s.c - s.L}) : x;
  return xp.reshape({s.B, s.D, s.M, s.c}).transpose(0, 1).reshape({s.D, s.B * s.M, s.c}).contiguous();
}
// D×(B·M)×c → B×D×L, stored like `like`: when `like` is the transposed view of a B×L×D tensor
// (the MEGA layer's layout), the result is too, so that the ops after the EMA read rows of D.
Tensor from_chunks(const Tensor& y, const Shape& s, const Tensor& like) {
  if (tokens_major(like, s) && y.is_contiguous() && y.scalar_type() == like.scalar_type()) {
    const int64_t Mc = s.M * s.c;
    Tensor out = torch::empty({s.B, s.L, s.D}, y.options());
    if (y.scalar_type() == torch::kFloat32)
      transpose_batches<float>(y, out, s.B, s.D, s.L, s.B * Mc, s.D, Mc, s.L * s.D);
    else
      transpose_batches<double>(y, out, s.B, s.D, s.L, s.B * Mc, s.D, Mc, s.L * s.D);
    return out.transpose(1, 2);
  }
  Tensor t = y.reshape({s.D, s.B, s.M * s.c});
  if (s.M * s.c > s.L) t = t.narrow(2, 0, s.L);
  if (like.stride(1) == 1 && s.D > 1) return t.permute({1, 2, 0}).contiguous().transpose(1, 2);  // B×L×D memory
  return t.transpose(0, 1).contiguous();
}

// Kᵀ[d, s, t] = k[d, t − s] (t ≥ s), and the adjoint: gk[d, j] = Σ_s gKᵀ[d, s, s + j]. The CPU loops
// of core/cpu/ema_scan.h; LibTorch's gather and scatter elsewhere.
Tensor toeplitz_upper(const Tensor& k) {
  const int64_t D = k.size(0), c = k.size(1);
  Tensor kc = k.contiguous(), Kt = torch::empty({D, c, c}, k.options());
  if (k.is_cpu() && k.scalar_type() == torch::kFloat32) cpu::toeplitz_upper(kc.data_ptr<float>(), Kt.data_ptr<float>(), D, c);
  else if (k.is_cpu() && k.scalar_type() == torch::kFloat64) cpu::toeplitz_upper(kc.data_ptr<double>(), Kt.data_ptr<double>(), D, c);
  else {
    auto opts = torch::TensorOptions().dtype(torch::kInt64).device(k.device());
    Tensor diff = torch::arange(c, opts).view({1, c}) - torch::arange(c, opts).view({c, 1});  // t − s
    Kt = (k.index_select(1, diff.clamp_min(0).flatten()) * (diff >= 0).flatten().to(k.scalar_type())).view({D, c, c});
  }
  return Kt;
}
Tensor diagonal_sums(const Tensor& gKt) {
  const int64_t D = gKt.size(0), c = gKt.size(1);
  Tensor g = gKt.contiguous(), gk = torch::empty({D, c}, gKt.options());
  if (g.is_cpu() && g.scalar_type() == torch::kFloat32) cpu::diagonal_sums(g.data_ptr<float>(), gk.data_ptr<float>(), D, c);
  else if (g.is_cpu() && g.scalar_type() == torch::kFloat64) cpu::diagonal_sums(g.data_ptr<double>(), gk.data_ptr<double>(), D, c);
  else {
    auto opts = torch::TensorOptions().dtype(torch::kInt64).device(g.device());
    Tensor diff = torch::arange(c, opts).view({1, c}) - torch::arange(c, opts).view({c, 1});
    gk = torch::zeros({D, c}, g.options())
             .index_add_(1, diff.clamp_min(0).flatten(), g.view({D, c * c}) * (diff >= 0).flatten().to(g.scalar_type()));
  }
  return gk;
}

cpu::cdouble* as_std(const Tensor& z) { return reinterpret_cast<cpu::cdouble*>(z.data_ptr<cdouble>()); }

// The coefficient tables of one call (all recomputed by the backward).
struct Tables {
  Tensor qc;      // D×N: q^c
  Tensor k;       // D×c: k_j
  Tensor Kt;      // D×c×c: Kᵀ[s, t] = k_{t−s}, t ≥ s
  Tensor Vr;      // D×c×2N: Re and Im of V = p q^{c−1−s} (D×N×c complex)
  Tensor Wr;      // D×2N×c: rows Re W and −Im W of W = η q^{t+1}, so that Re(H W) = [Re H, Im H] · Wr
  // Off the CPU only (the autograd expressions of the coefficients' gradients use them):
  Tensor P;       // D×N×(c+1): q^j
  Tensor V, W;    // D×N×c complex
};

Tables tables(const Tensor& p, const Tensor& log_q, const Tensor& eta, int64_t c) {
  Tables t;
  const int64_t D = p.size(0), N = p.size(1);
  const auto cd = log_q.scalar_type(), rd = p.scalar_type();
  if (p.is_cpu()) {  // one fp64 loop (core/cpu/ema_scan.h), the real tables written in p's dtype
    Tensor pd = p.to(torch::kFloat64).contiguous(), lq = log_q.to(torch::kComplexDouble).contiguous(),
           ed = eta.to(torch::kComplexDouble).contiguous();
    const auto st = rd == torch::kFloat32 ? torch::kFloat32 : torch::kFloat64;
    auto o = p.options().dtype(st);
    Tensor k = torch::empty({D, c}, o), Vr = torch::empty({D, c, 2 * N}, o), Wr = torch::empty({D, 2 * N, c}, o);
    Tensor qc = torch::empty({D, N}, p.options().dtype(torch::kComplexDouble));
    if (st == torch::kFloat32)
      cpu::ema_tables(pd.data_ptr<double>(), as_std(lq), as_std(ed), D, N, c, k.data_ptr<float>(),
                      Vr.data_ptr<float>(), Wr.data_ptr<float>(), as_std(qc));
    else
      cpu::ema_tables(pd.data_ptr<double>(), as_std(lq), as_std(ed), D, N, c, k.data_ptr<double>(),
                      Vr.data_ptr<double>(), Wr.data_ptr<double>(), as_std(qc));
    t.qc = qc.to(cd);  // rounded to the coefficients' precision, as the table of powers was
    t.k = k.to(rd);
    t.Kt = toeplitz_upper(t.k);
    t.Vr = Vr.to(rd);
    t.Wr = Wr.to(rd);
    return t;
  }
  t.P = power_table(log_q, c);
  Tensor head = t.P.narrow(2, 0, c);
  t.k = torch::real((p * eta).unsqueeze(-1) * head).sum(1);  // D×c
  t.Kt = toeplitz_upper(t.k);
  t.V = p.unsqueeze(-1) * head.flip(2);
  t.Vr = as_columns(t.V);
  t.W = eta.unsqueeze(-1) * t.P.narrow(2, 1, c);
  t.Wr = torch::stack({torch::real(t.W), -torch::imag(t.W)}, 2).reshape({D, 2 * N, c});
  t.qc = t.P.select(2, c);
  return t;
}

// H_0 = 0, H_m = qc H_{m−1} + S_{m−1}, per (d, b, n), in fp64 (core/cpu/ema_scan.h), read and written
// in S's precision. S: D×(B·M)×2N real, contiguous; qc: D×N complex. Returns H in S's layout and dtype.
Tensor carried_states(const Tensor& S, const Tensor& qc, const Shape& s) {
  Tensor qd = qc.to(torch::kComplexDouble).contiguous();
  Tensor Sc = S.contiguous();
  Tensor H = torch::empty_like(Sc);
  if (Sc.scalar_type() == torch::kFloat32) {
    cpu::ema_carry_scan(reinterpret_cast<const std::complex<float>*>(Sc.data_ptr<float>()), as_std(qd),
                        reinterpret_cast<std::complex<float>*>(H.data_ptr<float>()), s.D, s.B, s.M, s.N);
  } else {
    Tensor Sd = Sc.to(torch::kFloat64), Hd = H.scalar_type() == torch::kFloat64 ? H : torch::empty_like(Sd);
    cpu::ema_carry_scan(reinterpret_cast<const cpu::cdouble*>(Sd.data_ptr<double>()), as_std(qd),
                        reinterpret_cast<cpu::cdouble*>(Hd.data_ptr<double>()), s.D, s.B, s.M, s.N);
    if (!Hd.is_same(H)) H.copy_(Hd);
  }
  return H;
}

// The adjoint of carried_states: G_m = gH_m + conj(qc) G_{m+1}, gS_{m−1} = G_m (gS_{M−1} = 0),
// g_qc = Σ_{b, m≥1} conj(H_{m−1}) G_m. gH, H: D×(B·M)×2N real. Returns {gS (gH's layout), g_qc D×N}.
std::pair<Tensor, Tensor> carried_states_adjoint(const Tensor& gH, const Tensor& H, const Tensor& qc, const Shape& s) {
  Tensor qd = qc.to(torch::kComplexDouble).contiguous();
  const bool f32 = gH.scalar_type() == torch::kFloat32 && H.scalar_type() == torch::kFloat32;
  const auto st = f32 ? torch::kFloat32 : torch::kFloat64;
  Tensor gHc = gH.to(st).contiguous(), Hc = H.to(st).contiguous();
  Tensor gS = torch::empty_like(gHc);
  Tensor gq = torch::empty({s.D, s.B, s.N}, qd.options());
  if (f32)
    cpu::ema_carry_scan_adjoint(reinterpret_cast<const std::complex<float>*>(gHc.data_ptr<float>()),
                                reinterpret_cast<const std::complex<float>*>(Hc.data_ptr<float>()), as_std(qd),
                                reinterpret_cast<std::complex<float>*>(gS.data_ptr<float>()), as_std(gq), s.D, s.B,
                                s.M, s.N);
  else
    cpu::ema_carry_scan_adjoint(reinterpret_cast<const cpu::cdouble*>(gHc.data_ptr<double>()),
                                reinterpret_cast<const cpu::cdouble*>(Hc.data_ptr<double>()), as_std(qd),
                                reinterpret_cast<cpu::cdouble*>(gS.data_ptr<double>()), as_std(gq), s.D, s.B, s.M, s.N);
  return {gS.to(gH.scalar_type()), gq.sum(1).to(qc.scalar_type())};
}

// bmm(a, b), or into += bmm(a, b): the EMA's products are D small GEMMs (e.g. 512×64 by 64×64 at 32K
// tokens). fp32 CPU tensors go to the batched kernel (core/cpu/batched_gemm.h), with a contiguous or
// the transpose of a contiguous tensor; anything else (fp64, other widths) to LibTorch's bmm.
Tensor small_bmm(const Tensor& a, const Tensor& b, Tensor into = {}) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  const bool kernel = a.is_cpu() && a.scalar_type() == torch::kFloat32 && b.scalar_type() == torch::kFloat32 &&
                      (!into.defined() || into.is_contiguous()) && cpu::batched_gemm_takes(n);
  if (!kernel) return into.defined() ? into.baddbmm_(a, b) : torch::bmm(a, b);
  const bool a_t = !a.is_contiguous() && a.transpose(1, 2).is_contiguous();
  const Tensor A = a_t ? a.transpose(1, 2) : a.contiguous(), Bm = b.contiguous();
  Tensor C = into.defined() ? into : torch::empty({batch, m, n}, a.options());
  cpu::batched_gemm(A.data_ptr<float>(), Bm.data_ptr<float>(), C.data_ptr<float>(), batch, m, n, k, a_t,
                    into.defined(), m * k, k * n, m * n);
  return C;
}

struct EmaChunked : public torch::autograd::Function<EmaChunked> {
  // x: B×D×L real; p: D×N real; log_q, eta: D×N complex (of x's precision).
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& p, const Tensor& log_q, const Tensor& eta,
                        int64_t chunk) {
    const int64_t L = x.size(2), c = std::min(chunk, L);
    const Shape s{x.size(0), x.size(1), p.size(1), L, c, (L + c - 1) / c};
    Tables t = tables(p, log_q, eta, c);
    Tensor X = to_chunks(x, s);
    Tensor H = carried_states(small_bmm(X, t.Vr), t.qc, s);
    Tensor Y = small_bmm(H, t.Wr, small_bmm(X, t.Kt));
    ctx->save_for_backward({x, p, log_q, eta});
    ctx->saved_data["c"] = c;
    return from_chunks(Y, s, x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto sv = ctx->get_saved_variables();
    const Tensor &x = sv[0], &p = sv[1], &log_q = sv[2], &eta = sv[3];
    const int64_t c = ctx->saved_data["c"].toInt(), L = x.size(2);
    const Shape s{x.size(0), x.size(1), p.size(1), L, c, (L + c - 1) / c};
    const int64_t D = s.D, N = s.N;
    Tables t = tables(p, log_q, eta, c);
    Tensor X = to_chunks(x, s);
    const Tensor& qc = t.qc;
    Tensor H = carried_states(small_bmm(X, t.Vr), qc, s);
    Tensor gY = to_chunks(grads[0], s);

    Tensor gH = small_bmm(gY, t.Wr.transpose(1, 2));  // D×BM×2N
    auto [gS, g_qc] = carried_states_adjoint(gH, H, qc, s);
    Tensor gx;
    if (ctx->needs_input_grad(0))
      gx = from_chunks(small_bmm(gS, t.Vr.transpose(1, 2), small_bmm(gY, t.Kt.transpose(1, 2))), s, x);
    if (!(ctx->needs_input_grad(1) || ctx->needs_input_grad(2) || ctx->needs_input_grad(3))) return {gx, {}, {}, {}, {}};

    // Gradients of the tables.
    Tensor Xt = X.transpose(1, 2);                                                  // D×c×BM
    Tensor gk = diagonal_sums(small_bmm(Xt, gY));                                   // D×c: Σ along diagonals
    if (p.is_cpu()) {  // the coefficients' gradients in one fp64 loop (core/cpu/ema_scan.h)
      auto f64 = p.options().dtype(torch::kFloat64), c128 = p.options().dtype(torch::kComplexDouble);
      Tensor pd = p.to(torch::kFloat64).contiguous(), lq = log_q.to(torch::kComplexDouble).contiguous(),
             ed = eta.to(torch::kComplexDouble).contiguous();
      Tensor gkd = gk.to(torch::kFloat64).contiguous();
      Tensor gVr = small_bmm(Xt, gS).to(torch::kFloat64).contiguous();                 // D×c×2N
      Tensor gWr = small_bmm(H.transpose(1, 2), gY).to(torch::kFloat64).contiguous();  // D×2N×c
      Tensor gq = g_qc.to(torch::kComplexDouble).contiguous();
      Tensor g_p = torch::empty({D, N}, f64), g_lq = torch::empty({D, N}, c128), g_eta = torch::empty({D, N}, c128);
      cpu::ema_table_gradients(pd.data_ptr<double>(), as_std(lq), as_std(ed), D, N, c, gkd.data_ptr<double>(),
                               gVr.data_ptr<double>(), gWr.data_ptr<double>(), as_std(gq), g_p.data_ptr<double>(),
                               as_std(g_lq), as_std(g_eta));
      return {gx, g_p.to(p.scalar_type()), g_lq.to(log_q.scalar_type()), g_eta.to(eta.scalar_type()), {}};
    }
    Tensor gV = from_columns(small_bmm(Xt, gS));                                   // D×N×c complex
    Tensor gWr = small_bmm(H.transpose(1, 2), gY).view({D, N, 2, c});              // ∂/∂Re W, ∂/∂(−Im W)
    Tensor gW = torch::complex(gWr.select(2, 0), -gWr.select(2, 1));                // D×N×c

    const auto cd = log_q.scalar_type();
    auto j_of = [&](int64_t first, int64_t n) {  // exponents first..first+n−1 as a complex row
      return torch::arange(first, first + n, p.options()).to(cd);
    };
    Tensor head = t.P.narrow(2, 0, c), gkc = gk.to(cd).unsqueeze(1);                   // D×1×c
    // k_j = Re Σ_n pe q^j:  ∂/∂pe = Σ_j gk_j conj(q^j),  ∂/∂log q += conj(pe) Σ_j j gk_j conj(q^j)
    Tensor g_pe = (gkc * head.conj()).sum(2);
    Tensor pe = p * eta;
    Tensor g_lq = pe.conj() * (gkc * j_of(0, c) * head.conj()).sum(2);
    // V_s = p q^{c−1−s}: ∂/∂p = Re Σ_s conj(q^{c−1−s}) gV_s, ∂/∂log q += Σ_s conj((c−1−s) V_s) gV_s
    Tensor g_p = torch::real((head.flip(2).conj() * gV).sum(2));
    g_lq = g_lq + ((t.V * j_of(0, c).flip(0)).conj() * gV).sum(2);
    // W_t = η q^{t+1}: ∂/∂η = Σ_t conj(q^{t+1}) gW_t, ∂/∂log q += Σ_t conj((t+1) W_t) gW_t
    Tensor g_eta = (t.P.narrow(2, 1, c).conj() * gW).sum(2);
    g_lq = g_lq + ((t.W * j_of(1, c)).conj() * gW).sum(2);
    // q^c = exp(c log q)
    g_lq = g_lq + (qc * static_cast<double>(c)).conj() * g_qc;
    // pe = p η (p real)
    g_p = g_p + torch::real(eta.conj() * g_pe);
    g_eta = g_eta + p * g_pe;
    return {gx, g_p, g_lq, g_eta, {}};
  }
};

}  // namespace

Tensor ema_chunked(const Tensor& x, const EmaCoeffs& c, int64_t chunk) {
  TORCH_CHECK(c.p.dim() == 2 && c.log_q.sizes() == c.p.sizes() && c.eta.sizes() == c.p.sizes(),
              "ema_chunked: EMA coefficients must all be D×N");
  TORCH_CHECK(x.dim() == 3 && x.size(1) == c.dim(), "ema_chunked: x must be B×", c.dim(), "×L, got ", x.sizes());
  TORCH_CHECK(chunk >= 1, "ema_chunked: chunk must be >= 1");
  // The real EMA runs as a CEMA whose log q and η have zero imaginary parts (autograd maps the
  // gradients back to the real coefficients).
  Tensor log_q = c.log_q, eta = c.eta;
  if (!c.is_complex()) {
    log_q = torch::complex(log_q, torch::zeros_like(log_q));
    eta = torch::complex(eta, torch::zeros_like(eta));
  }
  const auto rd = c.p.scalar_type();
  return EmaChunked::apply(x.to(rd), c.p, log_q, eta, chunk).to(x.scalar_type());
}

}  // namespace mgl::ops
