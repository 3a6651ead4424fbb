// LRA ListOps (paper-benchmarks §2.2, §3.2): 10-way classification of the value of a nested
// MIN/MAX/MED/SM expression read as a token sequence. Files: `basic_{train,val,test}.tsv` of the
// LRA release (`lra_release/listops-1000/`) or of `megalodon data listops`.
//
// Tokenisation as LRA's input pipeline: parentheses removed, split on whitespace, 17 ids (pad,
// unknown, 10 digits, 4 operators, `]`). Sequences longer than task.max_length are cut at the end
// (the released data is shorter than 2,000 tokens by construction; cuts are counted). A line with a
// token outside the vocabulary is an error naming file:line and the token, or (task.bad_lines =
// "skip") is left out, counted and reported in the run's description.
#include <fmt/format.h>

#include "datasets/lra/listops.h"
#include "harness/task.h"
#include "tasks/classification.h"

namespace mgl::tasks {
namespace {

using harness::Config;
using harness::ConfigError;
using harness::Split;
namespace fs = std::filesystem;

class ListOpsTask final : public ClassificationTask {
 public:
  ListOpsTask(const Config& cfg, int64_t max_length)
      : ClassificationTask(cfg, 10, 1, datasets::ListOpsVocab::size, max_length), max_length_(max_length) {}

  static std::unique_ptr<harness::Task> create(const Config& cfg) {
    const fs::path root = task_root(
        cfg, "basic_{train,val,test}.tsv; make a small set with `megalodon data listops --out DIR`");
    const int64_t max_length = cfg.get_int("task.max_length");  // >= 1 by the schema
    auto t = std::make_unique<ListOpsTask>(cfg, max_length);
    t->pad_ = parse_pad_to(cfg);
    t->root_ = root.string();
    const char* files[3] = {"task.train_file", "task.val_file", "task.test_file"};
    const bool skip_bad = cfg.get_string("task.bad_lines") == "skip";
    for (int s = 0; s < 3; ++s) {
      const fs::path file = root / cfg.get_string(files[s]);
      const auto examples = datasets::read_listops_tsv(file, split_limit(cfg, s));
      TokenSplit& split = t->split_[s];
      for (const auto& e : examples) {
        int64_t unknown = 0;
        std::string token;
        auto ids = datasets::ListOpsVocab::encode(e.source, &unknown, &token);
        if (unknown > 0) {
          if (!skip_bad)
            throw std::runtime_error(fmt::format(
                "{}:{}: unknown token '{}' ({} unknown in this line; ListOps has the digits 0-9, [MIN, [MAX, [MED, "
                "[SM, ] and parentheses; task.bad_lines = \"skip\" leaves such lines out)",
                file.string(), e.line, token, unknown));
          ++t->skipped_lines_;
          t->unknown_ += unknown;
          continue;
        }
        if (static_cast<int64_t>(ids.size()) > max_length) {
          ids.resize(max_length);
          ++t->truncated_;
        }
        t->longest_ = std::max<int64_t>(t->longest_, static_cast<int64_t>(ids.size()));
        split.first.push_back(std::move(ids));
        split.labels.push_back(e.target);
      }
    }
    return t;
  }

  int64_t size(Split s) const override { return split_[int(s)].size(); }

  harness::Batch make_batch(Split s, const std::vector<int64_t>& indices, uint64_t) const override {
    return split_[int(s)].batch(indices, pad_, max_length_);
  }

  std::string describe() const override {
    return fmt::format(
        "ListOps {}: {} train / {} val / {} test expressions (labels {} in train), LRA tokens (17 ids), longest {} "
        "of max {}{}{}, padded to {}",
        root_, size(Split::train), size(Split::val), size(Split::test), label_counts(split_[0].labels, 10), longest_,
        max_length_, truncated_ ? fmt::format(", {} truncated", truncated_) : "",
        skipped_lines_ ? fmt::format(", {} lines with {} unknown tokens skipped", skipped_lines_, unknown_) : "", pad_ == PadTo::batch ? "the batch" : "max_length");
  }

 private:
  TokenSplit split_[3];
  int64_t max_length_;
  PadTo pad_ = PadTo::batch;
  int64_t truncated_ = 0, unknown_ = 0, skipped_lines_ = 0, longest_ = 0;
  std::string root_;
};

void lra_listops_schema(harness::Schema& s) {
  s.add_string("task.root", "data/lra_release/listops-1000", "folder with the ListOps TSV files");
  s.add_string("task.train_file", "basic_train.tsv", "training split (header Source\\tTarget)");
  s.add_string("task.val_file", "basic_val.tsv", "validation split");
  s.add_string("task.test_file", "basic_test.tsv", "test split");
  s.add_int("task.max_length", 2002, "longest token sequence kept (Mega: 2002 positions; S4 pads to 2048)", harness::Range::at_least(1));
  s.add_string("task.pad_to", "max_length", "pad each batch to the longest sequence or to max_length",
               {"batch", "max_length"});
  s.add_string("task.bad_lines", "error",
               "a line with a token outside the ListOps vocabulary: error (stop, naming file:line) or skip (counted)",
               {"error", "skip"});
  add_split_limits(s, "use only the first N training examples", "use only the first N validation examples",
                   "use only the first N test examples");
}

MGL_REGISTER_TASK("lra_listops", "LRA ListOps: nested list operations as token sequences (10 classes)", lra_listops_schema,
                  [](const Config& cfg) { return ListOpsTask::create(cfg); });

}  // namespace
}  // namespace mgl::tasks
