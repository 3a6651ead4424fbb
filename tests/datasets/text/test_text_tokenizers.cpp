// The byte, word and SentencePiece tokenizers and the fairseq-style vocabulary (datasets/text).
// Oracles: byte values and hand-counted vocabularies; fairseq's Dictionary rules (descending count,
// ties by the word, padding to a multiple of 8, dict.txt format); SentencePiece's own decode.
#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <random>

#include "datasets/text/text.h"
#include "support/files.h"

using namespace mgl::datasets::text;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("byte tokenizer: bytes in, bytes out, including non-ASCII UTF-8 and invalid bytes", "[text]") {
  const auto tok = make_byte_tokenizer();
  CHECK(tok->kind() == "byte");
  CHECK(tok->vocab_size() == 257);
  CHECK(tok->eos_id() == 256);
  const std::string text = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x9C\x93 \xFF\xFE";  // héllo wörld ✓ + invalid
  const auto ids = tok->encode(text);
  REQUIRE(ids.size() == text.size());
  CHECK(ids[0] == 'h');
  CHECK(ids[1] == 0xC3);
  CHECK(ids[2] == 0xA9);
  CHECK(ids.back() == 0xFE);
  CHECK(tok->decode(ids) == text);
  CHECK(tok->decode({'a', 256, 'b'}) == "a\nb");
  CHECK_THROWS_AS(tok->decode({257}), std::invalid_argument);
  CHECK_THROWS_AS(tok->decode({-1}), std::invalid_argument);
}

TEST_CASE("vocabulary: fairseq order (count desc, ties by the word), specials, padding, min_count",
          "[text]") {
  TempDir d("text-vocab");
  // counts: the 4, cat 2, zeta 1, alpha 1, sat 1; <unk> twice (a special: never a word).
  write_text(d / "train.txt", "zeta the cat\n\n<unk> the cat alpha\nthe sat the <unk>\n");
  auto v = Vocabulary::build({d / "train.txt"});
  CHECK(v.word(0) == "<s>");
  CHECK(v.word(1) == "<pad>");
  CHECK(v.word(2) == "</s>");
  CHECK(v.word(3) == "<unk>");
  CHECK(v.word(4) == "the");
  CHECK(v.count(4) == 4);
  CHECK(v.word(5) == "cat");
  // alpha, sat and zeta all occur once: by the word (fairseq sorts before most_common), not by
  // first occurrence (zeta is first in the text).
  CHECK(v.word(6) == "alpha");
  CHECK(v.word(7) == "sat");
  CHECK(v.word(8) == "zeta");
  CHECK(v.size() == 16);  // 9 entries padded to a multiple of 8
  CHECK(v.num_padding() == 7);
  CHECK(v.word(9) == "madeupword0000");
  CHECK(v.word(15) == "madeupword0006");
  CHECK(v.id("<unk>") == Vocabulary::kUnk);
  CHECK(v.id("</s>") == Vocabulary::kEos);
  CHECK(v.id("dog") == Vocabulary::kUnk);
  CHECK(v.id("cat") == 5);
  CHECK(v.count(Vocabulary::kUnk) == 1 + 2);  // fairseq's initial 1 plus the two in the text
  CHECK_THROWS_AS(v.word(16), std::out_of_range);

  auto v2 = Vocabulary::build({d / "train.txt"}, /*min_count=*/2);
  CHECK(v2.size() == 8);  // specials + the, cat, padded 6 -> 8
  CHECK(v2.id("alpha") == Vocabulary::kUnk);
  CHECK(v2.id("cat") == 5);
  CHECK(v2.fingerprint() != v.fingerprint());

  auto v3 = Vocabulary::build({d / "train.txt"}, 1, /*pad_to=*/1);
  CHECK(v3.size() == 9);
  CHECK(v3.num_padding() == 0);
}

TEST_CASE("vocabulary: whitespace is Python's str.split (tabs, NBSP, ideographic space)", "[text]") {
  TempDir d("text-vocab-ws");
  write_text(d / "t.txt",
             "a\tb\xC2\xA0"
             "c\xE3\x80\x80"
             "d\xE2\x80\x83"
             "e \xC3\xA9\n");
  auto v = Vocabulary::build({d / "t.txt"}, 1, 1);
  CHECK(v.size() == 4 + 6);  // a b c d e é
  CHECK(v.id("\xC3\xA9") != Vocabulary::kUnk);
  CHECK(v.id("b") != Vocabulary::kUnk);
}

