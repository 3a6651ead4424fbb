// The interface shared by every causal language model (Megalodon and the Transformer baseline),
// so the trainer, evaluators and benchmarks treat them alike.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/models/state.h"

namespace mgl {

// Document boundaries inside packed rows (task.document_boundaries = "reset"; core/ops/documents.h):
// every document starts afresh — zero CEMA state, timestep-norm statistics from the prior, attention
// only within the document — as if it were run alone.
struct Documents {
  torch::Tensor starts;  // B×L bool: true at a document's first token; undefined: no boundaries
  // RoPE positions (and Megalodon's attention chunks) restart at each document start; false keeps
  // the packed stream's (see ops::DocumentPlanOptions::restart_positions).
  bool restart_positions = true;
  bool defined() const { return starts.defined(); }
};

class CausalLMImpl : public torch::nn::Module {
 public:
  // tokens: B×L int64. Without a state: one stand-alone sequence. With a state: the next segment
  // of a stream; the state is read and replaced by the state after this segment (it keeps the
  // autograd graph: call detach on it between segments for truncated BPTT / evaluation).
  // Returns logits B×L×V in fp32 (with an adaptive softmax: the log-probabilities). If layer_outputs is given, it receives each block's output.
  // documents: where documents start in the rows (a flag at t = 0 drops the carried state of that row).
  virtual torch::Tensor forward(const torch::Tensor& tokens, StreamState* state = nullptr,
                                std::vector<torch::Tensor>* layer_outputs = nullptr, const Documents& documents = {}) = 0;
  // Per-position negative log-likelihood (B×L, fp32; fp64 for an fp64 model) of `targets` (B×L
  // int64; entries < 0 are ignored and give 0) after `tokens`, from the same pass (and with the same
  // state handling) as forward. The default goes through forward's logits; Megalodon and the
  // Transformer never form the B×L×V logits here (the head's loss over slices of the rows, or the
  // adaptive softmax).
  virtual torch::Tensor nll(const torch::Tensor& tokens, const torch::Tensor& targets, StreamState* state = nullptr,
                            const Documents& documents = {}) {
    const torch::Tensor logits = forward(tokens, state, nullptr, documents);
    const torch::Tensor keep = targets >= 0;
    const torch::Tensor lp = torch::log_softmax(logits, -1);
    const torch::Tensor picked = lp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1);
    return torch::where(keep, -picked, torch::zeros_like(picked));
  }
  // The logits of the last position only (B×V), with the same state handling as forward: what
  // generation needs after a prefill, without the B×L×V tensor.
  virtual torch::Tensor last_logits(const torch::Tensor& tokens, StreamState* state = nullptr) {
    return forward(tokens, state).select(1, -1);
  }
  // A fresh state (nothing consumed) for a batch of B streams.
  virtual std::unique_ptr<StreamState> make_state(int64_t batch) const = 0;
  virtual std::string name() const = 0;
  // Forward FLOPs per token of the matmuls (2·params-in-matmuls + attention at context L): used
  // for MFU and tokens/s comparisons.
  virtual double flops_per_token(int64_t context) const = 0;
};

using CausalLM = std::shared_ptr<CausalLMImpl>;

}  // namespace mgl
