// The WikiText-103, PG-19 and plain-text corpora (paper-benchmarks §3.8, §3.9) and the CSV parser
// behind PG-19's metadata.csv.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#include "datasets/text/internal.h"
#include "datasets/text/text.h"

namespace mgl::datasets::text {

const char* to_string(TextSplit s) {
  switch (s) {
    case TextSplit::train:
      return "train";
    case TextSplit::valid:
      return "valid";
    case TextSplit::test:
      return "test";
  }
  return "?";
}

// ---- CSV (RFC 4180) -----------------------------------------------------------------------------

std::vector<std::vector<std::string>> parse_csv(std::string_view text, const std::string& where,
                                                std::vector<int64_t>* row_lines) {
  std::vector<std::vector<std::string>> rows;
  if (row_lines) row_lines->clear();
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 byte-order mark
  const size_t n = text.size();
  size_t i = 0;
  int64_t line = 1, open_line = 1;
  std::vector<std::string> row;
  int64_t row_line = 1;
  auto is_break = [](char c) { return c == '\n' || c == '\r'; };
  auto skip_break = [&] {  // \r\n, \n or a lone \r
    if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
    ++i;
    ++line;
  };
  while (i < n) {
    // At the start of a field.
    if (row.empty()) row_line = line;
    std::string field;
    bool quoted = false;
    if (text[i] == '"') {
      quoted = true;
      open_line = line;
      ++i;
      for (;;) {
        if (i >= n)
          throw std::runtime_error(fmt::format(
              "{}:{}: unterminated quoted field (the closing '\"' is missing)", where, open_line));
        const char c = text[i];
        if (c == '"') {
          if (i + 1 < n && text[i + 1] == '"') {  // "" is an escaped quote
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        if (c == '\n' || (c == '\r' && !(i + 1 < n && text[i + 1] == '\n'))) ++line;
        field += c;
        ++i;
      }
      // Reported at the line where the field starts: when its quote is never closed, the next
      // quote character (often lines later) looks like the closing one, and that line is not the
      // one to fix.
      if (i < n && text[i] != ',' && !is_break(text[i]))
        throw std::runtime_error(
            open_line == line
                ? fmt::format("{}:{}: unexpected character '{}' after a closing quote "
                              "(expected ',' or the end of the line)",
                              where, line, text[i])
                : fmt::format("{}:{}: the quoted field starting on this line is unterminated (the '\"' that "
                              "would close it, on line {}, is followed by '{}', not ',' or the end of a line)",
                              where, open_line, line, text[i]));
    } else {
      const size_t b = i;
      while (i < n && text[i] != ',' && !is_break(text[i])) ++i;
      field.assign(text.data() + b, i - b);
    }
    if (i < n && text[i] == ',') {
      row.push_back(std::move(field));
      ++i;
      if (i >= n) {  // a trailing comma ends the text: one more, empty field
        row.emplace_back();
        rows.push_back(std::move(row));
        if (row_lines) row_lines->push_back(row_line);
        row.clear();
      }
      continue;
    }
    // End of the row (line break or end of text). A line with nothing on it is skipped.
    const bool blank = row.empty() && field.empty() && !quoted;
    if (!blank) {
      row.push_back(std::move(field));
      rows.push_back(std::move(row));
      if (row_lines) row_lines->push_back(row_line);
    }
    row.clear();
    if (i < n) skip_break();
  }
  return rows;
}

namespace {

std::string path_string(const std::filesystem::path& p) { return p.string(); }

// Name, size and modification time of a file into the fingerprint.
void stamp(detail::Fnv1a& f, const std::filesystem::path& file, const std::string& name) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: cannot stat ({})", file.string(), ec.message()));
  const auto mtime = std::filesystem::last_write_time(file, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: cannot stat ({})", file.string(), ec.message()));
  f.add_field(name);
  f.add_u64(static_cast<uint64_t>(size));
  f.add_u64(static_cast<uint64_t>(mtime.time_since_epoch().count()));
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The regular *.txt files directly inside `folder`, by name (byte order).
std::vector<std::filesystem::path> txt_files(const std::filesystem::path& folder) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(folder))
    if (e.is_regular_file() && e.path().extension() == ".txt") out.push_back(e.path());
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.filename().string() < b.filename().string(); });
  return out;
}

// Rethrows a tokenizer failure with the file named.
template <class Fn>
auto naming_file(const std::filesystem::path& file, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    if (what.rfind(file.string(), 0) == 0) throw;
    throw std::runtime_error(fmt::format("{}: {}", file.string(), what));
  }
}

// A whole file encoded without EOS; words = whitespace-separated words (PG-19 and plain text).
TokenizedDocument tokenize_whole(const Document& doc, const Tokenizer& tok) {
  return naming_file(doc.path, [&] {
    const detail::MappedFile map(doc.path);
    TokenizedDocument out;
    tok.encode_append(map.view(), out.ids);
    out.words = detail::count_words(map.view());
    return out;
  });
}

// Whether a line holds nothing but white space (a paragraph separator of plain text).
bool blank_line(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\f' || c == '\v'; });
}

