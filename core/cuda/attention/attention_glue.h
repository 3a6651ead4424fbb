// Torch-facing glue of the IO-aware chunked attention kernels (attention.h):
// autograd Functions over q, k, v. Compiled only against a CUDA LibTorch (MEGALODON_WITH_CUDA_GLUE).
#pragma once
#include <torch/torch.h>

#include <string>

namespace mgl::cuda {

// Whether the kernel takes these tensors for chunks of chunk_q queries and chunk_k keys; when
// not, `why` says what it lacks. Taken: q, k, v on one CUDA device, fp32 or bf16 (q and k are
// cast to v's dtype), and the shape rules of kernels::attention_unsupported (head dim ≤ 256,
// B·H ≤ 65535, as many key chunks as query chunks, causal chunks with at least as many keys as
// queries). Callers under `auto` fall back to the reference path when false.
bool attention_kernel_supports(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t chunk_q,
                               int64_t chunk_k, bool causal, std::string* why = nullptr);

// Same contract as ops::chunked_attention with dropout 0 (the kernel has no dropout): q, k
// B×L×H×d, v B×L×H×dv, chunk-local block-diagonal attention, causal or not, key_padding_mask B×L
// bool (true = padded) or undefined. q and k are cast to v's dtype; the output has v's dtype.
// Differentiable in q, k, v (backward by the kernel, recomputing P from the saved log-sum-exp).
torch::Tensor chunked_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     int64_t chunk, bool causal, double scale,
                                     const torch::Tensor& key_padding_mask = {});

// Same contract as ops::cached_attention with dropout 0: Lq new queries on Lk ≥ Lq keys whose
// first Lk − Lq are a cache (bottom-right aligned causal mask), e.g. the single-token decode step
// on the chunk-local KV cache.
torch::Tensor cached_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    double scale);

}  // namespace mgl::cuda
