// The language-model task (tasks/language_model.h), streaming evaluation and generation
// (tasks/lm_eval.h), and the lm-eval / generate commands, on small corpora written here in the real
// WikiText-103, PG-19 and plain-text layouts.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include "core/models/factory.h"
#include "datasets/text/text.h"
#include "harness/experiment.h"
#include "harness/task.h"
#include "harness/train/trainer.h"
#include "harness/util/files.h"
#include "support/files.h"
#include "support/oracle.h"
#include "tasks/language_model.h"
#include "tasks/lm_eval.h"

namespace fs = std::filesystem;
using mgl::harness::Config;
using mgl::harness::load_experiment;
using mgl::harness::Split;
using mgl::test::max_abs;
using mgl::test::TempDir;
using mgl::test::write_text;
using torch::Tensor;
namespace text = mgl::datasets::text;

namespace {

const fs::path kExperiments = fs::path(MEGALODON_SOURCE_DIR) / "experiments";

// Deterministic English-like text: words from a small list, sentences, paragraphs.
std::string prose(uint64_t seed, int paragraphs, int sentences = 6) {
  static const char* words[] = {"the", "king", "said", "unto", "them", "and", "it", "came", "to", "pass",
                                "that", "in", "those", "days", "a", "man", "of", "great", "house", "went",
                                "out", "into", "land", "river", "city", "gate", "light", "water", "was", "good"};
  std::mt19937_64 rng(seed);
  std::string s;
  for (int p = 0; p < paragraphs; ++p) {
    for (int k = 0; k < sentences; ++k) {
      const int n = 4 + static_cast<int>(rng() % 8);
      for (int i = 0; i < n; ++i) {
        std::string w = words[rng() % 30];
        if (i == 0) w[0] = static_cast<char>(std::toupper(w[0]));
        s += w + (i + 1 < n ? " " : ". ");
      }
    }
    s += "\n\n";
  }
  return s;
}

struct LmData {
  TempDir dir{"lm-data"};
  fs::path plain, wikitext, pg19, sp_model;
  LmData() {
    plain = dir / "plain";
    write_text(plain / "train" / "a.txt", prose(1, 30));
    write_text(plain / "train" / "b.txt", prose(2, 30));
    write_text(plain / "valid" / "c.txt", prose(3, 4));
    write_text(plain / "test" / "d.txt", prose(4, 3));
    write_text(plain / "test" / "e.txt", prose(5, 2));
    wikitext = dir / "wikitext";
    for (auto [split, seed, n] : {std::tuple{"train", 6, 40}, {"valid", 7, 4}, {"test", 8, 4}}) {
      std::string t;
      std::mt19937_64 rng(seed);
      for (int a = 0; a < n / 4; ++a) {
        t += " \n = Article " + std::to_string(a) + " = \n \n";
        std::string para = prose(rng(), 1, 3);
        for (auto& c : para)
          if (c == '\n') c = ' ';
        t += " " + para + "\n \n";
      }
      write_text(wikitext / fmt::format("wiki.{}.tokens", split), t);
    }
    pg19 = dir / "pg19";
    std::string meta = "book_id,short_book_title,publication_date,book_link\n";
    int id = 10;
    for (auto [split, books] : {std::pair{"train", 3}, {"validation", 1}, {"test", 1}}) {
      for (int b = 0; b < books; ++b, ++id) {
        write_text(pg19 / split / fmt::format("{}.txt", id), prose(100 + id, split == std::string("train") ? 25 : 5));
        meta += fmt::format("{},\"Book {}, a title\",1900,http://example.org/{}\n", id, id, id);
      }
    }
    write_text(pg19 / "metadata.csv", meta);
    text::SentencePieceOptions so;
    so.vocab_size = 300;
    if (text::sentencepiece_available())  // a build without SentencePiece tests its refusal instead
      sp_model = text::train_sentencepiece({pg19 / "train" / "10.txt", pg19 / "train" / "11.txt"}, dir / "sp", so);
  }
};

LmData& data() {
  static LmData d;
  return d;
}

// A tiny model and a short run: any LM experiment becomes a smoke run with these.
std::vector<std::string> tiny(const fs::path& run_dir) {
  return {"run.dir=" + run_dir.string(), "trainer.steps=2", "trainer.batch_size=2", "trainer.accumulate=1",
          "trainer.eval_every=0", "trainer.eval_batch_size=2", "trainer.log_every=1", "trainer.workers=1",
          "trainer.checkpoint_every=0", "trainer.progress=off", "schedule.warmup=1", "run.device=cpu",
          "trainer.precision=fp32", "model.preset=\"\"", "model.num_layers=1", "model.model_dim=32",
          "model.z_dim=16", "model.value_dim=32", "model.ffn_hidden_dim=32", "model.num_heads=1",
          "model.norm_num_groups=4", "model.chunk_size=16", "task.sample_chunk=16", "task.eval_length=32",
          "task.eval_tokens_limit=200", "task.cache_dir=" + (run_dir / "cache").string(), "task.threads=1"};
}

std::vector<std::string> data_overrides(const Config& cfg) {
  auto& d = data();
  const std::string f = cfg.get_string("task.format");
  std::vector<std::string> o;
  if (f == "wikitext") o = {"task.root=" + d.wikitext.string()};
  if (f == "pg19") o = {"task.root=" + d.pg19.string()};
  if (f == "text") o = {"task.root=" + d.plain.string()};
  if (cfg.get_string("task.tokenizer") == "sentencepiece") o.push_back("task.tokenizer_model=" + d.sp_model.string());
  if (!cfg.get_ints("model.adaptive_cutoffs").empty()) o.push_back("model.adaptive_cutoffs=[8, 16]");
  if (cfg.get_int("task.tokens_per_batch") > 0) o.push_back("task.tokens_per_batch=64");
  return o;
}

Config plain_config(const fs::path& run_dir, std::vector<std::string> extra = {}) {
  auto o = tiny(run_dir);
  o.push_back("task.root=" + data().plain.string());
  o.push_back("task.format=\"text\"");
  o.push_back("task.tokenizer=\"byte\"");
  o.insert(o.end(), extra.begin(), extra.end());
  return load_experiment(kExperiments / "lm/small/kjv_megalodon.toml", o);
}

std::unique_ptr<mgl::tasks::LanguageModelTask> make_task(const Config& cfg) {
  auto t = mgl::harness::task_registry().at("lm", "task.name", "").create(cfg);
  return std::unique_ptr<mgl::tasks::LanguageModelTask>(dynamic_cast<mgl::tasks::LanguageModelTask*>(t.release()));
}

std::vector<fs::path> lm_experiments() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(kExperiments / "lm"))
    if (e.path().extension() == ".toml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("every LM experiment trains a few steps on small files in the real formats", "[tasks][experiments][lm]") {
  TempDir runs("lm-runs");
  const auto files = lm_experiments();
  REQUIRE(files.size() >= 7);
  for (const auto& f : files) {
    Config probe = mgl::harness::ConfigLoader::compose(f, {});
    if (!probe.has("task.name")) continue;  // a suite sweep file
    probe = load_experiment(f, {"task.tokenizer_model=" + data().sp_model.string()});
    if (!text::sentencepiece_available() && probe.get_string("task.tokenizer") == "sentencepiece") {
      WARN(f.string() << ": not trained (this build has no SentencePiece; its refusal is tested above)");
      continue;
    }
    const std::string name = fs::relative(f, kExperiments).replace_extension().string();
    DYNAMIC_SECTION(name) {
      auto o = tiny(runs / mgl::harness::slug(name));
      auto extra = data_overrides(probe);
      o.insert(o.end(), extra.begin(), extra.end());
      Config cfg = load_experiment(f, o);
      auto r = mgl::harness::train(cfg, {});
      CHECK(r.steps == 2);
      CHECK(std::isfinite(r.metrics.at("test/ppl")));
      CHECK(std::isfinite(r.metrics.at("val/word_ppl")));
      CHECK(r.metrics.at("test/ppl") > 1.0);
    }
  }
}

