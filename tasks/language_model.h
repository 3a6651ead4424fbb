// Causal language modelling (issue 7; paper-benchmarks.md §2.4–2.5, §3.8–3.9): WikiText-103, PG-19 or
// plain text through a byte, word or SentencePiece tokenizer into a packed, memory-mapped token
// stream per split, and Megalodon (or the Transformer baseline) trained on long samples of it.
//
// Training samples: m·C tokens (C = task.sample_chunk, by default model.chunk_size) with m drawn per
// batch from U{task.min_chunks … task.max_chunks} (WikiText-103: 2…6), starting at offsets drawn
// uniformly from the train stream with the batch's seed (so a resumed run draws the same batches).
// With task.tokens_per_batch > 0 a batch holds ⌊tokens_per_batch / (m·C)⌋ samples (at least one), as
// fairseq's token-budget batches do; otherwise trainer.batch_size.
//
// Validation and test in the trainer: contiguous blocks of task.eval_length tokens covering the
// split (each predicts the next token of every position, with no context across blocks), so the
// sums cover every token but the first exactly once. Metrics: loss (nats/token), ppl, bits/token
// and word_ppl = exp(total NLL / words) (PG-19's word-level perplexity; for WikiText words are the
// tokens, </s> included, and word_ppl = ppl). The long-context numbers come from streaming
// evaluation (`megalodon lm-eval`, tasks/lm_eval.h), which carries the state across segments.
//
// Document boundaries (task.document_boundaries = "reset"; default "off", today's behaviour): the
// windows still cut the packed stream anywhere, but every document inside a window starts afresh
// (CEMA state, timestep-norm statistics, attention: core/ops/documents.h), and the prediction of a
// document's first token from the previous document is not scored, in training and in the
// trainer's evaluation. Documents: WikiText's articles (their "= Title =" lines), PG-19's books,
// plain text's files or, with task.text_boundaries = "blank_line", its paragraphs.
#pragma once
#include <memory>
#include <string>

#include "core/models/factory.h"
#include "datasets/text/text.h"
#include "harness/task.h"

namespace mgl::tasks {

class LanguageModelTask final : public harness::Task {
 public:
  explicit LanguageModelTask(const harness::Config& cfg);

  int64_t size(harness::Split split) const override;
  harness::Batch make_batch(harness::Split split, const std::vector<int64_t>& indices, uint64_t seed) const override;
  harness::Batch make_batch_shard(harness::Split split, const std::vector<int64_t>& indices, uint64_t seed, int shard,
                                  int num_shards) const override;
  std::shared_ptr<torch::nn::Module> build_model() override;
  std::shared_ptr<torch::nn::Module> model() const override { return lm_; }
  harness::StepOutput step(const harness::Batch& batch, bool training) override;
  std::map<std::string, double> finalize(const harness::MetricSums& sums) const override;
  double train_flops_per_example() const override;
  std::string describe() const override;
  std::optional<harness::ModelSpec> model_spec() const override;

  // For streaming evaluation and generation.
  CausalLMImpl& lm() const;
  const datasets::text::Tokenizer& tokenizer() const { return *tokenizer_; }
  const datasets::text::PackedTokens& tokens(harness::Split split) const;
  // The split's documents (ids, titles) in cache order.
  const std::vector<datasets::text::Document>& documents(harness::Split split) const;
  bool is_megalodon() const { return !transformer_; }
  int64_t chunk_size() const { return chunk_; }
  int64_t eval_length() const { return eval_length_; }

 private:
  harness::Batch train_batch(size_t batch_size, uint64_t seed, int shard, int num_shards) const;
  int64_t sample_length(uint64_t seed) const;
  int64_t eval_tokens(harness::Split split) const;  // tokens the trainer evaluates (limit applied)
  // Document resets: sets row `b` of `starts` (B×L bool) for the window of the split starting at
  // `at`, and unscores the targets that begin another document; returns how many it unscored.
  int64_t mark_documents(harness::Split split, int64_t at, int64_t length, torch::Tensor& starts,
                         torch::Tensor& targets, int64_t b) const;

  std::string format_, root_;
  std::unique_ptr<datasets::text::Corpus> corpus_;
  std::unique_ptr<datasets::text::Tokenizer> tokenizer_;
  datasets::text::PackedTokens train_, val_, test_;
  std::vector<datasets::text::Document> train_docs_, val_docs_, test_docs_;
  bool reset_documents_ = false, restart_positions_ = true;
  std::vector<int64_t> train_starts_, val_starts_, test_starts_;  // document starts (sorted), with reset
  bool transformer_ = false;
  MegalodonConfig mcfg_;
  TransformerConfig tcfg_;
  CausalLM lm_;
  int64_t chunk_ = 0, min_chunks_ = 1, max_chunks_ = 1, tokens_per_batch_ = 0, batch_size_ = 1;
  int64_t eval_length_ = 0, eval_limit_ = -1;
  std::string vocab_source_;
};

}  // namespace mgl::tasks
