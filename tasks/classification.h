// Shared base for sequence-classification adapters: a MegalodonClassifier (encoder form, mean
// pooling, Mega's 2-layer GELU head) built from the `model` section, cross-entropy loss, and
// accuracy. A subclass supplies only the data: sizes, batches and a description.
#pragma once
#include "core/config.h"
#include "core/models/megalodon.h"
#include "core/models/transformer_classifier.h"
#include "harness/task.h"
#include "tasks/common.h"

namespace mgl::tasks {

// Right-pads token sequences to a common length with id 0. `length` <= 0 pads to the longest one.
// Returns (B×L int64 ids, B×L bool mask with true = padding; the mask is undefined when nothing is
// padded and `always_mask` is false).
std::pair<torch::Tensor, torch::Tensor> pad_tokens(const std::vector<const std::vector<int64_t>*>& seqs,
                                                   int64_t length = 0, bool always_mask = false);

// How a token task pads a batch: to the longest sequence in the batch, or to the configured
// maximum length as the LRA pipelines do. The logits are the same (padding is masked throughout);
// "batch" is faster. Reads `task.pad_to`.
enum class PadTo { batch, max_length };
PadTo parse_pad_to(const harness::Config& cfg);

// Token-id examples of one split (`second` holds the second documents of a pair task).
struct TokenSplit {
  std::vector<std::vector<int64_t>> first, second;
  std::vector<int64_t> labels;
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  // The padded batch of `indices`: inputs/mask from `first`, and for pairs extra = {ids2, mask2}.
  harness::Batch batch(const std::vector<int64_t>& indices, PadTo pad, int64_t max_length) const;
};
// `limit` items of `v` evenly spaced over it (all of `v` when limit < 0 or >= its size), so a
// limited split in label order still holds every class (the `task.*_limit` keys).
template <class T>
std::vector<T> evenly_spaced(const std::vector<T>& v, int64_t limit) {
  const int64_t n = static_cast<int64_t>(v.size());
  if (limit < 0 || limit >= n) return v;
  std::vector<T> out;
  out.reserve(static_cast<size_t>(limit));
  for (int64_t k = 0; k < limit; ++k) out.push_back(v[static_cast<size_t>(k * n / limit)]);
  return out;
}
// Label histogram as "n0/n1/..." for describe() lines.
std::string label_counts(const std::vector<int64_t>& labels, int64_t num_classes);

// model.name = "megalodon" builds the MegalodonClassifier; "transformer" the ViT/DeiT-form
// TransformerClassifier (the baseline rows) from the same model.* sizes (num_layers, model_dim,
// num_heads, ffn_hidden_dim, dropout, attention_dropout, drop_path, norm_eps) plus model.pool.
//
// Targets: B class indices, or B×C class probabilities (label smoothing, mixup, cutmix); the loss
// is then the soft cross-entropy −Σ t·log softmax, and accuracy counts argmax(logits) =
// argmax(targets).
class ClassificationTask : public harness::Task {
 public:
  // `input_dim` for real-valued inputs (vocab_size <= 0), or a token vocabulary (vocab_size > 0).
  ClassificationTask(const harness::Config& cfg, int64_t num_classes, int64_t input_dim, int64_t vocab_size,
                     int64_t seq_len);

  std::shared_ptr<torch::nn::Module> build_model() override;
  std::shared_ptr<torch::nn::Module> model() const override {
    if (transformer_) return tmodel_.ptr();
    return model_.ptr();
  }
  harness::StepOutput step(const harness::Batch& batch, bool training) override;
  // The logits of a batch; the default is the one-document classifier on (inputs, mask).
  virtual torch::Tensor logits(const harness::Batch& batch);
  std::map<std::string, double> finalize(const harness::MetricSums& sums) const override;
  double train_flops_per_example() const override;
  std::optional<harness::ModelSpec> model_spec() const override;

 protected:
  // The two-document form (LRA Retrieval); Megalodon only.
  torch::Tensor pair_logits(const torch::Tensor& a, const torch::Tensor& mask_a, const torch::Tensor& b,
                            const torch::Tensor& mask_b);
  bool is_transformer() const { return transformer_; }

  MegalodonConfig model_cfg_;
  ClassifierOptions options_;
  int64_t seq_len_;
  MegalodonClassifier model_{nullptr};
  bool transformer_ = false;
  TransformerClassifierConfig tcfg_;
  TransformerClassifier tmodel_{nullptr};
};

}  // namespace mgl::tasks