TEST_CASE("vocabulary: save -> load round trip, fairseq dict.txt format", "[text]") {
  TempDir d("text-dict");
  write_text(d / "train.txt", "b a c a b a d e f g h\n");
  const auto v = Vocabulary::build({d / "train.txt"});
  v.save(d / "dict.txt");
  const std::string saved = read_file(d / "dict.txt");
  CHECK(saved.rfind("a 3\nb 2\nc 1\n", 0) == 0);
  CHECK(saved.find("madeupword") == std::string::npos);
  CHECK(saved.find("<unk>") == std::string::npos);
  const auto w = Vocabulary::load(d / "dict.txt");
  REQUIRE(w.size() == v.size());
  for (int32_t i = 0; i < v.size(); ++i) {
    CHECK(w.word(i) == v.word(i));
    if (i >= 4) CHECK(w.count(i) == v.count(i));
  }
  CHECK(w.fingerprint() == v.fingerprint());

  // A fairseq-written dict.txt lists its padding; it loads without adding more.
  write_text(d / "fairseq.txt", "x 5\ny 2 #fairseq:overwrite\nmadeupword0000 0\nmadeupword0001 0\n");
  const auto f = Vocabulary::load(d / "fairseq.txt");
  CHECK(f.size() == 8);
  CHECK(f.id("y") == 5);
  CHECK(f.count(5) == 2);
}

TEST_CASE("vocabulary: malformed dict.txt lines name file:line and what was expected", "[text]") {
  TempDir d("text-dict-bad");
  struct Case {
    std::string text, needle;
  };
  const std::vector<Case> cases = {
      {"a 1\nlonely\n", "dict.txt:2"},            // no count
      {"a 1\nb x\n", "not a non-negative"},       // non-numeric count
      {"a 1\nb -3\n", "dict.txt:2"},              // negative
      {"a 1\nb 2\na 4\n", "duplicate word 'a'"},  // duplicate
      {"a 1\n\nb 2\n", "dict.txt:2: empty line"},
      {"<unk> 7\n", "duplicate word '<unk>'"},  // a special, as fairseq rejects it
      {"a 99999999999999999999\n", "out of range"},
  };
  for (const auto& c : cases) {
    write_text(d / "dict.txt", c.text);
    const std::string msg = error_of([&] { Vocabulary::load(d / "dict.txt"); });
    INFO(c.text << " -> " << msg);
    CHECK(msg.find((d / "dict.txt").string()) != std::string::npos);
    CHECK(msg.find(c.needle) != std::string::npos);
  }
  const std::string msg = error_of([&] { Vocabulary::load(d / "absent.txt"); });
  CHECK(msg.find("absent.txt") != std::string::npos);
}

TEST_CASE("word tokenizer: words to ids, unknown words to <unk>, decode with </s> as a line break",
          "[text]") {
  TempDir d("text-word");
  write_text(d / "train.txt", "the cat sat\nthe dog\n");
  const auto tok = make_word_tokenizer(Vocabulary::build({d / "train.txt"}));
  CHECK(tok->kind() == "word");
  CHECK(tok->vocab_size() == 8);
  CHECK(tok->eos_id() == 2);
  const auto ids = tok->encode("  the cat\n flew ");  // a line break is not an eos here
  REQUIRE(ids.size() == 3);
  CHECK(ids[0] == 4);  // "the" (count 2)
  CHECK(ids[2] == Vocabulary::kUnk);
  CHECK(tok->decode({4, 5, 2, 4}) == "the " + std::string(tok->decode({5})) + "\nthe");
  CHECK(tok->decode(tok->encode("the dog sat")) == "the dog sat");
  CHECK_THROWS_AS(tok->decode({8}), std::invalid_argument);
  CHECK(tok->fingerprint().rfind("word-", 0) == 0);
}

namespace {

// A few KB of English-like text: sentences drawn from a small word list by a fixed generator.
std::string english_like(int sentences, uint32_t seed) {
  static const char* words[] = {"the",   "a",     "old",    "man",    "sea",    "ship",    "sailed", "over",
                                "under", "river", "light",  "house",  "green",  "stone",   "across", "quiet",
                                "night", "came",  "slowly", "before", "their",  "morning", "winds",  "and",
                                "with",  "from",  "little", "bright", "harbor", "voices"};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(4, 12), pick(0, 29);
  std::string out;
  for (int s = 0; s < sentences; ++s) {
    const int n = len(rng);
    for (int i = 0; i < n; ++i) {
      std::string w = words[pick(rng)];
      if (i == 0) w[0] = static_cast<char>(w[0] - 'a' + 'A');
      out += (i ? " " : "") + w;
    }
    out += ".\n";
  }
  return out;
}

}  // namespace

