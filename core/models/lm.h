// The interface shared by every causal language model (Megalodon and the Transformer baseline),
// so the trainer, evaluators and benchmarks treat them alike.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/models/state.h"

namespace mgl {

class CausalLMImpl : public torch::nn::Module {
 public:
  // tokens: B×L int64. Without a state: one stand-alone sequence. With a state: the next segment
  // of a stream; the state is read and replaced by the state after this segment (it keeps the
  // autograd graph: call detach on it between segments for truncated BPTT / evaluation).
  // Returns logits B×L×V in fp32. If layer_outputs is given, it receives each block's output.
  virtual torch::Tensor forward(const torch::Tensor& tokens, StreamState* state = nullptr,
                                std::vector<torch::Tensor>* layer_outputs = nullptr) = 0;
  // A fresh state (nothing consumed) for a batch of B streams.
  virtual std::unique_ptr<StreamState> make_state(int64_t batch) const = 0;
  virtual std::string name() const = 0;
  // Forward FLOPs per token of the matmuls (2·params-in-matmuls + attention at context L): used
  // for MFU and tokens/s comparisons.
  virtual double flops_per_token(int64_t context) const = 0;
};

using CausalLM = std::shared_ptr<CausalLMImpl>;

}  // namespace mgl