TEST_CASE("LM task: samples of m·C tokens, eval blocks cover every token once, word counts", "[tasks][lm]") {
  TempDir run("lm-task");
  Config cfg = plain_config(run.path(), {"task.min_chunks=2", "task.max_chunks=3", "task.eval_length=50",
                                         "task.eval_tokens_limit=-1", "task.tokens_per_batch=0"});
  auto task = make_task(cfg);
  task->build_model();
  const auto& val = task->tokens(Split::val);
  const int64_t n = val.size();
  REQUIRE(n > 200);
  REQUIRE(task->size(Split::val) == (n - 1 + 49) / 50);
  // Training: the same seed gives the same batch; lengths are 2·16 or 3·16; targets are inputs shifted.
  std::set<int64_t> lengths;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto b = task->make_batch(Split::train, {0, 1, 2}, seed);
    REQUIRE(b.inputs.size(0) == 3);
    lengths.insert(b.inputs.size(1));
    CHECK(b.inputs.narrow(1, 1, b.inputs.size(1) - 1).equal(b.targets.narrow(1, 0, b.inputs.size(1) - 1)));
  }
  CHECK(lengths == std::set<int64_t>{32, 48});
  CHECK(task->make_batch(Split::train, {0, 1}, 7).inputs.equal(task->make_batch(Split::train, {5, 9}, 7).inputs));
  // Evaluation: the targets of all blocks, in order, are tokens 1..n−1 exactly once; the word sums
  // add up to the split's words (less the first token's share).
  std::vector<int64_t> all(task->size(Split::val));
  std::iota(all.begin(), all.end(), 0);
  auto b = task->make_batch(Split::val, all, 0);
  const Tensor t = b.targets.reshape({-1});
  const Tensor kept = t.masked_select(t >= 0);
  CHECK(kept.equal(val.slice(1, n - 1)));
  const double words = b.extra.at(0).item<double>();
  CHECK(std::abs(words - double(val.total_words()) * double(n - 1) / double(n)) < 1e-6);
  // The metrics: ppl = exp(loss), word_ppl from the word count.
  auto out = task->step(b, false);
  auto m = task->finalize(out.sums);
  CHECK(m.at("ppl") == Approx(std::exp(m.at("loss"))));
  CHECK(m.at("word_ppl") == Approx(std::exp(out.sums.sum.at("nll_sum") / words)));
  // A token budget sets the number of samples.
  Config budget = plain_config(run.path(), {"task.tokens_per_batch=100", "task.min_chunks=1", "task.max_chunks=1"});
  auto t2 = make_task(budget);
  CHECK(t2->make_batch(Split::train, {0}, 3).inputs.size(0) == 100 / 16);
}

