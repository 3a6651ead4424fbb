// The WikiText-103 and PG-19 stand-ins (datasets/text/standins.h). Oracles: a three-article dictd
// database and a few-verse `bible` output written here in the real formats, with the expected
// tokens, layout, <unk> replacements and CSV worked out by hand; an independent dictd base-64
// encoder and an independent RFC 4180 reader.
#include <fmt/format.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#ifdef MEGALODON_HAS_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "datasets/text/standins.h"
#include "support/files.h"

namespace fs = std::filesystem;
using namespace mgl::datasets::text;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<std::string> words_of(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string t; in >> t;) out.push_back(t);
  return out;
}

std::string toks(std::string_view text) {
  std::string out;
  for (const auto& t : wikitext_tokenize(text)) out += (out.empty() ? "" : " ") + t;
  return out;
}

// dictd numbers written the way dictfmt does: base-64 digits A-Za-z0-9+/, most significant first.
std::string dictd_b64(uint64_t v) {
  static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  do {
    out.insert(out.begin(), digits[v % 64]);
    v /= 64;
  } while (v);
  return out;
}

// A reader of RFC 4180 records written independently of the library's writer.
std::vector<std::vector<std::string>> read_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows(1, std::vector<std::string>(1));
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        rows.back().back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        rows.back().back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().emplace_back();
    } else if (c == '\n') {
      rows.emplace_back(1);
    } else {
      rows.back().back() += c;
    }
  }
  if (rows.back().size() == 1 && rows.back()[0].empty()) rows.pop_back();
  return rows;
}

// Three FOLDOC-style articles (the dictd entry text exactly as dictfmt writes it) and one dictd
// metadata entry. "alpha", "beta" and "gamma" occur in every article; everything else is rarer.
const char* kDatabaseEntry = "00-database-short\n     Fake FOLDOC\n";
const char* kArticles[3] = {
    "Role-Playing Game\nRPG\n\n"
    "   <games> A {video game} (see {RPG home (http://rpg.example.org/)})\n"
    "   costing $8,600 or 0.7 units; it wasn't Sega's.  alpha beta gamma\n\n"
    "   {Official site (http://rpg.example.org/)}.\n\n"
    "   (2007-11-16)\n\n",
    "Zeta Language\n\n"
    "   1. <language, mathematics> A language by Jones\n"
    "   <jones@cs.example.edu> for the U.S. Army, e.g. alpha beta gamma...\n\n"
    "      10 PRINT \"HELLO\"\n"
    "      20 GOTO 10\n\n"
    "   2. See {Role-Playing Game}.\n\n",
    "Omega\n\n"
    "   <jargon> The last letter.  alpha beta gamma are\n"
    "   \n"
    "(http://very.long.example.org/a/b/c)\n"
    "   earlier.\n\n"
    "   (1999-01-01)\n\n"};

struct FakeFoldoc {
  fs::path dict, index;
};

// Writes the database as dictd does: the entries concatenated, an index line per headword (sorted
// as dictd sorts them, by headword) with base-64 offset and length. gzip-compressed when zlib is in
// the build, as foldoc.dict.dz is.
FakeFoldoc write_fake_foldoc(const TempDir& dir) {
  std::string body = kDatabaseEntry;
  std::vector<std::pair<std::string, std::pair<size_t, size_t>>> heads;
  heads.push_back({"00-database-short", {0, body.size()}});
  const std::vector<std::vector<std::string>> names = {
      {"role-playing game", "rpg"}, {"zeta language"}, {"omega"}};
  for (int a = 0; a < 3; ++a) {
    const size_t off = body.size();
    body += kArticles[a];
    for (const auto& h : names[a]) heads.push_back({h, {off, body.size() - off}});
  }
  std::sort(heads.begin(), heads.end());
  std::string index;
  for (const auto& [h, span] : heads)
    index += h + "\t" + dictd_b64(span.first) + "\t" + dictd_b64(span.second) + "\n";
  FakeFoldoc f;
  f.index = dir / "foldoc.index";
  write_text(f.index, index);
#ifdef MEGALODON_HAS_ZLIB
  f.dict = dir / "foldoc.dict.dz";
  gzFile gz = gzopen(f.dict.c_str(), "wb9");
  REQUIRE(gz);
  REQUIRE(gzwrite(gz, body.data(), static_cast<unsigned>(body.size())) == static_cast<int>(body.size()));
  REQUIRE(gzclose(gz) == Z_OK);
#else
  f.dict = dir / "foldoc.dict";
  write_text(f.dict, body);
#endif
  return f;
}

