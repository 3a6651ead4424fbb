#include "tasks/language_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "harness/config/model.h"
#include "harness/train/run_record.h"
#include "harness/util/files.h"
#include "tasks/common.h"

namespace mgl::tasks {

using harness::Batch;
using harness::Config;
using harness::ConfigError;
using harness::Split;
namespace fs = std::filesystem;
namespace text = datasets::text;

namespace {

void log_line(const std::string& s) { std::fprintf(stderr, "[lm] %s\n", s.c_str()); }

// The token offsets where documents start in a split: the cache's documents (PG-19 books, plain-text
// files; WikiText's one file per split) and, for WikiText articles or plain-text paragraphs, its
// sections. Sorted, unique.
std::vector<int64_t> document_starts(const text::PackedTokens& t, bool sections) {
  std::vector<int64_t> out;
  for (int64_t d = 0; d < t.num_documents(); ++d)
    if (t.document_end(d) > t.document_begin(d)) out.push_back(t.document_begin(d));
  if (sections) out.insert(out.end(), t.section_starts().begin(), t.section_starts().end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

LanguageModelTask::LanguageModelTask(const Config& cfg) {
  format_ = cfg.get_string("task.format");
  root_ = task_root(cfg, fmt::format("the {} corpus", format_)).string();
  corpus_ = text::open_corpus(format_, root_);

  // Tokenizer.
  const std::string tok = cfg.get_string("task.tokenizer");
  if (tok == "byte") {
    tokenizer_ = text::make_byte_tokenizer();
  } else if (tok == "sentencepiece") {
    if (!text::sentencepiece_available())
      throw ConfigError(cfg.origin("task.tokenizer"), "task.tokenizer",
                        "this build has no SentencePiece (libsentencepiece-dev was not found when CMake "
                        "configured it): use byte or word, or install it and re-run CMake");
    const std::string model = cfg.get_string("task.tokenizer_model");
    if (model.empty())
      throw ConfigError(cfg.origin("task.tokenizer_model"), "task.tokenizer_model",
                        "the sentencepiece tokenizer needs a .model file (train one with `megalodon data sentencepiece`)");
    tokenizer_ = text::load_sentencepiece(model);
    vocab_source_ = model;
  } else {  // word: a fairseq dict.txt given, saved with the run, or built from the train split
    std::string dict = cfg.get_string("task.vocab");
    const fs::path run_dict = harness::run_directory(cfg) / "dict.txt";
    text::Vocabulary vocab;
    if (!dict.empty()) {
      vocab = text::Vocabulary::load(dict);
    } else if (fs::exists(run_dict)) {
      vocab = text::Vocabulary::load(run_dict);
      dict = run_dict.string();
    } else {
      std::vector<fs::path> files;
      for (const auto& d : corpus_->documents(text::TextSplit::train)) files.push_back(d.path);
      log_line(fmt::format("building the word vocabulary from {} train file(s)", files.size()));
      vocab = text::Vocabulary::build(files, cfg.get_int("task.vocab_min_count"));
      fs::create_directories(run_dict.parent_path());
      vocab.save(run_dict);
      dict = run_dict.string();
    }
    vocab_source_ = dict;
    tokenizer_ = text::make_word_tokenizer(std::move(vocab));
  }

  // Token streams (packed, memory-mapped, rebuilt when the tokenizer or corpus changes).
  const fs::path cache = cfg.get_string("task.cache_dir");
  const int threads = static_cast<int>(std::max<int64_t>(1, cfg.get_int("task.threads")));
  auto log = [](const std::string& s) { log_line(s); };
  train_ = text::load_or_build_tokens(*corpus_, text::TextSplit::train, *tokenizer_, cache, threads, log);
  val_ = text::load_or_build_tokens(*corpus_, text::TextSplit::valid, *tokenizer_, cache, threads, log);
  test_ = text::load_or_build_tokens(*corpus_, text::TextSplit::test, *tokenizer_, cache, threads, log);
  train_docs_ = corpus_->documents(text::TextSplit::train);
  val_docs_ = corpus_->documents(text::TextSplit::valid);
  test_docs_ = corpus_->documents(text::TextSplit::test);

  // Document boundaries.
  reset_documents_ = cfg.get_string("task.document_boundaries") == "reset";
  restart_positions_ = cfg.get_string("task.document_positions") == "restart";
  if (format_ != "text" && cfg.get_string("task.text_boundaries") != "file")
    throw ConfigError(cfg.origin("task.text_boundaries"), "task.text_boundaries",
                      fmt::format("applies to plain text (task.format = \"text\"), not to {}", format_));
  if (reset_documents_) {
    if (cfg.get_int("dist.chunk_parallel") > 1)
      throw ConfigError(cfg.origin("task.document_boundaries"), "task.document_boundaries",
                        "\"reset\" does not support chunk parallelism (dist.chunk_parallel > 1): use data parallelism");
    // WikiText: the articles; PG-19: the books; plain text: the files, or the paragraphs on request.
    const bool sections = format_ == "wikitext" || (format_ == "text" && cfg.get_string("task.text_boundaries") == "blank_line");
    train_starts_ = document_starts(train_, sections);
    val_starts_ = document_starts(val_, sections);
    test_starts_ = document_starts(test_, sections);
    log_line(fmt::format("document resets: {}/{}/{} documents in train/valid/test ({})", train_starts_.size(),
                         val_starts_.size(), test_starts_.size(),
                         format_ == "wikitext" ? "articles" : format_ == "pg19" ? "books"
                         : sections             ? "paragraphs"
                                                : "files"));
  }

  // Model.
  transformer_ = cfg.get_string("model.name") == "transformer";
  mcfg_ = harness::megalodon_config_from(cfg, "model");
  mcfg_.vocab_size = tokenizer_->vocab_size();
  if (!mcfg_.causal)
    throw ConfigError(cfg.origin("model.causal"), "model.causal", "a language model needs the causal form (true)");
  if (transformer_) {
    tcfg_.num_layers = mcfg_.num_layers;
    tcfg_.model_dim = mcfg_.model_dim;
    tcfg_.num_heads = mcfg_.num_heads;
    tcfg_.ffn_hidden_dim = mcfg_.ffn_hidden_dim;
    tcfg_.vocab_size = mcfg_.vocab_size;
    tcfg_.norm_eps = mcfg_.norm_eps;
    tcfg_.rope_base = mcfg_.rope_base;
    tcfg_.dropout = mcfg_.dropout;
    tcfg_.share_emb = mcfg_.share_emb;
    tcfg_.adaptive_cutoffs = mcfg_.adaptive_cutoffs;
    tcfg_.adaptive_factor = mcfg_.adaptive_factor;
    tcfg_.adaptive_softmax_dropout = mcfg_.adaptive_softmax_dropout;
    tcfg_.checkpoint_activations = mcfg_.checkpoint_activations;
  }
  harness::with_origin(cfg, [&] { transformer_ ? tcfg_.validate("model") : mcfg_.validate("model"); });

  // Samples and batches.
  chunk_ = cfg.get_int("task.sample_chunk") > 0 ? cfg.get_int("task.sample_chunk") : mcfg_.chunk_size;
  min_chunks_ = cfg.get_int("task.min_chunks");
  max_chunks_ = cfg.get_int("task.max_chunks");
  if (min_chunks_ < 1 || max_chunks_ < min_chunks_)
    throw ConfigError(cfg.origin("task.max_chunks"), "task.max_chunks",
                      fmt::format("need 1 <= min_chunks <= max_chunks, got {} and {}", min_chunks_, max_chunks_));
  tokens_per_batch_ = cfg.get_int("task.tokens_per_batch");
  batch_size_ = cfg.get_int("trainer.batch_size");
  eval_length_ = cfg.get_int("task.eval_length") > 0 ? cfg.get_int("task.eval_length") : chunk_ * max_chunks_;
  eval_limit_ = cfg.get_int("task.eval_tokens_limit");
  if (train_.size() < chunk_ * max_chunks_ + 2)
    throw ConfigError(cfg.origin("task.root"), "task.root",
                      fmt::format("the train split has {} tokens, fewer than one sample of {} + 1", train_.size(),
                                  chunk_ * max_chunks_));
}

int64_t LanguageModelTask::sample_length(uint64_t seed) const {
  if (min_chunks_ == max_chunks_) return chunk_ * min_chunks_;
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  return chunk_ * std::uniform_int_distribution<int64_t>(min_chunks_, max_chunks_)(rng);
}

const text::PackedTokens& LanguageModelTask::tokens(Split s) const {
  return s == Split::train ? train_ : s == Split::val ? val_ : test_;
}

const std::vector<text::Document>& LanguageModelTask::documents(Split s) const {
  return s == Split::train ? train_docs_ : s == Split::val ? val_docs_ : test_docs_;
}

int64_t LanguageModelTask::eval_tokens(Split s) const {
  const int64_t n = tokens(s).size();
  return eval_limit_ > 0 ? std::min(n, eval_limit_) : n;
}

int64_t LanguageModelTask::mark_documents(Split split, int64_t at, int64_t length, torch::Tensor& starts,
                                          torch::Tensor& targets, int64_t b) const {
  const auto& all = split == Split::train ? train_starts_ : split == Split::val ? val_starts_ : test_starts_;
  auto* flag = starts[b].data_ptr<bool>();
  auto* target = targets[b].data_ptr<int64_t>();
  int64_t unscored = 0;
  // Inputs [at, at + length) and targets [at + 1, at + length]: a start at s flags input s − at and
  // unscores target s − at − 1 (the last token of the previous document predicting this one's first).
  for (auto it = std::lower_bound(all.begin(), all.end(), at); it != all.end() && *it <= at + length; ++it) {
    const int64_t i = *it - at;
    if (i < length) flag[i] = true;
    if (i >= 1 && target[i - 1] >= 0) target[i - 1] = -100, ++unscored;
  }
  return unscored;
}

int64_t LanguageModelTask::size(Split s) const {
  if (s == Split::train) {
    // One epoch ≈ one pass over the train tokens in samples of the mean length.
    const double mean = chunk_ * (min_chunks_ + max_chunks_) / 2.0;
    return std::max<int64_t>(1, static_cast<int64_t>(double(train_.size()) / mean));
  }
  const int64_t predictions = eval_tokens(s) - 1;
  return predictions <= 0 ? 0 : (predictions + eval_length_ - 1) / eval_length_;
}

// The training batch's windows all come from the batch seed; shard `shard` of `num_shards` keeps
// windows [shard·B/P, (shard+1)·B/P), so the shards together are exactly the one-process batch.
Batch LanguageModelTask::train_batch(size_t batch_size, uint64_t seed, int shard, int num_shards) const {
  const int64_t L = sample_length(seed);
  const int64_t B = tokens_per_batch_ > 0 ? std::max<int64_t>(1, tokens_per_batch_ / L)
                                          : static_cast<int64_t>(batch_size);
  if (B % num_shards != 0)
    throw std::runtime_error(fmt::format("data parallelism over {} processes needs a batch of sequences divisible by "
                                         "{}; this batch has {} sequences of {} tokens (trainer.batch_size / "
                                         "task.tokens_per_batch)",
                                         num_shards, num_shards, B, L));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> start(0, train_.size() - L - 1);
  std::vector<int64_t> ats;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t at = start(rng);
    if (b >= B * shard / num_shards && b < B * (shard + 1) / num_shards) ats.push_back(at);
  }
  // One read per window of L + 1 tokens, into a row of its own: inputs are its first L tokens and
  // targets its last L, two views of one buffer (issue 22: half the memory and the writes of two
  // tensors, and the prefetched batches of a loader thread then stay in its core's cache).
  Batch out;
  out.examples = static_cast<int64_t>(ats.size());
  out.tokens = out.examples * L;
  torch::Tensor windows = torch::empty({out.examples, L + 1}, torch::kInt64);
  int64_t* w = windows.data_ptr<int64_t>();
  for (int64_t b = 0; b < out.examples; ++b) train_.read(ats[b], L + 1, w + b * (L + 1));
  out.inputs = windows.narrow(1, 0, L);
  out.targets = windows.narrow(1, 1, L);
  if (reset_documents_) {
    out.targets = out.targets.contiguous();  // unscored targets are written: not through the inputs
    torch::Tensor starts = torch::zeros({out.examples, L}, torch::kBool);
    for (int64_t b = 0; b < out.examples; ++b) mark_documents(Split::train, ats[b], L, starts, out.targets, b);
    out.extra = {torch::tensor(double(out.tokens), torch::kFloat64), starts};
  }
  return out;
}

Batch LanguageModelTask::make_batch_shard(Split split, const std::vector<int64_t>& indices, uint64_t seed, int shard,
                                          int num_shards) const {
  if (split == Split::train) return train_batch(indices.size(), seed, shard, num_shards);
  return Task::make_batch_shard(split, indices, seed, shard, num_shards);
}

Batch LanguageModelTask::make_batch(Split split, const std::vector<int64_t>& indices, uint64_t seed) const {
  Batch out;
  if (split == Split::train) return train_batch(indices.size(), seed, 0, 1);
  // Contiguous blocks: block i predicts tokens [i·S + 1, i·S + S] from [i·S, i·S + S).
  const auto& toks = tokens(split);
  const int64_t n = eval_tokens(split), S = eval_length_;
  const int64_t B = static_cast<int64_t>(indices.size());
  out.inputs = torch::zeros({B, S}, torch::kInt64);
  out.targets = torch::full({B, S}, -100, torch::kInt64);
  torch::Tensor starts = reset_documents_ ? torch::zeros({B, S}, torch::kBool) : torch::Tensor();
  int64_t predicted = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t begin = indices[b] * S;
    const int64_t len = std::min(S, n - 1 - begin);
    if (len <= 0) continue;
    const torch::Tensor w = toks.slice(begin, len + 1);
    out.inputs[b].narrow(0, 0, len).copy_(w.narrow(0, 0, len));
    out.targets[b].narrow(0, 0, len).copy_(w.narrow(0, 1, len));
    predicted += len;
    if (reset_documents_) predicted -= mark_documents(split, begin, len, starts, out.targets, b);
  }
  // The words these predictions stand for: the split's words in proportion, so that the sums over
  // every block give exactly the split's word count (minus the share of the unpredicted first token).
  const double words_per_token = double(toks.total_words()) / double(std::max<int64_t>(1, toks.size()));
  out.extra = {torch::tensor(double(predicted) * words_per_token, torch::kFloat64)};
  if (reset_documents_) out.extra.push_back(starts);
  out.examples = B;
  out.tokens = predicted;
  return out;
}

std::shared_ptr<torch::nn::Module> LanguageModelTask::build_model() {
  lm_ = transformer_ ? make_transformer_lm(tcfg_) : make_megalodon_lm(mcfg_);
  return lm_;
}

CausalLMImpl& LanguageModelTask::lm() const {
  TORCH_CHECK(lm_, "language model task: build_model() has not been called");
  return *lm_;
}

harness::StepOutput LanguageModelTask::step(const Batch& batch, bool training) {
  (void)training;
  Documents docs;
  if (batch.extra.size() > 1) {
    docs.starts = batch.extra[1];
    docs.restart_positions = restart_positions_;
  }
  const torch::Tensor nll = lm().nll(batch.inputs, batch.targets, nullptr, docs).to(torch::kFloat64);
  const torch::Tensor valid = batch.targets >= 0;
  const double count = valid.sum().item<double>();
  harness::StepOutput out;
  out.loss = nll.sum() / std::max(1.0, count);
  out.loss = out.loss.to(torch::kFloat32);
  out.sums.add("nll_sum", nll.sum().item<double>());
  out.sums.add("tokens", count);
  out.sums.add("words", batch.extra.empty() ? count : batch.extra[0].item<double>());
  return out;
}

std::map<std::string, double> LanguageModelTask::finalize(const harness::MetricSums& s) const {
  auto get = [&](const char* k) {
    auto it = s.sum.find(k);
    return it == s.sum.end() ? 0.0 : it->second;
  };
  const double n = std::max(1.0, get("tokens")), words = std::max(1.0, get("words"));
  const double loss = get("nll_sum") / n;
  return {{"loss", loss},
          {"ppl", std::exp(loss)},
          {"bits_per_token", loss / std::log(2.0)},
          {"word_ppl", std::exp(get("nll_sum") / words)}};
}

double LanguageModelTask::train_flops_per_example() const {
  const double L = chunk_ * (min_chunks_ + max_chunks_) / 2.0;
  return lm_ ? 3.0 * L * lm_->flops_per_token(static_cast<int64_t>(L)) : 0.0;
}

std::string LanguageModelTask::describe() const {
  std::string resets;
  if (reset_documents_)
    resets = fmt::format("; state reset at {} document starts in train (positions {})", train_starts_.size(),
                         restart_positions_ ? "restart" : "continue");
  return fmt::format("{} at {}: {}; tokens train/valid/test {}/{}/{} ({} docs in test); samples {}–{}×{} tokens{}",
                     format_, root_, tokenizer_->describe(), train_.size(), val_.size(), test_.size(),
                     test_.num_documents(), min_chunks_, max_chunks_, chunk_, resets);
}

std::optional<harness::ModelSpec> LanguageModelTask::model_spec() const {
  if (transformer_) return std::nullopt;
  harness::ModelSpec spec;
  spec.architecture = "megalodon_lm";
  spec.model = mcfg_;
  return spec;
}

namespace {

void language_model_schema(harness::Schema& s) {
  s.add_string("task.format", "text", "corpus layout", {"wikitext", "pg19", "text"});
  s.add_string("task.root", "data/lm/text", "the corpus folder (wiki.*.tokens; train/ validation/ test/ + metadata.csv; "
                                            "or {train,valid,test}/*.txt)");
  s.add_string("task.tokenizer", "byte", "byte (256 bytes + </s>), word (vocabulary from train), or sentencepiece",
               {"byte", "word", "sentencepiece"});
  s.add_string("task.tokenizer_model", "", "the SentencePiece .model file (tokenizer = sentencepiece)");
  s.add_string("task.vocab", "", "word tokenizer: a fairseq dict.txt; empty = built from train and saved as "
                                 "<run>/dict.txt");
  s.add_int("task.vocab_min_count", 1, "word tokenizer: words seen fewer times in train map to <unk>", harness::Range::at_least(1));
  s.add_string("task.cache_dir", "data/token_cache", "packed token streams (rebuilt when tokenizer or corpus change)");
  s.add_int("task.threads", 2, "threads tokenising documents", harness::Range::at_least(1));
  s.add_int("task.sample_chunk", -1, "sample length unit C; -1 = model.chunk_size", harness::Range::at_least(1).or_value(-1));
  s.add_int("task.min_chunks", 1, "training samples are m·C tokens, m ~ U{min_chunks..max_chunks}", harness::Range::at_least(1));
  s.add_int("task.max_chunks", 1, "see min_chunks (WikiText-103: 2..6)", harness::Range::at_least(1));
  s.add_int("task.tokens_per_batch", 0, "> 0: ⌊tokens_per_batch/(m·C)⌋ samples per batch instead of trainer.batch_size", harness::Range::at_least(0));
  s.add_int("task.eval_length", -1, "trainer evaluation block length; -1 = max_chunks·C", harness::Range::at_least(1).or_value(-1));
  s.add_int("task.eval_tokens_limit", -1, "evaluate only the first N tokens of val/test in the trainer; -1 = all", harness::Range::at_least(0).or_value(-1));
  s.add_string("task.document_boundaries", "off",
               "reset: every document in a packed window starts afresh (CEMA state, timestep-norm statistics, "
               "attention) and a document's first token is not predicted from the previous one; off: the window is "
               "one sequence",
               {"off", "reset"});
  s.add_string("task.document_positions", "restart",
               "with reset: RoPE positions (and Megalodon's attention chunks) restart at each document, or continue "
               "the window's",
               {"restart", "continue"});
  s.add_string("task.text_boundaries", "file", "plain text with reset: documents are the files or the paragraphs "
                                               "(blank-line separated)",
               {"file", "blank_line"});
}

MGL_REGISTER_TASK("lm", "causal language modelling (WikiText-103, PG-19 or plain text)", language_model_schema,
                  [](const Config& cfg) { return std::make_unique<LanguageModelTask>(cfg); });

}  // namespace
}  // namespace mgl::tasks
