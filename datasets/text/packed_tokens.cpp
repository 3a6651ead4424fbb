// The packed token cache: a split's ids in one memory-mapped file (layout in text.h), written
// atomically, reused while the tokenizer and corpus fingerprints match.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "datasets/text/internal.h"
#include "datasets/text/text.h"

namespace mgl::datasets::text {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the token cache is read and written as little-endian");

namespace {

constexpr char kMagic[8] = {'M', 'G', 'L', 'T', 'O', 'K', '0', '3'};
constexpr char kOlder[2][9] = {"MGLTOK01", "MGLTOK02"};  // 01: no id bound; 02: no section table

uint64_t load_u64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t load_u32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

// ---- reading ------------------------------------------------------------------------------------

struct PackedTokens::Impl {
  detail::MappedFile map;
  std::filesystem::path path;
  std::string fingerprint;
  uint32_t width = 2;
  int64_t id_bound = 0;
  int64_t tokens = 0, documents = 0, total_words = 0;
  const unsigned char* offsets = nullptr;
  const unsigned char* words = nullptr;
  const unsigned char* ids = nullptr;
  std::vector<int64_t> sections;

  int32_t id(int64_t i) const {
    const unsigned char* p = ids + static_cast<size_t>(i) * width;
    uint32_t v;
    if (width == 2) {
      uint16_t v16;
      std::memcpy(&v16, p, 2);
      v = v16;
    } else {
      v = load_u32(p);
    }
    if (v >= static_cast<uint64_t>(id_bound)) bad_id(i, v);
    return static_cast<int32_t>(v);
  }
  [[noreturn]] void bad_id(int64_t i, uint64_t v) const {
    throw std::runtime_error(fmt::format("{}: corrupt token cache (id {} at position {} is not below the bound {} "
                                         "its header records; delete the file to rebuild it)",
                                         path.string(), v, i, id_bound));
  }
};

PackedTokens::PackedTokens() = default;
PackedTokens::~PackedTokens() = default;
PackedTokens::PackedTokens(PackedTokens&&) noexcept = default;
PackedTokens& PackedTokens::operator=(PackedTokens&&) noexcept = default;

PackedTokens PackedTokens::open(const std::filesystem::path& file) {
  const std::string name = file.string();
  auto impl = std::make_unique<Impl>();
  impl->map = detail::MappedFile(file);
  impl->path = file;
  const unsigned char* d = impl->map.data();
  const uint64_t size = impl->map.size();
  uint64_t pos = 0;
  // Every length below comes from the file: compare against what is left, never add first.
  auto need = [&](uint64_t n, const char* what) {
    if (n > size - pos)
      throw std::runtime_error(
          fmt::format("{}: truncated token cache ({} bytes; the {} needs {} more at offset {})", name, size,
                      what, n, pos));
  };
  for (const char* older : kOlder)
    if (size >= 8 && std::memcmp(d, older, 8) == 0)
      throw std::runtime_error(fmt::format("{}: token cache of an older version ({}: {})", name, older,
                                           older[7] == '1' ? "no id bound in its header" : "no section table"));
  if (size < 8 || std::memcmp(d, kMagic, 8) != 0)
    throw std::runtime_error(fmt::format("{}: not a token cache (bad magic; expected \"MGLTOK03\")", name));
  pos = 8;
  need(16, "header");
  impl->width = load_u32(d + 8);
  if (impl->width != 2 && impl->width != 4)
    throw std::runtime_error(
        fmt::format("{}: corrupt token cache ({} bytes per id; expected 2 or 4)", name, impl->width));
  impl->id_bound = load_u32(d + 12);
  if (impl->width == 2 && impl->id_bound > 65536)
    throw std::runtime_error(
        fmt::format("{}: corrupt token cache (id bound {} with 2 bytes per id)", name, impl->id_bound));
  const uint64_t fp_len = load_u64(d + 16);
  pos = 24;
  need(fp_len, "fingerprint");
  impl->fingerprint.assign(reinterpret_cast<const char*>(d + pos), fp_len);
  pos += fp_len;
  need(16, "header");
  const uint64_t tokens = load_u64(d + pos), documents = load_u64(d + pos + 8);
  pos += 16;
  if (documents > (size - pos) / 16)
    throw std::runtime_error(fmt::format("{}: truncated token cache ({} documents cannot fit in {} bytes)",
                                         name, documents, size));
  need((documents + 1) * 8, "document offsets");
  impl->offsets = d + pos;
  pos += (documents + 1) * 8;
  need(documents * 8, "document word counts");
  impl->words = d + pos;
  pos += documents * 8;
  if (tokens > (size - pos) / impl->width)
    throw std::runtime_error(
        fmt::format("{}: truncated token cache ({} ids of {} bytes do not fit in the {} bytes "
                    "left)",
                    name, tokens, impl->width, size - pos));
  impl->ids = d + pos;
  pos += tokens * impl->width;
  need(8, "section count");
  const uint64_t sections = load_u64(d + pos);
  pos += 8;
  if (sections > (size - pos) / 8)
    throw std::runtime_error(fmt::format("{}: truncated token cache ({} section starts cannot fit in {} bytes)", name,
                                         sections, size - pos));
  for (uint64_t i = 0; i < sections; ++i) {
    const uint64_t s = load_u64(d + pos + 8 * i);
    if (s == 0 || s >= tokens || (i > 0 && s <= static_cast<uint64_t>(impl->sections.back())))
      throw std::runtime_error(fmt::format("{}: corrupt token cache (section start {} = {}: starts must rise inside "
                                           "(0, {}))",
                                           name, i, s, tokens));
    impl->sections.push_back(static_cast<int64_t>(s));
  }
  pos += sections * 8;
  if (size != pos)
    throw std::runtime_error(fmt::format("{}: corrupt token cache ({} bytes after the section table)", name, size - pos));
  if ((tokens == 0) != (impl->id_bound == 0))
    throw std::runtime_error(
        fmt::format("{}: corrupt token cache (id bound {} for {} tokens)", name, impl->id_bound, tokens));
  impl->tokens = static_cast<int64_t>(tokens);
  impl->documents = static_cast<int64_t>(documents);
  uint64_t prev = 0;
  for (uint64_t i = 0; i <= documents; ++i) {
    const uint64_t o = load_u64(impl->offsets + 8 * i);
    if ((i == 0 && o != 0) || o < prev || o > tokens || (i == documents && o != tokens))
      throw std::runtime_error(
          fmt::format("{}: corrupt token cache (document offset {} = {}: offsets must rise "
                      "from 0 to the {} tokens)",
                      name, i, o, tokens));
    prev = o;
  }
  for (uint64_t i = 0; i < documents; ++i) {
    const auto w = static_cast<int64_t>(load_u64(impl->words + 8 * i));
    if (w < 0 || w > std::numeric_limits<int64_t>::max() - impl->total_words)
      throw std::runtime_error(fmt::format("{}: corrupt token cache (document {} has {} words)", name, i, w));
    impl->total_words += w;
  }
  PackedTokens out;
  out.impl_ = std::move(impl);
  return out;
}

const std::string& PackedTokens::fingerprint() const {
  static const std::string kEmpty;
  return impl_ ? impl_->fingerprint : kEmpty;
}
const std::filesystem::path& PackedTokens::path() const {
  static const std::filesystem::path kNone;
  return impl_ ? impl_->path : kNone;
}
int64_t PackedTokens::id_bound() const { return impl_ ? impl_->id_bound : 0; }
int64_t PackedTokens::size() const { return impl_ ? impl_->tokens : 0; }
int64_t PackedTokens::num_documents() const { return impl_ ? impl_->documents : 0; }
int64_t PackedTokens::total_words() const { return impl_ ? impl_->total_words : 0; }

int64_t PackedTokens::document_begin(int64_t d) const {
  if (d < 0 || d >= num_documents())
    throw std::out_of_range(fmt::format("token cache: document {} outside [0, {})", d, num_documents()));
  return static_cast<int64_t>(load_u64(impl_->offsets + 8 * d));
}
int64_t PackedTokens::document_end(int64_t d) const {
  if (d < 0 || d >= num_documents())
    throw std::out_of_range(fmt::format("token cache: document {} outside [0, {})", d, num_documents()));
  return static_cast<int64_t>(load_u64(impl_->offsets + 8 * (d + 1)));
}
int64_t PackedTokens::document_words(int64_t d) const {
  if (d < 0 || d >= num_documents())
    throw std::out_of_range(fmt::format("token cache: document {} outside [0, {})", d, num_documents()));
  return static_cast<int64_t>(load_u64(impl_->words + 8 * d));
}

const std::vector<int64_t>& PackedTokens::section_starts() const {
  static const std::vector<int64_t> kNone;
  return impl_ ? impl_->sections : kNone;
}

int32_t PackedTokens::at(int64_t i) const {
  if (i < 0 || i >= size())
    throw std::out_of_range(fmt::format("token cache: index {} outside [0, {})", i, size()));
  return impl_->id(i);
}

torch::Tensor PackedTokens::slice(int64_t begin, int64_t length) const {
  auto out = torch::empty({std::max<int64_t>(length, 0)}, torch::kInt64);
  read(begin, length, out.data_ptr<int64_t>());
  return out;
}

void PackedTokens::read(int64_t begin, int64_t length, int64_t* o) const {
  if (begin < 0 || length < 0 || begin > size() || length > size() - begin)
    throw std::out_of_range(
        fmt::format("token cache: slice [{}, {}+{}) outside the {} tokens", begin, begin, length, size()));
  if (length == 0) return;
  const unsigned char* p = impl_->ids + static_cast<size_t>(begin) * impl_->width;
  // Every id read is checked against the header's bound (one compare each): a cache damaged after
  // it was written must not reach an embedding as an out-of-range index.
  int64_t largest = 0;
  if (impl_->width == 2) {
    for (int64_t i = 0; i < length; ++i) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      o[i] = v;
      largest = std::max<int64_t>(largest, v);
    }
  } else {
    for (int64_t i = 0; i < length; ++i) {
      o[i] = load_u32(p + 4 * i);
      largest = std::max(largest, o[i]);
    }
  }
  if (largest >= impl_->id_bound)
    for (int64_t i = 0; i < length; ++i)
      if (o[i] >= impl_->id_bound) impl_->bad_id(begin + i, static_cast<uint64_t>(o[i]));
}

// ---- writing ------------------------------------------------------------------------------------

namespace {

// Streams documents into a temporary file beside the target; commit() fills in the counts and
// offsets and renames it into place. Destroyed uncommitted, it removes the temporary file.
class PackedWriter {
 public:
  PackedWriter(std::filesystem::path file, const std::string& fingerprint, int64_t documents,
               int64_t vocab_size)
      : file_(std::move(file)), vocab_size_(vocab_size), documents_(documents) {
    if (vocab_size <= 0 || vocab_size > (int64_t{1} << 32))
      throw std::invalid_argument(
          fmt::format("{}: vocabulary size {} cannot be stored", file_.string(), vocab_size));
    width_ = vocab_size <= 65536 ? 2 : 4;
    if (!file_.parent_path().empty()) std::filesystem::create_directories(file_.parent_path());
    tmp_ = detail::temporary_sibling(file_);
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_)
      throw std::runtime_error(fmt::format("{}: cannot create ({})", tmp_.string(), std::strerror(errno)));
    offsets_.reserve(static_cast<size_t>(documents) + 1);
    offsets_.push_back(0);
    words_.reserve(static_cast<size_t>(documents));
    put(kMagic, 8);
    put_u32(width_);
    put_u32(0);
    put_u64(fingerprint.size());
    put(fingerprint.data(), fingerprint.size());
    counts_at_ = 24 + fingerprint.size();
    // Placeholders for tokens, documents, offsets and words, filled by commit().
    const std::vector<char> zeros(16 + 16 * static_cast<size_t>(documents) + 8, 0);
    put(zeros.data(), zeros.size());
  }
  ~PackedWriter() {
    if (f_) std::fclose(f_);
    if (!committed_) {
      std::error_code ec;
      std::filesystem::remove(tmp_, ec);
    }
  }
  PackedWriter(const PackedWriter&) = delete;
  PackedWriter& operator=(const PackedWriter&) = delete;

