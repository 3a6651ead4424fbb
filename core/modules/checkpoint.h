// Activation checkpointing (issue 22; `model.checkpoint_activations`): run a block so that only its
// input is kept for the backward pass, and run it again there to rebuild its graph. Peak activation
// memory becomes one block's activations plus every block's input, for one more forward per block.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace mgl {

// y = fn(x), with fn's intermediate activations freed after the forward pass. In the backward pass fn
// is run again on x under the random-number-generator state (CPU, and x's CUDA device) and the CUDA
// autocast state of the forward pass, so dropout masks and dtypes are the same and the gradients
// equal those of a plain fn(x). `params`: every tensor fn reads that needs a gradient (the module's
// parameters); their gradients are accumulated as usual. fn must not change state outside its result
// (no streaming state, no collectives). When gradients are off (eval, NoGradGuard) this is fn(x).
torch::Tensor checkpoint(const std::function<torch::Tensor(const torch::Tensor&)>& fn, const torch::Tensor& x,
                         const std::vector<torch::Tensor>& params);

}  // namespace mgl
