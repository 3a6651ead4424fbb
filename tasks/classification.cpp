#include "tasks/classification.h"

#include "harness/config/model.h"

namespace mgl::tasks {

std::pair<torch::Tensor, torch::Tensor> pad_tokens(const std::vector<const std::vector<int64_t>*>& seqs,
                                                   int64_t length, bool always_mask) {
  int64_t longest = 1;
  for (const auto* s : seqs) longest = std::max<int64_t>(longest, static_cast<int64_t>(s->size()));
  const int64_t L = length > 0 ? std::max(length, longest) : longest;
  const int64_t B = static_cast<int64_t>(seqs.size());
  torch::Tensor ids = torch::zeros({B, L}, torch::kInt64);
  torch::Tensor mask = torch::ones({B, L}, torch::kBool);
  auto* id = ids.data_ptr<int64_t>();
  auto* m = mask.data_ptr<bool>();
  bool padded = false;
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = *seqs[b];
    std::copy(s.begin(), s.end(), id + b * L);
    std::fill(m + b * L, m + b * L + static_cast<int64_t>(s.size()), false);
    padded = padded || static_cast<int64_t>(s.size()) < L;
  }
  return {ids, padded || always_mask ? mask : torch::Tensor()};
}

harness::Batch TokenSplit::batch(const std::vector<int64_t>& indices, PadTo pad, int64_t max_length) const {
  const bool pair = !second.empty();
  std::vector<const std::vector<int64_t>*> a, b;
  std::vector<int64_t> y;
  for (int64_t i : indices) {
    a.push_back(&first.at(i));
    if (pair) b.push_back(&second.at(i));
    y.push_back(labels.at(i));
  }
  const int64_t L = pad == PadTo::max_length ? max_length : 0;
  harness::Batch out;
  std::tie(out.inputs, out.mask) = pad_tokens(a, L, pair);
  out.tokens = out.inputs.numel();
  if (pair) {
    auto [ids2, mask2] = pad_tokens(b, L, true);
    out.extra = {ids2, mask2};
    out.tokens += ids2.numel();
  }
  out.targets = torch::tensor(y, torch::kInt64);
  out.examples = static_cast<int64_t>(indices.size());
  return out;
}

std::string label_counts(const std::vector<int64_t>& labels, int64_t num_classes) {
  std::vector<int64_t> n(num_classes, 0);
  for (int64_t l : labels)
    if (l >= 0 && l < num_classes) ++n[l];
  std::string out;
  for (size_t i = 0; i < n.size(); ++i) out += (i ? "/" : "") + std::to_string(n[i]);
  return out;
}

PadTo parse_pad_to(const harness::Config& cfg) {
  return cfg.get_string("task.pad_to") == "max_length" ? PadTo::max_length : PadTo::batch;
}

ClassificationTask::ClassificationTask(const harness::Config& cfg, int64_t num_classes, int64_t input_dim,
                                       int64_t vocab_size, int64_t seq_len)
    : seq_len_(seq_len) {
  const std::string name = cfg.get_string("model.name");
  transformer_ = name == "transformer";
  if (!transformer_) {  // the Transformer reads only the shared size keys (below)
    model_cfg_ = harness::megalodon_config_from(cfg, "model");
    model_cfg_.causal = false;
    model_cfg_.vocab_size = vocab_size;
  }
  options_.num_classes = num_classes;
  options_.input_dim = input_dim;
  options_.head_dim = cfg.get_int("model.head_dim");
  options_.head_dropout = cfg.get_float("model.head_dropout");
  options_.head =
      harness::with_origin(cfg, [&] { return parse_classifier_head("model.head", cfg.get_string("model.head")); });
  const bool learned_positions = cfg.get_string("model.positions") == "learned";
  options_.max_positions = learned_positions ? seq_len : 0;
  if (transformer_) {
    tcfg_.num_layers = cfg.get_int("model.num_layers");
    tcfg_.model_dim = cfg.get_int("model.model_dim");
    tcfg_.num_heads = cfg.get_int("model.num_heads");
    tcfg_.ffn_hidden_dim = cfg.get_int("model.ffn_hidden_dim");
    tcfg_.num_classes = num_classes;
    tcfg_.vocab_size = vocab_size;
    tcfg_.input_dim = input_dim;
    tcfg_.max_positions = seq_len;
    tcfg_.cls_token = cfg.get_string("model.pool") == "cls";
    tcfg_.dropout = cfg.get_float("model.dropout");
    tcfg_.attention_dropout = cfg.get_float("model.attention_dropout");
    tcfg_.drop_path = cfg.get_float("model.drop_path");
    tcfg_.norm_eps = cfg.get_float("model.norm_eps");
    harness::with_origin(cfg, [&] { tcfg_.validate("model"); });
  }
}