  void add(const TokenizedDocument& doc) {
    if (static_cast<int64_t>(words_.size()) >= documents_)
      throw std::logic_error(
          fmt::format("{}: more documents than the {} announced", file_.string(), documents_));
    buf_.resize(doc.ids.size() * width_);
    for (size_t i = 0; i < doc.ids.size(); ++i) {
      const int32_t id = doc.ids[i];
      if (id < 0 || id >= vocab_size_)
        throw std::runtime_error(
            fmt::format("{}: token id {} (document {}, position {}) outside the vocabulary "
                        "[0, {})",
                        file_.string(), id, words_.size(), i, vocab_size_));
      id_bound_ = std::max<uint64_t>(id_bound_, static_cast<uint64_t>(id) + 1);
      if (width_ == 2) {
        const auto v = static_cast<uint16_t>(id);
        std::memcpy(buf_.data() + 2 * i, &v, 2);
      } else {
        const auto v = static_cast<uint32_t>(id);
        std::memcpy(buf_.data() + 4 * i, &v, 4);
      }
    }
    put(buf_.data(), buf_.size());
    for (const int64_t s : doc.sections) {
      if (s <= 0 || s >= static_cast<int64_t>(doc.ids.size()) ||
          (!sections_.empty() && tokens_ + static_cast<uint64_t>(s) <= sections_.back()))
        throw std::logic_error(fmt::format("{}: document {} has a section start {} outside (0, {}) or out of order",
                                           file_.string(), words_.size(), s, doc.ids.size()));
      sections_.push_back(tokens_ + static_cast<uint64_t>(s));
    }
    tokens_ += doc.ids.size();
    offsets_.push_back(tokens_);
    words_.push_back(doc.words);
  }

