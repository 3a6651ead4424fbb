// LRA Text (paper-benchmarks §2.2, §3.3): IMDB sentiment from the raw bytes of each review. Reads
// the Stanford release (`aclImdb/{train,test}/{neg,pos}/*.txt`); each review becomes its UTF-8
// bytes + 1 (0 is padding; 257 ids), cut at task.max_length (4,096 in the papers).
//
// Validation: LRA (and Mega) have no validation split for this task and evaluate the test set as
// "validation" (val_from = "test", the default: the val and test rows are the same data). With
// val_from = "train", val_size reviews are held out of the training set by a random permutation
// seeded with split_seed instead.
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

TokenSplit encode(const std::vector<datasets::TextExample>& ex, int64_t max_length, int64_t* truncated,
                  const std::vector<int64_t>& order) {
  TokenSplit s;
  for (int64_t i : order) {
    const auto& e = ex.at(i);
    if (static_cast<int64_t>(e.text.size()) > max_length) ++*truncated;
    s.first.push_back(datasets::encode_bytes(e.text, max_length));
    s.labels.push_back(e.label);
  }
  return s;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

class TextTask final : public ClassificationTask {
 public:
  TextTask(const Config& cfg, int64_t max_length)
      : ClassificationTask(cfg, 2, 1, datasets::kByteVocabSize, max_length), max_length_(max_length) {}

  static std::unique_ptr<harness::Task> create(const Config& cfg) {
    const fs::path root = task_root(cfg, "the aclImdb folder with train/ and test/");
    const int64_t max_length = cfg.get_int("task.max_length");  // >= 1 by the schema
    auto t = std::make_unique<TextTask>(cfg, max_length);
    t->pad_ = parse_pad_to(cfg);
    t->root_ = root.string();
    const int64_t per_class = cfg.get_int("task.limit_per_class");
    const auto train = datasets::read_imdb_split(root, "train", per_class);
    const auto test = datasets::read_imdb_split(root, "test", per_class);
    t->val_from_test_ = cfg.get_string("task.val_from") == "test";
    std::vector<int64_t> tr = iota(static_cast<int64_t>(train.size())), va;
    if (!t->val_from_test_) {
      const int64_t n = static_cast<int64_t>(train.size()), val = cfg.get_int("task.val_size");
      if (val <= 0 || val >= n)
        throw ConfigError(cfg.origin("task.val_size"), "task.val_size", fmt::format("must be in [1, {}) with val_from = \"train\"", n));
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.get_int("task.split_seed")));
      torch::Tensor perm = torch::randperm(n, gen, torch::kInt64);
      tr.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + (n - val));
      va.assign(perm.data_ptr<int64_t>() + (n - val), perm.data_ptr<int64_t>() + n);
    }
    auto limit = [&](std::vector<int64_t> v, const char* key) {
      const int64_t n = cfg.get_int(key);
      if (n >= 0 && n < static_cast<int64_t>(v.size())) v.resize(n);
      return v;
    };
    t->split_[0] = encode(train, max_length, &t->truncated_, limit(tr, "task.train_limit"));
    // Cut the test set once; with val_from = test the validation split is the same data.
    t->split_[2] = encode(test, max_length, &t->truncated_, limit(iota(static_cast<int64_t>(test.size())), "task.test_limit"));
    t->split_[1] = t->val_from_test_ ? t->split_[2] : encode(train, max_length, &t->truncated_, limit(va, "task.val_limit"));
    return t;
  }

  int64_t size(Split s) const override { return split_[int(s)].size(); }

  harness::Batch make_batch(Split s, const std::vector<int64_t>& indices, uint64_t) const override {
    return split_[int(s)].batch(indices, pad_, max_length_);
  }

  std::string describe() const override {
    return fmt::format("IMDB {}: {} train / {} val{} / {} test reviews (train labels neg/pos {}), UTF-8 bytes (257 ids) "
                       "cut at {} ({} reviews cut), padded to {}",
                       root_, size(Split::train), size(Split::val), val_from_test_ ? " (= the test set, as LRA)" : "",
                       size(Split::test), label_counts(split_[0].labels, 2), max_length_, truncated_,
                       pad_ == PadTo::batch ? "the batch" : "max_length");
  }

 private:
  TokenSplit split_[3];
  int64_t max_length_;
  PadTo pad_ = PadTo::batch;
  bool val_from_test_ = true;
  int64_t truncated_ = 0;
  std::string root_;
};

void lra_text_schema(harness::Schema& s) {
  s.add_string("task.root", "data/aclImdb", "the aclImdb folder of the Stanford release");
  s.add_int("task.max_length", 4096, "bytes kept per review (the papers: 4K)", harness::Range::at_least(1));
  s.add_string("task.pad_to", "max_length", "pad each batch to the longest review or to max_length",
               {"batch", "max_length"});
  s.add_string("task.val_from", "test", "validation data: the test set (LRA) or a hold-out of train", {"test", "train"});
  s.add_int("task.val_size", 2500, "held-out training reviews when val_from = \"train\"", harness::Range::at_least(0));
  s.add_int("task.split_seed", 42, "seed of the hold-out permutation", harness::Range::at_least(0));
  s.add_int("task.limit_per_class", -1, "read only the first N reviews per class and split; -1 = all", harness::Range::at_least(0).or_value(-1));
  add_split_limits(s, "use only the first N training reviews",
                   "use only the first N held-out reviews (val_from = train)",
                   "use only the first N test reviews (also the validation set when val_from = test)");
}

MGL_REGISTER_TASK("lra_text", "LRA Text: IMDB sentiment from raw bytes (2 classes)", lra_text_schema,
                  [](const Config& cfg) { return TextTask::create(cfg); });

}  // namespace
}  // namespace mgl::tasks