// A plain-text file encoded one paragraph at a time: pieces run from the first line of a paragraph
// to the first line of the next (the blank lines between stay with the earlier one), and each
// piece's first token is a section start.
TokenizedDocument tokenize_paragraphs(const Document& doc, const Tokenizer& tok) {
  return naming_file(doc.path, [&] {
    const detail::MappedFile map(doc.path);
    const std::string_view text = map.view();
    TokenizedDocument out;
    out.words = detail::count_words(text);
    size_t piece = 0, pos = 0;
    bool after_blank = false, seen_text = false;  // leading blank lines belong to the first paragraph
    auto flush = [&](size_t end) {
      const size_t before = out.ids.size();
      tok.encode_append(text.substr(piece, end - piece), out.ids);
      if (before > 0 && out.ids.size() > before &&
          (out.sections.empty() || out.sections.back() < static_cast<int64_t>(before)))
        out.sections.push_back(static_cast<int64_t>(before));
      piece = end;
    };
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      end = end == std::string_view::npos ? text.size() : end + 1;
      std::string_view line = text.substr(pos, end - pos);
      while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
      const bool blank = blank_line(line);
      if (!blank && after_blank && seen_text && pos > piece) flush(pos);
      after_blank = blank;
      seen_text = seen_text || !blank;
      pos = end;
    }
    if (piece < text.size()) flush(text.size());
    return out;
  });
}

// ---- WikiText-103 ---------------------------------------------------------------------------

// An article's title line: " = Title = " (headings inside an article have two or more '=').
bool article_title(std::string_view line) {
  while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  return line.size() >= 5 && line.substr(0, 2) == "= " && line.substr(line.size() - 2) == " =" && line[2] != '=' &&
         line[line.size() - 3] != '=';
}

class WikiText final : public Corpus {
 public:
  explicit WikiText(std::filesystem::path root) : root_(std::move(root)) {}
  std::string format() const override { return "wikitext"; }

  std::vector<Document> documents(TextSplit split) const override {
    const auto file = split_file(split);
    return {Document{file.filename().string(), "", file}};
  }

  // Every line (blank lines included) is its words then eos; words counts the eos too (§3.8).
  TokenizedDocument tokenize(const Document& doc, const Tokenizer& tok) const override {
    const int32_t eos = tok.eos_id();
    if (eos < 0)
      throw std::runtime_error(
          fmt::format("{}: the tokenizer ({}) has no end-of-sentence id, which WikiText "
                      "needs after every line",
                      doc.path.string(), tok.describe()));
    const detail::MappedFile map(doc.path);
    TokenizedDocument out;
    const bool word_level = tok.kind() == "word";
    if (tok.kind() == "byte") out.ids.reserve(map.size() + map.size() / 40);
    int64_t line_no = 0;
    detail::for_each_line(map.view(), [&](std::string_view line) {
      ++line_no;
      const size_t before = out.ids.size();
      if (before > 0 && article_title(line)) out.sections.push_back(static_cast<int64_t>(before));
      try {
        tok.encode_append(line, out.ids);
      } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("{}:{}: {}", doc.path.string(), line_no, e.what()));
      }
      out.words +=
          (word_level ? static_cast<int64_t>(out.ids.size() - before) : detail::count_words(line)) + 1;
      out.ids.push_back(eos);
    });
    return out;
  }

  std::string fingerprint(TextSplit split) const override {
    detail::Fnv1a f;
    const auto file = split_file(split);
    stamp(f, file, file.filename().string());
    return "wikitext-v2:" + f.hex();
  }

 private:
  std::filesystem::path split_file(TextSplit split) const {
    const auto file = root_ / fmt::format("wiki.{}.tokens", to_string(split));
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
      throw std::runtime_error(
          fmt::format("{}: WikiText-103 split file missing (expected wiki.{{train,valid,test}}.tokens in {})",
                      file.string(), root_.string()));
    return file;
  }
  std::filesystem::path root_;
};

// ---- PG-19 ----------------------------------------------------------------------------------

