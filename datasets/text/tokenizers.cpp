// The byte and word tokenizers and the fairseq-style word vocabulary (SentencePiece: sentencepiece.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "datasets/text/internal.h"
#include "datasets/text/text.h"

namespace mgl::datasets::text {

void Tokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  const auto ids = encode(text);
  out.insert(out.end(), ids.begin(), ids.end());
}

namespace {

const char* const kSpecials[] = {"<s>", "<pad>", "</s>", "<unk>"};

}  // namespace

void check_decode_ids(const std::vector<int32_t>& ids, int64_t vocab_size, const char* kind) {
  for (int32_t id : ids)
    if (id < 0 || id >= vocab_size)
      throw std::invalid_argument(
          fmt::format("{} tokenizer: cannot decode id {} (vocabulary size {})", kind, id, vocab_size));
}

namespace {

// ---- byte -----------------------------------------------------------------------------------

class ByteTokenizer final : public Tokenizer {
 public:
  static constexpr int32_t kEos = 256;
  std::string kind() const override { return "byte"; }
  int64_t vocab_size() const override { return 257; }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> out;
    encode_append(text, out);
    return out;
  }
  void encode_append(std::string_view text, std::vector<int32_t>& out) const override {
    const size_t at = out.size();
    out.resize(at + text.size());
    for (size_t i = 0; i < text.size(); ++i) out[at + i] = static_cast<unsigned char>(text[i]);
  }
  // </s> decodes as a line break (the WikiText reader puts one per line).
  std::string decode(const std::vector<int32_t>& ids) const override {
    check_decode_ids(ids, vocab_size(), "byte");
    std::string out(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) out[i] = ids[i] == kEos ? '\n' : static_cast<char>(ids[i]);
    return out;
  }
  int32_t eos_id() const override { return kEos; }
  std::string fingerprint() const override { return "byte-v1"; }
  std::string describe() const override { return "byte: 257 ids (256 bytes + </s> = 256)"; }
};

// ---- word -----------------------------------------------------------------------------------

class WordTokenizer final : public Tokenizer {
  struct WordOf {
    const Vocabulary* vocab;
    const std::string& operator()(int32_t id) const { return vocab->word(id); }
  };
  WordOf word_of() const { return WordOf{&vocab_}; }

 public:
  explicit WordTokenizer(Vocabulary v) : vocab_(std::move(v)), fingerprint_("word-" + vocab_.fingerprint()) {
    for (int32_t id = 0; id < vocab_.size(); ++id) {
      const std::string& w = vocab_.word(id);
      const uint64_t h = detail::WordIndex::hash(w);
      if (index_.find(w, h, word_of()) < 0) index_.insert(h, id);
    }
  }
  std::string kind() const override { return "word"; }
  int64_t vocab_size() const override { return vocab_.size(); }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> out;
    encode_append(text, out);
    return out;
  }
  void encode_append(std::string_view text, std::vector<int32_t>& out) const override {
    const auto words = word_of();
    detail::for_each_word(text, [&](std::string_view w) {
      const int32_t id = index_.find(w, detail::WordIndex::hash(w), words);
      out.push_back(id < 0 ? Vocabulary::kUnk : id);
    });
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    check_decode_ids(ids, vocab_size(), "word");
    std::string out;
    bool line_start = true;
    for (int32_t id : ids) {
      if (id == Vocabulary::kEos) {
        out += '\n';
        line_start = true;
        continue;
      }
      if (!line_start) out += ' ';
      out += vocab_.word(id);
      line_start = false;
    }
    return out;
  }
  int32_t eos_id() const override { return Vocabulary::kEos; }
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override {
    return fmt::format("word: {} entries ({} words by count, {} padding){}", vocab_.size(),
                       vocab_.size() - 4 - vocab_.num_padding(), vocab_.num_padding(),
                       vocab_.source().empty() ? "" : ", from " + vocab_.source());
  }

 private:
  Vocabulary vocab_;
  std::string fingerprint_;
  detail::WordIndex index_;  // same mapping as vocab_.id(), without a key string per lookup
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

