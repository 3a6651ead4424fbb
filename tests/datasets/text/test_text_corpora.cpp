// The WikiText-103, PG-19 and plain-text readers and the CSV parser (datasets/text). Oracles:
// small files in the real layouts with ids and word counts worked out by hand from the conventions
// of paper-benchmarks §3.8 (an eos on every line, blank lines included, counted as a word) and §3.9
// (numeric book order, metadata.csv with real CSV quoting, whitespace word counts).
#include <catch2/catch.hpp>

#include "datasets/text/text.h"
#include "support/files.h"

using namespace mgl::datasets::text;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("WikiText: an eos after every line (blank lines too), counted as a word, <unk> maps to 3",
          "[text]") {
  TempDir d("text-wt");
  write_text(d / "wiki.train.tokens", " = Title = \n\n the cat sat <unk> \n the cat \n");
  write_text(d / "wiki.valid.tokens", " the dog sat \n\n = = Head = = \n");
  write_text(d / "wiki.test.tokens", "cat\r\n\r\ncat");  // CRLF and no final line break
  const auto corpus = open_wikitext(d.path());
  CHECK(corpus->format() == "wikitext");
  const auto docs = corpus->documents(TextSplit::train);
  REQUIRE(docs.size() == 1);
  CHECK(docs[0].id == "wiki.train.tokens");

  const auto tok = make_word_tokenizer(Vocabulary::build({docs[0].path}));
  // train counts: the 2, cat 2, = 2, Title 1, sat 1 (and <unk> 1, a special).
  const int32_t the = 6;  // ties by the word: "=" (4), "cat" (5), "the" (6)
  const auto& tv = *tok;
  CHECK(tv.encode("=")[0] == 4);
  CHECK(tv.encode("cat")[0] == 5);
  CHECK(tv.encode("the")[0] == the);

  const auto valid = corpus->tokenize(corpus->documents(TextSplit::valid)[0], tv);
  // " the dog sat " -> the <unk> sat </s>; "" -> </s>; " = = Head = = " -> = = <unk> = = </s>
  const std::vector<int32_t> expected = {the, 3, tv.encode("sat")[0], 2, 2, 4, 4, 3, 4, 4, 2};
  CHECK(valid.ids == expected);
  CHECK(valid.words == 11);  // 3 + 1 + 0 + 1 + 5 + 1

  const auto test = corpus->tokenize(corpus->documents(TextSplit::test)[0], tv);
  CHECK(test.ids == std::vector<int32_t>{5, 2, 2, 5, 2});
  CHECK(test.words == 5);

  // The byte tokenizer encodes each line's text without its line break, then eos (256).
  const auto bytes = corpus->tokenize(corpus->documents(TextSplit::test)[0], *make_byte_tokenizer());
  CHECK(bytes.ids == std::vector<int32_t>{'c', 'a', 't', 256, 256, 'c', 'a', 't', 256});
  CHECK(bytes.words == 5);  // whitespace words + one per line, whatever the tokenizer
}

TEST_CASE("WikiText: a missing split file is an error naming it", "[text]") {
  TempDir d("text-wt-missing");
  write_text(d / "wiki.train.tokens", "a\n");
  const auto corpus = open_wikitext(d.path());
  const std::string msg = error_of([&] { corpus->documents(TextSplit::test); });
  CHECK(contains(msg, "wiki.test.tokens"));
  CHECK(contains(msg, "missing"));
  CHECK(contains(error_of([&] { open_wikitext(d / "nowhere"); }), "nowhere"));
  CHECK_THROWS_AS(open_corpus("wikitxt", d.path()), std::invalid_argument);
}