class PG19 final : public Corpus {
 public:
  explicit PG19(std::filesystem::path root) : root_(std::move(root)), metadata_file_(root_ / "metadata.csv") {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(metadata_file_, ec))
      throw std::runtime_error(fmt::format(
          "{}: PG-19 metadata file missing (expected metadata.csv beside train/ validation/ test/)",
          metadata_file_.string()));
    const detail::MappedFile map(metadata_file_);
    const std::string where = metadata_file_.string();
    std::vector<int64_t> lines;
    const auto rows = parse_csv(map.view(), where, &lines);
    std::map<int64_t, int64_t> first_line;
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto& row = rows[r];
      // An optional header line ("book_id,short_book_title,..."): a first row without a numeric id.
      if (r == 0 && !row.empty() && !all_digits(row[0]) &&
          row[0].find_first_of("0123456789") == std::string::npos)
        continue;
      if (row.size() != 4)
        throw std::runtime_error(
            fmt::format("{}:{}: expected 4 fields (book_id, short_book_title, "
                        "publication_date, book_link), got {}",
                        where, lines[r], row.size()));
      if (!all_digits(row[0]))
        throw std::runtime_error(
            fmt::format("{}:{}: book_id '{}' is not a non-negative integer", where, lines[r], row[0]));
      const int64_t id = std::stoll(row[0]);
      const auto [it, inserted] = first_line.emplace(id, lines[r]);
      if (!inserted)
        throw std::runtime_error(fmt::format("{}:{}: book_id {} is listed twice (first at line {})", where,
                                             lines[r], id, it->second));
      titles_.emplace(id, row[1]);
    }
  }
  std::string format() const override { return "pg19"; }

  std::vector<Document> documents(TextSplit split) const override {
    std::vector<std::pair<int64_t, Document>> books;
    for (const auto& file : txt_files(split_folder(split))) {
      const std::string stem = file.stem().string();
      if (!all_digits(stem))
        throw std::runtime_error(fmt::format(
            "{}: not a PG-19 book file (expected <book_id>.txt with a numeric id)", file.string()));
      const int64_t id = std::stoll(stem);
      const auto it = titles_.find(id);
      if (it == titles_.end())
        throw std::runtime_error(
            fmt::format("{}: book {} has no row in {}", file.string(), id, metadata_file_.string()));
      books.emplace_back(id, Document{stem, it->second, file});
    }
    std::sort(books.begin(), books.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Document> out;
    out.reserve(books.size());
    for (auto& b : books) out.push_back(std::move(b.second));
    return out;
  }

  TokenizedDocument tokenize(const Document& doc, const Tokenizer& tok) const override {
    return tokenize_whole(doc, tok);
  }

  std::string fingerprint(TextSplit split) const override {
    detail::Fnv1a f;
    stamp(f, metadata_file_, "metadata.csv");
    const auto folder = split_folder(split);
    for (const auto& file : txt_files(folder))
      stamp(f, file, folder.filename().string() + "/" + file.filename().string());
    return "pg19-v1:" + f.hex();
  }

 private:
  std::filesystem::path split_folder(TextSplit split) const {
    const char* name = split == TextSplit::train   ? "train"
                       : split == TextSplit::valid ? "validation"
                                                   : "test";
    const auto folder = root_ / name;
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec))
      throw std::runtime_error(fmt::format(
          "{}: PG-19 split folder missing (expected {{train,validation,test}}/<book_id>.txt in {})",
          folder.string(), root_.string()));
    return folder;
  }
  std::filesystem::path root_, metadata_file_;
  std::map<int64_t, std::string> titles_;
};

// ---- plain text -----------------------------------------------------------------------------

class PlainText final : public Corpus {
 public:
  explicit PlainText(std::filesystem::path root) : root_(std::move(root)) {}
  std::string format() const override { return "text"; }

  std::vector<Document> documents(TextSplit split) const override {
    std::vector<Document> out;
    for (const auto& file : split_files(split)) out.push_back(Document{file.filename().string(), "", file});
    return out;
  }

  TokenizedDocument tokenize(const Document& doc, const Tokenizer& tok) const override {
    return tokenize_paragraphs(doc, tok);
  }

  std::string fingerprint(TextSplit split) const override {
    detail::Fnv1a f;
    for (const auto& file : split_files(split))
      stamp(f, file, path_string(std::filesystem::relative(file, root_)));
    return "text-v2:" + f.hex();
  }

 private:
  std::vector<std::filesystem::path> split_files(TextSplit split) const {
    const auto folder = root_ / to_string(split);
    const auto file = root_ / (std::string(to_string(split)) + ".txt");
    std::error_code ec;
    if (std::filesystem::is_directory(folder, ec)) return txt_files(folder);
    if (std::filesystem::is_regular_file(file, ec)) return {file};
    throw std::runtime_error(
        fmt::format("{}: plain-text split missing (expected the folder {}/ of .txt files or "
                    "the file {})",
                    root_.string(), folder.string(), file.string()));
  }
  std::filesystem::path root_;
};

void require_folder(const std::filesystem::path& root, const char* what) {
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec))
    throw std::runtime_error(fmt::format("{}: {} folder not found", root.string(), what));
}

}  // namespace

std::unique_ptr<Corpus> open_wikitext(const std::filesystem::path& root) {
  require_folder(root, "WikiText-103");
  return std::make_unique<WikiText>(root);
}

std::unique_ptr<Corpus> open_pg19(const std::filesystem::path& root) {
  require_folder(root, "PG-19");
  return std::make_unique<PG19>(root);
}

std::unique_ptr<Corpus> open_plain_text(const std::filesystem::path& root) {
  require_folder(root, "plain-text corpus");
  return std::make_unique<PlainText>(root);
}

std::unique_ptr<Corpus> open_corpus(const std::string& format, const std::filesystem::path& root) {
  if (format == "wikitext") return open_wikitext(root);
  if (format == "pg19") return open_pg19(root);
  if (format == "text") return open_plain_text(root);
  throw std::invalid_argument(
      fmt::format("unknown corpus format '{}' (expected wikitext, pg19 or text)", format));
}

}  // namespace mgl::datasets::text