std::unique_ptr<Tokenizer> make_word_tokenizer(Vocabulary vocab) {
  return std::make_unique<WordTokenizer>(std::move(vocab));
}

// ---- Vocabulary -------------------------------------------------------------------------------

void Vocabulary::add(std::string word, int64_t count) {
  const auto id = static_cast<int32_t>(words_.size());
  index_.emplace(word, id);
  words_.push_back(std::move(word));
  counts_.push_back(count);
}

// fairseq's pad_to_multiple_: the whole table (specials included) to a multiple of pad_to.
void Vocabulary::pad(int64_t pad_to) {
  padding_ = 0;
  if (pad_to <= 1) return;
  while (static_cast<int64_t>(words_.size()) % pad_to != 0) {
    std::string w = fmt::format("madeupword{:04d}", padding_);
    if (index_.count(w))
      throw std::runtime_error(fmt::format("vocabulary: padding word {} is already a word", w));
    add(std::move(w), 0);
    ++padding_;
  }
}

Vocabulary Vocabulary::build(const std::vector<std::filesystem::path>& files, int64_t min_count,
                             int64_t pad_to) {
  Vocabulary v;
  for (const char* s : kSpecials) v.add(s, 1);
  // Count in a flat index over the distinct words (the specials first, ids 0..3, so that <unk> in
  // the text counts for the special and never becomes a word); a lookup allocates nothing.
  std::vector<std::string> seen(std::begin(kSpecials), std::end(kSpecials));
  std::vector<int64_t> counts(4, 0);
  detail::WordIndex index;
  const auto word_of = [&](int32_t id) -> const std::string& { return seen[static_cast<size_t>(id)]; };
  for (int32_t id = 0; id < 4; ++id) index.insert(detail::WordIndex::hash(seen[id]), id);
  std::string sources;
  for (const auto& file : files) {
    const detail::MappedFile map(file);
    detail::for_each_line(map.view(), [&](std::string_view line) {
      ++counts[kEos];
      detail::for_each_word(line, [&](std::string_view w) {
        const uint64_t h = detail::WordIndex::hash(w);
        int32_t id = index.find(w, h, word_of);
        if (id < 0) {
          if (seen.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max()))
            throw std::runtime_error(
                fmt::format("{}: too many distinct words for 32-bit ids", file.string()));
          id = static_cast<int32_t>(seen.size());
          seen.emplace_back(w);
          counts.push_back(0);
          index.insert(h, id);
        }
        ++counts[static_cast<size_t>(id)];
      });
    });
    sources += (sources.empty() ? "" : ",") + file.string();
  }
  for (size_t i = 0; i < 4; ++i) v.counts_[i] += counts[i];  // fairseq's initial 1 plus the text's
  std::vector<std::pair<std::string_view, int64_t>> order;
  order.reserve(seen.size() - 4);
  for (size_t i = 4; i < seen.size(); ++i)
    if (counts[i] >= min_count) order.emplace_back(seen[i], counts[i]);
  // Dictionary.finalize: descending count, ties by the word (Python's string order = code point
  // order = UTF-8 byte order, which std::string_view's comparison gives).
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  v.words_.reserve(order.size() + 4 + static_cast<size_t>(std::max<int64_t>(pad_to, 1)));
  for (const auto& [w, c] : order) v.add(std::string(w), c);
  v.pad(pad_to);
  v.source_ = sources;
  return v;
}

