// Shared base for sequence-classification adapters: a MegalodonClassifier (encoder form, mean
// pooling, Mega's 2-layer GELU head) built from the `model` section, cross-entropy loss, and
// accuracy. A subclass supplies only the data: sizes, batches and a description.
#pragma once
#include "core/config.h"
#include "core/models/megalodon.h"
#include "harness/task.h"

namespace mgl::tasks {

class ClassificationTask : public harness::Task {
 public:
  // `input_dim` for real-valued inputs (vocab_size <= 0), or a token vocabulary (vocab_size > 0).
  ClassificationTask(const harness::Config& cfg, int64_t num_classes, int64_t input_dim, int64_t vocab_size,
                     int64_t seq_len);

  std::shared_ptr<torch::nn::Module> build_model() override;
  std::shared_ptr<torch::nn::Module> model() const override { return model_.ptr(); }
  harness::StepOutput step(const harness::Batch& batch, bool training) override;
  std::map<std::string, double> finalize(const harness::MetricSums& sums) const override;
  double train_flops_per_example() const override;
  std::optional<harness::ModelSpec> model_spec() const override;

 protected:
  MegalodonConfig model_cfg_;
  ClassifierOptions options_;
  int64_t seq_len_;
  MegalodonClassifier model_{nullptr};
};

}  // namespace mgl::tasks
