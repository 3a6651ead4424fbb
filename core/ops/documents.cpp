#include "core/ops/documents.h"

#include <algorithm>
#include <map>

#include "core/ops/attention.h"
#include "core/ops/cema.h"

namespace mgl::ops {

using torch::Tensor;

DocumentPlan plan_documents(const Tensor& starts, const DocumentPlanOptions& o) {
  TORCH_CHECK(starts.dim() == 2 && starts.scalar_type() == torch::kBool && starts.size(1) >= 1,
              "document starts must be a B×L bool tensor with L >= 1, got ", starts.sizes(), " ", starts.scalar_type());
  TORCH_CHECK(o.chunk >= 0 && o.cached >= 0, "plan_documents: chunk and cached must be >= 0");
  const auto device = starts.device();
  const Tensor flags = starts.to(torch::kCPU).contiguous();
  const int64_t B = flags.size(0), L = flags.size(1), S = o.cached + L, C = o.chunk;
  std::vector<int64_t> valid(static_cast<size_t>(B), o.cached);
  if (o.cached_valid.defined()) {
    TORCH_CHECK(o.cached_valid.dim() == 1 && o.cached_valid.size(0) == B, "plan_documents: cached_valid must have B = ", B,
                " entries, got ", o.cached_valid.sizes());
    const Tensor cv = o.cached_valid.to(torch::kCPU, torch::kInt64).contiguous();
    for (int64_t b = 0; b < B; ++b) {
      valid[b] = cv.data_ptr<int64_t>()[b];
      TORCH_CHECK(valid[b] >= 0 && valid[b] <= o.cached, "plan_documents: row ", b, " has ", valid[b],
                  " valid cached keys of ", o.cached);
    }
  }

  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto boolean = torch::TensorOptions().dtype(torch::kBool);
  Tensor seg_start = torch::empty({B, L}, i64), cont = torch::empty({B, L}, boolean);
  Tensor last = torch::empty({B, L}, boolean), last_cont = torch::empty({B}, boolean);
  Tensor key_seg = torch::empty({B, S}, i64), pos = torch::empty({B, L}, i64), keep_valid = torch::empty({B}, i64);
  const bool* f = flags.data_ptr<bool>();
  int64_t *ss = seg_start.data_ptr<int64_t>(), *ks = key_seg.data_ptr<int64_t>(), *ps = pos.data_ptr<int64_t>();
  bool *cs = cont.data_ptr<bool>(), *ls = last.data_ptr<bool>();
  std::map<int64_t, std::vector<int64_t>> buckets;  // FFT length → flat token indices (B·L = padding)
  int64_t keep = 0;
  for (int64_t b = 0; b < B; ++b) {
    const bool* fb = f + b * L;
    // Segments: [0, first start > 0), …, [last start, L).
    std::vector<int64_t> bounds{0};
    for (int64_t t = 1; t < L; ++t)
      if (fb[t]) bounds.push_back(t);
    bounds.push_back(L);
    const size_t segments = bounds.size() - 1;
    for (size_t k = 0; k < segments; ++k) {
      const int64_t s = bounds[k], len = bounds[k + 1] - s;
      int64_t n = 1;
      while (n < len) n <<= 1;
      auto& idx = buckets[n];
      for (int64_t t = 0; t < n; ++t) idx.push_back(t < len ? b * L + s + t : B * L);
      for (int64_t t = s; t < s + len; ++t) {
        ss[b * L + t] = s;
        cs[b * L + t] = k == 0 && !fb[0];
        ls[b * L + t] = k + 1 == segments;
      }
    }
    last_cont.data_ptr<bool>()[b] = segments == 1 && !fb[0];

    // Attention segments over [cache, this call]. The valid cached keys are the start of the
    // current segment (id 0); a new segment begins at a document start and, with chunks, where the
    // chunk grid (re-anchored at the document start, or the stream's) begins a chunk.
    const int64_t cb = valid[b];
    for (int64_t j = 0; j < o.cached; ++j) ks[b * S + j] = j >= o.cached - cb ? 0 : -1;
    int64_t sid = 0, r = cb - 1, seg_len = cb;  // r: tokens since the document (or stream) start, mod nothing
    for (int64_t t = 0; t < L; ++t) {
      const int64_t stream = o.stream_position + t;
      r = fb[t] ? 0 : r + 1;
      bool fresh = fb[t];
      if (C > 0) fresh = fresh || (o.restart_positions ? r % C == 0 : stream % C == 0);
      if (fresh) ++sid, seg_len = 0;
      ++seg_len;
      ks[b * S + o.cached + t] = sid;
      ps[b * L + t] = C > 0 ? (o.restart_positions ? r % C : stream % C) : (o.restart_positions ? r : stream);
    }
    // The cache keeps the current segment unless the next token starts a new chunk anyway.
    const bool complete = C > 0 && (o.restart_positions ? (r + 1) % C == 0 : (o.stream_position + L) % C == 0);
    keep_valid.data_ptr<int64_t>()[b] = complete ? 0 : seg_len;
    keep = std::max(keep, complete ? int64_t{0} : seg_len);
  }

  DocumentPlan p;
  p.batch = B;
  p.length = L;
  p.starts = starts;
  p.segment_start = seg_start.to(device);
  p.continues = cont.to(device);
  p.last_segment = last.to(device);
  p.last_continues = last_cont.to(device);
  for (auto& [n, idx] : buckets) p.buckets.push_back({n, torch::tensor(idx, i64).to(device)});
  p.chunk = C;
  p.cached = o.cached;
  p.key_segment = key_seg.to(device);
  p.positions = pos.to(device);
  p.keep = keep;
  p.keep_valid = keep_valid.to(device);
  return p;
}

Tensor segmented_causal_fftconv(const Tensor& x, const Tensor& k, const DocumentPlan& plan) {
  TORCH_CHECK(x.dim() == 3 && x.size(0) == plan.batch && x.size(2) == plan.length,
              "segmented_causal_fftconv: x must be B×D×L = ", plan.batch, "×D×", plan.length, ", got ", x.sizes());
  TORCH_CHECK(k.dim() == 2 && k.size(0) == x.size(1), "segmented_causal_fftconv: k must be D×L_k, got ", k.sizes());
  const int64_t B = x.size(0), D = x.size(1), L = x.size(2);
  // Tokens as rows (B·L + one zero row that the segments' padding reads).
  Tensor rows = x.permute({0, 2, 1}).reshape({B * L, D});
  rows = torch::cat({rows, torch::zeros({1, D}, rows.options())}, 0);
  Tensor out = torch::zeros({B * L + 1, D}, rows.options());
  for (const auto& bucket : plan.buckets) {
    const int64_t n = bucket.length, count = bucket.index.numel() / n;
    Tensor segs = rows.index_select(0, bucket.index).view({count, n, D}).permute({0, 2, 1});  // count×D×n
    Tensor kn = k.size(1) >= n ? k.narrow(1, 0, n) : torch::constant_pad_nd(k, {0, n - k.size(1)});
    Tensor y = causal_fftconv(segs, kn);  // the FFT size of a length-n signal: that of each segment alone
    out = out.index_add(0, bucket.index, y.permute({0, 2, 1}).reshape({count * n, D}));
  }
  return out.narrow(0, 0, B * L).view({B, L, D}).permute({0, 2, 1});
}

TimestepNormOutput timestep_norm_segmented(const Tensor& x, int64_t G, const Tensor& weight, const Tensor& bias,
                                           const NormState& prev, const NormState& prior, const DocumentPlan& plan,
                                           double eps) {
  TORCH_CHECK(x.dim() == 3 && x.size(0) == plan.batch && x.size(1) == plan.length,
              "timestep_norm_segmented: x must be B×L×D = ", plan.batch, "×", plan.length, "×D, got ", x.sizes());
  TORCH_CHECK(G >= 1 && x.size(2) % G == 0, "timestep_norm_segmented: num_groups=", G, " must divide D=", x.size(2));
  TORCH_CHECK(prev.defined() && prior.defined(), "timestep_norm_segmented: needs the carried state and the prior");
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2), g = D / G;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(x.device());