Vocabulary Vocabulary::load(const std::filesystem::path& dict_txt, int64_t pad_to) {
  const std::string where = dict_txt.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(dict_txt, ec))
    throw std::runtime_error(fmt::format("{}: dictionary file not found", where));
  const detail::MappedFile map(dict_txt);
  Vocabulary v;
  for (const char* s : kSpecials) v.add(s, 1);
  const std::string_view text = map.view();
  int64_t line_no = 0;
  size_t begin = 0;
  while (begin < text.size()) {
    size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    ++line_no;
    // fairseq: line.rstrip().rsplit(" ", 1), an optional "#fairseq:overwrite" flag, int(count).
    while (!line.empty() && detail::whitespace_length(&line.back(), line.data() + line.size()) == 1)
      line.remove_suffix(1);
    auto fail = [&](const std::string& what) {
      return std::runtime_error(fmt::format("{}:{}: {} (expected '<word> <count>'; got \"{}\")", where,
                                            line_no, what, std::string(line.substr(0, 80))));
    };
    auto split_last = [](std::string_view s, std::string_view& head, std::string_view& tail) {
      const size_t sp = s.rfind(' ');
      if (sp == std::string_view::npos) return false;
      head = s.substr(0, sp);
      tail = s.substr(sp + 1);
      return true;
    };
    std::string_view word, field;
    if (!split_last(line, word, field)) throw fail(line.empty() ? "empty line" : "no count");
    bool overwrite = false;
    if (field == "#fairseq:overwrite") {
      overwrite = true;
      const std::string_view rest = word;
      if (!split_last(rest, word, field)) throw fail("no count before the flag");
    }
    if (word.empty()) throw fail("empty word");
    if (field.empty() ||
        !std::all_of(field.begin(), field.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw fail(fmt::format("count '{}' is not a non-negative integer", std::string(field)));
    int64_t count = 0;
    try {
      count = std::stoll(std::string(field));
    } catch (const std::exception&) {
      throw fail(fmt::format("count '{}' is out of range", std::string(field)));
    }
    const std::string w(word);
    const auto it = v.index_.find(w);
    if (it != v.index_.end()) {
      if (!overwrite)
        throw fail(fmt::format("duplicate word '{}' (first as id {}; add #fairseq:overwrite to allow it)", w,
                               it->second));
      v.counts_[static_cast<size_t>(it->second)] = count;
      continue;
    }
    if (v.words_.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max()))
      throw fail("too many words for 32-bit ids");
    v.add(w, count);
  }
  try {
    v.pad(pad_to);
  } catch (const std::runtime_error& e) {  // found by the fuzzer: the message named no file
    throw std::runtime_error(fmt::format("{}: {} (a dict.txt listing some madeupword entries must list all)", where,
                                         e.what()));
  }
  v.source_ = where;
  return v;
}

void Vocabulary::save(const std::filesystem::path& dict_txt) const {
  std::string out;
  const size_t end = words_.size() - static_cast<size_t>(padding_);
  for (size_t i = 4; i < end; ++i) {
    out += words_[i];
    out += ' ';
    out += std::to_string(counts_[i]);
    out += '\n';
  }
  detail::write_file_atomically(dict_txt, out);
}

int64_t Vocabulary::size() const { return static_cast<int64_t>(words_.size()); }

int32_t Vocabulary::id(std::string_view word) const {
  // unordered_map<std::string> has no string_view lookup in C++17; a per-thread key string keeps
  // its capacity, so a lookup allocates nothing.
  thread_local std::string key;
  key.assign(word.data(), word.size());
  const auto it = index_.find(key);
  return it == index_.end() ? kUnk : it->second;
}

const std::string& Vocabulary::word(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= words_.size())
    throw std::out_of_range(fmt::format("vocabulary: id {} outside [0, {})", id, words_.size()));
  return words_[static_cast<size_t>(id)];
}

int64_t Vocabulary::count(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= counts_.size())
    throw std::out_of_range(fmt::format("vocabulary: id {} outside [0, {})", id, counts_.size()));
  return counts_[static_cast<size_t>(id)];
}

std::string Vocabulary::fingerprint() const {
  detail::Fnv1a f;
  for (const auto& w : words_) f.add_field(w);
  return f.hex();
}

}  // namespace mgl::datasets::text
