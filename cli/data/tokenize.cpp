// `megalodon data sentencepiece` (trains a SentencePiece model on text files) and
// `megalodon data tokenize` (builds or reuses the packed token caches of a corpus; datasets/text).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/data/data.h"
#include "datasets/text/text.h"

namespace mgl::cli {
namespace {

namespace text = datasets::text;

double seconds_from(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Bad usage (std::invalid_argument) exits 2, bad data (any other error) exits 1.
template <class Fn>
int run_tool(const char* name, Fn&& fn) {
  try {
    return fn();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "megalodon data %s: %s (see --help)\n", name, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megalodon data %s: error: %s\n", name, user_message(e).c_str());
    return 1;
  }
}

// A file as is; a folder: every *.txt under it (recursively), sorted by path.
std::vector<std::filesystem::path> expand_inputs(const std::vector<std::string>& args) {
  std::vector<std::filesystem::path> out;
  for (const auto& a : args) {
    const std::filesystem::path p = a;
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::filesystem::path> found;
      for (const auto& e : std::filesystem::recursive_directory_iterator(p))
        if (e.is_regular_file() && e.path().extension() == ".txt") found.push_back(e.path());
      if (found.empty()) throw std::runtime_error(fmt::format("{}: no .txt files under this folder", a));
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (std::filesystem::is_regular_file(p, ec)) {
      out.push_back(p);
    } else {
      throw std::runtime_error(fmt::format("{}: input not found", a));
    }
  }
  return out;
}

const char* kSentencePieceHelp =
    "usage: megalodon data sentencepiece --input FILE_OR_DIR [FILE_OR_DIR ...] --model-prefix P [options]\n"
    "Trains a SentencePiece model (libsentencepiece) on text files, one sentence per line, and writes\n"
    "P.model and P.vocab. A folder input means every *.txt under it (e.g. a PG-19 train/ folder).\n\n"
    "  --vocab-size 8000              pieces (the PG-19 setup of the paper uses T5's 32000)\n"
    "  --model-type unigram           unigram | bpe | char | word\n"
    "  --character-coverage 1.0       share of characters covered by pieces (the rest: bytes or <unk>)\n"
    "  --input-sentence-size 2000000  lines sampled for training (0 = all)\n"
    "  --seed 0                       the library's random generator (sampling and shuffling)\n"
    "  --threads 1                    trainer threads\n"
    "  --no-byte-fallback             unknown characters become <unk> instead of <0xXX> byte pieces\n"
    "  --soft-vocab-limit             treat --vocab-size as an upper bound (small corpora)\n"
    "  --verbose                      the library's progress log\n\n"
    "Ids: <unk> 0, <s> 1, </s> 2 (the library's defaults; </s> is the tokenizer's eos).\n";

int sentencepiece_main(const std::vector<std::string>& args) {
  return run_tool("sentencepiece", [&] {
    const auto p = parse_args(args,
                              {"--input", "--model-prefix", "--vocab-size", "--model-type",
                               "--character-coverage", "--input-sentence-size", "--seed", "--threads"},
                              {"--help", "--no-byte-fallback", "--soft-vocab-limit", "--verbose"});
    if (p.flag("--help")) {
      std::fputs(kSentencePieceHelp, stdout);
      return 0;
    }
    if (p.option("--input").empty() || p.option("--model-prefix").empty() || !p.overrides.empty()) {
      std::fputs(kSentencePieceHelp, stderr);
      return 2;
    }
    text::SentencePieceOptions o;
    o.vocab_size = p.int_option("--vocab-size", o.vocab_size, 1);
    o.model_type = p.option("--model-type", o.model_type);
    if (o.model_type != "unigram" && o.model_type != "bpe" && o.model_type != "char" &&
        o.model_type != "word")
      throw std::invalid_argument("--model-type expects unigram, bpe, char or word, got '" + o.model_type +
                                  "'");
    o.character_coverage = p.float_option("--character-coverage", o.character_coverage);
    if (!(o.character_coverage > 0 && o.character_coverage <= 1))
      throw std::invalid_argument("--character-coverage expects a number in (0, 1]");
    o.input_sentence_size = p.int_option("--input-sentence-size", o.input_sentence_size, 0);
    o.seed = p.seed_option("--seed", o.seed);
    o.threads = static_cast<int>(std::min<int64_t>(p.int_option("--threads", o.threads, 1), 128));
    o.byte_fallback = !p.flag("--no-byte-fallback");
    o.hard_vocab_limit = !p.flag("--soft-vocab-limit");
    o.verbose = p.flag("--verbose");

    std::vector<std::string> input_args{p.option("--input")};
    input_args.insert(input_args.end(), p.positional.begin(), p.positional.end());
    const auto inputs = expand_inputs(input_args);
    uintmax_t bytes = 0;
    for (const auto& f : inputs) bytes += std::filesystem::file_size(f);
    fmt::print(
        "SentencePiece {} model, {} pieces, coverage {}, seed {}, {} threads, byte fallback {}: {} files "
        "({:.1f} MB)\n",
        o.model_type, o.vocab_size, o.character_coverage, o.seed, o.threads, o.byte_fallback ? "on" : "off",
        inputs.size(), static_cast<double>(bytes) / 1e6);
    std::fflush(stdout);
    const auto start = std::chrono::steady_clock::now();
    const auto model = text::train_sentencepiece(inputs, p.option("--model-prefix"), o);
    const double t = seconds_from(start);
    const auto tok = text::load_sentencepiece(model);
    fmt::print("trained in {:.1f} s: {}\n", t, tok->describe());
    auto vocab = std::filesystem::path(p.option("--model-prefix"));
    vocab += ".vocab";
    fmt::print("wrote {} and {}\n", model.string(), vocab.string());
    return 0;
  });
}

const char* kTokenizeHelp =
    "usage: megalodon data tokenize --format wikitext|pg19|text --root DIR --tokenizer "
    "byte|word|sentencepiece\n"
    "                               --cache DIR [options]\n"
    "Builds (or reuses, when the tokenizer and the corpus files are unchanged) the packed token cache of\n"
    "each split and prints documents, tokens, words, tokens per word and the time.\n\n"
    "  --model FILE             the SentencePiece .model (--tokenizer sentencepiece)\n"
    "  --vocab dict.txt         a fairseq word dictionary (--tokenizer word); without it the vocabulary is\n"
    "                           built from the train split and saved as <cache>/dict.txt\n"
    "  --min-count 1            words seen fewer times in train map to <unk> (building the vocabulary)\n"
    "  --splits train,valid,test\n"
    "  --threads 1              documents tokenised in parallel (order kept)\n\n"
    "Layouts: wikitext = ROOT/wiki.{train,valid,test}.tokens; pg19 = ROOT/{train,validation,test}/<id>.txt\n"
    "and ROOT/metadata.csv; text = ROOT/{train,valid,test}/*.txt or ROOT/{train,valid,test}.txt.\n";

std::vector<text::TextSplit> parse_splits(const std::string& s) {
  std::vector<text::TextSplit> out;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    const std::string name = s.substr(b, e - b);
    if (name == "train")
      out.push_back(text::TextSplit::train);
    else if (name == "valid" || name == "validation")
      out.push_back(text::TextSplit::valid);
    else if (name == "test")
      out.push_back(text::TextSplit::test);
    else
      throw std::invalid_argument("--splits: unknown split '" + name + "' (expected train, valid, test)");
    b = e + 1;
  }
  return out;
}

int tokenize_main(const std::vector<std::string>& args) {
  return run_tool("tokenize", [&] {
    const auto p = parse_args(args,
                              {"--format", "--root", "--tokenizer", "--model", "--vocab", "--cache",
                               "--splits", "--threads", "--min-count"},
                              {"--help"});
    if (p.flag("--help")) {
      std::fputs(kTokenizeHelp, stdout);
      return 0;
    }
    if (p.option("--format").empty() || p.option("--root").empty() || p.option("--tokenizer").empty() ||
        p.option("--cache").empty() || !p.positional.empty() || !p.overrides.empty()) {
      std::fputs(kTokenizeHelp, stderr);
      return 2;
    }
    const std::string kind = p.option("--tokenizer");
    if (kind != "byte" && kind != "word" && kind != "sentencepiece")
      throw std::invalid_argument("--tokenizer expects byte, word or sentencepiece, got '" + kind + "'");
    if (kind == "sentencepiece" && p.option("--model").empty())
      throw std::invalid_argument("--tokenizer sentencepiece needs --model FILE");
    if (kind != "sentencepiece" && !p.option("--model").empty())
      throw std::invalid_argument("--model is for --tokenizer sentencepiece");
    if (kind != "word" && !p.option("--vocab").empty())
      throw std::invalid_argument("--vocab is for --tokenizer word");
    const auto splits = parse_splits(p.option("--splits", "train,valid,test"));
    const int threads = static_cast<int>(std::min<int64_t>(p.int_option("--threads", 1, 1), 256));
    const int64_t min_count = p.int_option("--min-count", 1, 1);
    const std::filesystem::path cache = p.option("--cache");

    const auto corpus = text::open_corpus(p.option("--format"), p.option("--root"));
    std::unique_ptr<text::Tokenizer> tok;
    if (kind == "byte") {
      tok = text::make_byte_tokenizer();
    } else if (kind == "sentencepiece") {
      tok = text::load_sentencepiece(p.option("--model"));
    } else if (!p.option("--vocab").empty()) {
      tok = text::make_word_tokenizer(text::Vocabulary::load(p.option("--vocab")));
    } else {
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::filesystem::path> files;
      for (const auto& d : corpus->documents(text::TextSplit::train)) files.push_back(d.path);
      auto vocab = text::Vocabulary::build(files, min_count);
      const auto dict = cache / "dict.txt";
      vocab.save(dict);
      fmt::print("vocabulary: {} entries from the train split ({} files) in {:.1f} s -> {}\n", vocab.size(),
                 files.size(), seconds_from(start), dict.string());
      tok = text::make_word_tokenizer(std::move(vocab));
    }
    fmt::print("corpus {} at {}; tokenizer {}\n", corpus->format(), p.option("--root"), tok->describe());
    std::fflush(stdout);

    struct Row {
      std::string split;
      int64_t documents, tokens, words;
      double seconds;
      bool reused;
    };
    std::vector<Row> rows;
    for (const auto split : splits) {
      const auto start = std::chrono::steady_clock::now();
      bool reused = false;
      const auto tokens = text::load_or_build_tokens(
          *corpus, split, *tok, cache, threads,
          [](const std::string& line) { std::fprintf(stderr, "  %s\n", line.c_str()); }, &reused);
      rows.push_back({text::to_string(split), tokens.num_documents(), tokens.size(), tokens.total_words(),
                      seconds_from(start), reused});
    }
    fmt::print("{:<6} {:>10} {:>14} {:>14} {:>11} {:>9}  {}\n", "split", "documents", "tokens", "words",
               "tokens/word", "time", "cache");
    for (const auto& r : rows)
      fmt::print("{:<6} {:>10} {:>14} {:>14} {:>11.4f} {:>7.2f} s  {}\n", r.split, r.documents, r.tokens,
                 r.words, r.words ? static_cast<double>(r.tokens) / static_cast<double>(r.words) : 0.0,
                 r.seconds, r.reused ? "reused" : "built");
    return 0;
  });
}

const DataTool kSentencePiece{"sentencepiece", "train a SentencePiece model on text files (P.model, P.vocab)",
                              sentencepiece_main};
const DataTool kTokenize{
    "tokenize", "build or reuse the packed token caches of a WikiText / PG-19 / text corpus", tokenize_main};

}  // namespace
}  // namespace mgl::cli