TEST_CASE("LM task: bad configurations are named", "[tasks][lm]") {
  TempDir run("lm-bad");
  CHECK_THROWS_WITH(make_task(plain_config(run.path(), {"task.root=" + (run / "absent").string()})),
                    Catch::Contains("task.root"));
  auto cfg = plain_config(run.path(), {"task.min_chunks=3", "task.max_chunks=2"});
  CHECK_THROWS_WITH(make_task(cfg), Catch::Contains("task.max_chunks"));
  auto sp = plain_config(run.path(), {"task.tokenizer=\"sentencepiece\"", "task.tokenizer_model=\"\""});
  CHECK_THROWS_WITH(make_task(sp), Catch::Contains(text::sentencepiece_available() ? "task.tokenizer_model"
                                                                                     : "this build has no SentencePiece"));
  auto big = plain_config(run.path(), {"model.adaptive_cutoffs=[100, 400]"});
  CHECK_THROWS_WITH(make_task(big), Catch::Contains("adaptive_cutoffs"));
}

TEST_CASE("streaming evaluation equals one-shot evaluation, with and without context resets", "[tasks][lm][stream]") {
  TempDir run("lm-stream");
  for (const char* model : {"megalodon", "transformer"}) {
    INFO(model);
    Config cfg = plain_config(run.path(), {fmt::format("model.name=\"{}\"", model), "model.num_heads=2"});
    auto task = make_task(cfg);
    task->build_model();
    auto& lm = task->lm();
    lm.to(torch::kFloat64);
    const auto& toks = task->tokens(Split::test);
    REQUIRE(toks.num_documents() == 2);
    double one_shot = 0;
    int64_t predicted = 0;
    for (int64_t d = 0; d < toks.num_documents(); ++d) {
      const int64_t n = toks.document_end(d) - toks.document_begin(d);
      one_shot += mgl::tasks::one_shot_nll(lm, toks.slice(toks.document_begin(d), n)).sum().item<double>();
      predicted += n - 1;
    }
    mgl::tasks::StreamEvalOptions o;
    o.chunk = 16;
    o.segment = 7;  // uneven segments across chunk boundaries
    o.position_edges = {0, 16, 64, 1 << 20};
    auto r = mgl::tasks::stream_eval(lm, toks, o);
    CHECK(r.tokens == predicted);
    CHECK(r.nll_sum == Approx(one_shot).epsilon(1e-10));
    CHECK(r.bucket_tokens[0] + r.bucket_tokens[1] + r.bucket_tokens[2] == predicted);
    double bucket_sum = 0;
    for (double v : r.bucket_nll) bucket_sum += v;
    CHECK(bucket_sum == Approx(r.nll_sum).epsilon(1e-12));
    CHECK(r.words == Approx(double(toks.total_words())));
    // Context X: the state is reset every X tokens; equal to one-shot passes over the pieces.
    o.context = 40;
    auto rc = mgl::tasks::stream_eval(lm, toks, o);
    double pieces = 0;
    for (int64_t d = 0; d < toks.num_documents(); ++d) {
      const int64_t n = toks.document_end(d) - toks.document_begin(d);
      for (int64_t s = 0; s < n - 1; s += 40) {
        const int64_t len = std::min<int64_t>(40, n - 1 - s);
        pieces += mgl::tasks::one_shot_nll(lm, toks.slice(toks.document_begin(d) + s, len + 1)).sum().item<double>();
      }
    }
    CHECK(rc.tokens == predicted);
    CHECK(rc.nll_sum == Approx(pieces).epsilon(1e-10));
    CHECK(rc.nll_sum != Approx(r.nll_sum).epsilon(1e-6));  // less context, other numbers
  }
}

