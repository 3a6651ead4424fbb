// FOLDOC → WikiText-103 and KJV → PG-19 stand-ins (standins.h; datasets.md "Text",
// paper-benchmarks §3.8–3.9).
#include "datasets/text/standins.h"

#include <fmt/format.h>
#ifdef MEGALODON_HAS_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

namespace mgl::datasets::text {

namespace fs = std::filesystem;

namespace {

// ---- small helpers ---------------------------------------------------------------------------

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// Word characters: ASCII letters and digits, '_', and every byte of a multi-byte UTF-8 character
// (FOLDOC's few non-ASCII characters are letters: é, ö, ü, ...).
bool is_word(char c) {
  return is_alpha(c) || is_digit(c) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Runs of whitespace → one space, no leading or trailing space.
std::string collapse_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool pending = false;
  for (char c : s) {
    if (is_space(c)) {
      pending = !out.empty();
    } else {
      if (pending) out += ' ';
      pending = false;
      out += c;
    }
  }
  return out;
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the text's final newline
  return lines;
}

int64_t count_words(std::string_view s) {
  int64_t n = 0;
  bool in = false;
  for (char c : s) {
    const bool w = !is_space(c);
    n += w && !in;
    in = w;
  }
  return n;
}

// The whole file; gzip (and dictzip, which is gzip with an extra header field) is decompressed when
// zlib is built in. Without zlib a gzip file is refused with a clear message.
std::string read_maybe_gzip(const fs::path& file) {
  if (!fs::exists(file)) throw std::runtime_error(fmt::format("{}: no such file", file.string()));
  std::string out;
#ifdef MEGALODON_HAS_ZLIB
  gzFile gz = gzopen(file.c_str(), "rb");
  if (!gz) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::vector<char> buf(1 << 20);
  for (;;) {
    const int r = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()));
    if (r < 0) {
      int errnum = 0;
      const char* msg = gzerror(gz, &errnum);
      const std::string what = msg ? msg : "unknown error";
      gzclose(gz);
      throw std::runtime_error(fmt::format("{}: read error: {}", file.string(), what));
    }
    if (r == 0) break;
    out.append(buf.data(), static_cast<size_t>(r));
  }
  gzclose(gz);
#else
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  if (out.size() >= 2 && static_cast<unsigned char>(out[0]) == 0x1f &&
      static_cast<unsigned char>(out[1]) == 0x8b)
    throw std::runtime_error(
        fmt::format("{}: gzip-compressed, and this build has no zlib (gunzip it first, or install zlib1g-dev "
                    "and rebuild)",
                    file.string()));
#endif
  return out;
}

std::string read_plain(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Written beside the target and renamed into place, so a reader never sees a half-written file.
void write_atomic(const fs::path& file, const std::string& content) {
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot write", tmp.string()));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) throw std::runtime_error(fmt::format("{}: write failed (disk full?)", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec)
    throw std::runtime_error(fmt::format("{}: cannot rename into place: {}", file.string(), ec.message()));
}

// splitmix64 (Steele, Lea & Flood 2014): a fully specified stream, so a seed picks the same split
// with every standard library (std::shuffle and the std distributions are implementation-defined).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

// ---- FOLDOC markup ---------------------------------------------------------------------------

// "(about.html)", "(http://foldoc.org/)": a parenthesised link target with no spaces.
bool is_link_target(std::string_view s) {
  if (s.empty() || s.find(' ') != std::string_view::npos) return false;
  return s.find('.') != std::string_view::npos || s.find('/') != std::string_view::npos ||
         s.find(':') != std::string_view::npos;
}

// The '(' that the final ')' of `s` closes (a link target may hold parentheses itself:
// "(http://esolangs.org/wiki/(())"); npos when unbalanced.
size_t matching_open_paren(std::string_view s) {
  int depth = 0;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == ')') ++depth;
    if (s[i] == '(' && --depth == 0) return i;
  }
  return std::string_view::npos;
}

