// Packed documents with state reset (issue 25): a B×L batch row may hold the end of one document
// and the starts of others, and each document must begin afresh, exactly as if it were run alone:
//   - CEMA: the hidden state is zero at a document's first token (spec §1.3 with h_{s−1} := 0);
//   - timestep norm: the statistics restart from the prior (§2.1 with n, μ, σ² := the prior);
//   - attention: a token sees only tokens of its own document in its chunk, and the chunks are
//     re-anchored at the document start (chunk m of a document = its tokens [mC, (m+1)C)), so the
//     attention windows and the chunk-local RoPE positions are those of the document alone;
//   - streaming: the carried state (statistics, hidden state, KV cache) crosses chunk boundaries as
//     usual but never a document start.
//
// A document start is a flag per token (B×L bool). One call's flags are turned once per forward into
// a DocumentPlan (host-side index work, shared by every layer), which the ops below consume.
//
// The reset is exact, not a mask on the unreset outputs:
//   - CEMA: "splitting the convolution at the boundaries": every segment between two starts is an
//     independent causal convolution. Segments are gathered into batches by their FFT length (the
//     next power of two of their length), so one call runs at most log2(L) + 1 FFT convolutions
//     whose total length is < 2·B·L: at most twice the FFT work of the unsplit convolution, and the
//     same FFT size a document run alone would use. The carried state enters only the first segment
//     of a row (its closed-form bias masked to that segment); the state after the call is the EMA
//     hidden state of the last segment alone.
//   - timestep norm: segmented prefix sums (cumulative sums minus their value at the segment start,
//     in fp64 around a per-segment shift), seeded with the prior at every start: O(B·L·D) as before.
//   - attention: a banded form of chunked attention: the queries of each C-block attend the keys of
//     their own and the previous block (no re-anchored chunk is longer than C, so none straddles
//     more than two blocks) under the mask "same attention segment, causal": twice the logits of
//     plain chunked attention. The Transformer baseline (no chunks) uses its dense causal attention
//     with the same-document mask.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "core/ops/timestep_norm.h"

namespace mgl::ops {

struct DocumentPlanOptions {
  // Attention chunk C of a Megalodon model; 0 for unchunked (full causal) attention.
  int64_t chunk = 0;
  // true: RoPE positions (and, with chunks, the chunk grid) restart at each document start.
  // false: they continue the packed stream's — with chunks, the stream's chunk grid is kept and a
  // document starting inside a chunk attends only to its own tokens of that chunk; without chunks,
  // positions are the stream positions (attention logits are the same either way: RoPE is relative).
  bool restart_positions = true;
  // Streaming: keys already cached in front of this call (the same count for every row), and of
  // those the right-most `cached_valid[b]` that row b may still attend (undefined: all of them).
  int64_t cached = 0;
  torch::Tensor cached_valid;
  int64_t stream_position = 0;  // tokens the stream consumed before this call
};

struct DocumentPlan {
  int64_t batch = 0, length = 0;
  torch::Tensor starts;  // B×L bool (the flags the plan was made from)

  // ---- segments (the documents cut by this call), for CEMA and the timestep norm ----
  torch::Tensor segment_start;   // B×L int64: index of the first token of t's segment
  torch::Tensor continues;       // B×L bool: t lies in the row's first segment and it continues the carried state
  torch::Tensor last_segment;    // B×L bool: t lies in the row's last segment
  torch::Tensor last_continues;  // B bool: the row has one segment and it continues the carried state
  // Segments gathered by FFT length: `index` holds count·length flat indices into the B·L tokens
  // (row-major); the padding of a segment shorter than `length` points at B·L.
  struct Bucket {
    int64_t length = 0;
    torch::Tensor index;
  };
  std::vector<Bucket> buckets;

  // ---- attention over [cache, this call] ----
  int64_t chunk = 0;          // the options' chunk
  int64_t cached = 0;         // keys in front of this call's
  torch::Tensor key_segment;  // B×(cached+L) int64: attention segment of every key (−1: never attended)
  torch::Tensor positions;    // B×L int64: RoPE positions of this call's tokens
  int64_t keep = 0;           // keys to keep in the cache after the call (the last `keep`)
  torch::Tensor keep_valid;   // B int64: of those, how many (right-most) each row may still attend
};

// starts: B×L bool (any device); a flag at t = 0 drops the carried state for that row.
DocumentPlan plan_documents(const torch::Tensor& starts, const DocumentPlanOptions& options);

// The causal convolution y[b, :, t] = Σ_{j ≤ t − s(t)} k[:, j] x[b, :, t − j] restarted at every
// segment start s(t) of the plan (x: B×D×L, k: D×L_k with L_k ≥ the longest segment; fp32, or fp64
// for fp64 inputs, as causal_fftconv). Differentiable.
torch::Tensor segmented_causal_fftconv(const torch::Tensor& x, const torch::Tensor& k, const DocumentPlan& plan);

// Timestep norm (§2.1) whose statistics restart from `prior` at every document start: tokens of a
// row's first segment continue from `prev` unless the row is flagged at t = 0. No padding mask
// (packed language-model rows have none). The state returned is that after the last token.
TimestepNormOutput timestep_norm_segmented(const torch::Tensor& x, int64_t num_groups, const torch::Tensor& weight,
                                           const torch::Tensor& bias, const NormState& prev, const NormState& prior,
                                           const DocumentPlan& plan, double eps);

// apply_rope (interleaved pairs, §3.3) with a position per row and token: x B×L×H×d, positions B×L.
torch::Tensor apply_rope_rows(const torch::Tensor& x, const torch::Tensor& positions, double base);

// Causal attention of this call's queries q (B×L×H×d) on the keys k, v (B×S×H×d, S = plan.cached +
// L, the cached keys first) restricted to the same attention segment (plan.key_segment). chunk > 0:
// the banded chunked form (every segment at most `chunk` long); 0: dense. Probabilities and
// dropout as ops::attention. Returns B×L×H×dv.
torch::Tensor segment_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const DocumentPlan& plan, double scale, double dropout, bool training);

}  // namespace mgl::ops
