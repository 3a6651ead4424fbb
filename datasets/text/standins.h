// Stand-ins for the language-modelling corpora (datasets.md "Text"), built from public-domain or
// GFDL text that Debian packages ship, in the on-disk layouts of the real corpora so that the real
// readers (datasets/text/text.h) read them unchanged:
//
//   WikiText-103 (paper-benchmarks §3.8) from dict-foldoc: the FOLDOC dictd database
//     (foldoc.dict.dz + foldoc.index) → wiki.{train,valid,test}.tokens.
//   PG-19 (paper-benchmarks §3.9) from bible-kjv: the output of `bible -p <lib> "Gen1:1-Rev22:21"`
//     → {train,validation,test}/<book_id>.txt + metadata.csv.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mgl::datasets::text {

// ---- FOLDOC → WikiText -----------------------------------------------------------------------

// dictd index numbers: base-64 digits "A-Za-z0-9+/" (the RFC 4648 alphabet, value 0..63 in that
// order) read as a big-endian positional number, no padding ("Gb9L" = 6·64³ + 27·64² + 61·64 + 11).
// This is not RFC 4648 *encoding* (bytes → 6-bit groups): "B" is 1, "BA" is 64. Throws
// std::invalid_argument on an empty string, a character outside the alphabet, or overflow.
uint64_t decode_dictd_number(std::string_view digits);

// One line of a dictd .index file.
struct DictdIndexEntry {
  std::string headword;
  uint64_t offset = 0;  // byte offset into the uncompressed .dict
  uint64_t length = 0;  // byte length of the entry
  int64_t line = 0;     // 1-based line in the index file
};
// Parses `headword<TAB>offset<TAB>length` lines (a trailing CR and blank lines are tolerated).
// A line with another number of fields or a bad number is an error naming `where`:line.
std::vector<DictdIndexEntry> parse_dictd_index(std::string_view text, const std::string& where);

// A FOLDOC article after the dictd markup is removed: the title (the first line of the entry),
// then its paragraphs, each one string of whitespace-separated plain text (not yet tokenised).
struct FoldocArticle {
  std::string title;
  std::vector<std::string> paragraphs;
  int64_t code_blocks_dropped = 0;
  int64_t link_lines_dropped = 0;
};

struct FoldocCleanOptions {
  // Paragraphs all of whose lines are indented deeper than the body text are code samples,
  // grammars or ASCII tables; WikiText holds prose only, so they are dropped by default.
  bool keep_code_blocks = false;
  // The "(2007-11-16)" last-updated line that ends most entries is editorial metadata.
  bool keep_dates = false;
  // A paragraph that is a single external link ("{FAQ (http://...)}.") is an "External links" line,
  // which WikiText does not keep.
  bool keep_link_lines = false;
};

// Cleans one dictd entry (the bytes the index points at):
//   - the header block (the headword line, then one line per alternative name, unindented, up to
//     the first blank line) becomes the title (its first line);
//   - the body is split into paragraphs at empty lines; a paragraph's lines are joined by spaces
//     (the three-space indentation goes; lines of spaces only, which dictfmt leaves before an
//     overlong URL, are not paragraph breaks);
//   - `{cross reference}` → its words; `{text (url-or-file)}` → text; `{(url)}` → nothing;
//   - `<subject>` tags at the start of a sense ("<programming>", "2. <web, Java>") are removed, as
//     are `<e-mail@address>` and `<scheme://url>`; other angle brackets are left as text;
//   - code blocks, the trailing date line and external-link lines as FoldocCleanOptions says.
FoldocArticle clean_foldoc_entry(std::string_view entry, const FoldocCleanOptions& options = {});

// WikiText-103's tokenisation of one line of plain text (the Moses-like rules seen in the real
// files): tokens separated by single spaces; punctuation split off ("( Japanese : ... ) ,", "lit .");
// a hyphen between two word characters → "@-@" ("role @-@ playing"); a comma or period between two
// digits → "@,@" / "@.@" ("8 @,@ 600", "0 @.@ 7"); possessive and contraction clitics split as the
// Penn Treebank does ("Sega 's", "was n't"); periods inside a word stay ("Media.Vision", "U.S.",
// "e.g."); "..." is one token.
std::vector<std::string> wikitext_tokenize(std::string_view text);

struct FoldocWikiTextOptions {
  uint64_t seed = 0;             // the article shuffle that picks the splits
  double valid_fraction = 0.05;  // of the articles (rounded), as are the test articles
  double test_fraction = 0.05;
  // Words seen fewer times in train, and words absent from train, become <unk> (WikiText's rule:
  // 3); 0 writes every word as it is.
  int64_t min_count = 3;
  FoldocCleanOptions clean;
};