  void commit() {
    if (static_cast<int64_t>(words_.size()) != documents_)
      throw std::logic_error(
          fmt::format("{}: {} documents written, {} announced", file_.string(), words_.size(), documents_));
    // The section table follows the ids; then back to the header's placeholders (id bound, counts).
    put_u64(sections_.size());
    for (uint64_t s : sections_) put_u64(s);
    if (std::fseek(f_, 12, SEEK_SET) != 0) fail();
    put_u32(static_cast<uint32_t>(id_bound_));
    if (std::fseek(f_, static_cast<long>(counts_at_), SEEK_SET) != 0) fail();
    put_u64(tokens_);
    put_u64(static_cast<uint64_t>(documents_));
    for (uint64_t o : offsets_) put_u64(o);
    for (int64_t w : words_) put_u64(static_cast<uint64_t>(w));
    if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) fail();
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) fail();
    std::error_code ec;
    std::filesystem::rename(tmp_, file_, ec);
    if (ec)
      throw std::runtime_error(
          fmt::format("{}: cannot rename into place ({})", file_.string(), ec.message()));
    committed_ = true;
  }

 private:
  [[noreturn]] void fail() const {
    throw std::runtime_error(fmt::format("{}: write failed ({})", tmp_.string(), std::strerror(errno)));
  }
  void put(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) fail();
  }
  void put_u32(uint32_t v) { put(&v, 4); }
  void put_u64(uint64_t v) { put(&v, 8); }

  std::filesystem::path file_, tmp_;
  std::FILE* f_ = nullptr;
  int64_t vocab_size_, documents_;
  uint32_t width_ = 2;
  uint64_t counts_at_ = 0, tokens_ = 0, id_bound_ = 0;
  std::vector<uint64_t> offsets_, sections_;
  std::vector<int64_t> words_;
  std::vector<unsigned char> buf_;
  bool committed_ = false;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Tokenises docs[0..n) with `threads` workers and hands them to `sink` in document order. At most a