TEST_CASE("the TimestepNorm window heuristic (spec §7.2) changes only long streams", "[tasks][lm][stream]") {
  TempDir run("lm-window");
  Config cfg = plain_config(run.path());
  auto task = make_task(cfg);
  task->build_model();
  auto& lm = task->lm();
  lm.to(torch::kFloat64);
  const auto& toks = task->tokens(Split::test);
  mgl::tasks::StreamEvalOptions o;
  o.chunk = 16;
  o.segment = 32;
  const auto off = mgl::tasks::stream_eval(lm, toks, o);
  o.tsn_window_chunks = 3;  // re-estimate over the last 16 tokens once 48 are consumed
  const auto on = mgl::tasks::stream_eval(lm, toks, o);
  CHECK(on.tokens == off.tokens);
  CHECK(std::abs(on.nll_sum - off.nll_sum) > 1e-9);
  // A document shorter than T·C never reaches the window.
  o.max_tokens_per_document = 40;
  auto short_on = mgl::tasks::stream_eval(lm, toks, o);
  o.tsn_window_chunks = 0;
  auto short_off = mgl::tasks::stream_eval(lm, toks, o);
  CHECK(short_on.nll_sum == Approx(short_off.nll_sum).epsilon(1e-14));
  CHECK(short_on.words < off.words);
  // The Transformer has no norm statistics to refresh.
  Config tcfg = plain_config(run.path(), {"model.name=\"transformer\""});
  auto ttask = make_task(tcfg);
  ttask->build_model();
  o.tsn_window_chunks = 3;
  o.max_tokens_per_document = -1;
  CHECK_THROWS_WITH(mgl::tasks::stream_eval(ttask->lm(), ttask->tokens(Split::test), o), Catch::Contains("Megalodon"));
}