// `{words}` → words, `{text (target)}` → text, `{(target)}` → nothing. A '{' without a '}' before
// the next '{' is left as a literal character.
std::string resolve_cross_references(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] != '{') {
      out += s[i++];
      continue;
    }
    const size_t close = s.find('}', i + 1);
    const size_t reopen = s.find('{', i + 1);
    if (close == std::string_view::npos || (reopen != std::string_view::npos && reopen < close)) {
      out += s[i++];
      continue;
    }
    std::string_view inner = trim(s.substr(i + 1, close - i - 1));
    if (!inner.empty() && inner.back() == ')') {
      const size_t open = matching_open_paren(inner);
      if (open != std::string_view::npos && is_link_target(inner.substr(open + 1, inner.size() - open - 2)))
        inner = trim(inner.substr(0, open));
    }
    out += inner;
    i = close + 1;
  }
  return out;
}

// `<someone@host>` and `<http://...>` are removed; other angle brackets stay as text.
std::string remove_angle_links(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '<') {
      const size_t close = s.find('>', i + 1);
      const size_t reopen = s.find('<', i + 1);
      if (close != std::string_view::npos && (reopen == std::string_view::npos || close < reopen)) {
        const std::string_view inner = s.substr(i + 1, close - i - 1);
        if (inner.find(' ') == std::string_view::npos &&
            (inner.find('@') != std::string_view::npos || inner.find("://") != std::string_view::npos)) {
          i = close + 1;
          continue;
        }
      }
    }
    out += s[i++];
  }
  return out;
}

// "<programming> A term ..." and "2. <web, Java> The ..." → the subject tag goes.
std::string remove_subject_tag(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_space(s[i])) ++i;
  size_t j = i;
  while (j < s.size() && is_digit(s[j])) ++j;
  if (j > i && j < s.size() && s[j] == '.') {
    ++j;
    while (j < s.size() && is_space(s[j])) ++j;
  } else {
    j = i;
  }
  if (j >= s.size() || s[j] != '<') return std::string(s);
  const size_t close = s.find('>', j + 1);
  if (close == std::string_view::npos || close - j > 80) return std::string(s);
  const std::string_view inner = s.substr(j + 1, close - j - 1);
  if (inner.empty() || inner.find('<') != std::string_view::npos || !is_alpha(inner.front()))
    return std::string(s);
  return std::string(s.substr(0, j)) + std::string(s.substr(close + 1));
}

bool is_date_line(std::string_view s) {
  // "(2007-11-16)"
  if (s.size() != 12 || s.front() != '(' || s.back() != ')') return false;
  for (size_t k = 1; k < 11; ++k)
    if ((k == 5 || k == 8) ? s[k] != '-' : !is_digit(s[k])) return false;
  return true;
}

// "{FAQ (http://...)}." or "{Lambda Prolog home (http://...)}.": a paragraph that is one external
// link and nothing else (a Wikipedia "External links" entry, which WikiText does not keep).
bool is_link_line(std::string_view s) {
  s = trim(s);
  while (!s.empty() && (s.back() == '.' || s.back() == ',' || s.back() == ';')) s.remove_suffix(1);
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') return false;
  const std::string_view inner = trim(s.substr(1, s.size() - 2));
  if (inner.find_first_of("{}") != std::string_view::npos || inner.empty() || inner.back() != ')')
    return false;
  const size_t open = matching_open_paren(inner);
  return open != std::string_view::npos && is_link_target(inner.substr(open + 1, inner.size() - open - 2));
}

size_t indentation(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && (line[n] == ' ' || line[n] == '\t')) ++n;
  return n;
}

// "U.S", "e.g": single letters joined by periods, so a following period belongs to the word.
bool is_letter_abbreviation(const std::string& w) {
  if (w.size() < 3) return false;
  for (size_t k = 0; k < w.size(); ++k)
    if ((k % 2 == 0) ? !is_alpha(w[k]) : w[k] != '.') return false;
  return w.size() % 2 == 1;
}

bool is_clitic(const std::string& lower) {
  return lower == "s" || lower == "re" || lower == "ve" || lower == "ll" || lower == "d" || lower == "m";
}