int run_cli(const std::string& args, const TempDir& dir, std::string* output) {
  const fs::path log = dir / "cli.log";
  const std::string cmd = fmt::format("'{}' {} > '{}' 2>&1", MEGALODON_CLI_PATH, args, log.string());
  const int status = std::system(cmd.c_str());
  *output = read_all(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

// ---- FOLDOC → WikiText -----------------------------------------------------------------------

TEST_CASE("dictd base-64 numbers are positional A-Za-z0-9+/ digits, most significant first", "[standins]") {
  CHECK(decode_dictd_number("A") == 0);
  CHECK(decode_dictd_number("B") == 1);
  CHECK(decode_dictd_number("/") == 63);
  CHECK(decode_dictd_number("BA") == 64);
  CHECK(decode_dictd_number("a") == 26);
  CHECK(decode_dictd_number("0") == 52);
  // The first line of the real foldoc.index: "!<TAB>Gb9L<TAB>K5".
  CHECK(decode_dictd_number("Gb9L") == 6ull * 64 * 64 * 64 + 27 * 64 * 64 + 61 * 64 + 11);
  CHECK(decode_dictd_number("K5") == 10 * 64 + 57);
  for (uint64_t v : {0ull, 1ull, 63ull, 64ull, 5578809ull, 1ull << 40})
    CHECK(decode_dictd_number(dictd_b64(v)) == v);
  CHECK_THROWS_AS(decode_dictd_number(""), std::invalid_argument);
  CHECK_THROWS_AS(decode_dictd_number("AB-"), std::invalid_argument);
  CHECK_THROWS_AS(decode_dictd_number("AB="), std::invalid_argument);           // no RFC 4648 padding
  CHECK_THROWS_AS(decode_dictd_number("////////////"), std::invalid_argument);  // 72 bits
}

TEST_CASE("a malformed dictd index line is an error naming file:line", "[standins]") {
  const auto ok = parse_dictd_index("a\tA\tB\r\n\nb c\tBA\tC\n", "x.index");
  REQUIRE(ok.size() == 2);
  CHECK(ok[1].headword == "b c");
  CHECK(ok[1].offset == 64);
  CHECK(ok[1].length == 2);
  CHECK(ok[1].line == 3);
  auto message = [](const std::string& text) {
    try {
      parse_dictd_index(text, "foldoc.index");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(message("a\tA\tB\nb\tBA\n"),
             Catch::StartsWith("foldoc.index:2:") && Catch::Contains("2 fields"));
  CHECK_THAT(message("a\tA\tB\nb\tB\tC\textra\n"), Catch::StartsWith("foldoc.index:2:"));
  CHECK_THAT(message("a\tA\tB\n\nb\tB*\tC\n"),
             Catch::StartsWith("foldoc.index:3:") && Catch::Contains("'*'"));

  // Through the converter: the index file's path and line.
  TempDir dir("standins-badindex");
  const auto f = write_fake_foldoc(dir);
  write_text(f.index, read_all(f.index) + "broken line without tabs\n");
  const auto lines = lines_of(read_all(f.index));
  try {
    foldoc_to_wikitext(f.dict, f.index, dir / "out");
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::StartsWith(fmt::format("{}:{}:", f.index.string(), lines.size())));
  }
  // An entry that points past the end of the .dict names the index line and the .dict.
  write_text(f.index, "omega\tA\t" + dictd_b64(1 << 20) + "\n");
  try {
    foldoc_to_wikitext(f.dict, f.index, dir / "out");
    FAIL("no error");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::StartsWith(f.index.string() + ":1:") && Catch::Contains(f.dict.string()));
  }
  CHECK_THROWS_WITH(foldoc_to_wikitext(dir / "missing.dict.dz", f.index, dir / "out"),
                    Catch::Contains("missing.dict.dz"));
}

TEST_CASE("FOLDOC entries lose their dictd markup", "[standins]") {
  const auto a = clean_foldoc_entry(kArticles[0]);
  CHECK(a.title == "Role-Playing Game");  // the header's first line; "RPG" (an alias) goes
  REQUIRE(a.paragraphs.size() == 1);      // the link line and the date line are dropped
  CHECK(a.paragraphs[0] ==
        "A video game (see RPG home) costing $8,600 or 0.7 units; it wasn't Sega's. alpha beta gamma");
  CHECK(a.link_lines_dropped == 1);

  const auto z = clean_foldoc_entry(kArticles[1]);
  CHECK(z.title == "Zeta Language");
  REQUIRE(z.paragraphs.size() == 2);
  // "1. <language, mathematics>" loses the subject tag, the e-mail address goes.
  CHECK(z.paragraphs[0] == "1. A language by Jones for the U.S. Army, e.g. alpha beta gamma...");
  CHECK(z.paragraphs[1] == "2. See Role-Playing Game.");
  CHECK(z.code_blocks_dropped == 1);

  // A line of spaces before an unindented overlong URL does not end the paragraph.
  const auto o = clean_foldoc_entry(kArticles[2]);
  REQUIRE(o.paragraphs.size() == 1);
  CHECK(o.paragraphs[0] ==
        "The last letter. alpha beta gamma are (http://very.long.example.org/a/b/c) earlier.");

  FoldocCleanOptions keep;
  keep.keep_code_blocks = keep.keep_dates = keep.keep_link_lines = true;
  const auto all = clean_foldoc_entry(kArticles[1], keep);
  REQUIRE(all.paragraphs.size() == 3);
  CHECK(all.paragraphs[1] == "10 PRINT \"HELLO\" 20 GOTO 10");
  CHECK(clean_foldoc_entry(kArticles[0], keep).paragraphs.back() == "(2007-11-16)");
  // {(url)} alone vanishes; a '{' without its '}' stays as text; other angle brackets stay.
  CHECK(clean_foldoc_entry("T\n\n   Site {(http://x.org/)} and {A} and { b <stdio.h>\n").paragraphs.at(0) ==
        "Site and A and { b <stdio.h>");
  // A link target with parentheses of its own.
  const auto parens = clean_foldoc_entry(
      "T\n\n   Text {wiki entry (http://x.org/wiki/(()))}.\n\n   {Entry (http://x.org/(a))}.\n");
  REQUIRE(parens.paragraphs.size() == 1);
  CHECK(parens.paragraphs[0] == "Text wiki entry.");
  CHECK(parens.link_lines_dropped == 1);
}

TEST_CASE("WikiText tokenisation: punctuation, @-@ @,@ @.@, clitics, abbreviations", "[standins]") {
  CHECK(toks("a tactical role-playing video game") == "a tactical role @-@ playing video game");
  CHECK(toks("8,600 feet, 0.7 m and 1.2.3") == "8 @,@ 600 feet , 0 @.@ 7 m and 1 @.@ 2 @.@ 3");
  CHECK(toks("(Japanese: lit. Valkyria)") == "( Japanese : lit . Valkyria )");
  CHECK(toks("it wasn't Sega's, they're O'Reilly's") == "it was n't Sega 's , they 're O'Reilly 's");
  CHECK(toks("Media.Vision in the U.S., e.g. here.") == "Media.Vision in the U.S. , e.g. here .");
  CHECK(toks("\"quoted\" -- wait... $5 50% a/b") == "\" quoted \" -- wait ... $ 5 50 % a / b");
  CHECK(toks("  spaced \t out\n") == "spaced out");
  CHECK(toks("caf\xc3\xa9-style") == "caf\xc3\xa9 @-@ style");
  CHECK(toks("-5 and x-") == "- 5 and x -");
  CHECK(wikitext_tokenize("").empty());
}

TEST_CASE("FOLDOC → wiki.{train,valid,test}.tokens in the WikiText-103 layout, with <unk> by train counts",
          "[standins]") {
  TempDir dir("standins-wt");
  const auto f = write_fake_foldoc(dir);
  FoldocWikiTextOptions o;
  o.valid_fraction = o.test_fraction = 1.0 / 3;  // one article each
  o.min_count = 0;                               // first without <unk>: the text itself
  const auto plain = foldoc_to_wikitext(f.dict, f.index, dir / "plain", o);
  CHECK(plain.index_lines == 5);
  CHECK(plain.database_entries == 1);
  CHECK(plain.articles == 3);
  CHECK(plain.code_blocks_dropped == 1);
  CHECK(plain.link_lines_dropped == 1);
  CHECK(plain.train.articles == 1);
  CHECK(plain.valid.articles == 1);
  CHECK(plain.test.articles == 1);
  CHECK(plain.train.unk + plain.valid.unk + plain.test.unk == 0);

  // The expected tokens of each article: title, then paragraphs.
  const std::map<std::string, std::vector<std::string>> expected = {
      {"Role @-@ Playing Game",
       {"A video game ( see RPG home ) costing $ 8 @,@ 600 or 0 @.@ 7 units ; it was n't Sega 's . alpha "
        "beta gamma"}},
      {"Zeta Language",
       {"1 . A language by Jones for the U.S. Army , e.g. alpha beta gamma ...",
        "2 . See Role @-@ Playing Game ."}},
      {"Omega",
       {"The last letter . alpha beta gamma are ( http : / / very.long.example.org / a / b / c ) earlier "
        "."}}};

  // Layout: " ", " = Title = ", " ", then one line per paragraph, each with a leading and a
  // trailing space; no tab, no double space.
  std::map<std::string, std::string> split_of;  // title → split
  for (const char* s : {"train", "valid", "test"}) {
    const fs::path file = dir / "plain" / fmt::format("wiki.{}.tokens", s);
    CHECK_FALSE(fs::exists(file.string() + ".tmp"));
    const std::string text = read_all(file);
    REQUIRE(!text.empty());
    CHECK(text.back() == '\n');
    CHECK(text.find("  ") == std::string::npos);
    CHECK(text.find('\t') == std::string::npos);
    const auto lines = lines_of(text);
    REQUIRE(lines.size() >= 4);
    CHECK(lines[0] == " ");
    REQUIRE(lines[1].size() > 6);
    CHECK(lines[1].substr(0, 3) == " = ");
    CHECK(lines[1].substr(lines[1].size() - 3) == " = ");
    CHECK(lines[2] == " ");
    const std::string title = lines[1].substr(3, lines[1].size() - 6);
    REQUIRE(expected.count(title));
    split_of[title] = s;
    const auto& paragraphs = expected.at(title);
    REQUIRE(lines.size() == 3 + paragraphs.size());
    for (size_t p = 0; p < paragraphs.size(); ++p) CHECK(lines[3 + p] == " " + paragraphs[p] + " ");
  }
  REQUIRE(split_of.size() == 3);

  // With WikiText's rule (min count 3) and the same seed: count the words of the train article's
  // lines (its heading and '=' marks included); a word seen fewer than 3 times there is <unk> in
  // every split, headings included.
  o.min_count = 3;
  const auto st = foldoc_to_wikitext(f.dict, f.index, dir / "wt", o);
  std::map<std::string, int> counts;
  counts["="] = 2;
  for (const auto& [title, s] : split_of) {
    if (s != "train") continue;
    for (const auto& w : words_of(title)) ++counts[w];
    for (const auto& p : expected.at(title))
      for (const auto& w : words_of(p)) ++counts[w];
  }
  auto with_unk = [&](const std::string& line) {
    std::string out;
    for (const auto& w : words_of(line)) out += " " + (counts[w] >= 3 ? w : std::string("<unk>"));
    return out + " ";
  };
  int64_t tokens = 0, unk = 0;
  for (const auto& [title, s] : split_of) {
    INFO("article " << title << " in " << s);
    const auto lines = lines_of(read_all(dir / "wt" / fmt::format("wiki.{}.tokens", s)));
    const auto& paragraphs = expected.at(title);
    REQUIRE(lines.size() == 3 + paragraphs.size());
    CHECK(lines[1] == " =" + with_unk(title) + "= ");
    std::vector<std::string> all = paragraphs;
    all.push_back(title);
    for (size_t p = 0; p < paragraphs.size(); ++p) CHECK(lines[3 + p] == with_unk(paragraphs[p]));
    for (const auto& text : all)
      for (const auto& w : words_of(text)) {
        ++tokens;
        unk += counts[w] < 3;
      }
  }
  CHECK(unk > 0);
  CHECK(st.train.tokens + st.valid.tokens + st.test.tokens == tokens + 6);  // + the '=' marks
  CHECK(st.train.unk + st.valid.unk + st.test.unk == unk);
  CHECK(st.train.tokens == plain.train.tokens);
  CHECK(st.train.lines + st.valid.lines + st.test.lines == 3 * 3 + 4);
  // Every word left in train occurs at least 3 times there (what a min-count-3 vocabulary built from
  // the train file keeps); the heading marks are structure and stay (twice here, one train article).
  std::map<std::string, int> left;
  for (const auto& w : words_of(read_all(dir / "wt" / "wiki.train.tokens"))) ++left[w];
  for (const auto& [w, c] : left)
    if (w != "<unk>" && w != "=") CHECK(c >= 3);
}

TEST_CASE("the article split is a deterministic function of the seed", "[standins]") {
  TempDir dir("standins-seed");
  const auto f = write_fake_foldoc(dir);
  FoldocWikiTextOptions o;
  o.valid_fraction = o.test_fraction = 1.0 / 3;
  auto files = [&](uint64_t seed, const std::string& out) {
    o.seed = seed;
    foldoc_to_wikitext(f.dict, f.index, dir / out, o);
    std::string all;
    for (const char* s : {"train", "valid", "test"})
      all += read_all(dir / out / fmt::format("wiki.{}.tokens", s)) + "|";
    return all;
  };
  CHECK(files(7, "a") == files(7, "b"));
  std::set<std::string> outcomes;
  for (uint64_t seed = 0; seed < 12; ++seed) outcomes.insert(files(seed, "s"));
  CHECK(outcomes.size() >= 3);  // 6 possible assignments of 3 articles; seeds reach several

  // With the default 90/5/5 fractions, three articles round to 3/0/0: valid and test are empty.
  const auto st = foldoc_to_wikitext(f.dict, f.index, dir / "default");
  CHECK(st.train.articles == 3);
  CHECK(st.valid.articles == 0);
  CHECK(read_all(dir / "default" / "wiki.valid.tokens").empty());
}

// ---- KJV → PG-19 -----------------------------------------------------------------------------

namespace {

// The `bible` program's layout: a heading between blank lines, verses "  <n> text" wrapped at 79
// columns with unindented continuation lines. The second book's name holds a comma and quotes so
// that metadata.csv must quote it.
const char* kBible =
    "\n"
    "Genesis 1\n"
    "\n"
    "  1 In the beginning God created the heaven and the earth.\n"
    "  2 And the earth was without form, and void; and darkness was upon the face of\n"
    "the deep.\n"
    "\n"
    "Genesis 2\n"
    "\n"
    "  1 Thus the heavens and the earth were finished.\n"
    "\n"
    "Song of \"Songs\", Part 1\n"
    "\n"
    "  1 The song of songs,  which is Solomon's.\n"
    "\n"
    "Revelation 1\n"
    "\n"
    "  1 The Revelation of Jesus Christ.\n"
    "  2 Who bare record.\n";

std::string error_of(const std::string& text) {
  try {
    parse_bible_output(text, "kjv.txt");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("the bible program's output parses into books, chapters and verses", "[standins]") {
  const auto books = parse_bible_output(kBible, "kjv.txt");
  REQUIRE(books.size() == 3);
  CHECK(books[0].name == "Genesis");
  REQUIRE(books[0].chapters.size() == 2);
  REQUIRE(books[0].chapters[0].verses.size() == 2);
  CHECK(books[0].chapters[0].verses[1] ==
        "And the earth was without form, and void; and darkness was upon the face of the deep.");
  CHECK(books[0].chapters[1].number == 2);
  CHECK(books[1].name == "Song of \"Songs\", Part");
  CHECK(books[1].chapters[0].verses[0] == "The song of songs, which is Solomon's.");
  CHECK(books[2].chapters[0].verses.size() == 2);

  CHECK_THAT(error_of("\n  1 In the beginning\n"),
             Catch::StartsWith("kjv.txt:2:") && Catch::Contains("before any"));
  CHECK_THAT(error_of("\nGen 1\n\n  1 a\n  3 b\n"),
             Catch::StartsWith("kjv.txt:5:") && Catch::Contains("expected verse 2"));
  CHECK_THAT(error_of("\nGen 1\n\n  1 a\n\nGen 3\n\n  1 b\n"),
             Catch::StartsWith("kjv.txt:6:") && Catch::Contains("expected chapter 2"));
  CHECK_THAT(error_of("\nGen 1\n\n  1 a\n\nExo 1\n\n  1 b\n\nGen 2\n\n  1 c\n"),
             Catch::StartsWith("kjv.txt:10:") && Catch::Contains("second time"));
  CHECK_THAT(error_of("\nGen 1\n\n  1 a\n\nstray words\n"), Catch::StartsWith("kjv.txt:6:"));
  CHECK_THAT(error_of("\nGen 1\n\n   1 a\n"), Catch::StartsWith("kjv.txt:4:"));
  CHECK_THAT(error_of("\nGen 1\n\nGen 2\n\n  1 a\n"),
             Catch::StartsWith("kjv.txt:4:") && Catch::Contains("no verses"));
  CHECK_THAT(error_of(""), Catch::Contains("no chapter headings"));
}

TEST_CASE("RFC 4180 records quote commas, quotes and line breaks", "[standins]") {
  CHECK(csv_record({"1", "Genesis", "1611", "https://x"}) == "1,Genesis,1611,https://x\n");
  CHECK(csv_record({"2", "Song of \"Songs\", Part", "", "a\nb"}) ==
        "2,\"Song of \"\"Songs\"\", Part\",,\"a\nb\"\n");
  const auto rows = read_csv(csv_record({"2", "x, \"y\"", "z"}) + csv_record({"3", "", "w"}));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0] == std::vector<std::string>{"2", "x, \"y\"", "z"});
  CHECK(rows[1] == std::vector<std::string>{"3", "", "w"});
}

TEST_CASE("the KJV → the PG-19 layout: split folders of <id>.txt books and metadata.csv", "[standins]") {
  TempDir dir("standins-pg19");
  write_text(dir / "kjv.txt", kBible);
  BiblePg19Options o;
  o.validation_books = {"Song of \"Songs\", Part"};
  o.test_books = {"Revelation"};
  o.wrap_width = 40;
  const auto st = bible_to_pg19(dir / "kjv.txt", dir / "pg19", o);
  CHECK(st.chapters == 4);
  CHECK(st.verses == 6);
  REQUIRE(st.train.books.size() == 1);
  REQUIRE(st.validation.books.size() == 1);
  REQUIRE(st.test.books.size() == 1);
  CHECK(st.train.books[0].id == 1);
  CHECK(st.validation.books[0].id == 2);
  CHECK(st.test.books[0].id == 3);

  // Verse numbers gone, verses as paragraphs wrapped at 40 columns, chapter headings kept.
  const std::string genesis = read_all(dir / "pg19" / "train" / "1.txt");
  CHECK(genesis ==
        "Genesis 1\n\n"
        "In the beginning God created the heaven\nand the earth.\n\n"
        "And the earth was without form, and\nvoid; and darkness was upon the face of\nthe deep.\n\n"
        "Genesis 2\n\n"
        "Thus the heavens and the earth were\nfinished.\n");
  CHECK(st.train.words == static_cast<int64_t>(words_of(genesis).size()));
  CHECK(st.train.words == 4 + 10 + 17 + 8);
  CHECK(st.train.chars == static_cast<int64_t>(genesis.size()));
  CHECK(st.test.largest()->title == "Revelation");
  CHECK(read_all(dir / "pg19" / "test" / "3.txt") ==
        "Revelation 1\n\nThe Revelation of Jesus Christ.\n\nWho bare record.\n");

  // metadata.csv: no header (as the release), every book in id order, the quoted title intact.
  const auto rows = read_csv(read_all(dir / "pg19" / "metadata.csv"));
  REQUIRE(rows.size() == 3);
  CHECK(rows[0] == std::vector<std::string>{"1", "Genesis", "1611", o.book_link});
  CHECK(rows[1] == std::vector<std::string>{"2", "Song of \"Songs\", Part", "1611", o.book_link});
  CHECK(rows[2][0] == "3");
  CHECK(read_all(dir / "pg19" / "metadata.csv").find("\"Song of \"\"Songs\"\", Part\"") != std::string::npos);

  // wrap 0: one line per verse. A second run with another split leaves no stale book behind.
  o.wrap_width = 0;
  o.validation_books = {"Revelation"};
  o.test_books = {};
  bible_to_pg19(dir / "kjv.txt", dir / "pg19", o);
  CHECK(fs::exists(dir / "pg19" / "validation" / "3.txt"));
  CHECK_FALSE(fs::exists(dir / "pg19" / "test" / "3.txt"));
  CHECK_FALSE(fs::exists(dir / "pg19" / "validation" / "2.txt"));
  CHECK(fs::exists(dir / "pg19" / "train" / "2.txt"));
  CHECK(lines_of(read_all(dir / "pg19" / "train" / "1.txt"))[4] ==
        "And the earth was without form, and void; and darkness was upon the face of the deep.");

  // Unknown or doubly assigned held-out books are errors naming them.
  o.test_books = {"Tobit"};
  CHECK_THROWS_WITH(bible_to_pg19(dir / "kjv.txt", dir / "pg19", o), Catch::Contains("'Tobit'"));
  o.test_books = {"Revelation"};
  CHECK_THROWS_WITH(bible_to_pg19(dir / "kjv.txt", dir / "pg19", o), Catch::Contains("both"));
  CHECK_THROWS_WITH(bible_to_pg19(dir / "nope.txt", dir / "pg19", o), Catch::Contains("nope.txt"));
}

TEST_CASE("megalodon data wikitext-from-foldoc / pg19-from-bible: help, usage and file errors",
          "[standins][cli]") {
  TempDir dir("standins-cli");
  std::string out;
  CHECK(run_cli("data wikitext-from-foldoc --help", dir, &out) == 0);
  CHECK_THAT(out, Catch::Contains("--index"));
  CHECK(run_cli("data pg19-from-bible --help", dir, &out) == 0);
  CHECK(run_cli("data wikitext-from-foldoc --dict x", dir, &out) == 2);
  CHECK(run_cli("data pg19-from-bible --text x --out y --wrap -3", dir, &out) == 2);
  CHECK(run_cli("data pg19-from-bible --text x --out y --bogus", dir, &out) == 2);
  CHECK(run_cli(fmt::format("data pg19-from-bible --text '{}' --out '{}'", (dir / "absent.txt").string(),
                            (dir / "o").string()),
                dir, &out) == 1);
  CHECK_THAT(out, Catch::Contains((dir / "absent.txt").string()));

  const auto f = write_fake_foldoc(dir);
  CHECK(run_cli(fmt::format("data wikitext-from-foldoc --dict '{}' --index '{}' --out '{}' --seed 3 "
                            "--valid-fraction 0.34 --test-fraction 0.34",
                            f.dict.string(), f.index.string(), (dir / "wt").string()),
                dir, &out) == 0);
  CHECK_THAT(out, Catch::Contains("articles 3"));
  CHECK(fs::exists(dir / "wt" / "wiki.test.tokens"));
  write_text(dir / "kjv.txt", kBible);
  CHECK(run_cli(
            fmt::format("data pg19-from-bible --text '{}' --out '{}' --validation Genesis --test Revelation",
                        (dir / "kjv.txt").string(), (dir / "pg").string()),
            dir, &out) == 0);
  CHECK(fs::exists(dir / "pg" / "validation" / "1.txt"));
  CHECK(fs::exists(dir / "pg" / "train" / "2.txt"));
}
