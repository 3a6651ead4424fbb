// Adaptive input embeddings and the adaptive softmax (Baevski & Auli 2019; Grave et al. 2017), as the
// WikiText-103 setups of the Mega and Megalodon papers use them (paper-benchmarks.md §2.4: cutoffs
// 20000, 60000, factor 4, tied weights and projections, adaptive-softmax dropout 0.2).
//
// The vocabulary (ids sorted by decreasing frequency) is cut into bands [0, c1), [c1, c2), …, [ck, V).
// Band i has an embedding of width d_i = ⌊D / factor^i⌋ and a projection d_i → D (no bias).
//   input:   x = P_i · E_i[id − start_i]                                  (band i of the id)
//   softmax: the head scores the first band's words (h · E_0ᵀ, E_0 is D wide) and one "cluster" logit
//            per tail band (a D → k Linear, the only parameter of its own); tail i scores its words
//            from h · P_i (the input projection transposed), dropout, then · E_iᵀ.
//   log p(w) = log softmax(head)[w]                                   (w in the head band)
//   log p(w) = log softmax(head)[c0 + i − 1] + log softmax(tail_i)[w − start_i]   (w in tail i)
// So the output shares every weight with the input except the k cluster vectors.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace mgl {

class AdaptiveInputImpl : public torch::nn::Module {
 public:
  // cutoffs: the band edges below vocab (increasing, non-empty).
  AdaptiveInputImpl(int64_t vocab, int64_t dim, std::vector<int64_t> cutoffs, double factor);
  // tokens: any shape of int64 ids in [0, vocab) → tokens.sizes() × D.
  torch::Tensor forward(const torch::Tensor& tokens);
  int64_t num_bands() const { return static_cast<int64_t>(edges.size()) - 1; }
  int64_t band_dim(int64_t i) const { return embs[i]->weight.size(1); }
  torch::Tensor embedding(int64_t i) const { return embs[i]->weight; }   // band_size × d_i
  torch::Tensor projection(int64_t i) const { return projs[i]->weight; }  // D × d_i

  int64_t vocab, dim;
  std::vector<int64_t> edges;  // 0, c1, …, ck, V
  torch::nn::ModuleList embeddings{nullptr}, projections{nullptr};
  std::vector<torch::nn::Embedding> embs;  // typed views of the lists
  std::vector<torch::nn::Linear> projs;
};
TORCH_MODULE(AdaptiveInput);

class AdaptiveSoftmaxImpl : public torch::nn::Module {
 public:
  // Shares the bands of `input` (which must outlive nothing: the tensors are shared, not copied).
  AdaptiveSoftmaxImpl(const AdaptiveInput& input, double dropout);
  // Full log-probabilities: h (…×D) → …×V (fp32, fp64 for fp64 h). Costs every tail for every row:
  // for sampling and tests; training and evaluation use nll().
  torch::Tensor log_prob(const torch::Tensor& h);
  // Negative log-likelihood of targets (h: …×D, targets: … int64); entries with target < 0 are
  // ignored and give 0. Each tail is evaluated only on the rows whose target falls in it.
  torch::Tensor nll(const torch::Tensor& h, const torch::Tensor& targets);
  // Forward FLOPs per row of log_prob (head + every tail).
  double flops_per_row() const;

  AdaptiveInput input{nullptr};  // not registered: its parameters belong to the model's input
  torch::nn::Linear cluster{nullptr};  // D → number of tails
  double dropout;

 private:
  torch::Tensor head_log_prob(const torch::Tensor& h2);  // rows × (c1 + tails)
  torch::Tensor tail_log_prob(const torch::Tensor& h2, int64_t band);
};
TORCH_MODULE(AdaptiveSoftmax);

}  // namespace mgl