// One whitespace-free chunk → tokens (appended to `out`).
void tokenize_chunk(std::string_view s, std::vector<std::string>& out) {
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  const size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = s[i];
    if (is_word(c)) {
      cur += c;
      continue;
    }
    const bool prev_word = i > 0 && is_word(s[i - 1]);
    const bool next_word = i + 1 < n && is_word(s[i + 1]);
    const bool prev_digit = i > 0 && is_digit(s[i - 1]);
    const bool next_digit = i + 1 < n && is_digit(s[i + 1]);
    if (c == '-' && prev_word && next_word) {
      flush();
      out.emplace_back("@-@");
      continue;
    }
    if (c == ',' && prev_digit && next_digit) {
      flush();
      out.emplace_back("@,@");
      continue;
    }
    if (c == '.') {
      if (prev_digit && next_digit) {
        flush();
        out.emplace_back("@.@");
        continue;
      }
      if (prev_word && next_word) {  // "Media.Vision", "foldoc.org"
        cur += c;
        continue;
      }
      if (prev_word && is_letter_abbreviation(cur)) {  // "U.S.", "e.g."
        cur += c;
        continue;
      }
    }
    if (c == '\'' && prev_word && next_word) {
      size_t j = i + 1;
      while (j < n && is_word(s[j])) ++j;
      std::string rest(s.substr(i + 1, j - i - 1));
      for (auto& ch : rest) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (rest == "t" && cur.size() > 1 && (cur.back() == 'n' || cur.back() == 'N')) {  // "was n't"
        const char nn = cur.back();
        cur.pop_back();
        flush();
        cur = std::string(1, nn) + "'";
        continue;
      }
      if (is_clitic(rest)) {  // "Sega 's", "they 're"
        flush();
        cur = "'";
        continue;
      }
      cur += c;  // "O'Reilly"
      continue;
    }
    flush();
    if (c == '.' || c == '-') {  // "..." and "--" stay one token
      size_t j = i;
      while (j < n && s[j] == c) ++j;
      out.emplace_back(s.substr(i, j - i));
      i = j - 1;
      continue;
    }
    out.emplace_back(1, c);
  }
  flush();
}

}  // namespace

// ---- dictd index ----------------------------------------------------------------------------

uint64_t decode_dictd_number(std::string_view digits) {
  if (digits.empty()) throw std::invalid_argument("empty base-64 number");
  uint64_t v = 0;
  for (char c : digits) {
    int d = -1;
    if (c >= 'A' && c <= 'Z')
      d = c - 'A';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      d = c - '0' + 52;
    else if (c == '+')
      d = 62;
    else if (c == '/')
      d = 63;
    if (d < 0)
      throw std::invalid_argument(fmt::format("'{}' is not a dictd base-64 digit in '{}'", c, digits));
    if (v > (UINT64_MAX >> 6))
      throw std::invalid_argument(fmt::format("base-64 number '{}' overflows", digits));
    v = (v << 6) | static_cast<uint64_t>(d);
  }
  return v;
}