  Tensor xg = x.to(torch::kFloat64).view({B, L, G, g});
  Tensor gm = xg.mean(-1);                              // B×L×G per-token group moments
  Tensor gv = (xg - gm.unsqueeze(-1)).pow(2).mean(-1);

  // Where each token's segment starts, and from which state: the carried one (the row's first
  // segment, unless flagged at t = 0) or the prior (every document start).
  Tensor cont = plan.continues.unsqueeze(-1);           // B×L×1
  Tensor n_base = torch::where(cont, prev.count.to(f64).view({B, 1, 1}), prior.count.to(f64).view({B, 1, 1}));
  Tensor mu_base = torch::where(cont, prev.mean.to(torch::kFloat64).unsqueeze(1), prior.mean.to(torch::kFloat64).unsqueeze(1));
  Tensor var_base = torch::where(cont, prev.var.to(torch::kFloat64).unsqueeze(1), prior.var.to(torch::kFloat64).unsqueeze(1));
  Tensor start = plan.segment_start.unsqueeze(-1).expand({B, L, G});

  // One shift per segment (the base mean when the base has weight, else the segment's first token
  // mean), so the segmented sums stay small; any constant gives the same maths.
  Tensor shift = torch::where(n_base > 0, mu_base, gm.gather(1, start)).detach();
  Tensor d1 = gm - shift, d2 = gv + d1.pow(2);
  Tensor c1 = d1.cumsum(1), c2 = d2.cumsum(1);
  // Σ over [segment start, t] = inclusive sum at t − exclusive sum at the start.
  Tensor s1_seg = c1 - (c1 - d1).gather(1, start);
  Tensor s2_seg = c2 - (c2 - d2).gather(1, start);
  Tensor cnt = (torch::arange(L, f64).view({1, L, 1}) - plan.segment_start.to(f64).unsqueeze(-1)) + 1.0;  // B×L×1
  Tensor n = n_base + cnt;
  Tensor s1 = n_base * (mu_base - shift) + s1_seg;
  Tensor s2 = n_base * (var_base + (mu_base - shift).pow(2)) + s2_seg;
  Tensor dmean = s1 / n;
  Tensor mean = shift + dmean;
  Tensor var = (s2 / n - dmean.pow(2)).clamp_min(0.0);  // B×L×G

