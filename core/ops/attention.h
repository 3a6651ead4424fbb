// Reference (LibTorch) attention ops: interleaved RoPE with chunk-local positions and
// block-diagonal chunked softmax attention (spec §3.3–§3.4).
#pragma once
#include <torch/torch.h>

namespace mgl::ops {

// Rotary embedding, LLaMA-style interleaved pairs (x_2i, x_2i+1) as one complex number rotated by
// pos·base^(−2i/d) (§3.3). x: B×L×H×d (d even); positions: L (int64). Computed in fp32 (fp64
// for fp64 inputs), returned in x's dtype.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& positions, double base);
// The same in two steps, so that q and k share one table: the complex rotations e^{i·pos·θ_j}
// (L×d/2, angles formed in fp64, stored as complex fp32 or fp64), and x rotated by them.
torch::Tensor rope_rotation(const torch::Tensor& positions, int64_t d, double base, torch::Dtype dtype);
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& rotation);

// softmax(scale·q kᵀ, masked) v over the last two dims. q: …×Lq×d, k: …×Lk×d, v: …×Lk×dv;
// mask: bool broadcastable to …×Lq×Lk, true = may NOT attend (undefined = none). Logits and
// softmax in fp32 (fp64 for fp64); a row with every key masked outputs zeros. Attention dropout
// is standard inverted dropout on the probabilities (the official non-fused path).
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask, double scale, double dropout, bool training);

// Block-diagonal chunked attention (§3.4): tokens attend only inside their chunk of `chunk`
// tokens (chunk m = [mC, (m+1)C)), causally or not. q, k: B×L×H×d, v: B×L×H×dv; L need not be
// a multiple of C (the last chunk is partial). key_padding_mask: B×L bool (true = padded key) or
// undefined. Returns B×L×H×dv. silu_v: v is a pre-activation and the values are silu(v); without
// attention dropout only v is kept for the backward (BlockedAttentionOptions::silu_v), and the
// gradient returned for v is the pre-activation's.
torch::Tensor chunked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                int64_t chunk, bool causal, double scale, double dropout, bool training,
                                const torch::Tensor& key_padding_mask = {}, bool silu_v = false);

// Causal attention of Lq new queries on Lk ≥ Lq keys of which the last Lq are the new tokens
// (a KV cache in front): row i sees keys j ≤ i + (Lk − Lq) (bottom-right aligned). B×L×H×d.
torch::Tensor cached_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               double scale, double dropout, bool training);

// ---- the fused alternatives (issue 11) -----------------------------------------------------------
// Which fused implementation `model.kernel_attention = fused | auto` runs on CUDA tensors:
//   kernel: our IO-aware CUDA kernel (core/cuda/attention/attention.h; no attention dropout);
//   sdpa:   LibTorch's scaled_dot_product_attention on the chunked view (LibTorch >= 2.0 only).
// Process-wide; the default is `kernel`, overridden by the environment variable
// MEGALODON_FUSED_ATTENTION=kernel|sdpa (read once) or set_fused_attention_backend (the bench).
enum class FusedAttentionBackend { kernel, sdpa };
FusedAttentionBackend fused_attention_backend();
void set_fused_attention_backend(FusedAttentionBackend b);
// Parses "kernel" or "sdpa" (std::invalid_argument otherwise).
FusedAttentionBackend parse_fused_attention_backend(const std::string& s);
const char* to_string(FusedAttentionBackend b);

// True when this LibTorch has scaled_dot_product_attention (>= 2.0).
bool sdpa_available();

// chunked_attention by scaled_dot_product_attention on the (B·nc)×H×C×d chunked view, same
// contract (dropout included: SDPA's dropout is the same inverted dropout on the probabilities).
// Throws when !sdpa_available().
torch::Tensor chunked_attention_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     int64_t chunk, bool causal, double scale, double dropout, bool training,
                                     const torch::Tensor& key_padding_mask = {});

}  // namespace mgl::ops
