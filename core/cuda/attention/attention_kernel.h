// IO-aware chunked attention (spec §3.4, issue 11): forward and backward CUDA kernels that never
// materialise the probability matrix (FlashAttention-style online softmax; the backward recomputes
// P from the saved log-sum-exp). CUDA-free API over device pointers; instantiated for float and
// bf16 in core/cuda/attention_kernel_{f32,bf16}.cu. Chunk geometry and masking rules:
// core/cuda/attention_math.h.
#pragma once
#include <cstdint>

namespace mgl::cuda {

// bf16 storage as seen by callers (bit-compatible with at::BFloat16 and __nv_bfloat16).
struct bf16 {
  uint16_t bits;
};

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

// Null when the shape is supported, else why not (checked by the glue before launching).
const char* attention_shape_error(const AttentionShape& s);

// The launchers return null on success, else the CUDA error string of the failed launch.
template <typename T>
const char* attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, const uint8_t* key_padding, T* o,
                       float* lse, void* stream);

// delta: B×H×Lq fp32 workspace (Σ dO·O per query). dq, dk, dv written (not accumulated).
template <typename T>
const char* attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const uint8_t* key_padding,
                        const T* o, const T* d_o, const float* lse, float* delta, T* dq, T* dk, T* dv, void* stream);

}  // namespace mgl::cuda
