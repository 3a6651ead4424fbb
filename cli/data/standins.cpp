// `megalodon data wikitext-from-foldoc` and `megalodon data pg19-from-bible`: the WikiText-103 and
// PG-19 stand-ins built from Debian's dict-foldoc and bible-kjv (datasets.md "Text";
// datasets/text/standins.h). scripts/lm_data.sh runs both.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>

#include "cli/args.h"
#include "cli/data/data.h"
#include "datasets/text/standins.h"

namespace mgl::cli {
namespace {

namespace text = mgl::datasets::text;

double fraction_option(const ParsedArgs& p, const std::string& key, double def) {
  const std::string v = p.option(key);
  if (v.empty()) return def;
  size_t used = 0;
  double out = -1;
  try {
    out = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || !(out >= 0.0 && out <= 1.0))
    throw std::invalid_argument(fmt::format("{} expects a fraction in [0, 1], got '{}'", key, v));
  return out;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t c = s.find(',', pos);
    std::string item = s.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const char* kFoldocHelp =
    "usage: megalodon data wikitext-from-foldoc --dict F --index F --out DIR [options]\n"
    "Builds the WikiText-103 stand-in (datasets.md \"Text\") from Debian's dict-foldoc: reads the dictd\n"
    "database (foldoc.dict.dz, gzip/dictzip or plain, and foldoc.index), removes the dictd markup,\n"
    "tokenises WikiText-style (punctuation split off, @-@ @,@ @.@ separators, \"was n't\", \"Sega 's\"),\n"
    "splits the articles and writes DIR/wiki.{train,valid,test}.tokens (paper-benchmarks §3.8 layout),\n"
    "with <unk> for words seen fewer than --min-count times in train.\n\n"
    "  --dict F                 /usr/share/dictd/foldoc.dict.dz (from the extracted deb)\n"
    "  --index F                /usr/share/dictd/foldoc.index\n"
    "  --out DIR                output folder (created)\n"
    "  --seed 0                 the article shuffle that picks the splits\n"
    "  --valid-fraction 0.05    share of the articles in valid (rounded)\n"
    "  --test-fraction 0.05     share of the articles in test (rounded)\n"
    "  --min-count 3            train count below which a word becomes <unk> (0: no <unk>)\n"
    "  --keep-code              keep code samples and tables (dropped by default)\n";

int wikitext_from_foldoc_main(const std::vector<std::string>& args) {
  text::FoldocWikiTextOptions o;
  std::string dict, index, out;
  try {
    const auto p = parse_args(
        args, {"--dict", "--index", "--out", "--seed", "--valid-fraction", "--test-fraction", "--min-count"},
        {"--help", "--keep-code"});
    if (p.flag("--help")) {
      std::fputs(kFoldocHelp, stdout);
      return 0;
    }
    dict = p.option("--dict");
    index = p.option("--index");
    out = p.option("--out");
    if (dict.empty() || index.empty() || out.empty() || !p.positional.empty() || !p.overrides.empty())
      throw std::invalid_argument("--dict, --index and --out are required, and nothing else");
    o.seed = p.seed_option("--seed", 0);
    o.valid_fraction = fraction_option(p, "--valid-fraction", o.valid_fraction);
    o.test_fraction = fraction_option(p, "--test-fraction", o.test_fraction);
    o.min_count = p.int_option("--min-count", o.min_count, 0);
    o.clean.keep_code_blocks = p.flag("--keep-code");
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "megalodon data wikitext-from-foldoc: %s\n\n%s", e.what(), kFoldocHelp);
    return 2;
  }

  fmt::print(
      "WikiText stand-in from FOLDOC: {} + {} -> {} (seed {}, {:.0f}/{:.0f}/{:.0f} split, min count {})\n",
      dict, index, out, o.seed, 100 * (1 - o.valid_fraction - o.test_fraction), 100 * o.valid_fraction,
      100 * o.test_fraction, o.min_count);
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const auto st = text::foldoc_to_wikitext(dict, index, out, o);
  fmt::print("done in {:.1f} s\n", seconds_since(start));
  fmt::print("  index lines {}, dictd entries {} skipped, articles {} ({} without prose skipped)\n",
             st.index_lines, st.database_entries, st.articles, st.empty_articles);
  fmt::print("  paragraphs dropped: {} code blocks or tables, {} external-link lines\n",
             st.code_blocks_dropped, st.link_lines_dropped);
  fmt::print("  vocabulary (train count >= {}, <unk> included): {}\n", o.min_count, st.vocabulary);
  fmt::print("  {:<6} {:>9} {:>11} {:>9} {:>11} {:>13} {:>9} {:>7}\n", "split", "articles", "paragraphs",
             "lines", "tokens", "tokens+eol", "<unk>", "unk %");
  const std::pair<const char*, const text::WikiTextSplitStats*> rows[] = {
      {"train", &st.train}, {"valid", &st.valid}, {"test", &st.test}};
  int64_t tokens = 0, unk = 0;
  for (const auto& [name, s] : rows) {
    fmt::print("  {:<6} {:>9} {:>11} {:>9} {:>11} {:>13} {:>9} {:>7.2f}\n", name, s->articles, s->paragraphs,
               s->lines, s->tokens, s->tokens + s->lines, s->unk, 100 * s->unk_rate());
    tokens += s->tokens;
    unk += s->unk;
  }
  fmt::print("  all    {:>9} {:>11} {:>9} {:>11} {:>13} {:>9} {:>7.2f}\n", st.articles,
             st.train.paragraphs + st.valid.paragraphs + st.test.paragraphs,
             st.train.lines + st.valid.lines + st.test.lines, tokens,
             tokens + st.train.lines + st.valid.lines + st.test.lines, unk,
             tokens ? 100.0 * static_cast<double>(unk) / static_cast<double>(tokens) : 0.0);
  for (const char* f : {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"})
    fmt::print("wrote {}\n", (std::filesystem::path(out) / f).string());
  return 0;
}

const char* kBibleHelp =
    "usage: megalodon data pg19-from-bible --text kjv.txt --out DIR [options]\n"
    "Builds the PG-19 stand-in (datasets.md \"Text\") from the King James Bible as the bible-kjv\n"
    "program prints it (bible -p <usr/lib> \"Gen1:1-Rev22:21\" > kjv.txt): verse numbers stripped, one\n"
    "book per file, ids 1..66 in canonical order, written as DIR/{train,validation,test}/<id>.txt and\n"
    "DIR/metadata.csv (book_id,short_book_title,publication_date,book_link; paper-benchmarks §3.9).\n\n"
    "  --text F                      the bible program's output\n"
    "  --out DIR                     output folder (created)\n"
    "  --validation Jeremiah,Mark    held-out books by name (comma-separated)\n"
    "  --test Isaiah,Luke\n"
    "  --wrap 70                     line width of the verse paragraphs (0: one line per verse)\n";

int pg19_from_bible_main(const std::vector<std::string>& args) {
  text::BiblePg19Options o;
  std::string in, out;
  try {
    const auto p = parse_args(args, {"--text", "--out", "--validation", "--test", "--wrap"}, {"--help"});
    if (p.flag("--help")) {
      std::fputs(kBibleHelp, stdout);
      return 0;
    }
    in = p.option("--text");
    out = p.option("--out");
    if (in.empty() || out.empty() || !p.positional.empty() || !p.overrides.empty())
      throw std::invalid_argument("--text and --out are required, and nothing else");
    if (!p.option("--validation").empty()) o.validation_books = split_list(p.option("--validation"));
    if (!p.option("--test").empty()) o.test_books = split_list(p.option("--test"));
    o.wrap_width = p.int_option("--wrap", o.wrap_width, 0);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "megalodon data pg19-from-bible: %s\n\n%s", e.what(), kBibleHelp);
    return 2;
  }

  fmt::print("PG-19 stand-in from the KJV: {} -> {} (validation: {}; test: {})\n", in, out,
             fmt::join(o.validation_books, ", "), fmt::join(o.test_books, ", "));
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const auto st = text::bible_to_pg19(in, out, o);
  fmt::print("done in {:.2f} s: {} books, {} chapters, {} verses\n", seconds_since(start),
             st.train.books.size() + st.validation.books.size() + st.test.books.size(), st.chapters,
             st.verses);
  fmt::print("  {:<11} {:>6} {:>10} {:>11}   {}\n", "split", "books", "words", "characters", "largest book");
  const std::pair<const char*, const text::Pg19SplitStats*> rows[] = {
      {"train", &st.train}, {"validation", &st.validation}, {"test", &st.test}};
  for (const auto& [name, s] : rows) {
    const auto* big = s->largest();
    fmt::print(
        "  {:<11} {:>6} {:>10} {:>11}   {}\n", name, s->books.size(), s->words, s->chars,
        big ? fmt::format("{}.txt {} ({} characters, {} words)", big->id, big->title, big->chars, big->words)
            : std::string("-"));
  }
  for (const auto& [name, s] : rows) {
    if (s == &st.train) continue;
    for (const auto& b : s->books)
      fmt::print("  {}/{}.txt  {:<10} {:>8} characters {:>7} words\n", name, b.id, b.title, b.chars, b.words);
  }
  fmt::print("wrote {}\n", (std::filesystem::path(out) / "metadata.csv").string());
  return 0;
}

const DataTool kWikiTextFromFoldoc{"wikitext-from-foldoc",
                                   "WikiText-103 stand-in (wiki.*.tokens) from Debian's dict-foldoc",
                                   wikitext_from_foldoc_main};
const DataTool kPg19FromBible{"pg19-from-bible", "PG-19 stand-in (books + metadata.csv) from the KJV Bible",
                              pg19_from_bible_main};

}  // namespace
}  // namespace mgl::cli