TEST_CASE("CSV: quotes, \"\" escapes, embedded commas and newlines, CRLF, blank lines", "[text]") {
  std::vector<int64_t> lines;
  const auto rows = parse_csv(
      "id,title\r\n1,\"Hello, World\"\r\n\r\n2,\"She said \"\"hi\"\"\"\n3,\"two\nlines\",x\n4,,\n5,plain",
      "t.csv", &lines);
  REQUIRE(rows.size() == 6);
  CHECK(rows[0] == std::vector<std::string>{"id", "title"});
  CHECK(rows[1] == std::vector<std::string>{"1", "Hello, World"});
  CHECK(rows[2] == std::vector<std::string>{"2", "She said \"hi\""});
  CHECK(rows[3] == std::vector<std::string>{"3", "two\nlines", "x"});
  CHECK(rows[4] == std::vector<std::string>{"4", "", ""});
  CHECK(rows[5] == std::vector<std::string>{"5", "plain"});
  CHECK(lines == std::vector<int64_t>{1, 2, 4, 5, 7, 8});
  CHECK(parse_csv("\xEF\xBB\xBF"
                  "a,b\n",
                  "t.csv")[0][0] == "a");  // BOM dropped
  CHECK(parse_csv("a,b,", "t.csv")[0].size() == 3);

  const std::string msg = error_of([] { parse_csv("a,b\n1,\"open\n2,x\n", "meta.csv"); });
  CHECK(contains(msg, "meta.csv:2"));
  CHECK(contains(msg, "unterminated"));
  CHECK(contains(error_of([] { parse_csv("a,\"q\"x,b\n", "m.csv"); }), "m.csv:1"));
}

namespace {

void write_pg19(const TempDir& d, const std::string& metadata) {
  write_text(d / "metadata.csv", metadata);
  write_text(d / "train" / "10.txt", "Ten  words?\nNo: just\tfour.\n");
  write_text(d / "train" / "2.txt", "two words");
  write_text(d / "train" / "1.txt", "");
  write_text(d / "validation" / "7.txt", "seven");
  write_text(d / "test" / "3.txt", "a b c");
}

const char* kMetadata =
    "book_id,short_book_title,publication_date,book_link\n"
    "10,\"The Ten, a \"\"Novel\"\"\",1900,http://www.gutenberg.org/ebooks/10\n"
    "2,Two,1901,http://www.gutenberg.org/ebooks/2\n"
    "1,\"One\nPart\",1902,http://www.gutenberg.org/ebooks/1\n"
    "7,Seven,1903,http://www.gutenberg.org/ebooks/7\n"
    "3,Three,1904,http://www.gutenberg.org/ebooks/3\n";

}  // namespace

TEST_CASE("PG-19: numeric book order, titles from quoted metadata, whole-book encoding, word counts",
          "[text]") {
  TempDir d("text-pg19");
  write_pg19(d, kMetadata);
  const auto corpus = open_pg19(d.path());
  const auto docs = corpus->documents(TextSplit::train);
  REQUIRE(docs.size() == 3);
  CHECK(docs[0].id == "1");
  CHECK(docs[1].id == "2");
  CHECK(docs[2].id == "10");  // 2 < 10 numerically although "10" < "2" as names
  CHECK(docs[0].title == "One\nPart");
  CHECK(docs[2].title == "The Ten, a \"Novel\"");
  CHECK(corpus->documents(TextSplit::valid)[0].id == "7");  // the validation/ folder

  const auto byte = make_byte_tokenizer();
  const auto ten = corpus->tokenize(docs[2], *byte);
  CHECK(ten.words == 5);  // Ten, words?, No:, just, four.
  CHECK(ten.ids.size() == std::string("Ten  words?\nNo: just\tfour.\n").size());  // no eos added
  CHECK(ten.ids.back() == '\n');
  CHECK(corpus->tokenize(docs[0], *byte).words == 0);
  CHECK(corpus->tokenize(docs[1], *byte).words == 2);

  // Without the header line, the same.
  TempDir e("text-pg19-nohead");
  write_pg19(e, std::string(kMetadata).substr(std::string(kMetadata).find('\n') + 1));
  CHECK(open_pg19(e.path())->documents(TextSplit::train)[2].title == "The Ten, a \"Novel\"");
}

