#include "tasks/classification.h"

#include "harness/model_config.h"

namespace mgl::tasks {

ClassificationTask::ClassificationTask(const harness::Config& cfg, int64_t num_classes, int64_t input_dim,
                                       int64_t vocab_size, int64_t seq_len)
    : seq_len_(seq_len) {
  if (cfg.get_string("model.name") != "megalodon")
    throw harness::ConfigError(cfg.origin("model.name"), "model.name",
                               "classification tasks build the Megalodon encoder; the Transformer baseline "
                               "is available for language modelling only");
  model_cfg_ = harness::megalodon_config_from(cfg, "model");
  model_cfg_.causal = false;
  model_cfg_.vocab_size = vocab_size;
  options_.num_classes = num_classes;
  options_.input_dim = input_dim;
  options_.head_dim = cfg.get_int("model.head_dim");
  options_.head_dropout = cfg.get_float("model.head_dropout");
}

std::shared_ptr<torch::nn::Module> ClassificationTask::build_model() {
  model_ = MegalodonClassifier(model_cfg_, options_);
  return model_.ptr();
}

harness::StepOutput ClassificationTask::step(const harness::Batch& batch, bool training) {
  (void)training;
  torch::Tensor logits = model_->forward(batch.inputs, batch.mask);
  torch::Tensor loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), batch.targets);
  harness::StepOutput out;
  out.loss = loss;
  const double n = static_cast<double>(batch.targets.size(0));
  out.sums.add("loss_sum", loss.item<double>() * n);
  out.sums.add("correct", logits.argmax(-1).eq(batch.targets).sum().item<double>());
  out.sums.add("count", n);
  return out;
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
  harness::ModelSpec spec;
  spec.architecture = "megalodon_classifier";
  spec.model = model_cfg_;
  spec.classifier = options_;
  return spec;
}

double ClassificationTask::train_flops_per_example() const {
  // 6 FLOPs per weight per position (forward + backward matmuls), plus attention scores and
  // values within a chunk (non-causal: every key of the chunk).
  const auto& c = model_cfg_;
  const double D = c.model_dim, Z = c.z_dim, E = c.value_dim, F = c.ffn_hidden_dim;
  const double mats = D * Z + 2 * D * E + D * D + E * D + (c.swiglu ? 3 : 2) * D * F;
  const double ctx = std::min<int64_t>(seq_len_, c.chunk_size);
  return 3.0 * seq_len_ * c.num_layers * (2.0 * mats + 2.0 * ctx * (Z + E));
}

}  // namespace mgl::tasks
