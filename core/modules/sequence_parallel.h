// Chunk (sequence) parallelism inside the model (spec §7.3): a long sequence is split across the
// ranks of a group, rank r holding tokens [r·S, (r+1)·S). The only state that crosses ranks is what
// the streaming path carries (§7.1): per layer the TimestepNorm statistics and the CEMA hidden
// state (attention never crosses ranks: S must be a whole number of chunks).
//
// Both are associative, so instead of the official sequential pipeline (rank r waits for rank r−1,
// layer by layer) every rank computes its segment's *local* summary with a zero incoming state,
// the group all-gathers the summaries, and every rank combines the prefix of those before it:
//   TimestepNorm:  (count, mean, var) pooled with Chan's merge, seeded with the module's prior;
//   CEMA:          H_r = Σ_{s<r} q^{(r−1−s)·S} h_s   (h_s: segment s's final state from zero).
// The ranks then run their segment exactly like a streaming call with that carried state, all in
// parallel. Gradients flow back through the gather: its backward sums every rank's gradient of
// the gathered stack and hands each rank its own slice, so the loss of the whole sequence is
// differentiated exactly. One collective per exchange, O(P·B·D·N) bytes.
//
// The transport is abstract (the harness implements it over c10d, tests in-process). It reaches the
// layers as an argument (MovingAverageGatedAttention::forward's `exchange`); a model that can split
// its sequences across ranks is a SegmentParallel, given the exchange for the calls that should use
// it (ExchangeBinding: the trainer binds it around a training step).
#pragma once
#include <torch/torch.h>

#include "core/ops/cema.h"
#include "core/ops/timestep_norm.h"

namespace mgl {

class SequenceExchange {
 public:
  virtual ~SequenceExchange() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;
  // A collective over the group: every rank's `local` (same shape and dtype on every rank)
  // stacked along a new leading dimension (size() × local.shape). Differentiable: the gradient
  // reaching `local` is the sum over ranks of the gradient of its slice. Every rank must call it
  // the same number of times in the same order (forward and backward).
  virtual torch::Tensor all_gather(const torch::Tensor& local) = 0;
  // all_gather calls so far (a model that never exchanges state cannot be split across ranks).
  int64_t gathers = 0;
};

// A model whose forward passes can run on a segment of each sequence, the segments of one
// sequence spread over the ranks of an exchange (null: whole sequences, the default).
class SegmentParallel {
 public:
  virtual ~SegmentParallel() = default;
  virtual void set_sequence_exchange(SequenceExchange* exchange) = 0;
  virtual SequenceExchange* sequence_exchange() const = 0;
};

// Gives `model` the exchange for the lifetime of this object, then restores what it had. A null
// model (one that is not a SegmentParallel) binds nothing.
class ExchangeBinding {
 public:
  ExchangeBinding(SegmentParallel* model, SequenceExchange* exchange)
      : model_(model), previous_(model ? model->sequence_exchange() : nullptr) {
    if (model_) model_->set_sequence_exchange(exchange);
  }
  ~ExchangeBinding() {
    if (model_) model_->set_sequence_exchange(previous_);
  }
  ExchangeBinding(const ExchangeBinding&) = delete;
  ExchangeBinding& operator=(const ExchangeBinding&) = delete;

 private:
  SegmentParallel* model_;
  SequenceExchange* previous_;
};

namespace sequence_parallel {

// The TimestepNorm state this rank's segment starts from: `initial` (the module's prior) merged
// with the group statistics of every earlier rank's segment. x: B×L×D, this rank's input of the
// norm (no padding: chunk parallelism is for unpadded language-model sequences).
ops::NormState norm_incoming(SequenceExchange& ex, const torch::Tensor& x, int64_t num_groups,
                             const ops::NormState& initial);

// The CEMA hidden state this rank's segment starts from (zero state before rank 0).
// x: B×D×L, this rank's input of the EMA; c: the coefficients. Returns B×D×N (complex for CEMA).
torch::Tensor ema_incoming(SequenceExchange& ex, const torch::Tensor& x, const ops::EmaCoeffs& c);

// Chan's pooled merge of two sets of group statistics (population variances); counts may be 0.
void merge_moments(torch::Tensor& count, torch::Tensor& mean, torch::Tensor& var, const torch::Tensor& count_b,
                   const torch::Tensor& mean_b, const torch::Tensor& var_b);

}  // namespace sequence_parallel
}  // namespace mgl
