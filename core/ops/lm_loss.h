// The language-model head and its loss over slices of the sequence (issue 22): the negative
// log-likelihood of log softmax(h Wᵀ) at the targets, computed slice by slice of rows so that the
// B×L×V logits and their gradient never exist whole. The forward keeps only h, W, the targets and
// one log-sum-exp per row; the backward recomputes each slice's logits. At V = 8192 this replaces
// 3 × 32 KiB per token (logits, log-probabilities, their gradient) by one slice's tile.
#pragma once
#include <torch/torch.h>

namespace mgl::ops {

// h: …×D features; weight: V×D (the head, no bias); targets: … int64 (entries < 0 are ignored and
// give 0). Returns the per-position NLL with targets' shape, in fp32 (fp64 when h or weight is
// fp64), equal to −log_softmax(linear(h, weight).to(fp32)).gather(targets). The matrix products
// run in the dtype the head would use: bf16 under CUDA bf16 autocast, else h's and weight's common
// dtype. rows_per_slice ≤ 0 picks about 4M logits per slice. Differentiable in h and weight (custom
// backward); a target ≥ V is an error naming it.
//
// On the CPU in fp32 the softmax rows run in fused kernels (core/cpu/softmax_rows.h), and with grad
// mode on, the forward also computes the gradients for an incoming gradient of 1 per counted row
// while each slice's logits exist; the backward rescales them (dW only when the incoming gradient
// is the same on every counted row, as for a sum or mean; else it recomputes the logits). That
// keeps R×D more floats and saves a quarter of the head's matmul FLOPs. plain = true takes the
// reference path instead: LibTorch expressions, logits recomputed in the backward.
torch::Tensor sliced_linear_nll(const torch::Tensor& h, const torch::Tensor& weight, const torch::Tensor& targets,
                                int64_t rows_per_slice = 0, bool plain = false);

}  // namespace mgl::ops
