// Torch-facing glue of the IO-aware chunked attention kernels (attention.h):
// autograd Functions over q, k, v. Compiled only against a CUDA LibTorch (MEGALODON_WITH_CUDA_GLUE).
#pragma once
#include <torch/torch.h>

namespace mgl::cuda {

// Whether the kernel takes these tensors: CUDA, fp32 or bf16 (after casting q, k to v's dtype),
// q/k head dim ≤ 256. Callers under `auto` fall back to the reference path when false.
bool attention_kernel_supports(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

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
