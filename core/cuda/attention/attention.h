// IO-aware chunked attention (spec §3.4, issue 11): forward and backward CUDA kernels that never
// materialise the probability matrix (FlashAttention-style online softmax; the backward recomputes
// P from the saved log-sum-exp). CUDA-free API over device pointers; instantiated for float and
// bf16 in attention_{f32,bf16}.cu. Chunk geometry and masking rules: attention_math.h.
#pragma once
#include <cstdint>

#include "core/cuda/attention/attention_math.h"
#include "core/cuda/common/bf16.h"

namespace mgl::cuda {

// Shapes. q: B×Lq×H×dk, k: B×Lk×H×dk, v: B×Lk×H×dv, o: B×Lq×H×dv, all contiguous.
// Chunk m pairs queries [m·chunk_q, …) with keys [m·chunk_k, …); both sides must have the same
// number of chunks. Causal: chunk-local key c is visible from query r when c ≤ r + (klen − qlen).
// key_padding: B×Lk bytes (nonzero = padded key, never attended) or null.
// lse: B×H×Lq fp32 (log-sum-exp of the scaled logits per query; +inf for a row with no visible
// key, whose output is 0).
struct AttentionShape {
  int64_t B = 0, H = 0, Lq = 0, Lk = 0, chunk_q = 0, chunk_k = 0, dk = 0, dv = 0;
  bool causal = true;
  float scale = 1.0f;
};

// Largest supported dk (per-thread accumulators of the backward are sized at compile time); dv is
// unrestricted (tiled over the grid).
constexpr int64_t kAttentionMaxHeadDim = 256;

// Null when the kernels take this shape, else why not. The glue and
// mgl::kernels::attention_unsupported check it before launching; the launchers assume it.
inline const char* attention_shape_error(const AttentionShape& s) {
  if (s.B < 0 || s.H < 1 || s.Lq < 0 || s.Lk < 0 || s.dk < 1 || s.dv < 1) return "negative or empty dimensions";
  if (s.chunk_q < 1 || s.chunk_k < 1) return "chunk sizes must be >= 1";
  if (s.dk > kAttentionMaxHeadDim) return "the head dim of q and k must be <= 256";
  if (s.B * s.H > 65535) return "B·H must be <= 65535 (the grid's y dimension)";
  const int64_t nc = (s.Lq + s.chunk_q - 1) / s.chunk_q;
  if (nc != (s.Lk + s.chunk_k - 1) / s.chunk_k) return "queries and keys must split into the same number of chunks";
  const int64_t cq = s.chunk_q < s.Lq ? s.chunk_q : s.Lq, ck = s.chunk_k < s.Lk ? s.chunk_k : s.Lk;
  if (nc * ((cq + attention::kTile - 1) / attention::kTile) > 2147483647 ||
      nc * ((ck + attention::kTile - 1) / attention::kTile) > 2147483647)
    return "too many query or key tiles for the grid's x dimension";
  if (s.causal) {
    for (int64_t m = 0; m < nc; m += (nc > 1 ? nc - 1 : 1)) {  // first and last chunk suffice
      const auto sp = attention::chunk_span(m, s.Lq, s.Lk, s.chunk_q, s.chunk_k);
      if (sp.klen < sp.qlen) return "causal attention needs at least as many keys as queries in every chunk";
    }
  }
  return nullptr;
}

// The launchers return null on success, else the CUDA error string of the failed launch.
template <typename T>
const char* attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, const uint8_t* key_padding, T* o,
                       float* lse, void* stream);

// delta: B×H×Lq fp32 workspace (Σ dO·O per query). dq, dk, dv written (not accumulated).
template <typename T>
const char* attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const uint8_t* key_padding,
                        const T* o, const T* d_o, const float* lse, float* delta, T* dq, T* dk, T* dv, void* stream);

}  // namespace mgl::cuda
