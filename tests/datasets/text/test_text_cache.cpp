// The packed token cache (datasets/text): write/open round trips with 2- and 4-byte ids, reuse
// while the fingerprints match, rebuilds when a corpus file or the tokenizer changes, corrupt files,
// and parallel tokenisation. Oracles: the ids written, the documented file layout, file bytes.
#include <catch2/catch.hpp>

#include <limits>
#include <fstream>
#include <iterator>

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

void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<TokenizedDocument> sample_docs(int32_t max_id) {
  return {{{1, 2, 3}, 2, {2}}, {{}, 0, {}}, {{max_id, 0, max_id - 1, 7}, 5, {1, 3}}};
}

// The only file in `dir` named *.tokens.
std::filesystem::path only_cache_file(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> found;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".tokens") found.push_back(e.path());
  REQUIRE(found.size() == 1);
  return found[0];
}

}  // namespace

TEST_CASE("token cache: write/open round trip with u16 and u32 ids", "[text]") {
  TempDir d("text-cache-rt");
  for (const int64_t vocab : {int64_t{300}, int64_t{65536}, int64_t{70000}}) {
    const auto max_id = static_cast<int32_t>(vocab - 1);
    const auto file = d / ("c" + std::to_string(vocab) + ".tokens");
    write_packed_tokens(file, "fp-" + std::to_string(vocab), sample_docs(max_id), vocab);
    const auto t = PackedTokens::open(file);
    CHECK(t.fingerprint() == "fp-" + std::to_string(vocab));
    REQUIRE(t.size() == 7);
    REQUIRE(t.num_documents() == 3);
    CHECK(t.document_begin(0) == 0);
    CHECK(t.document_end(0) == 3);
    CHECK(t.document_begin(1) == 3);
    CHECK(t.document_end(1) == 3);
    CHECK(t.document_end(2) == 7);
    CHECK(t.document_words(2) == 5);
    CHECK(t.total_words() == 7);
    CHECK(t.at(3) == max_id);
    CHECK(t.at(5) == max_id - 1);
    const auto s = t.slice(2, 4);
    CHECK(s.dtype() == torch::kInt64);
    CHECK(s.equal(torch::tensor({3, max_id, 0, max_id - 1}, torch::kInt64)));
    CHECK(t.slice(7, 0).numel() == 0);
    CHECK_THROWS_AS(t.slice(5, 3), std::out_of_range);
    CHECK_THROWS_AS(t.at(7), std::out_of_range);
    // Sections as absolute offsets: document 0's at 2, document 2's at 3 + 1 and 3 + 3.
    CHECK((t.section_starts() == std::vector<int64_t>{2, 4, 6}));
    // Layout: 8 magic + 4 + 4 + 8 + fingerprint + 16 + 4×8 offsets + 3×8 words + ids + 8 + 3×8 sections.
    const size_t width = vocab <= 65536 ? 2 : 4;
    CHECK(std::filesystem::file_size(file) == 24 + t.fingerprint().size() + 16 + 32 + 24 + 7 * width + 8 + 24);
  }
  CHECK_THROWS(write_packed_tokens(d / "bad.tokens", "fp", {{{300}, 1, {}}}, 300));  // id outside the vocabulary
  CHECK_FALSE(std::filesystem::exists(d / "bad.tokens"));
  CHECK_THROWS(write_packed_tokens(d / "bad.tokens", "fp", {{{1, 2}, 1, {2}}}, 300));  // a section at the end
  CHECK_THROWS(write_packed_tokens(d / "bad.tokens", "fp", {{{1, 2, 3}, 1, {2, 1}}}, 300));  // out of order
  CHECK_FALSE(std::filesystem::exists(d / "bad.tokens"));
}

