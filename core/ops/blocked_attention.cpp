#include "core/ops/blocked_attention.h"

#include <limits>

#include "core/cpu/softmax_rows.h"

namespace mgl::ops {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr double kInf = std::numeric_limits<double>::infinity();

torch::Dtype blocked_acc_dtype(const Tensor& x) {
  return x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// The shape of the problem after flattening the leading dims into one batch dim N.
struct Geometry {
  int64_t N, Lq, Lk, d, dv, off;  // off = Lk − Lq: the causal diagonal's offset
  bool causal;
  double scale;
  int64_t bq, bk;
  // Keys [0, end) can be visible to the query block starting at i0 with nq rows.
  int64_t key_end(int64_t i0, int64_t nq) const {
    return causal ? std::max<int64_t>(0, std::min(Lk, i0 + nq + off)) : Lk;
  }
};

// Scaled logits of one tile with every hidden key at −inf: causal (key j0+c hidden from query i0+r
// iff c − r > i0 + off − j0) and key padding (pad: N×Lk bool or undefined).
Tensor tile_logits(const Geometry& g, const Tensor& qb, const Tensor& kb, int64_t i0, int64_t j0, const Tensor& pad) {
  const int64_t nq = qb.size(1), nk = kb.size(1);
  Tensor s = torch::bmm(qb, kb.transpose(1, 2));
  if (g.scale != 1.0) s.mul_(g.scale);
  if (g.causal && j0 + nk - 1 > i0 + g.off) {
    Tensor hide = torch::ones({nq, nk}, s.options().dtype(torch::kBool)).triu(i0 + g.off - j0 + 1);
    s.masked_fill_(hide, -kInf);
  }
  if (pad.defined()) s.masked_fill_(pad.narrow(1, j0, nk).unsqueeze(1), -kInf);
  return s;
}

// The fused CPU rows (core/cpu/softmax_rows.h) take a query block whose visible keys fit one tile:
// fp32 on the CPU, no key padding. The MEGA layer's chunks always do (block_k = chunk).
bool fused_tile(const Geometry& g, const Tensor& q, const Tensor& pad, int64_t kend) {
  return q.is_cpu() && q.scalar_type() == torch::kFloat32 && !pad.defined() && kend > 0 && kend <= g.bk;
}

cpu::TileRows tile_rows(const Geometry& g, int64_t i0, int64_t nq, int64_t nk) {
  return cpu::TileRows{g.N, nq, nk, g.causal, i0 + g.off + 1, g.Lq};
}

struct BlockedAttentionFunction : public torch::autograd::Function<BlockedAttentionFunction> {
  // q: N×Lq×d, k: N×Lk×d, v: N×Lk×dv (contiguous); pad: N×Lk bool or undefined.
  // (An optional, not a plain Tensor: a Function's tensor inputs must be defined.)
  static Tensor forward(AutogradContext* ctx, const Tensor& q, const Tensor& k, const Tensor& v,
                        const c10::optional<Tensor>& pad_opt, bool causal, double scale, int64_t bq, int64_t bk,
                        bool silu_v) {
    const Tensor pad = pad_opt.has_value() ? *pad_opt : Tensor();
    const Geometry g{q.size(0), q.size(1), k.size(1), q.size(2), v.size(2), k.size(1) - q.size(1),
                     causal, scale, bq, bk};
    const auto ad = blocked_acc_dtype(q);
    Tensor qa = q.to(ad), ka = k.to(ad), va = silu_v ? torch::silu(v.to(ad)) : v.to(ad);
    Tensor out = torch::empty({g.N, g.Lq, g.dv}, qa.options());
    Tensor lse = torch::empty({g.N, g.Lq}, qa.options());
    for (int64_t i0 = 0; i0 < g.Lq; i0 += g.bq) {
      const int64_t nq = std::min(g.bq, g.Lq - i0), kend = g.key_end(i0, nq);
      Tensor qb = qa.narrow(1, i0, nq);
      if (fused_tile(g, qa, pad, kend)) {  // one tile: its exact softmax, in place, then P·V
        Tensor p = torch::bmm(qb, ka.narrow(1, 0, kend).transpose(1, 2));
        if (g.scale != 1.0) p.mul_(g.scale);
        cpu::tile_softmax(p.data_ptr<float>(), tile_rows(g, i0, nq, kend), lse.data_ptr<float>() + i0);
        out.narrow(1, i0, nq).copy_(torch::bmm(p, va.narrow(1, 0, kend)));
        continue;
      }
      Tensor m, m_safe, l, acc;  // running maximum (and 0 where still −inf), sum of exp(s − m), output sum
      if (kend == 0) {
        m_safe = torch::zeros({g.N, nq}, qa.options());
        l = torch::zeros({g.N, nq}, qa.options());
        acc = torch::zeros({g.N, nq, g.dv}, qa.options());
      }
      for (int64_t j0 = 0; j0 < kend; j0 += g.bk) {
        const int64_t nk = std::min(g.bk, kend - j0);
        Tensor p = tile_logits(g, qb, ka.narrow(1, j0, nk), i0, j0, pad);
        Tensor tile_max = std::get<0>(p.max(-1));
        Tensor m_new = j0 == 0 ? tile_max : torch::maximum(m, tile_max);
        // A row that has seen only hidden keys keeps m = −inf; subtract 0 there (its p is 0).
        m_safe = m_new.masked_fill(m_new == -kInf, 0.0);
        p.sub_(m_safe.unsqueeze(-1)).exp_();
        if (j0 == 0) {  // the first tile needs no rescaling
          l = p.sum(-1);
          acc = torch::bmm(p, va.narrow(1, j0, nk));
        } else {
          Tensor corr = (m - m_safe).exp_();  // rescales what was accumulated under the old maximum
          l.mul_(corr).add_(p.sum(-1));
          acc.mul_(corr.unsqueeze(-1)).baddbmm_(p, va.narrow(1, j0, nk));
        }
        m = m_new;
      }
      Tensor dead = l == 0;  // no visible key: output 0; lse = +inf makes every recomputed p = 0
      out.narrow(1, i0, nq).copy_(acc / l.masked_fill(dead, 1.0).unsqueeze(-1));
      lse.narrow(1, i0, nq).copy_((m_safe + l.log()).masked_fill_(dead, kInf));
    }
    Tensor result = out.to(v.scalar_type());
    ctx->save_for_backward({q, k, v, pad, result, lse});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["bq"] = bq;
    ctx->saved_data["bk"] = bk;
    ctx->saved_data["silu_v"] = silu_v;
    return result;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &q = saved[0], &k = saved[1], &v = saved[2], &pad = saved[3], &out = saved[4], &lse = saved[5];
    const Geometry g{q.size(0), q.size(1), k.size(1), q.size(2), v.size(2), k.size(1) - q.size(1),
                     ctx->saved_data["causal"].toBool(), ctx->saved_data["scale"].toDouble(),
                     ctx->saved_data["bq"].toInt(), ctx->saved_data["bk"].toInt()};
    const auto ad = blocked_acc_dtype(q);
    const bool silu_v = ctx->saved_data["silu_v"].toBool();
    Tensor qa = q.to(ad), ka = k.to(ad), va = silu_v ? torch::silu(v.to(ad)) : v.to(ad);
    Tensor go = grads[0].to(ad).contiguous();
    // dsoftmax: ds = p ⊙ (dp − Σ_j p_j dp_j) with Σ_j p_j dp_j = rowsum(dO ⊙ O).
    Tensor delta = (go * out.to(ad)).sum(-1);  // N×Lq
    Tensor dq = torch::zeros_like(qa), dk = torch::zeros_like(ka), dv = torch::zeros_like(va);
    for (int64_t i0 = 0; i0 < g.Lq; i0 += g.bq) {
      const int64_t nq = std::min(g.bq, g.Lq - i0), kend = g.key_end(i0, nq);
      Tensor qb = qa.narrow(1, i0, nq), gob = go.narrow(1, i0, nq);
      Tensor lse_b = lse.narrow(1, i0, nq).unsqueeze(-1), delta_b = delta.narrow(1, i0, nq).unsqueeze(-1);
      Tensor dqb = dq.narrow(1, i0, nq);
      if (fused_tile(g, qa, pad, kend)) {
        Tensor kb = ka.narrow(1, 0, kend), vb = va.narrow(1, 0, kend);
        Tensor p = torch::bmm(qb, kb.transpose(1, 2));
        if (g.scale != 1.0) p.mul_(g.scale);
        const cpu::TileRows rows = tile_rows(g, i0, nq, kend);
        cpu::tile_probabilities(p.data_ptr<float>(), rows, lse.data_ptr<float>() + i0);
        dv.narrow(1, 0, kend).baddbmm_(p.transpose(1, 2), gob);
        Tensor ds = torch::bmm(gob, vb.transpose(1, 2));
        cpu::tile_softmax_backward(p.data_ptr<float>(), ds.data_ptr<float>(), rows, delta.data_ptr<float>() + i0);
        if (g.scale != 1.0) ds.mul_(g.scale);
        dqb.baddbmm_(ds, kb);
        dk.narrow(1, 0, kend).baddbmm_(ds.transpose(1, 2), qb);
        continue;
      }
      for (int64_t j0 = 0; j0 < kend; j0 += g.bk) {
        const int64_t nk = std::min(g.bk, kend - j0);
        Tensor kb = ka.narrow(1, j0, nk), vb = va.narrow(1, j0, nk);
        Tensor p = tile_logits(g, qb, kb, i0, j0, pad).sub_(lse_b).exp_();  // the forward's probabilities
        dv.narrow(1, j0, nk).baddbmm_(p.transpose(1, 2), gob);
        Tensor ds = torch::bmm(gob, vb.transpose(1, 2)).sub_(delta_b).mul_(p);
        if (g.scale != 1.0) ds.mul_(g.scale);
        dqb.baddbmm_(ds, kb);
        dk.narrow(1, j0, nk).baddbmm_(ds.transpose(1, 2), qb);
      }
    }
    if (silu_v) {
      va = Tensor();
      dv = torch::silu_backward(dv, v.to(ad));
    }
    return {dq.to(q.scalar_type()), dk.to(k.scalar_type()), dv.to(v.scalar_type()), Tensor(), Tensor(), Tensor(),
            Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

Tensor blocked_attention(const Tensor& q, const Tensor& k, const Tensor& v, const BlockedAttentionOptions& o,
                         const Tensor& key_padding) {
  TORCH_CHECK(q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim(),
              "blocked_attention: q, k, v must have the same number of dims (…×L×d), got ", q.sizes(), ", ",
              k.sizes(), ", ", v.sizes());
  const int64_t nd = q.dim();
  TORCH_CHECK(q.size(-1) == k.size(-1) && k.size(-2) == v.size(-2) &&
                  q.sizes().slice(0, nd - 2) == k.sizes().slice(0, nd - 2) &&
                  q.sizes().slice(0, nd - 2) == v.sizes().slice(0, nd - 2),
              "blocked_attention: expected q …×Lq×d, k …×Lk×d, v …×Lk×dv with equal leading dims, got ", q.sizes(),
              ", ", k.sizes(), ", ", v.sizes());
  TORCH_CHECK(o.block_q >= 1 && o.block_k >= 1, "blocked_attention: block sizes must be >= 1");
  TORCH_CHECK(!o.causal || k.size(-2) >= q.size(-2),
              "blocked_attention: causal attention needs at least as many keys as queries, got ", q.size(-2), " and ",
              k.size(-2));
  const auto lead = q.sizes().slice(0, nd - 2).vec();
  const int64_t Lq = q.size(-2), Lk = k.size(-2);
  auto flat = [&](const Tensor& t) { return t.reshape({-1, t.size(-2), t.size(-1)}).contiguous(); };
  Tensor pad;
  if (key_padding.defined()) {
    TORCH_CHECK(key_padding.scalar_type() == torch::kBool && key_padding.dim() == nd - 1 &&
                    key_padding.size(-1) == Lk,
                "blocked_attention: key_padding must be a bool tensor …×Lk (", Lk, " keys), got ",
                key_padding.scalar_type(), " ", key_padding.sizes());
    std::vector<int64_t> shape = lead;
    shape.push_back(Lk);
    pad = key_padding.expand(shape).reshape({-1, Lk}).contiguous();
  }
  c10::optional<Tensor> pad_opt;
  if (pad.defined()) pad_opt = pad;
  Tensor out = BlockedAttentionFunction::apply(flat(q), flat(k), flat(v), pad_opt, o.causal, o.scale,
                                               std::min(o.block_q, std::max<int64_t>(1, Lq)),
                                               std::min(o.block_k, std::max<int64_t>(1, Lk)), o.silu_v);
  std::vector<int64_t> shape = lead;
  shape.push_back(Lq);
  shape.push_back(v.size(-1));
  return out.view(shape);
}

}  // namespace mgl::ops