// window of finished documents waits for the sink, which bounds the memory held.
void tokenize_in_order(const Corpus& corpus, const std::vector<Document>& docs, const Tokenizer& tok,
                       int threads, const std::function<void(size_t, TokenizedDocument&&)>& sink) {
  const size_t n = docs.size();
  const auto workers = static_cast<size_t>(std::max(1, threads));
  if (workers == 1 || n <= 1) {
    for (size_t i = 0; i < n; ++i) sink(i, corpus.tokenize(docs[i], tok));
    return;
  }
  const size_t window = 2 * workers + 2;
  std::mutex m;
  std::condition_variable work_cv, done_cv;
  size_t next_take = 0, next_sink = 0;
  std::vector<std::optional<TokenizedDocument>> ready(n);
  std::exception_ptr error;
  bool stop = false;
  auto worker = [&] {
    for (;;) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(m);
        work_cv.wait(lock, [&] { return stop || next_take >= n || next_take < next_sink + window; });
        if (stop || next_take >= n) return;
        i = next_take++;
      }
      try {
        TokenizedDocument doc = corpus.tokenize(docs[i], tok);
        std::lock_guard<std::mutex> lock(m);
        ready[i] = std::move(doc);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!error) error = std::current_exception();
        stop = true;
        work_cv.notify_all();
      }
      done_cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 0; t < std::min(workers, n); ++t) pool.emplace_back(worker);
  try {
    for (size_t i = 0; i < n; ++i) {
      TokenizedDocument doc;
      {
        std::unique_lock<std::mutex> lock(m);
        done_cv.wait(lock, [&] { return stop || ready[i].has_value(); });
        if (stop) break;
        doc = std::move(*ready[i]);
        ready[i].reset();
        next_sink = i + 1;
      }
      work_cv.notify_all();
      sink(i, std::move(doc));
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(m);
    if (!error) error = std::current_exception();
    stop = true;
  }
  {
    std::lock_guard<std::mutex> lock(m);
    stop = true;
  }
  work_cv.notify_all();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return (v < 0 ? "-" : "") + out;
}

}  // namespace