struct WikiTextSplitStats {
  int64_t articles = 0;
  int64_t paragraphs = 0;
  int64_t lines = 0;   // lines of the file, blank lines included (each gets an </s> when read)
  int64_t tokens = 0;  // whitespace-separated tokens, without end-of-line tokens
  int64_t unk = 0;     // tokens that are <unk>
  double unk_rate() const { return tokens ? static_cast<double>(unk) / static_cast<double>(tokens) : 0.0; }
};

struct FoldocWikiTextStats {
  int64_t index_lines = 0;       // headword lines in the index
  int64_t database_entries = 0;  // dictd's own 00-database-* entries, skipped
  int64_t articles = 0;          // distinct entries kept
  int64_t empty_articles = 0;    // entries with no prose paragraph left, skipped
  int64_t code_blocks_dropped = 0;
  int64_t link_lines_dropped = 0;
  int64_t vocabulary = 0;  // word types kept (train count >= min_count), <unk> included
  WikiTextSplitStats train, valid, test;
};

// Reads the dictd database (`dict` may be gzip/dictzip-compressed, i.e. the .dict.dz, or plain),
// cleans and tokenises every article, splits the articles 90/5/5 (a Fisher–Yates shuffle by a
// splitmix64 stream from `seed`: the first round(n·valid_fraction) shuffled articles are valid, the
// next round(n·test_fraction) test, the rest train; each split keeps the articles in dictionary
// order), replaces words whose train count < min_count with <unk>, and writes
// out_dir/wiki.{train,valid,test}.tokens, each atomically (temporary file + rename), in WikiText-103's
// layout: per article " ", " = Title = ", " ", then each paragraph and a " " line. Errors name the
// file (and index line).
FoldocWikiTextStats foldoc_to_wikitext(const std::filesystem::path& dict, const std::filesystem::path& index,
                                       const std::filesystem::path& out_dir,
                                       const FoldocWikiTextOptions& options = {});

// ---- KJV Bible → PG-19 -----------------------------------------------------------------------

struct BibleChapter {
  int64_t number = 0;
  std::vector<std::string> verses;  // verse text, verse number removed, wrapped lines joined
};
struct BibleBook {
  std::string name;  // as the chapter headings spell it: "Genesis", "Song of Solomon", "1 John"
  std::vector<BibleChapter> chapters;
};

// Parses the output of the `bible` program (bible-kjv): for each chapter a heading line
// "<Book> <chapter>" between blank lines, then verses, each starting "  <n> " with its continuation
// lines unindented. Chapters of a book and verses of a chapter must count up from 1; anything else
// (a verse before a heading, a skipped number, a stray line) is an error naming `where`:line.
std::vector<BibleBook> parse_bible_output(std::string_view text, const std::string& where);

struct BiblePg19Options {
  // Held-out books by name. Each split gets one long prophetic book (200K+ characters, for the
  // streaming evaluation over a whole long book) and one synoptic gospel; the rest is train.
  std::vector<std::string> validation_books = {"Jeremiah", "Mark"};
  std::vector<std::string> test_books = {"Isaiah", "Luke"};
  int64_t wrap_width = 70;  // verse paragraphs hard-wrapped as Gutenberg texts are; 0 = one line each
  std::string publication_date = "1611";  // the Authorized Version (bible-kjv-text: "dated 1611")
  std::string book_link = "https://packages.debian.org/bible-kjv-text";
};

struct Pg19BookInfo {
  int64_t id = 0;
  std::string title;
  int64_t chars = 0;  // bytes of the written file
  int64_t words = 0;  // whitespace-separated words of the written file (the PG-19 word count)
};
struct Pg19SplitStats {
  std::vector<Pg19BookInfo> books;  // in id order
  int64_t words = 0;
  int64_t chars = 0;
  const Pg19BookInfo* largest() const;  // nullptr when empty
};
struct BiblePg19Stats {
  int64_t chapters = 0;
  int64_t verses = 0;
  Pg19SplitStats train, validation, test;
};

// Writes one book as plain text: for each chapter its heading line ("Genesis 1"), a blank line,
// then each verse as a paragraph (wrapped at wrap_width) followed by a blank line.
std::string format_bible_book(const BibleBook& book, int64_t wrap_width);

// One RFC 4180 record: fields joined by commas, a field quoted ("" for ") when it holds a comma,
// quote, CR or LF; ends with "\n".
std::string csv_record(const std::vector<std::string>& fields);

// Reads the `bible` output, numbers the books 1..N in the order they appear (canonical order for
// "Gen1:1-Rev22:21": Genesis = 1, Revelation = 66), writes out_dir/{train,validation,test}/<id>.txt
// and out_dir/metadata.csv (book_id,short_book_title,publication_date,book_link; no header line,
// as the PG-19 release; every book, id order), each file atomically. A held-out book name that is
// not in the text, or one named for both splits, is an error.
BiblePg19Stats bible_to_pg19(const std::filesystem::path& kjv_txt, const std::filesystem::path& out_dir,
                             const BiblePg19Options& options = {});

}  // namespace mgl::datasets::text
