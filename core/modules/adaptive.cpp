#include "core/modules/adaptive.h"

#include <cmath>

#include "core/config.h"

namespace mgl {

using torch::Tensor;
namespace F = torch::nn::functional;

AdaptiveInputImpl::AdaptiveInputImpl(int64_t v, int64_t d, std::vector<int64_t> cutoffs, double factor)
    : vocab(v), dim(d) {
  TORCH_CHECK(!cutoffs.empty(), "adaptive input: no cutoffs");
  edges.push_back(0);
  for (int64_t c : cutoffs) {
    TORCH_CHECK(c > edges.back() && c < v, "adaptive input: cutoffs must increase and stay below the vocabulary (",
                v, ")");
    edges.push_back(c);
  }
  edges.push_back(v);
  embeddings = register_module("embeddings", torch::nn::ModuleList());
  projections = register_module("projections", torch::nn::ModuleList());
  for (int64_t i = 0; i + 1 < static_cast<int64_t>(edges.size()); ++i) {
    const int64_t width = std::max<int64_t>(1, static_cast<int64_t>(std::floor(d / std::pow(factor, double(i)))));
    torch::nn::Embedding e(edges[i + 1] - edges[i], width);
    torch::nn::Linear p(torch::nn::LinearOptions(width, d).bias(false));
    torch::NoGradGuard g;
    // fairseq's AdaptiveInput: N(0, width^-1/2) embeddings, Xavier-uniform projections.
    e->weight.normal_(0.0, std::pow(double(width), -0.5));
    torch::nn::init::xavier_uniform_(p->weight);
    embeddings->push_back(e);
    projections->push_back(p);
    embs.push_back(e);
    projs.push_back(p);
  }
}

Tensor AdaptiveInputImpl::forward(const Tensor& tokens) {
  TORCH_CHECK(tokens.scalar_type() == torch::kInt64, "adaptive input: tokens must be int64");
  const Tensor flat = tokens.reshape({-1});
  const Tensor w0 = embedding(0);
  Tensor out = torch::zeros({flat.size(0), dim}, w0.options());
  for (int64_t i = 0; i < num_bands(); ++i) {
    const Tensor rows = ((flat >= edges[i]) & (flat < edges[i + 1])).nonzero().squeeze(1);
    if (rows.numel() == 0) continue;
    const Tensor ids = flat.index_select(0, rows) - edges[i];
    const Tensor x = F::linear(F::embedding(ids, embedding(i)), projection(i));
    out = out.index_put({rows}, x);
  }
  auto sizes = tokens.sizes().vec();
  sizes.push_back(dim);
  return out.view(sizes);
}

AdaptiveSoftmaxImpl::AdaptiveSoftmaxImpl(const AdaptiveInput& in, double p) : input(in), dropout(p) {
  TORCH_CHECK(in, "adaptive softmax: no adaptive input to share");
  TORCH_CHECK(in->band_dim(0) == in->dim, "adaptive softmax: the head band must be D wide");
  cluster = register_module("cluster",
                            torch::nn::Linear(torch::nn::LinearOptions(in->dim, in->num_bands() - 1).bias(false)));
  torch::NoGradGuard g;
  torch::nn::init::xavier_uniform_(cluster->weight);
}

Tensor AdaptiveSoftmaxImpl::head_log_prob(const Tensor& h2) {
  const Tensor logits = torch::cat({F::linear(h2, input->embedding(0)), cluster(h2)}, 1);
  return torch::log_softmax(logits.scalar_type() == torch::kFloat64 ? logits : logits.to(torch::kFloat32), 1);
}

Tensor AdaptiveSoftmaxImpl::tail_log_prob(const Tensor& h2, int64_t band) {
  // P_i is D×d_i (the input's d_i → D projection); h·P_i maps back to the band's width.
  Tensor z = torch::matmul(h2, input->projection(band));
  if (dropout > 0 && is_training()) z = F::dropout(z, F::DropoutFuncOptions().p(dropout).training(true));
  const Tensor logits = F::linear(z, input->embedding(band));
  return torch::log_softmax(logits.scalar_type() == torch::kFloat64 ? logits : logits.to(torch::kFloat32), 1);
}

Tensor AdaptiveSoftmaxImpl::log_prob(const Tensor& h) {
  Tensor h2 = h.reshape({-1, h.size(-1)});
  if (dropout > 0 && is_training()) h2 = F::dropout(h2, F::DropoutFuncOptions().p(dropout).training(true));
  const Tensor head = head_log_prob(h2);
  const int64_t c1 = input->edges[1];
  std::vector<Tensor> parts{head.narrow(1, 0, c1)};
  for (int64_t i = 1; i < input->num_bands(); ++i)
    parts.push_back(tail_log_prob(h2, i) + head.narrow(1, c1 + i - 1, 1));
  auto sizes = h.sizes().vec();
  sizes.back() = input->vocab;
  return torch::cat(parts, 1).view(sizes);
}

Tensor AdaptiveSoftmaxImpl::nll(const Tensor& h, const Tensor& targets) {
  TORCH_CHECK(targets.sizes() == h.sizes().slice(0, h.dim() - 1), "adaptive softmax: targets ", targets.sizes(),
              " do not match features ", h.sizes());
  Tensor h2 = h.reshape({-1, h.size(-1)});
  const Tensor t = targets.reshape({-1});
  TORCH_CHECK(t.numel() == 0 || t.max().item<int64_t>() < input->vocab, "adaptive softmax: target id out of range");
  if (dropout > 0 && is_training()) h2 = F::dropout(h2, F::DropoutFuncOptions().p(dropout).training(true));
  const Tensor head = head_log_prob(h2);
  const int64_t c1 = input->edges[1];
  // Head band: −log p straight from the head; tails: the cluster's log-probability plus the tail's.
  const Tensor head_target = torch::where(t < c1, t, torch::full_like(t, 0)).clamp_min(0);
  Tensor out = torch::zeros({t.size(0)}, head.options());
  const Tensor in_head = (t >= 0) & (t < c1);
  out = torch::where(in_head, -head.gather(1, head_target.unsqueeze(1)).squeeze(1), out);
  for (int64_t i = 1; i < input->num_bands(); ++i) {
    const Tensor rows = ((t >= input->edges[i]) & (t < input->edges[i + 1])).nonzero().squeeze(1);
    if (rows.numel() == 0) continue;
    const Tensor tail = tail_log_prob(h2.index_select(0, rows), i);
    const Tensor local = (t.index_select(0, rows) - input->edges[i]).unsqueeze(1);
    const Tensor lp = tail.gather(1, local).squeeze(1) + head.index_select(0, rows).select(1, c1 + i - 1);
    out = out.index_put({rows}, -lp);
  }
  return out.view(targets.sizes());
}

double AdaptiveSoftmaxImpl::flops_per_row() const {
  const double D = double(input->dim);
  double f = 2.0 * D * double(input->edges[1] + input->num_bands() - 1);
  for (int64_t i = 1; i < input->num_bands(); ++i) {
    const double w = double(input->band_dim(i)), n = double(input->edges[i + 1] - input->edges[i]);
    f += 2.0 * (D * w + w * n);
  }
  return f;
}

}  // namespace mgl