std::vector<DictdIndexEntry> parse_dictd_index(std::string_view text, const std::string& where) {
  std::vector<DictdIndexEntry> entries;
  const auto lines = split_lines(text);
  for (size_t k = 0; k < lines.size(); ++k) {
    const std::string_view line = lines[k];
    const auto lineno = static_cast<int64_t>(k + 1);
    if (trim(line).empty()) continue;
    std::vector<std::string_view> fields;
    size_t pos = 0;
    for (;;) {
      const size_t tab = line.find('\t', pos);
      fields.push_back(line.substr(pos, tab == std::string_view::npos ? std::string_view::npos : tab - pos));
      if (tab == std::string_view::npos) break;
      pos = tab + 1;
    }
    if (fields.size() != 3)
      throw std::runtime_error(fmt::format("{}:{}: expected headword<TAB>offset<TAB>length, got {} field{}",
                                           where, lineno, fields.size(), fields.size() == 1 ? "" : "s"));
    DictdIndexEntry e;
    e.headword = std::string(fields[0]);
    e.line = lineno;
    try {
      e.offset = decode_dictd_number(fields[1]);
      e.length = decode_dictd_number(fields[2]);
    } catch (const std::invalid_argument& err) {
      throw std::runtime_error(fmt::format("{}:{}: {}", where, lineno, err.what()));
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

// ---- FOLDOC articles ------------------------------------------------------------------------

FoldocArticle clean_foldoc_entry(std::string_view entry, const FoldocCleanOptions& options) {
  FoldocArticle a;
  const auto lines = split_lines(entry);
  size_t k = 0;
  // Header block: unindented lines up to the first empty line (title, then alternative names).
  while (k < lines.size() && !trim(lines[k]).empty() && indentation(lines[k]) == 0) {
    if (a.title.empty()) a.title = collapse_spaces(lines[k]);
    ++k;
  }
  // Paragraphs are separated by empty lines. A line of spaces only is not a separator: dictfmt
  // leaves one where it wrapped before a word too long for the line (a URL), and that word follows
  // on the next line, unindented, as other overlong words sometimes do.
  std::vector<std::vector<std::string_view>> paras(1);
  for (; k < lines.size(); ++k) {
    if (lines[k].empty()) {
      if (!paras.back().empty()) paras.emplace_back();
    } else if (!trim(lines[k]).empty()) {
      paras.back().push_back(lines[k]);
    }
  }
  if (paras.back().empty()) paras.pop_back();
  // Body indentation: the commonest indentation of a paragraph's first line (three spaces in FOLDOC;
  // the least would be 0 because of those unindented overlong words).
  std::map<size_t, int64_t> indents;
  for (const auto& p : paras) ++indents[indentation(p.front())];
  size_t body_indent = 0;
  int64_t best = -1;
  for (const auto& [indent, count] : indents)
    if (count > best) {
      best = count;
      body_indent = indent;
    }

  for (const auto& p : paras) {
    bool code = true;
    std::string joined;
    for (auto l : p) {
      code = code && indentation(l) > body_indent;
      if (!joined.empty()) joined += ' ';
      joined += trim(l);
    }
    if (code && !options.keep_code_blocks) {
      ++a.code_blocks_dropped;
      continue;
    }
    if (!options.keep_dates && is_date_line(joined)) continue;
    if (!options.keep_link_lines && is_link_line(joined)) {
      ++a.link_lines_dropped;
      continue;
    }
    std::string text =
        collapse_spaces(remove_angle_links(resolve_cross_references(remove_subject_tag(joined))));
    if (!text.empty()) a.paragraphs.push_back(std::move(text));
  }
  return a;
}

std::vector<std::string> wikitext_tokenize(std::string_view text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !is_space(text[j])) ++j;
    if (j > i) tokenize_chunk(text.substr(i, j - i), out);
    i = j;
  }
  return out;
}

FoldocWikiTextStats foldoc_to_wikitext(const fs::path& dict, const fs::path& index, const fs::path& out_dir,
                                       const FoldocWikiTextOptions& options) {
  if (options.valid_fraction < 0 || options.test_fraction < 0 ||
      options.valid_fraction + options.test_fraction > 1)
    throw std::invalid_argument(
        fmt::format("split fractions {} (valid) and {} (test) must be >= 0 and sum to <= 1",
                    options.valid_fraction, options.test_fraction));
  if (!fs::exists(index)) throw std::runtime_error(fmt::format("{}: no such file", index.string()));
  const auto entries = parse_dictd_index(read_plain(index), index.string());
  const std::string body = read_maybe_gzip(dict);

  FoldocWikiTextStats st;
  st.index_lines = static_cast<int64_t>(entries.size());

  // Distinct entries (several headwords point at one), in the order of the .dict file.
  struct Entry {
    uint64_t offset, length;
    std::vector<std::string> headwords;
    bool database = false;
  };
  std::map<std::pair<uint64_t, uint64_t>, Entry> by_span;
  for (const auto& e : entries) {
    if (e.offset > body.size() || e.length > body.size() - e.offset)
      throw std::runtime_error(fmt::format("{}:{}: entry '{}' at bytes [{}, {}) lies outside {} ({} bytes)",
                                           index.string(), e.line, e.headword, e.offset, e.offset + e.length,
                                           dict.string(), body.size()));
    auto& slot = by_span[{e.offset, e.length}];
    slot.offset = e.offset;
    slot.length = e.length;
    slot.headwords.push_back(e.headword);
    // dictd's own entries (00-database-info, -short, -url, ...; older dictfmt wrote 00database...).
    if (e.headword.rfind("00-database", 0) == 0 || e.headword.rfind("00database", 0) == 0)
      slot.database = true;
  }

  struct Article {
    std::vector<std::string> title;
    std::vector<std::vector<std::string>> paragraphs;
  };
  std::vector<Article> articles;
  for (const auto& [span, e] : by_span) {
    if (e.database) {
      ++st.database_entries;
      continue;
    }
    FoldocArticle fa = clean_foldoc_entry(std::string_view(body).substr(e.offset, e.length), options.clean);
    Article art;
    art.title = wikitext_tokenize(fa.title.empty() ? e.headwords.front() : fa.title);
    st.code_blocks_dropped += fa.code_blocks_dropped;
    st.link_lines_dropped += fa.link_lines_dropped;
    for (const auto& p : fa.paragraphs) {
      auto toks = wikitext_tokenize(p);
      if (!toks.empty()) art.paragraphs.push_back(std::move(toks));
    }
    if (art.paragraphs.empty() || art.title.empty()) {
      ++st.empty_articles;
      continue;
    }
    articles.push_back(std::move(art));
  }
  st.articles = static_cast<int64_t>(articles.size());

  // The split: a seeded Fisher–Yates permutation; its first n_valid articles are valid, the next
  // n_test test. (The modulo bias of next() % (i+1) is below 2^-40 for these sizes.)
  const size_t n = articles.size();
  std::vector<size_t> perm(n);
  std::iota(perm.begin(), perm.end(), size_t{0});
  SplitMix64 rng{options.seed};
  for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[rng.next() % i]);
  const auto n_valid = static_cast<size_t>(std::llround(options.valid_fraction * static_cast<double>(n)));
  const auto n_test = std::min(
      n - n_valid, static_cast<size_t>(std::llround(options.test_fraction * static_cast<double>(n))));
  std::vector<int> split_of(n, 0);  // 0 train, 1 valid, 2 test
  for (size_t r = 0; r < n_valid + n_test; ++r) split_of[perm[r]] = r < n_valid ? 1 : 2;

  // WikiText's vocabulary rule: counted on the train file (headings and their '=' included).
  std::unordered_map<std::string, int64_t> counts;
  for (size_t a = 0; a < n; ++a) {
    if (split_of[a] != 0) continue;
    counts["="] += 2;
    for (const auto& t : articles[a].title) ++counts[t];
    for (const auto& p : articles[a].paragraphs)
      for (const auto& t : p) ++counts[t];
  }
  bool any_unk = false;
  for (const auto& [w, c] : counts) {
    if (c >= options.min_count)
      ++st.vocabulary;
    else
      any_unk = true;
  }
  // valid/test words absent from train become <unk> too; the count is the train file's vocabulary.
  if (any_unk && counts.find("<unk>") == counts.end()) ++st.vocabulary;

  const char* names[3] = {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"};
  WikiTextSplitStats* stats[3] = {&st.train, &st.valid, &st.test};
  std::string text[3];
  auto emit = [&](int s, const std::vector<std::string>& toks, std::string& line) {
    for (const auto& t : toks) {
      const auto it = counts.find(t);
      const bool unk = options.min_count > 0 && (it == counts.end() || it->second < options.min_count);
      line += unk ? "<unk>" : t;
      line += ' ';
      stats[s]->unk += unk;
    }
    stats[s]->tokens += static_cast<int64_t>(toks.size());
  };
  for (size_t a = 0; a < n; ++a) {
    const int s = split_of[a];
    std::string& out = text[s];
    WikiTextSplitStats& ss = *stats[s];
    ++ss.articles;
    // " ", " = Title = ", " ", then the paragraphs on consecutive lines (WikiText-103 puts blank
    // lines around headings only).
    out += " \n = ";
    emit(s, articles[a].title, out);
    out += "= \n \n";
    ss.tokens += 2;
    ss.lines += 3;
    for (const auto& p : articles[a].paragraphs) {
      out += ' ';
      emit(s, p, out);
      out += '\n';
      ++ss.lines;
      ++ss.paragraphs;
    }
  }
  fs::create_directories(out_dir);
  for (int s = 0; s < 3; ++s) write_atomic(out_dir / names[s], text[s]);
  return st;
}

// ---- KJV → PG-19 ----------------------------------------------------------------------------

std::vector<BibleBook> parse_bible_output(std::string_view text, const std::string& where) {
  std::vector<BibleBook> books;
  std::set<std::string> seen;
  const auto lines = split_lines(text);
  BibleChapter* chapter = nullptr;
  bool verse_open = false;  // the last verse may still get continuation lines
  for (size_t k = 0; k < lines.size(); ++k) {
    const std::string_view line = lines[k];
    const auto lineno = k + 1;
    if (trim(line).empty()) {
      verse_open = false;
      continue;
    }
    // "  12 And God said, ..." starts verse 12.
    if (line.size() > 2 && line[0] == ' ' && line[1] == ' ' && is_digit(line[2])) {
      size_t j = 2;
      int64_t number = 0;
      while (j < line.size() && is_digit(line[j]) && number < 1000000)
        number = number * 10 + (line[j++] - '0');
      if (j < line.size() && line[j] != ' ')
        throw std::runtime_error(
            fmt::format("{}:{}: expected '  <verse> <text>', got '{}'", where, lineno, line));
      if (!chapter)
        throw std::runtime_error(
            fmt::format("{}:{}: verse {} before any chapter heading", where, lineno, number));
      const auto expected = static_cast<int64_t>(chapter->verses.size()) + 1;
      if (number != expected)
        throw std::runtime_error(fmt::format("{}:{}: verse {} of {} {}, expected verse {}", where, lineno,
                                             number, books.back().name, chapter->number, expected));
      chapter->verses.push_back(collapse_spaces(line.substr(j)));
      verse_open = true;
      continue;
    }
    if (line[0] == ' ')
      throw std::runtime_error(fmt::format("{}:{}: unexpected indented line '{}'", where, lineno, line));
    // A heading "<Book> <chapter>" stands between blank lines; any other unindented line continues
    // the verse above it.
    const bool blank_before = k == 0 || trim(lines[k - 1]).empty();
    const bool blank_after = k + 1 == lines.size() || trim(lines[k + 1]).empty();
    if (blank_before && blank_after) {
      const std::string_view h = trim(line);
      const size_t sp = h.rfind(' ');
      int64_t number = 0;
      bool numeric = sp != std::string_view::npos && sp + 1 < h.size() && h.size() - sp <= 7;
      for (size_t j = sp + 1; numeric && j < h.size(); ++j) {
        numeric = is_digit(h[j]);
        number = number * 10 + (h[j] - '0');
      }
      if (!numeric)
        throw std::runtime_error(
            fmt::format("{}:{}: expected a chapter heading '<Book> <chapter>', got '{}'", where, lineno, h));
      const std::string name = collapse_spaces(h.substr(0, sp));
      if (books.empty() || books.back().name != name) {
        if (!seen.insert(name).second)
          throw std::runtime_error(
              fmt::format("{}:{}: book '{}' appears a second time", where, lineno, name));
        if (!books.empty() && books.back().chapters.back().verses.empty())
          throw std::runtime_error(fmt::format("{}:{}: {} {} has no verses", where, lineno, books.back().name,
                                               books.back().chapters.back().number));
        books.push_back(BibleBook{name, {}});
      } else if (books.back().chapters.back().verses.empty()) {
        throw std::runtime_error(fmt::format("{}:{}: {} {} has no verses", where, lineno, name,
                                             books.back().chapters.back().number));
      }
      const auto expected = static_cast<int64_t>(books.back().chapters.size()) + 1;
      if (number != expected)
        throw std::runtime_error(fmt::format("{}:{}: chapter {} of {}, expected chapter {}", where, lineno,
                                             number, name, expected));
      books.back().chapters.push_back(BibleChapter{number, {}});
      chapter = &books.back().chapters.back();
      verse_open = false;
      continue;
    }
    if (!verse_open)
      throw std::runtime_error(fmt::format("{}:{}: text outside a verse: '{}'", where, lineno, line));
    chapter->verses.back() += ' ';
    chapter->verses.back() += collapse_spaces(line);
  }
  if (books.empty()) throw std::runtime_error(fmt::format("{}: no chapter headings found", where));
  if (books.back().chapters.back().verses.empty())
    throw std::runtime_error(fmt::format("{}: {} {} at the end has no verses", where, books.back().name,
                                         books.back().chapters.back().number));
  return books;
}

namespace {

// Greedy word wrap; a word longer than the width stands on its own line.
void append_wrapped(std::string& out, std::string_view text, int64_t width) {
  if (width <= 0) {
    out += text;
    out += '\n';
    return;
  }
  size_t col = 0;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    size_t j = i;
    while (j < text.size() && !is_space(text[j])) ++j;
    if (j == i) break;
    const size_t len = j - i;
    if (col > 0 && col + 1 + len > static_cast<size_t>(width)) {
      out += '\n';
      col = 0;
    }
    if (col > 0) {
      out += ' ';
      ++col;
    }
    out += text.substr(i, len);
    col += len;
    i = j;
  }
  out += '\n';
}

}  // namespace