TEST_CASE("generation: greedy equals full recomputation, seeds are deterministic, top-k/top-p restrict", "[tasks][lm][generate]") {
  TempDir run("lm-gen");
  for (const char* model : {"megalodon", "transformer"}) {
    INFO(model);
    Config cfg = plain_config(run.path(), {fmt::format("model.name=\"{}\"", model), "model.num_heads=2"});
    auto task = make_task(cfg);
    task->build_model();
    auto& lm = task->lm();
    lm.to(torch::kFloat64);
    lm.eval();
    const std::vector<int32_t> prompt = task->tokenizer().encode("The king said unto them that the river");
    mgl::tasks::GenerateOptions o;
    o.chunk = 16;
    o.segment = 8;
    o.max_new_tokens = 24;  // crosses chunk boundaries with the one-token calls
    o.greedy = true;
    std::vector<int32_t> streamed;
    const auto greedy = mgl::tasks::generate(lm, prompt, o, [&](int32_t id) { streamed.push_back(id); });
    CHECK(streamed == greedy);
    // The oracle: recompute the whole sequence every step, no state.
    std::vector<int64_t> seq(prompt.begin(), prompt.end());
    for (int i = 0; i < 24; ++i) {
      torch::NoGradGuard g;
      const Tensor logits = lm.forward(torch::tensor(seq, torch::kInt64).unsqueeze(0)).select(1, -1);
      seq.push_back(logits.argmax(-1).item<int64_t>());
    }
    CHECK(std::vector<int32_t>(seq.begin() + prompt.size(), seq.end()) == greedy);
    // Sampling: the same seed, the same ids; top-k 1 and a tiny top-p are greedy.
    o.greedy = false;
    o.temperature = 1.5;
    o.seed = 11;
    const auto a = mgl::tasks::generate(lm, prompt, o);
    CHECK(mgl::tasks::generate(lm, prompt, o) == a);
    o.seed = 12;
    CHECK(mgl::tasks::generate(lm, prompt, o) != a);
    o.top_k = 1;
    CHECK(mgl::tasks::generate(lm, prompt, o) == greedy);
    o.top_k = 0;
    o.top_p = 1e-9;
    CHECK(mgl::tasks::generate(lm, prompt, o) == greedy);
  }
  // sample_next: top-k keeps the k most likely ids, top-p the smallest set reaching p.
  const Tensor logits = torch::tensor({0.0, 3.0, 1.0, 2.9, -1.0}, torch::kFloat64).unsqueeze(0);
  mgl::tasks::GenerateOptions o;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(5);
  o.top_k = 2;
  for (int i = 0; i < 200; ++i) {
    const int64_t id = mgl::tasks::sample_next(logits, o, gen);
    CHECK((id == 1 || id == 3));
  }
  o.top_k = 0;
  o.top_p = 0.5;  // p(1) ≈ 0.47 < 0.5, so {1, 3}
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(mgl::tasks::sample_next(logits, o, gen));
  CHECK(seen == std::set<int64_t>{1, 3});
}