TEST_CASE("token cache: corrupt or truncated files are errors naming the file", "[text]") {
  TempDir d("text-cache-bad");
  const auto good = d / "good.tokens";
  write_packed_tokens(good, "fingerprint", sample_docs(299), 300);
  const std::string bytes = read_file(good);
  const size_t offsets_at = 24 + 11 + 16;  // after magic, width, reserved, length, fingerprint, counts
  auto expect_error = [&](const std::string& name, const std::string& content, const std::string& what) {
    const auto f = d / name;
    write_bytes(f, content);
    const std::string msg = error_of([&] { PackedTokens::open(f); });
    INFO(name << ": " << msg);
    CHECK(contains(msg, f.string()));
    CHECK(contains(msg, what));
  };
  expect_error("magic.tokens", "XGLTOK03" + bytes.substr(8), "bad magic");
  expect_error("v1.tokens", "MGLTOK01" + bytes.substr(8), "older version (MGLTOK01");  // before the id bound
  expect_error("v2.tokens", "MGLTOK02" + bytes.substr(8), "older version (MGLTOK02");  // before section tables
  expect_error("empty.tokens", "", "bad magic");
  expect_error("short.tokens", bytes.substr(0, bytes.size() - 1), "truncated");
  expect_error("header.tokens", bytes.substr(0, 20), "truncated");
  expect_error("long.tokens", bytes + "xy", "after the section table");
  // Word counts whose sum overflows (a fuzz finding: signed overflow): refused as corrupt.
  const int64_t half = std::numeric_limits<int64_t>::max() / 2 + 1;
  write_packed_tokens(d / "words.tokens", "fp", {{{1}, half, {}}, {{2}, half, {}}}, 10);
  CHECK(contains(error_of([&] { PackedTokens::open(d / "words.tokens"); }), "document 1 has"));
  std::string section = bytes;
  section[bytes.size() - 24] = 9;  // the first section start (2) → 9, beyond the 7 tokens
  expect_error("section.tokens", section, "section start");
  std::string sections = bytes;
  sections[bytes.size() - 32 + 6] = 1;  // a huge section count
  expect_error("sections.tokens", sections, "truncated");
  std::string width = bytes;
  width[8] = 3;
  expect_error("width.tokens", width, "bytes per id");
  std::string offsets = bytes;
  offsets[offsets_at + 8] = 9;  // doc_offsets[1] = 9 > 7 tokens
  expect_error("offsets.tokens", offsets, "offset");
  std::string fp_len = bytes;
  fp_len[16 + 6] = 1;  // a huge fingerprint length
  expect_error("fplen.tokens", fp_len, "truncated");
  std::string docs = bytes;
  docs[offsets_at - 8 + 5] = 1;  // a huge document count
  expect_error("docs.tokens", docs, "truncated");
  CHECK(contains(error_of([&] { PackedTokens::open(d / "absent.tokens"); }), "absent.tokens"));
}

TEST_CASE("token cache: reused when unchanged, rebuilt when a corpus file or the tokenizer changes",
          "[text]") {
  TempDir d("text-cache-reuse");
  write_text(d / "corpus" / "train" / "a.txt", "alpha beta\ngamma\n");
  write_text(d / "corpus" / "train" / "b.txt", "delta");
  const auto corpus = open_plain_text(d / "corpus");
  const auto byte = make_byte_tokenizer();
  const auto cache = d / "cache";
  std::vector<std::string> log;
  auto logger = [&](const std::string& s) { log.push_back(s); };
  auto logged = [&](const std::string& part) {
    for (const auto& l : log)
      if (contains(l, part)) return true;
    return false;
  };

  bool reused = true;
  auto t1 = load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK_FALSE(reused);
  CHECK(t1.size() == 17 + 5);
  CHECK(t1.num_documents() == 2);
  CHECK(t1.total_words() == 4);
  const auto file = only_cache_file(cache);
  CHECK(contains(file.filename().string(), "train"));
  CHECK(contains(file.filename().string(), "byte"));
  const auto stamp = std::filesystem::last_write_time(file);

  log.clear();
  auto t2 = load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK(reused);
  CHECK(logged("reusing"));
  CHECK(std::filesystem::last_write_time(file) == stamp);
  CHECK(t2.size() == t1.size());

  // A changed corpus file (size) rebuilds the same file.
  write_text(d / "corpus" / "train" / "b.txt", "delta epsilon");
  log.clear();
  auto t3 = load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK_FALSE(reused);
  CHECK(logged("stale (the corpus files changed)"));
  CHECK(t3.size() == 17 + 13);
  CHECK(t3.at(17 + 6) == 'e');
  CHECK(only_cache_file(cache) == file);

  // Same size, new modification time: rebuilt too.
  std::filesystem::last_write_time(
      d / "corpus" / "train" / "a.txt",
      std::filesystem::last_write_time(d / "corpus" / "train" / "a.txt") + std::chrono::seconds(5));
  load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK_FALSE(reused);

  // Another tokenizer: its own file beside the first; a different vocabulary: another file again.
  write_text(d / "v1.txt", "alpha gamma\n");
  write_text(d / "v2.txt", "delta beta\n");
  const auto w1 = make_word_tokenizer(Vocabulary::build({d / "v1.txt"}));
  const auto w2 = make_word_tokenizer(Vocabulary::build({d / "v2.txt"}));
  auto a = load_or_build_tokens(*corpus, TextSplit::train, *w1, cache, 1, logger, &reused);
  CHECK_FALSE(reused);
  auto b = load_or_build_tokens(*corpus, TextSplit::train, *w2, cache, 1, logger, &reused);
  CHECK_FALSE(reused);
  REQUIRE(a.size() == 5);  // alpha beta gamma | delta epsilon
  CHECK(a.at(0) == w1->encode("alpha")[0]);
  CHECK(a.at(1) == Vocabulary::kUnk);
  CHECK(b.at(1) == w2->encode("beta")[0]);
  CHECK(b.at(0) == Vocabulary::kUnk);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(cache)) files += e.path().extension() == ".tokens";
  CHECK(files == 3);
  load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK(reused);  // the byte cache survived beside the word caches

  // A corrupt cache file is rebuilt (and said so), not trusted.
  write_bytes(file, "garbage");
  log.clear();
  auto t4 = load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK_FALSE(reused);
  CHECK(logged("bad magic"));
  CHECK(t4.size() == 17 + 13);
}

