// LRA Retrieval (paper-benchmarks §2.2, §3.4): does paper 1 cite paper 2 (AAN)? Reads
// `new_aan_pairs.{train,eval,test}.tsv` (no header; label id1 id2 text1 text2). Both documents are
// byte-encoded (bytes + 1, 257 ids; each cut at task.max_length, 4,000 in LRA), go through the same
// encoder and are mean-pooled; the head sees [rep(doc1); rep(doc2)] (Mega's head, input 2·D).
#include <fmt/format.h>

#include "datasets/lra/text.h"
#include "harness/task.h"
#include "tasks/classification.h"

namespace mgl::tasks {
namespace {

using harness::Config;
using harness::ConfigError;
using harness::Split;
namespace fs = std::filesystem;

class RetrievalTask final : public ClassificationTask {
 public:
  RetrievalTask(const Config& cfg, int64_t max_length)
      : ClassificationTask(cfg, 2, 1, datasets::kByteVocabSize, 2 * max_length), max_length_(max_length) {
    options_.num_documents = 2;
  }

  static std::unique_ptr<harness::Task> create(const Config& cfg) {
    const fs::path root = task_root(cfg, "new_aan_pairs.{train,eval,test}.tsv");
    const int64_t max_length = cfg.get_int("task.max_length");  // >= 1 by the schema
    auto t = std::make_unique<RetrievalTask>(cfg, max_length);
    t->pad_ = parse_pad_to(cfg);
    t->root_ = root.string();
    const char* files[3] = {"task.train_file", "task.val_file", "task.test_file"};
    for (int s = 0; s < 3; ++s) {
      for (const auto& e : datasets::read_aan_tsv(root / cfg.get_string(files[s]), split_limit(cfg, s))) {
        for (const auto* text : {&e.text1, &e.text2})
          if (static_cast<int64_t>(text->size()) > max_length) ++t->truncated_;
        t->split_[s].first.push_back(datasets::encode_bytes(e.text1, max_length));
        t->split_[s].second.push_back(datasets::encode_bytes(e.text2, max_length));
        t->split_[s].labels.push_back(e.label);
      }
    }
    return t;
  }

  int64_t size(Split s) const override { return split_[int(s)].size(); }

  harness::Batch make_batch(Split s, const std::vector<int64_t>& indices, uint64_t) const override {
    return split_[int(s)].batch(indices, pad_, max_length_);
  }

  torch::Tensor logits(const harness::Batch& b) override {
    return pair_logits(b.inputs, b.mask, b.extra.at(0), b.extra.at(1));
  }

  std::string describe() const override {
    return fmt::format("AAN {}: {} train / {} val / {} test document pairs (train labels {}), UTF-8 bytes (257 ids) "
                       "cut at {} per document ({} documents cut), one shared encoder, padded to {}",
                       root_, size(Split::train), size(Split::val), size(Split::test), label_counts(split_[0].labels, 2),
                       max_length_, truncated_, pad_ == PadTo::batch ? "the batch" : "max_length");
  }

 private:
  TokenSplit split_[3];
  int64_t max_length_;
  PadTo pad_ = PadTo::batch;
  int64_t truncated_ = 0;
  std::string root_;
};

void lra_retrieval_schema(harness::Schema& s) {
  s.add_string("task.root", "data/lra_release/tsv_data", "folder with the AAN pair TSV files");
  s.add_string("task.train_file", "new_aan_pairs.train.tsv", "training pairs");
  s.add_string("task.val_file", "new_aan_pairs.eval.tsv", "validation pairs");
  s.add_string("task.test_file", "new_aan_pairs.test.tsv", "test pairs");
  s.add_int("task.max_length", 4000, "bytes kept per document (LRA: 4,000)", harness::Range::at_least(1));
  s.add_string("task.pad_to", "max_length", "pad each batch to its longest document or to max_length",
               {"batch", "max_length"});
  add_split_limits(s, "use only the first N training pairs", "use only the first N validation pairs",
                   "use only the first N test pairs");
}

MGL_REGISTER_TASK("lra_retrieval", "LRA Retrieval: AAN citation pairs from raw bytes, two documents (2 classes)", lra_retrieval_schema,
                  [](const Config& cfg) { return RetrievalTask::create(cfg); });

}  // namespace
}  // namespace mgl::tasks