TEST_CASE("lm-eval and generate commands on a trained run", "[tasks][lm][cli]") {
  TempDir run("lm-cli");
  Config cfg = plain_config(run / "run", {"trainer.steps=3"});
  auto r = mgl::harness::train(cfg, {});
  REQUIRE(fs::exists(r.run_dir / "best.pt"));
  const std::string cli = MEGALODON_CLI_PATH;
  const fs::path json = run / "eval.json";
  const std::string cmd = fmt::format("{} lm-eval {} --contexts 32,64 --segment 20 --out {} > {} 2>&1", cli,
                                      r.run_dir.string(), json.string(), (run / "eval.log").string());
  REQUIRE(std::system(cmd.c_str()) == 0);
  const auto j = mgl::harness::read_json(json);
  REQUIRE(j["passes"].size() == 3);
  CHECK(j["passes"][0]["context"] == "document");
  CHECK(j["passes"][1]["context"] == 32);
  for (const auto& p : j["passes"]) CHECK(std::isfinite(p["ppl"].get<double>()));
  CHECK(j["documents"] == 2);
  // generate: same seed, same text; a bad option is refused with exit code 2.
  auto gen = [&](const std::string& out) {
    const std::string c = fmt::format("{} generate {} --prompt 'The king' --max-tokens 12 --seed 3 --top-k 5 > {} 2>/dev/null",
                                      cli, r.run_dir.string(), (run / out).string());
    return std::system(c.c_str());
  };
  REQUIRE(gen("g1.txt") == 0);
  REQUIRE(gen("g2.txt") == 0);
  const std::string g1 = mgl::harness::read_file(run / "g1.txt");
  CHECK(g1.rfind("The king", 0) == 0);
  CHECK(g1.size() > std::string("The king").size());
  CHECK(g1 == mgl::harness::read_file(run / "g2.txt"));
  const std::string bad = fmt::format("{} generate {} > /dev/null 2>&1", cli, r.run_dir.string());
  CHECK(WEXITSTATUS(std::system(bad.c_str())) == 2);
}

namespace {

Config format_config(const fs::path& run_dir, const std::string& format, std::vector<std::string> extra) {
  auto& d = data();
  auto o = tiny(run_dir);
  const fs::path root = format == "wikitext" ? d.wikitext : format == "pg19" ? d.pg19 : d.plain;
  o.push_back("task.root=" + root.string());
  o.push_back("task.format=\"" + format + "\"");
  o.push_back("task.tokenizer=\"byte\"");
  o.insert(o.end(), extra.begin(), extra.end());
  return load_experiment(kExperiments / "lm/small/kjv_megalodon.toml", o);
}

// The document starts the task should use, from the split's cache: the documents' first tokens and,
// where asked, the sections.
std::set<int64_t> expected_starts(const text::PackedTokens& t, bool sections) {
  std::set<int64_t> s;
  for (int64_t d = 0; d < t.num_documents(); ++d) s.insert(t.document_begin(d));
  if (sections) s.insert(t.section_starts().begin(), t.section_starts().end());
  return s;
}

}  // namespace