TEST_CASE("token cache: parallel tokenisation writes the same file as one thread", "[text]") {
  TempDir d("text-cache-threads");
  std::string all;
  for (int i = 0; i < 40; ++i) {
    std::string text;
    for (int j = 0; j <= (i * 7) % 23; ++j)
      text += "w" + std::to_string((i * 31 + j * 17) % 50) + (j % 5 ? " " : "\n");
    write_text(d / "corpus" / "train" / ("doc" + std::to_string(100 + i) + ".txt"), text);
    all += text;
  }
  const auto corpus = open_plain_text(d / "corpus");
  const auto tok = make_word_tokenizer(Vocabulary::build({}));  // every word <unk>: ids still checkable
  write_text(d / "all.txt", all);
  const auto words = make_word_tokenizer(Vocabulary::build({d / "all.txt"}));
  const auto one = load_or_build_tokens(*corpus, TextSplit::train, *words, d / "c1", 1);
  const auto four = load_or_build_tokens(*corpus, TextSplit::train, *words, d / "c4", 4);
  CHECK(one.num_documents() == 40);
  CHECK(read_file(only_cache_file(d / "c1")) == read_file(only_cache_file(d / "c4")));
  CHECK(four.slice(0, four.size()).equal(torch::tensor(words->encode(all), torch::kInt64)));
  CHECK(four.total_words() == static_cast<int64_t>(words->encode(all).size()));
  const auto unk = load_or_build_tokens(*corpus, TextSplit::train, *tok, d / "c4", 3);
  CHECK(unk.slice(0, unk.size()).eq(Vocabulary::kUnk).all().item<bool>());
}

TEST_CASE("token cache: ids beyond the tokenizer's vocabulary are caught when the cache is opened or read",
          "[text]") {
  TempDir d("text-cache-ids");
  write_text(d / "corpus" / "train" / "a.txt", "alpha beta\n");
  const auto corpus = open_plain_text(d / "corpus");
  const auto byte = make_byte_tokenizer();  // 257 ids
  const auto cache = d / "cache";
  std::vector<std::string> log;
  auto logger = [&](const std::string& s) { log.push_back(s); };
  bool reused = false;
  const auto built = load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK(built.id_bound() == 't' + 1);  // the largest byte of "alpha beta\n" is 't'
  const auto file = only_cache_file(cache);

  // An intact-looking cache with the right fingerprint whose ids reach 299: rebuilt, naming it.
  write_packed_tokens(file, built.fingerprint(), {{{1, 299, 3}, 1, {}}}, 300);
  log.clear();
  const auto rebuilt = load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK_FALSE(reused);
  REQUIRE_FALSE(log.empty());
  CHECK(contains(log[0], file.string()));
  CHECK(contains(log[0], "ids up to 299, outside the tokenizer's 257 ids; rebuilding"));
  CHECK(rebuilt.size() == 11);
  CHECK(rebuilt.id_bound() <= 257);

  // Ids damaged after the header was written: reading them is an error naming the file and position.
  std::string bytes = read_file(file);
  // The ids end before the section table (a u64 count, 0 sections: one paragraph).
  const size_t ids_end = bytes.size() - 8;
  bytes[ids_end - 2 * 3] = static_cast<char>(0xff);  // low byte of id 8 ('t' -> 0xff, above the bound 't' + 1)
  const auto damaged = d / "damaged.tokens";
  write_bytes(damaged, bytes);
  const auto t = PackedTokens::open(damaged);
  const std::string msg = error_of([&] { t.slice(0, t.size()); });
  CHECK(contains(msg, damaged.string()));
  CHECK(contains(msg, "id 255 at position 8"));
  CHECK(contains(error_of([&] { t.at(8); }), "position 8"));
  CHECK(t.slice(0, 8).size(0) == 8);  // the ids before it read fine

  // A cache of the previous layout (no id bound) is refused as such, and rebuilt.
  std::string v1 = read_file(file);
  v1[7] = '1';
  write_bytes(file, v1);
  CHECK(contains(error_of([&] { PackedTokens::open(file); }), "older version (MGLTOK01"));
  log.clear();
  load_or_build_tokens(*corpus, TextSplit::train, *byte, cache, 1, logger, &reused);
  CHECK_FALSE(reused);
}
