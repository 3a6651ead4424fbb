// Normalised feed-forward network (NormalizedFeedForwardNetwork, spec §4.1).
#pragma once
#include <torch/torch.h>

#include "core/config.h"
#include "core/modules/norms.h"

namespace mgl {

class NormalizedFeedForwardNetworkImpl : public torch::nn::Module {
 public:
  NormalizedFeedForwardNetworkImpl(const MegalodonConfig& cfg, int64_t layer_id);
  void reset_parameters();
  // out = residual + [alpha ⊙] dropout(fc2(dropout_h(silu(fc1 u) [⊙ fc3 u]))), u = LayerNorm(x).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual);

  MegalodonConfig cfg;
  int64_t layer_id;
  double drop_path_rate = 0.0;  // stochastic depth of the FFN branch (set by MegaBlock)
  LayerNorm norm{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  torch::Tensor alpha;  // layer scale (rescale_nffn only), init 0.1·0.5^layer_id
};
TORCH_MODULE(NormalizedFeedForwardNetwork);

}  // namespace mgl