TEST_CASE("LM task with document resets: flags at every document start, its first token not scored",
          "[tasks][lm][documents]") {
  TempDir run("lm-docs");
  struct Case {
    std::string format, boundaries;
    bool sections;
    std::string first;  // how a document's text begins (byte tokenizer)
  };
  for (const Case& c : {Case{"wikitext", "file", true, " = Article"}, Case{"pg19", "file", false, ""},
                        Case{"text", "file", false, ""}, Case{"text", "blank_line", true, ""}}) {
    DYNAMIC_SECTION(c.format << " " << c.boundaries) {
      Config cfg = format_config(run.path(), c.format,
                                 {"task.document_boundaries=\"reset\"", "task.text_boundaries=\"" + c.boundaries + "\"",
                                  "task.min_chunks=4", "task.max_chunks=4", "task.eval_tokens_limit=-1"});
      auto task = make_task(cfg);
      task->build_model();
      const auto& train = task->tokens(Split::train);
      const std::set<int64_t> starts = expected_starts(train, c.sections);
      REQUIRE(starts.size() >= 2);
      if (c.sections) REQUIRE(!train.section_starts().empty());
      int64_t flagged = 0;
      for (uint64_t seed = 0; seed < 200; ++seed) {
        auto b = task->make_batch(Split::train, {0, 1, 2, 3}, seed);
        REQUIRE(b.extra.size() == 2);
        const Tensor f = b.extra[1];
        REQUIRE(f.sizes() == b.inputs.sizes());
        // Unscoring a target leaves the inputs alone; a scored target is the next input.
        REQUIRE((b.inputs >= 0).all().item<bool>());
        const Tensor scored = b.targets.narrow(1, 0, f.size(1) - 1) >= 0;
        REQUIRE(b.targets.narrow(1, 0, f.size(1) - 1).masked_select(scored).equal(
            b.inputs.narrow(1, 1, f.size(1) - 1).masked_select(scored)));
        for (int64_t r = 0; r < f.size(0); ++r) {
          // Find the window: the inputs are a slice of the stream; locate it by its flags' meaning.
          for (int64_t i = 1; i < f.size(1); ++i) {
            const bool flag = f[r][i].item<bool>();
            // A target is unscored exactly when the next input starts a document.
            REQUIRE((b.targets[r][i - 1].item<int64_t>() < 0) == flag);
            if (!flag) continue;
            ++flagged;
            if (!c.first.empty()) {
              std::vector<int32_t> ids;
              for (int64_t k = i; k < std::min<int64_t>(i + 10, f.size(1)); ++k)
                ids.push_back(static_cast<int32_t>(b.inputs[r][k].item<int64_t>()));
              const std::string t = task->tokenizer().decode(ids);
              REQUIRE(t.rfind(c.first.substr(0, t.size()), 0) == 0);
            }
          }
        }
      }
      if (c.format != "text" || c.boundaries != "file") CHECK(flagged > 0);  // two files: rarely in a window
      // Evaluation blocks: every token but the first is predicted once, except the documents' first tokens.
      int64_t inner_total = 0;
      for (Split split : {Split::val, Split::test}) {
        const auto& toks = task->tokens(split);
        std::vector<int64_t> all(task->size(split));
        std::iota(all.begin(), all.end(), 0);
        auto b = task->make_batch(split, all, 0);
        const std::set<int64_t> vs = expected_starts(toks, c.sections);
        const int64_t inner = static_cast<int64_t>(std::count_if(vs.begin(), vs.end(), [](int64_t s) { return s > 0; }));
        inner_total += inner;
        CHECK((b.targets >= 0).sum().item<int64_t>() == toks.size() - 1 - inner);
        // Every flagged input is a document start of the split: block k covers [k·S, k·S + S).
        const Tensor f = b.extra.at(1);
        for (int64_t r = 0; r < f.size(0); ++r)
          for (int64_t i = 0; i < f.size(1); ++i)
            if (f[r][i].item<bool>()) CHECK(vs.count(r * task->eval_length() + i) == 1);
        auto out = task->step(b, false);
        CHECK(std::isfinite(task->finalize(out.sums).at("loss")));
        CHECK(out.sums.sum.at("tokens") == double(toks.size() - 1 - inner));
      }
      if (c.format != "pg19") CHECK(inner_total > 0);  // PG-19's val and test hold one book each here
      CHECK_THAT(task->describe(), Catch::Contains("state reset at"));
    }
  }
}

TEST_CASE("LM task with document resets: training runs for both models, bad settings are named",
          "[tasks][lm][documents]") {
  TempDir run("lm-docs-train");
  for (const char* model : {"megalodon", "transformer"}) {
    CAPTURE(model);
    Config cfg = format_config(run / model, "wikitext",
                               {"task.document_boundaries=\"reset\"", fmt::format("model.name=\"{}\"", model),
                                "trainer.eval_every=2"});
    auto r = mgl::harness::train(cfg, {});
    CHECK(r.steps == 2);
    CHECK(std::isfinite(r.metrics.at("test/ppl")));
  }
  CHECK_THROWS_WITH(make_task(format_config(run / "x", "wikitext", {"task.text_boundaries=\"blank_line\""})),
                    Catch::Contains("task.text_boundaries"));
  CHECK_THROWS_WITH(make_task(format_config(run / "y", "pg19", {"task.document_boundaries=\"reset\"", "dist.chunk_parallel=2"})),
                    Catch::Contains("task.document_boundaries") && Catch::Contains("chunk parallel"));
}