  const auto sd = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  Tensor rstd = torch::rsqrt(var + eps).to(sd);
  Tensor y = ((x.to(sd).view({B, L, G, g}) - mean.to(sd).unsqueeze(-1)) * rstd.unsqueeze(-1)).view({B, L, D});
  y = y * weight.to(sd) + bias.to(sd);

  NormState out;
  out.count = n.select(1, L - 1).squeeze(-1).round().to(torch::kInt64);
  out.mean = mean.select(1, L - 1).to(sd);
  out.var = var.select(1, L - 1).to(sd);
  return {y.to(x.scalar_type()), out};
}

Tensor apply_rope_rows(const Tensor& x, const Tensor& positions, double base) {
  TORCH_CHECK(x.dim() == 4 && x.size(3) % 2 == 0, "apply_rope_rows: x must be B×L×H×d with d even, got ", x.sizes());
  TORCH_CHECK(positions.dim() == 2 && positions.size(0) == x.size(0) && positions.size(1) == x.size(1),
              "apply_rope_rows: need one position per row and token, got ", positions.sizes(), " for ", x.sizes());
  const auto ad = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  const int64_t B = x.size(0), L = x.size(1), d = x.size(3), half = d / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(x.device());
  // As apply_rope: inv_freq_i = base^(−2i/d), angles in fp64.
  Tensor inv_freq = torch::pow(base, torch::arange(0, d, 2, opts) / static_cast<double>(d)).reciprocal();
  Tensor ang = positions.to(torch::kFloat64).unsqueeze(-1) * inv_freq;  // B×L×d/2
  Tensor cos = ang.cos().to(ad).view({B, L, 1, half});
  Tensor sin = ang.sin().to(ad).view({B, L, 1, half});
  Tensor xp = x.to(ad).unflatten(3, {half, 2});
  Tensor re = xp.select(4, 0), im = xp.select(4, 1);
  return torch::stack({re * cos - im * sin, re * sin + im * cos}, 4).flatten(3).to(x.scalar_type());
}