std::string format_bible_book(const BibleBook& book, int64_t wrap_width) {
  std::string out;
  for (const auto& ch : book.chapters) {
    if (!out.empty()) out += '\n';
    out += fmt::format("{} {}\n", book.name, ch.number);
    for (const auto& v : ch.verses) {
      out += '\n';
      append_wrapped(out, v, wrap_width);
    }
  }
  return out;
}

std::string csv_record(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    const std::string& f = fields[i];
    if (f.find_first_of(",\"\r\n") == std::string::npos) {
      out += f;
      continue;
    }
    out += '"';
    for (char c : f) {
      if (c == '"') out += '"';
      out += c;
    }
    out += '"';
  }
  out += '\n';
  return out;
}

const Pg19BookInfo* Pg19SplitStats::largest() const {
  const Pg19BookInfo* best = nullptr;
  for (const auto& b : books)
    if (!best || b.chars > best->chars) best = &b;
  return best;
}

BiblePg19Stats bible_to_pg19(const fs::path& kjv_txt, const fs::path& out_dir,
                             const BiblePg19Options& options) {
  if (!fs::exists(kjv_txt)) throw std::runtime_error(fmt::format("{}: no such file", kjv_txt.string()));
  const auto books = parse_bible_output(read_plain(kjv_txt), kjv_txt.string());

  std::map<std::string, int> split_of;  // book name → 1 validation, 2 test
  for (int s = 1; s <= 2; ++s) {
    for (const auto& name : s == 1 ? options.validation_books : options.test_books) {
      const bool found =
          std::any_of(books.begin(), books.end(), [&](const BibleBook& b) { return b.name == name; });
      if (!found)
        throw std::invalid_argument(
            fmt::format("{} book '{}' is not in {}", s == 1 ? "validation" : "test", name, kjv_txt.string()));
      if (!split_of.emplace(name, s).second)
        throw std::invalid_argument(fmt::format("book '{}' is named for both validation and test", name));
    }
  }

  BiblePg19Stats st;
  const char* dirs[3] = {"train", "validation", "test"};
  Pg19SplitStats* stats[3] = {&st.train, &st.validation, &st.test};
  std::set<fs::path> written;
  std::string metadata;
  for (size_t b = 0; b < books.size(); ++b) {
    const auto id = static_cast<int64_t>(b + 1);
    const auto it = split_of.find(books[b].name);
    const int s = it == split_of.end() ? 0 : it->second;
    const std::string body = format_bible_book(books[b], options.wrap_width);
    const fs::path file = out_dir / dirs[s] / fmt::format("{}.txt", id);
    write_atomic(file, body);
    written.insert(file);
    Pg19BookInfo info{id, books[b].name, static_cast<int64_t>(body.size()), count_words(body)};
    stats[s]->books.push_back(info);
    stats[s]->words += info.words;
    stats[s]->chars += info.chars;
    st.chapters += static_cast<int64_t>(books[b].chapters.size());
    for (const auto& ch : books[b].chapters) st.verses += static_cast<int64_t>(ch.verses.size());
    metadata += csv_record({std::to_string(id), books[b].name, options.publication_date, options.book_link});
  }
  // A book left in another split's folder by an earlier run with other split choices would be read
  // twice: numbered book files that this run did not write are removed.
  for (const char* d : dirs) {
    if (!fs::is_directory(out_dir / d)) continue;
    for (const auto& entry : fs::directory_iterator(out_dir / d)) {
      const std::string stem = entry.path().stem().string();
      const bool numbered = !stem.empty() && std::all_of(stem.begin(), stem.end(), is_digit);
      if (entry.path().extension() == ".txt" && numbered && !written.count(entry.path()))
        fs::remove(entry.path());
    }
  }
  write_atomic(out_dir / "metadata.csv", metadata);
  return st;
}

}  // namespace mgl::datasets::text