std::shared_ptr<torch::nn::Module> ClassificationTask::build_model() {
  if (transformer_) {
    tmodel_ = TransformerClassifier(tcfg_);
    return tmodel_.ptr();
  }
  model_ = MegalodonClassifier(model_cfg_, options_);
  return model_.ptr();
}

torch::Tensor ClassificationTask::pair_logits(const torch::Tensor& a, const torch::Tensor& mask_a,
                                              const torch::Tensor& b, const torch::Tensor& mask_b) {
  TORCH_CHECK(!transformer_, "the two-document (Retrieval) head is built for model.name = \"megalodon\" only");
  return model_->forward_pair(a, mask_a, b, mask_b);
}

harness::StepOutput ClassificationTask::step(const harness::Batch& batch, bool training) {
  (void)training;
  torch::Tensor logits = this->logits(batch).to(torch::kFloat32);
  torch::Tensor loss, labels;
  if (batch.targets.dim() == 2) {  // class probabilities
    TORCH_CHECK(batch.targets.sizes() == logits.sizes(), "soft targets ", batch.targets.sizes(), " vs logits ",
                logits.sizes());
    loss = -(batch.targets.to(torch::kFloat32) * torch::log_softmax(logits, -1)).sum(-1).mean();
    labels = batch.targets.argmax(-1);
  } else {
    loss = torch::nn::functional::cross_entropy(logits, batch.targets);
    labels = batch.targets;
  }
  harness::StepOutput out;
  out.loss = loss;
  const double n = static_cast<double>(batch.targets.size(0));
  out.sums.add("loss_sum", loss.item<double>() * n);
  out.sums.add("correct", logits.argmax(-1).eq(labels).sum().item<double>());
  out.sums.add("count", n);
  return out;
}

torch::Tensor ClassificationTask::logits(const harness::Batch& batch) {
  return transformer_ ? tmodel_->forward(batch.inputs, batch.mask) : model_->forward(batch.inputs, batch.mask);
}

std::map<std::string, double> ClassificationTask::finalize(const harness::MetricSums& s) const {
  auto get = [&](const char* k) {
    auto it = s.sum.find(k);
    return it == s.sum.end() ? 0.0 : it->second;
  };
  const double n = std::max(1.0, get("count"));
  return {{"loss", get("loss_sum") / n}, {"accuracy", get("correct") / n}};
}

std::optional<harness::ModelSpec> ClassificationTask::model_spec() const {
  if (transformer_) return std::nullopt;  // the export format describes Megalodon models only
  harness::ModelSpec spec;
  spec.architecture = "megalodon_classifier";
  spec.model = model_cfg_;
  spec.classifier = options_;
  return spec;
}

double ClassificationTask::train_flops_per_example() const {
  // The models' own forward counts (core/models), times 3 for forward + backward.
  return 3.0 * (transformer_ ? transformer_classifier_flops(tcfg_, seq_len_)
                             : megalodon_classifier_flops(model_cfg_, seq_len_));
}

}  // namespace mgl::tasks