Tensor segment_attention(const Tensor& q, const Tensor& k, const Tensor& v, const DocumentPlan& plan, double scale,
                         double dropout, bool training) {
  const int64_t B = q.size(0), L = q.size(1), H = q.size(2), S = plan.cached + L, C = plan.chunk;
  TORCH_CHECK(q.dim() == 4 && B == plan.batch && L == plan.length, "segment_attention: q must be B×L×H×d = ", plan.batch,
              "×", plan.length, "×H×d, got ", q.sizes());
  TORCH_CHECK(k.dim() == 4 && v.dim() == 4 && k.size(1) == S && v.size(1) == S && k.size(0) == B && v.size(0) == B,
              "segment_attention: k, v must be B×", S, "×H×d (the cache first), got ", k.sizes(), " and ", v.sizes());
  const auto bool_opts = torch::TensorOptions().dtype(torch::kBool).device(q.device());
  const Tensor& seg = plan.key_segment;  // B×S
  auto heads_first = [](const Tensor& t) { return t.permute({0, 2, 1, 3}); };

  if (C <= 0) {
    // Dense: query t (combined index cached + t) sees key j ≤ cached + t of its own segment.
    Tensor qseg = seg.narrow(1, plan.cached, L);
    Tensor allowed = (qseg.unsqueeze(-1) == seg.unsqueeze(1)) & (seg >= 0).unsqueeze(1);
    allowed = allowed & torch::ones({L, S}, bool_opts).tril(plan.cached);
    Tensor o = attention(heads_first(q), heads_first(k), heads_first(v), allowed.logical_not().unsqueeze(1), scale,
                         dropout, training);
    return heads_first(o);  // B×H×L×dv → B×L×H×dv
  }

  // Banded: the combined sequence (queries padded in front by the cache) in blocks of C; block m's
  // queries see keys of blocks m−1 and m, which hold every key of any segment they belong to.
  const int64_t M = (S + C - 1) / C, tail = M * C - S, d = q.size(3), dv = v.size(3);
  Tensor qc = torch::constant_pad_nd(q, {0, 0, 0, 0, plan.cached, tail});              // B×M·C×H×d
  Tensor qb = qc.view({B, M, C, H, d}).permute({0, 1, 3, 2, 4});                       // B×M×H×C×d
  auto windows = [&](const Tensor& t, int64_t width) {                                 // B×S×H×w → B×M×H×2C×w
    Tensor p = torch::constant_pad_nd(t, {0, 0, 0, 0, C, tail}).view({B, M + 1, C, H, width});
    return torch::cat({p.narrow(1, 0, M), p.narrow(1, 1, M)}, 2).permute({0, 1, 3, 2, 4});
  };
  Tensor kw = windows(k, d), vw = windows(v, dv);
  Tensor qs = torch::constant_pad_nd(seg, {0, tail}, -2).view({B, M, C});
  Tensor ksp = torch::constant_pad_nd(seg, {C, tail}, -1).view({B, M + 1, C});
  Tensor ks = torch::cat({ksp.narrow(1, 0, M), ksp.narrow(1, 1, M)}, 2);              // B×M×2C
  // Key j of the window sits at (m−1)·C + j, query i at m·C + i: causal is j ≤ i + C.
  Tensor causal = torch::ones({C, 2 * C}, bool_opts).tril(C);
  Tensor allowed = (qs.unsqueeze(-1) == ks.unsqueeze(-2)) & (ks >= 0).unsqueeze(-2) & causal;  // B×M×C×2C
  Tensor o = attention(qb, kw, vw, allowed.logical_not().unsqueeze(2), scale, dropout, training);  // B×M×H×C×dv
  o = o.permute({0, 1, 3, 2, 4}).reshape({B, M * C, H, dv});
  return o.narrow(1, plan.cached, L);
}

}  // namespace mgl::ops
