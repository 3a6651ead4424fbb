#include "datasets/lra/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>

namespace mgl::datasets {

namespace {

// The review id of a Stanford file name `<id>_<rating>.txt`, or nothing for other names.
std::optional<int64_t> imdb_review_id(const std::string& name) {
  const size_t underscore = name.find('_');
  if (underscore == std::string::npos || underscore == 0 || underscore > 18) return std::nullopt;
  const std::string suffix = ".txt";
  if (name.size() < underscore + 1 + suffix.size() + 1 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix))
    return std::nullopt;
  auto all_digits = [&](size_t b, size_t e) {
    return std::all_of(name.begin() + static_cast<std::ptrdiff_t>(b),
                       name.begin() + static_cast<std::ptrdiff_t>(e),
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!all_digits(0, underscore) || !all_digits(underscore + 1, name.size() - suffix.size()))
    return std::nullopt;
  return std::stoll(name.substr(0, underscore));
}

std::string read_whole_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error(fmt::format("{}: read error", file.string()));
  return text;
}

// The .txt files of one class folder in the documented order: numeric review id, then names that
// do not follow `<id>_<rating>.txt`, by name.
std::vector<std::filesystem::path> imdb_class_files(const std::filesystem::path& folder) {
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    throw std::runtime_error(
        fmt::format("{}: IMDB folder missing (expected aclImdb/<split>/{{neg,pos}})", folder.string()));
  struct Entry {
    std::optional<int64_t> id;
    std::string name;
  };
  std::vector<Entry> entries;
  for (const auto& e : std::filesystem::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".txt" || !e.is_regular_file()) continue;
    entries.push_back({imdb_review_id(name), name});
  }
  if (entries.empty()) throw std::runtime_error(fmt::format("{}: no .txt review files", folder.string()));
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.id.has_value() != b.id.has_value()) return a.id.has_value();
    if (a.id && *a.id != *b.id) return *a.id < *b.id;
    return a.name < b.name;
  });
  std::vector<std::filesystem::path> files;
  files.reserve(entries.size());
  for (const auto& e : entries) files.push_back(folder / e.name);
  return files;
}

}  // namespace

std::vector<TextExample> read_imdb_split(const std::filesystem::path& root, const std::string& split,
                                         int64_t limit_per_class) {
  std::vector<TextExample> out;
  const char* classes[2] = {"neg", "pos"};  // label = index
  for (int64_t label = 0; label < 2; ++label) {
    auto files = imdb_class_files(root / split / classes[label]);
    if (limit_per_class >= 0 && static_cast<int64_t>(files.size()) > limit_per_class)
      files.resize(static_cast<size_t>(limit_per_class));
    for (const auto& f : files) out.push_back({read_whole_file(f), label});
  }
  return out;
}

std::vector<TextPairExample> read_aan_tsv(const std::filesystem::path& file, int64_t limit) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::vector<TextPairExample> out;
  std::string line;
  int64_t line_no = 0, blank_line = 0;
  auto fail = [&](int64_t at, const std::string& what) {
    return std::runtime_error(fmt::format("{}:{}: {}", file.string(), at, what));
  };
  // LRA reads the file with use_quote_delim=False: a literal split on '\t', nothing unquoted or
  // stripped (a '\r' before the newline would stay in text2).
  std::vector<std::string_view> fields;
  while (std::getline(in, line)) {
    ++line_no;
    if (limit >= 0 && static_cast<int64_t>(out.size()) >= limit) break;
    if (line.empty()) {  // allowed only at the end of the file
      if (!blank_line) blank_line = line_no;
      continue;
    }
    if (blank_line) throw fail(blank_line, "empty line before the end of the file");
    fields.clear();
    size_t start = 0;
    for (;;) {
      const size_t tab = line.find('\t', start);
      fields.emplace_back(line.data() + start, (tab == std::string::npos ? line.size() : tab) - start);
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    if (fields.size() != 5)
      throw fail(line_no,
                 fmt::format("expected 5 tab-separated fields (label, id1, id2, text1, text2), found {}",
                             fields.size()));
    // The label column is a float; only 0 and 1 are labels.
    const std::string label_text(fields[0]);
    char* end = nullptr;
    errno = 0;
    const double label = label_text.empty() ? -1.0 : std::strtod(label_text.c_str(), &end);
    if (label_text.empty() || errno != 0 || *end != '\0' || (label != 0.0 && label != 1.0))
      throw fail(line_no, fmt::format("label '{}' is not 0 or 1", label_text.substr(0, 40)));
    out.push_back({std::string(fields[1]), std::string(fields[2]), std::string(fields[3]),
                   std::string(fields[4]), label == 1.0 ? 1 : 0});
  }
  return out;
}

std::vector<int64_t> encode_bytes(std::string_view text, int64_t max_length) {
  // LRA's ByteTextEncoder: the UTF-8 bytes, each shifted by one so that 0 stays the padding id.
  // A negative max_length keeps everything.
  size_t n = text.size();
  if (max_length >= 0) n = std::min(n, static_cast<size_t>(max_length));
  std::vector<int64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = static_cast<int64_t>(static_cast<unsigned char>(text[i])) + 1;
  return ids;
}

}  // namespace mgl::datasets