void write_packed_tokens(const std::filesystem::path& file, const std::string& fingerprint,
                         const std::vector<TokenizedDocument>& docs, int64_t vocab_size) {
  PackedWriter w(file, fingerprint, static_cast<int64_t>(docs.size()), vocab_size);
  for (const auto& d : docs) w.add(d);
  w.commit();
}

PackedTokens load_or_build_tokens(const Corpus& corpus, TextSplit split, const Tokenizer& tok,
                                  const std::filesystem::path& cache_dir, int threads,
                                  const std::function<void(const std::string&)>& log, bool* reused) {
  if (reused) *reused = false;
  auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  const std::string split_name = to_string(split);
  const std::string tok_fp = tok.fingerprint(), corpus_fp = corpus.fingerprint(split);
  const std::string fingerprint = tok_fp + "|" + corpus_fp;
  // One file per (format, split, tokenizer): several tokenizers share a cache folder, and a changed
  // corpus rewrites its file in place.
  const auto file = cache_dir / fmt::format("{}.{}.{}-{}.tokens", corpus.format(), split_name, tok.kind(),
                                            detail::fnv1a_hex(tok_fp).substr(0, 12));
  std::error_code ec;
  if (std::filesystem::exists(file, ec)) {
    try {
      auto cached = PackedTokens::open(file);
      if (cached.fingerprint() == fingerprint && cached.id_bound() > tok.vocab_size()) {
        say(fmt::format("{}: {} holds ids up to {}, outside the tokenizer's {} ids; rebuilding", split_name,
                        file.string(), cached.id_bound() - 1, tok.vocab_size()));
      } else if (cached.fingerprint() == fingerprint) {
        say(fmt::format("{}: reusing {} ({} tokens, {} documents)", split_name, file.string(),
                        with_commas(cached.size()), cached.num_documents()));
        if (reused) *reused = true;
        return cached;
      } else {
        const auto bar = cached.fingerprint().find('|');
        const bool same_tok = bar != std::string::npos && cached.fingerprint().substr(0, bar) == tok_fp;
        say(fmt::format("{}: {} is stale ({} changed); rebuilding", split_name, file.string(),
                        same_tok ? "the corpus files" : "the tokenizer"));
      }
    } catch (const std::runtime_error& e) {
      say(fmt::format("{}: {}; rebuilding", split_name, e.what()));
    }
  } else {
    say(fmt::format("{}: no cache at {}; building", split_name, file.string()));
  }

  const auto start = Clock::now();
  const auto docs = corpus.documents(split);
  PackedWriter writer(file, fingerprint, static_cast<int64_t>(docs.size()), tok.vocab_size());
  int64_t tokens = 0, words = 0;
  double last_report = 0;
  tokenize_in_order(corpus, docs, tok, threads, [&](size_t i, TokenizedDocument&& doc) {
    writer.add(doc);
    tokens += static_cast<int64_t>(doc.ids.size());
    words += doc.words;
    const double t = seconds_since(start);
    if (t - last_report >= 2.0 && i + 1 < docs.size()) {
      last_report = t;
      say(fmt::format("tokenising {}: {}/{} documents, {} tokens, {:.2f}M tokens/s", split_name, i + 1,
                      docs.size(), with_commas(tokens), static_cast<double>(tokens) / t / 1e6));
    }
  });
  writer.commit();
  const double t = seconds_since(start);
  say(fmt::format(
      "{}: wrote {} ({} tokens, {} documents, {} words) in {:.1f} s ({:.2f}M tokens/s, {} threads)",
      split_name, file.string(), with_commas(tokens), docs.size(), with_commas(words), t,
      t > 0 ? static_cast<double>(tokens) / t / 1e6 : 0.0, std::max(1, threads)));
  auto out = PackedTokens::open(file);
  if (out.fingerprint() != fingerprint)
    throw std::runtime_error(
        fmt::format("{}: fingerprint changed while writing (another writer?)", file.string()));
  return out;
}

}  // namespace mgl::datasets::text
