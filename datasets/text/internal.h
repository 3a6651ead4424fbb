// Helpers shared by the text data files (not part of the public API in text.h): the FNV-1a
// fingerprint hash, the whitespace rule of word splitting, and a read-only memory-mapped file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mgl::datasets::text {
// std::invalid_argument naming the tokenizer when an id lies outside [0, vocab_size).
void check_decode_ids(const std::vector<int32_t>& ids, int64_t vocab_size, const char* kind);
}  // namespace mgl::datasets::text

namespace mgl::datasets::text::detail {

// ---- 64-bit FNV-1a: stable across runs, builds and machines (std::hash is not) ----------------
struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h ^= p[i];
      h *= 0x100000001b3ull;
    }
  }
  void add(std::string_view s) { add(s.data(), s.size()); }
  // Length-prefixed, so that ("ab","c") and ("a","bc") differ.
  void add_field(std::string_view s) {
    add_u64(s.size());
    add(s);
  }
  void add_u64(uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    add(b, 8);
  }
  std::string hex() const;  // 16 lowercase hex digits
};
std::string fnv1a_hex(std::string_view bytes);

// ---- whitespace ------------------------------------------------------------------------------
// Words are split on whitespace as Python's str.split() does (fairseq's tokenize_line, the PG-19
// word count): ASCII \t \n \v \f \r, \x1c-\x1f and space, plus the Unicode White_Space characters
// U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 in UTF-8.
// Returns the byte length of the whitespace character at p (0 when p does not start one).
inline size_t whitespace_length(const char* p, const char* end) {
  const auto c = static_cast<unsigned char>(*p);
  if (c < 0x80) return (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) ? 1 : 0;
  const auto at = [&](ptrdiff_t i) { return p + i < end ? static_cast<unsigned char>(p[i]) : 0u; };
  switch (c) {
    case 0xc2:
      return (at(1) == 0x85 || at(1) == 0xa0) ? 2 : 0;
    case 0xe1:
      return (at(1) == 0x9a && at(2) == 0x80) ? 3 : 0;
    case 0xe2:
      if (at(1) == 0x80) {
        const unsigned t = at(2);
        return ((t >= 0x80 && t <= 0x8a) || t == 0xa8 || t == 0xa9 || t == 0xaf) ? 3 : 0;
      }
      return (at(1) == 0x81 && at(2) == 0x9f) ? 3 : 0;
    case 0xe3:
      return (at(1) == 0x80 && at(2) == 0x80) ? 3 : 0;
    default:
      return 0;
  }
}

// Calls fn(std::string_view word) for every whitespace-separated word of `text`, in order.
template <class Fn>
void for_each_word(std::string_view text, Fn&& fn) {
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    size_t w;
    while (p < end && (w = whitespace_length(p, end)) > 0) p += w;
    if (p >= end) break;
    const char* begin = p;
    while (p < end && whitespace_length(p, end) == 0) ++p;
    fn(std::string_view(begin, static_cast<size_t>(p - begin)));
  }
}

inline int64_t count_words(std::string_view text) {
  int64_t n = 0;
  for_each_word(text, [&](std::string_view) { ++n; });
  return n;
}

// Calls fn(std::string_view line) for every line of `text` without its line break. Line breaks are
// those of Python's universal newlines (\n, \r\n and a lone \r), as fairseq reads WikiText; a final
// line without a line break counts, an empty text has no lines.
template <class Fn>
void for_each_line(std::string_view text, Fn&& fn) {
  size_t begin = 0;
  const size_t n = text.size();
  while (begin < n) {
    size_t i = begin;
    while (i < n && text[i] != '\n' && text[i] != '\r') ++i;
    fn(text.substr(begin, i - begin));
    if (i < n && text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') ++i;
    begin = i + 1;
  }
}

// ---- word lookup -------------------------------------------------------------------------------
// An open-addressing index from words to ids for the hot paths (WikiText-103 train is ~100M word
// lookups): the words live elsewhere (word_of(id) returns one), the index keeps ids and hashes
// only, so a lookup hashes the string_view once and allocates nothing.
class WordIndex {
 public:
  static uint64_t hash(std::string_view w) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char c : w) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    return h ^ (h >> 32);  // fold the well-mixed high bits into the slot bits
  }
  size_t size() const { return size_; }
  // The id of w (hash h), or -1.
  template <class WordOf>
  int32_t find(std::string_view w, uint64_t h, const WordOf& word_of) const {
    if (ids_.empty()) return -1;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const int32_t id = ids_[i];
      if (id < 0) return -1;
      if (hashes_[i] == h && std::string_view(word_of(id)) == w) return id;
    }
  }
  // Adds an id whose word (hash h) is not in the index yet.
  void insert(uint64_t h, int32_t id) {
    if (2 * (size_ + 1) > ids_.size()) grow();
    size_t i = h & mask_;
    while (ids_[i] >= 0) i = (i + 1) & mask_;
    ids_[i] = id;
    hashes_[i] = h;
    ++size_;
  }

 private:
  void grow() {
    std::vector<int32_t> old_ids(ids_.empty() ? 32 : 2 * ids_.size(), -1);
    std::vector<uint64_t> old_hashes(old_ids.size(), 0);
    old_ids.swap(ids_);
    old_hashes.swap(hashes_);
    mask_ = ids_.size() - 1;
    for (size_t j = 0; j < old_ids.size(); ++j) {
      if (old_ids[j] < 0) continue;
      size_t i = old_hashes[j] & mask_;
      while (ids_[i] >= 0) i = (i + 1) & mask_;
      ids_[i] = old_ids[j];
      hashes_[i] = old_hashes[j];
    }
  }
  std::vector<int32_t> ids_;
  std::vector<uint64_t> hashes_;
  size_t mask_ = 0, size_ = 0;
};

// ---- files -------------------------------------------------------------------------------------
// A whole file mapped read-only (POSIX mmap); an empty file maps to an empty view.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::filesystem::path& file);  // errors name the file
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return static_cast<const unsigned char*>(data_); }
  size_t size() const { return size_; }
  std::string_view view() const { return {static_cast<const char*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

// Writes `bytes` to `file` atomically: a temporary file in the same folder, then rename.
void write_file_atomically(const std::filesystem::path& file, std::string_view bytes);
// A temporary name beside `file` that no other writer (process or thread) uses.
std::filesystem::path temporary_sibling(const std::filesystem::path& file);

}  // namespace mgl::datasets::text::detail