TEST_CASE("PG-19: missing metadata rows, malformed metadata, missing folders are errors naming the file",
          "[text]") {
  TempDir d("text-pg19-bad");
  write_pg19(d, kMetadata);
  write_text(d / "train" / "11.txt", "eleven");
  std::string msg = error_of([&] { open_pg19(d.path())->documents(TextSplit::train); });
  CHECK(contains(msg, "11.txt"));
  CHECK(contains(msg, "no row"));
  std::filesystem::remove(d / "train" / "11.txt");

  write_text(d / "metadata.csv", "book_id,short_book_title,publication_date,book_link\n10,Ten,1900\n");
  msg = error_of([&] { open_pg19(d.path()); });
  CHECK(contains(msg, "metadata.csv:2"));
  CHECK(contains(msg, "4 fields"));
  write_text(d / "metadata.csv", "10,Ten,1900,x\nten,Ten,1900,x\n");
  CHECK(contains(error_of([&] { open_pg19(d.path()); }), "metadata.csv:2"));
  write_text(d / "metadata.csv", "10,\"Ten,1900,x\n");
  msg = error_of([&] { open_pg19(d.path()); });
  CHECK(contains(msg, "metadata.csv:1"));
  CHECK(contains(msg, "unterminated"));

  write_text(d / "metadata.csv", kMetadata);
  std::filesystem::remove_all(d / "test");
  msg = error_of([&] { open_pg19(d.path())->documents(TextSplit::test); });
  CHECK(contains(msg, "test"));
  CHECK(contains(msg, "missing"));
  std::filesystem::remove(d / "metadata.csv");
  CHECK(contains(error_of([&] { open_pg19(d.path()); }), "metadata.csv"));
}

TEST_CASE("plain text: split folders of .txt files or split files, each a document", "[text]") {
  TempDir d("text-plain");
  write_text(d / "train" / "b.txt", "bee bee");
  write_text(d / "train" / "a.txt", "one two three");
  write_text(d / "train" / "notes.md", "ignored");
  write_text(d / "valid.txt", "x y");
  const auto corpus = open_corpus("text", d.path());
  CHECK(corpus->format() == "text");
  const auto train = corpus->documents(TextSplit::train);
  REQUIRE(train.size() == 2);
  CHECK(train[0].id == "a.txt");
  CHECK(train[1].id == "b.txt");
  const auto a = corpus->tokenize(train[0], *make_byte_tokenizer());
  CHECK(a.words == 3);
  CHECK(a.ids.size() == 13);
  REQUIRE(corpus->documents(TextSplit::valid).size() == 1);
  CHECK(corpus->tokenize(corpus->documents(TextSplit::valid)[0], *make_byte_tokenizer()).words == 2);
  const std::string msg = error_of([&] { corpus->documents(TextSplit::test); });
  CHECK(contains(msg, "test.txt"));
}

TEST_CASE("PG-19 metadata: an unterminated quote is reported at the line where the field starts", "[text]") {
  TempDir d("text-pg19-quote");
  write_pg19(d, kMetadata);
  // Line 1's title opens a quote that is never closed; the quote of line 2's title then looks like
  // its end, followed by 'E' — the error belongs to line 1, not line 2.
  write_text(d / "metadata.csv", "10,\"Ten,1900,x\n11,\"Eleven\",1901,y\n");
  const std::string msg = error_of([&] { open_pg19(d.path()); });
  INFO(msg);
  CHECK(contains(msg, "metadata.csv:1:"));
  CHECK(contains(msg, "unterminated"));
  CHECK(contains(msg, "line 2"));
  CHECK_FALSE(contains(msg, "metadata.csv:2:"));
  // A stray character after a quote closed on its own line is still that line's error.
  write_text(d / "metadata.csv", "10,Ten,1900,x\n11,\"Eleven\"x,1901,y\n");
  CHECK(contains(error_of([&] { open_pg19(d.path()); }), "metadata.csv:2: unexpected character 'x'"));
}