TEST_CASE("sentencepiece: train a tiny model, encode/decode round trip, eos id, seeded",
          "[text][sentencepiece]") {
  TempDir d("text-spm");
  write_text(d / "a.txt", english_like(120, 1));
  write_text(d / "b.txt", english_like(60, 2));
  if (!sentencepiece_available()) {  // built without libsentencepiece-dev: both entry points refuse, saying so
    CHECK_THROWS_WITH(load_sentencepiece(d / "x.model"), Catch::Contains("this build has no SentencePiece"));
    CHECK_THROWS_WITH(train_sentencepiece({d / "a.txt"}, d / "spm", {}), Catch::Contains("this build has no SentencePiece"));
    return;
  }
  SentencePieceOptions o;
  o.vocab_size = 150;
  o.byte_fallback = false;
  o.hard_vocab_limit = false;
  o.seed = 7;
  const auto model = train_sentencepiece({d / "a.txt", d / "b.txt"}, d / "spm", o);
  CHECK(model == d / "spm.model");
  CHECK(std::filesystem::exists(d / "spm.vocab"));
  const auto tok = load_sentencepiece(model);
  CHECK(tok->kind() == "sentencepiece");
  CHECK(tok->vocab_size() > 40);
  CHECK(tok->vocab_size() <= 150);
  CHECK(tok->eos_id() == 2);
  const std::string s = "The old man sailed across the quiet river before morning.";
  const auto ids = tok->encode(s);
  CHECK(ids.size() > 3);
  CHECK(ids.size() < s.size());  // pieces longer than a character on average
  CHECK(tok->decode(ids) == s);
  CHECK(tok->fingerprint().rfind("sentencepiece-", 0) == 0);

  // Same inputs and seed -> the same pieces and scores (the .model itself records its prefix, so
  // its bytes and fingerprint differ) and the same ids.
  const auto again = load_sentencepiece(train_sentencepiece({d / "a.txt", d / "b.txt"}, d / "again", o));
  CHECK(read_file(d / "again.vocab") == read_file(d / "spm.vocab"));
  CHECK(again->encode(s) == ids);

  // Byte fallback: characters never seen in training still round-trip.
  o.vocab_size = 400;
  o.byte_fallback = true;
  const auto bf = load_sentencepiece(train_sentencepiece({d / "a.txt"}, d / "bytes", o));
  const std::string accented = "Na\xC3\xAFve caf\xC3\xA9 \xE2\x9C\x93";
  CHECK(bf->decode(bf->encode(accented)) == accented);
  CHECK(bf->fingerprint() != tok->fingerprint());
}

TEST_CASE("sentencepiece: unloadable model files and bad training inputs are errors naming them",
          "[text][sentencepiece]") {
  TempDir d("text-spm-bad");
  write_text(d / "bogus.model", "this is not a protobuf\n");
  if (!sentencepiece_available()) {  // the refusal comes first
    CHECK_THROWS_WITH(load_sentencepiece(d / "bogus.model"), Catch::Contains("this build has no SentencePiece"));
    return;
  }
  std::string msg = error_of([&] { load_sentencepiece(d / "bogus.model"); });
  CHECK(msg.find("bogus.model") != std::string::npos);
  msg = error_of([&] { load_sentencepiece(d / "missing.model"); });
  CHECK(msg.find("missing.model") != std::string::npos);
  msg = error_of([&] { train_sentencepiece({d / "nothing.txt"}, d / "m", {}); });
  CHECK(msg.find("nothing.txt") != std::string::npos);
}

TEST_CASE("dict.txt: a madeupword entry that clashes with the padding is an error naming the file", "[text]") {
  // Found by the dict fuzz driver (tests/fuzz/corpus/dict/finding-padding-word-listed): the message
  // named no file.
  mgl::test::TempDir d("dict-pad");
  mgl::test::write_text(d / "dict.txt", "th> 5\nword 1 #fairseq:overwrite\nmadeupword0000 0\n");
  try {
    mgl::datasets::text::Vocabulary::load(d / "dict.txt");
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find((d / "dict.txt").string()) != std::string::npos);
    CHECK(std::string(e.what()).find("madeupword0000") != std::string::npos);
  }
}
