// Memory-efficient softmax attention in plain LibTorch (issue 22): query blocks against key blocks
// with a running maximum and sum (the online softmax of Milakov & Gimelshein 2018, as in
// FlashAttention), and a backward that recomputes each block's probabilities from the saved
// log-sum-exp instead of keeping them. Nothing of size Lq×Lk is ever stored: the forward saves q,
// k, v, the output and one log-sum-exp per query; temporaries are one (query block × key block)
// tile per batch row.
//
// It is the attention of the Transformer baseline on LibTorch 1.13 (where SDPA does not exist) and
// the chunked attention of the MEGA layer whenever no attention dropout is applied. The explicit
// softmax (ops::attention) is its oracle; the tests check both, causal and not, in fp64, forward
// and gradients (finite differences).
#pragma once
#include <torch/torch.h>

namespace mgl::ops {

struct BlockedAttentionOptions {
  // Causal: query i (of Lq) sees key j (of Lk) iff j ≤ i + (Lk − Lq), i.e. bottom-right aligned,
  // which for Lq = Lk is the usual lower triangle and for a KV cache in front is what decoding needs.
  bool causal = false;
  double scale = 1.0;
  // Tile sizes. Larger tiles mean fewer, larger matrix products (faster on the CPU) and larger
  // temporaries (block_q × block_k per batch row).
  int64_t block_q = 256;
  int64_t block_k = 1024;
  // v is a pre-activation: attend over silu(v). The forward keeps v alone and the backward
  // recomputes silu(v), so the activated values are never stored (the MEGA layer's value path,
  // v = silu(W_v x): one E-wide tensor per token less per layer). The gradient returned for v is
  // then the pre-activation's.
  bool silu_v = false;
};

// softmax(scale·q kᵀ, masked) v over the last two dims. q: …×Lq×d, k: …×Lk×d, v: …×Lk×dv with the
// same leading dims. key_padding: bool, true = this key may not be attended, of shape …×Lk (the
// leading dims may be 1 where they broadcast), or undefined. A query with no visible key outputs
// zeros (and gets zero gradients), as ops::attention does. Computed in fp32 (fp64 for fp64 inputs),
// returned in v's dtype. Differentiable (custom backward; no attention dropout).
torch::Tensor blocked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const BlockedAttentionOptions& options,
                                const torch::Tensor& key_padding = {});

}  // namespace mgl::ops
