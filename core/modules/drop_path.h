// Stochastic depth ("drop path"): a residual branch is zeroed for whole examples with probability
// p during training and the kept ones are scaled by 1/(1−p), so the expectation is unchanged; the
// identity in evaluation or when p = 0.
#pragma once
#include <torch/torch.h>

namespace mgl {

inline torch::Tensor drop_path(const torch::Tensor& branch, double p, bool training) {
  if (p <= 0.0 || !training) return branch;
  std::vector<int64_t> shape(static_cast<size_t>(branch.dim()), 1);
  shape[0] = branch.size(0);
  torch::Tensor keep = torch::empty(shape, branch.options()).bernoulli_(1.0 - p);
  return branch * keep.div_(1.0 - p);
}

}  // namespace mgl