TEST_CASE("document sections: WikiText articles start at their '= Title =' line", "[text][documents]") {
  TempDir d("text-wt-sections");
  // Article 1 starts at the file's first line (no section: it is the document start); headings
  // ("= = H = =") and a title-like line inside text are not article starts.
  write_text(d / "wiki.train.tokens",
             " = One = \n \n a b \n \n = = Head = = \n \n c \n \n = Two = \n \n d = e \n = Three = \n");
  write_text(d / "wiki.valid.tokens", "x\n");
  write_text(d / "wiki.test.tokens", "x\n");
  const auto corpus = open_wikitext(d.path());
  const auto doc = corpus->documents(TextSplit::train)[0];
  const auto words = corpus->tokenize(doc, *make_word_tokenizer(Vocabulary::build({doc.path})));
  // Lines (tokens incl. eos): "= One =" 4, "" 1, "a b" 3, "" 1, "= = Head = =" 6, "" 1, "c" 2, "" 1 → 19;
  // "= Two =" 4, "" 1, "d = e" 4 → 28; "= Three =".
  CHECK(words.sections == std::vector<int64_t>{19, 28});
  // The byte tokenizer: offsets in bytes (+1 eos per line).
  const auto bytes = corpus->tokenize(doc, *make_byte_tokenizer());
  const std::string text = " = One = \n \n a b \n \n = = Head = = \n \n c \n \n";
  REQUIRE(bytes.sections.size() == 2);
  CHECK(bytes.sections[0] == static_cast<int64_t>(text.size()));  // each '\n' became one eos
  CHECK(bytes.ids[static_cast<size_t>(bytes.sections[1]) + 1] == '=');
}

TEST_CASE("document sections: plain-text paragraphs, the same token stream as whole-file encoding", "[text][documents]") {
  TempDir d("text-plain-sections");
  const std::string body = "first para\nstill first\n\n\nsecond\n  \t \nthird one\n\n";
  write_text(d / "train" / "a.txt", body);
  write_text(d / "valid.txt", "one paragraph only\n");
  write_text(d / "test.txt", "\n\nleading blank lines\n\nthen a paragraph");
  const auto corpus = open_corpus("text", d.path());
  const auto byte = make_byte_tokenizer();
  const auto a = corpus->tokenize(corpus->documents(TextSplit::train)[0], *byte);
  CHECK(a.ids == byte->encode(body));
  CHECK(a.sections == std::vector<int64_t>{static_cast<int64_t>(body.find("second")),
                                           static_cast<int64_t>(body.find("third"))});
  CHECK(a.words == 7);
  const auto word = make_word_tokenizer(Vocabulary::build({corpus->documents(TextSplit::train)[0].path}));
  const auto w = corpus->tokenize(corpus->documents(TextSplit::train)[0], *word);
  CHECK(w.ids == word->encode(body));
  CHECK(w.sections == std::vector<int64_t>{4, 5});  // "first para still first" | "second" | "third one"
  CHECK(corpus->tokenize(corpus->documents(TextSplit::valid)[0], *byte).sections.empty());
  const auto t = corpus->tokenize(corpus->documents(TextSplit::test)[0], *byte);
  // Leading blank lines belong to the first paragraph.
  CHECK(t.sections == std::vector<int64_t>{static_cast<int64_t>(std::string("\n\nleading blank lines\n\n").size())});
}

TEST_CASE("document sections survive the token cache", "[text][documents]") {
  TempDir d("text-cache-sections");
  write_text(d / "corpus" / "train" / "a.txt", "alpha\n\nbeta\n\ngamma");
  write_text(d / "corpus" / "train" / "b.txt", "delta\n\nepsilon");
  const auto corpus = open_plain_text(d / "corpus");
  const auto cache = load_or_build_tokens(*corpus, TextSplit::train, *make_byte_tokenizer(), d / "cache", 2);
  // a.txt: "alpha\n\n" 7, "beta\n\n" 6, "gamma" 5 → 18; b.txt: "delta\n\n" 7, "epsilon".
  CHECK(cache.section_starts() == std::vector<int64_t>{7, 13, 25});
  CHECK(cache.document_begin(1) == 18);
  const auto again = load_or_build_tokens(*corpus, TextSplit::train, *make_byte_tokenizer(), d / "cache", 1);
  CHECK(again.section_starts() == cache.section_starts());
}
