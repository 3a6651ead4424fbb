// The seam between the trainer and a task: data set → task adapter → model → trainer (the layering
// and how to add an adapter: README.md, "Layout" and "Adding a task adapter").
//
// A task adapter binds a data set to an input encoding, a model with its head, a loss and metrics.
// The trainer knows only this interface: it asks for split sizes and batches (from loader threads),
// calls `step` for the loss and the metric sums, and `finalize` to turn sums into metrics. Adding a
// task is one source file with a class deriving from Task (or ClassificationTask) and an
// MGL_REGISTER_TASK line, plus one config under configs/task/.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "harness/config/config.h"
#include "harness/io/weights.h"
#include "harness/registry.h"

namespace mgl::harness {

enum class Split { train, val, test };
const char* to_string(Split);

struct Batch {
  torch::Tensor inputs;              // B×L token ids, or B×L(×F) real values
  torch::Tensor mask;                // B×L bool, true = padding; undefined when nothing is padded
  torch::Tensor targets;             // B class labels (or B×L token targets)
  std::vector<torch::Tensor> extra;  // task-specific inputs (e.g. Retrieval's second document)
  int64_t examples = 0;
  int64_t tokens = 0;  // sequence positions in the batch (for tokens/s)
  Batch to(const torch::Device& device) const;
};

// Additive sums over batches (e.g. "loss_sum", "correct", "count"); Task::finalize turns them into
// metrics. Sums, not means, so that evaluation over uneven batches is exact.
struct MetricSums {
  std::map<std::string, double> sum;
  void add(const std::string& name, double v) { sum[name] += v; }
  void merge(const MetricSums& o) {
    for (const auto& [k, v] : o.sum) sum[k] += v;
  }
};

struct StepOutput {
  torch::Tensor loss;  // scalar, mean over the batch, differentiable in training
  MetricSums sums;
};

class Task {
 public:
  virtual ~Task() = default;
  // Examples in a split (0: the split does not exist).
  virtual int64_t size(Split split) const = 0;
  // Collates the examples at `indices`. Called concurrently from loader threads: must not modify
  // the task. `seed` is unique per batch for augmentations that need randomness.
  virtual Batch make_batch(Split split, const std::vector<int64_t>& indices, uint64_t seed) const = 0;
  // Data parallelism: shard `shard` of `num_shards` of the global batch `indices` (seed: the global
  // batch's). The default takes the contiguous slice [shard·n/P, (shard+1)·n/P) of the indices,
  // with the seed mixed with the shard for augmentations; a shard may be empty (examples = 0) at
  // the ragged end of an evaluation. Tasks that draw their examples from the seed (the language
  // model's random windows) override it so that the shards together are the global batch.
  virtual Batch make_batch_shard(Split split, const std::vector<int64_t>& indices, uint64_t seed, int shard,
                                 int num_shards) const;
  // Builds the model (called once, after the global seed is set, before training).
  virtual std::shared_ptr<torch::nn::Module> build_model() = 0;
  virtual std::shared_ptr<torch::nn::Module> model() const = 0;
  // Forward pass, loss and metric sums for one batch already on the model's device.
  virtual StepOutput step(const Batch& batch, bool training) = 0;
  // Metrics from the sums of a whole split (keys without the split prefix, e.g. "accuracy", "loss").
  virtual std::map<std::string, double> finalize(const MetricSums& sums) const = 0;
  // Model FLOPs per example (forward+backward) for MFU; 0 if unknown.
  virtual double train_flops_per_example() const { return 0; }
  // One line for tables and run records: what data, how much of it, how encoded.
  virtual std::string describe() const = 0;
  // The architecture and configuration of build_model()'s model, for exporting its weights as
  // safetensors + config.json (`megalodon export`); nullopt when the model has no such spec.
  virtual std::optional<ModelSpec> model_spec() const { return std::nullopt; }
};

struct TaskEntry {
  std::string summary;
  // The task's own keys (under `task.`), added to the schema when `task.name` selects it.
  std::function<void(Schema&)> schema;
  std::function<std::unique_ptr<Task>(const Config&)> create;
};
Registry<TaskEntry>& task_registry();

}  // namespace mgl::harness

#define MGL_CONCAT_INNER(a, b) a##b
#define MGL_CONCAT(a, b) MGL_CONCAT_INNER(a, b)
// Registers a task adapter: MGL_REGISTER_TASK("name", "summary", schema_fn, create_fn).
#define MGL_REGISTER_TASK(name, summary, schema_fn, create_fn)                                      \
  static const bool MGL_CONCAT(mgl_task_registered_, __LINE__) = ::mgl::harness::task_registry().add( \
      name, ::mgl::harness::TaskEntry{summary, schema_fn, create_fn})
