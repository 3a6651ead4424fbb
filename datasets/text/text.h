// Text corpora for language modelling (paper-benchmarks.md §3.8–3.9): the tokenizers, the WikiText-103
// and PG-19 readers, a plain-text reader, and the memory-mapped packed token cache.
//
//   tokenizer  — byte (256 byte ids + </s>), word (a fairseq-style vocabulary built from train, for
//                WikiText), sentencepiece (a model file, through libsentencepiece).
//   corpus     — the documents of a split and how each becomes token ids and a word count.
//   cache      — the token ids of a split packed into one file with document offsets and word counts,
//                memory-mapped; its header records a fingerprint of the tokenizer and of the corpus
//                files, so a changed tokenizer or corpus rebuilds it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

namespace mgl::datasets::text {

// ---- tokenizers -----------------------------------------------------------------------------

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;  // "byte", "word", "sentencepiece"
  virtual int64_t vocab_size() const = 0;
  // Ids of `text`, no BOS/EOS added. Word tokenizer: whitespace-separated words, a line break is NOT
  // an end-of-line token (the WikiText reader adds those per line).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // encode(text) appended to `out` (the readers' path: the byte and word tokenizers override it to
  // avoid a vector per line). Tokenizers are used from several threads at once: const methods
  // must be thread-safe.
  virtual void encode_append(std::string_view text, std::vector<int32_t>& out) const;
  // Text of ids. Byte: the bytes (invalid UTF-8 kept as is); word: words joined by single spaces, the
  // eos token as "\n"; sentencepiece: the library's decode.
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t eos_id() const = 0;  // -1 when the tokenizer has none
  // Changes whenever the mapping text → ids changes (kind + a hash of the model/vocabulary bytes).
  virtual std::string fingerprint() const = 0;
  // One line for run records: kind, vocabulary size, source file.
  virtual std::string describe() const = 0;
};

// Ids 0..255 are the bytes, 256 is </s>: vocab_size 257.
std::unique_ptr<Tokenizer> make_byte_tokenizer();
// A SentencePiece model file (.model). Errors name the file. libsentencepiece is reached through a
// module loaded on first use (libmegalodon_sentencepiece.so beside the executable, or where the build
// put it, or $MEGALODON_SENTENCEPIECE_MODULE): it cannot share a symbol scope with LibTorch
// (datasets/text/sentencepiece_module.cpp). The fingerprint hashes the serialized model, which also
// records the trainer's options (its model prefix included).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file);
// Whether this build has SentencePiece (libsentencepiece-dev found when CMake ran). Without it,
// load_sentencepiece and train_sentencepiece throw, saying so.
bool sentencepiece_available();

// fairseq-style word vocabulary: ids 0..3 = <s>, <pad>, </s>, <unk>, then the words by descending
// count, ties in byte (= code point) order of the words as fairseq's Dictionary.finalize sorts them,
// padded with madeupword0000, madeupword0001, ... to a multiple of `pad_to` (8, as
// fairseq-preprocess does). Words whose count < min_count map to <unk>. The specials occurring in
// the text (WikiText's `<unk>`) map to their ids and are never added as words.
class Vocabulary {
 public:
  static constexpr int32_t kBos = 0, kPad = 1, kEos = 2, kUnk = 3;
  // Counts whitespace-separated words of the text files (WikiText: the train split), line by line.
  // Whitespace as Python's str.split() (fairseq's tokenize_line): ASCII and Unicode white space.
  static Vocabulary build(const std::vector<std::filesystem::path>& files, int64_t min_count = 1,
                          int64_t pad_to = 8);
  // fairseq dict.txt: one "<word> <count>" per line (the four specials and the padding words are
  // not written). Errors name file:line and what was expected.
  // A fairseq dict.txt that lists its madeupword padding loads as is (they are words of count 0
  // then, and no padding is added). "<word> <count> #fairseq:overwrite" lines are accepted.
  static Vocabulary load(const std::filesystem::path& dict_txt, int64_t pad_to = 8);
  void save(const std::filesystem::path& dict_txt) const;  // atomic
  int64_t size() const;
  int32_t id(std::string_view word) const;  // kUnk when absent
  const std::string& word(int32_t id) const;  // std::out_of_range outside [0, size)
  int64_t count(int32_t id) const;
  int64_t num_padding() const { return padding_; }  // madeupword entries at the end
  std::string fingerprint() const;                  // hash of the words in id order
  const std::string& source() const { return source_; }  // the file(s) it was built or loaded from

 private:
  void add(std::string word, int64_t count);
  void pad(int64_t pad_to);
  std::vector<std::string> words_;
  std::vector<int64_t> counts_;
  std::unordered_map<std::string, int32_t> index_;
  int64_t padding_ = 0;
  std::string source_;
};
std::unique_ptr<Tokenizer> make_word_tokenizer(Vocabulary vocab);

// ---- corpora --------------------------------------------------------------------------------

enum class TextSplit { train, valid, test };
const char* to_string(TextSplit);

struct Document {
  std::string id;     // WikiText: the file name; PG-19: the book id; text: the file name
  std::string title;  // PG-19: short_book_title from metadata.csv; else empty
  std::filesystem::path path;
};

// Tokenised document: ids, and the number of words for word-level perplexity.
struct TokenizedDocument {
  std::vector<int32_t> ids;
  int64_t words = 0;
  // Token offsets inside the document (increasing, > 0) where a section begins: WikiText's
  // articles (their "= Title =" line), the paragraphs of plain text (the first line after blank
  // ones). The language model can restart its state there (task.document_boundaries = "reset").
  std::vector<int64_t> sections;
};

class Corpus {
 public:
  virtual ~Corpus() = default;
  virtual std::string format() const = 0;  // "wikitext", "pg19", "text"
  virtual std::vector<Document> documents(TextSplit split) const = 0;  // deterministic order
  // Reads and tokenises one document. Errors name the file (and line where one is at fault).
  virtual TokenizedDocument tokenize(const Document& doc, const Tokenizer& tok) const = 0;
  // Hash of the names, sizes and modification times of every file of the split (and metadata).
  virtual std::string fingerprint(TextSplit split) const = 0;
};

// WikiText-103 (`wiki.{train,valid,test}.tokens` in `root`): one document per split (the whole file);
// every line, blank lines included, is its whitespace-split words then </s> (the tokenizer's
// eos). words = the number of tokens including the </s> of each line (the WikiText convention).
// Sections: the articles, each starting at its title line " = Title = " (one '=' on each side;
// "= = Heading = =" lines are headings inside an article).
// The word tokenizer needs no text normalisation; the byte and sentencepiece tokenizers encode each
// line's text (without its newline) and append eos.
std::unique_ptr<Corpus> open_wikitext(const std::filesystem::path& root);
// PG-19: `root/{train,validation,test}/<book_id>.txt` and `root/metadata.csv` (book_id,
// short_book_title, publication_date, book_link; RFC 4180 quoting, with or without a header line).
// Books sorted by numeric id; a book file absent from metadata is an error naming it, as is a
// malformed metadata line (file:line). Each book is one document, encoded whole without EOS;
// words = the number of whitespace-separated words of the book text (the PG-19 word count).
std::unique_ptr<Corpus> open_pg19(const std::filesystem::path& root);
// Plain text: `root/{train,valid,test}/*.txt` (or `root/{train,valid,test}.txt`), each file one
// document; words = whitespace-separated words. Sections: the paragraphs (a paragraph starts at a
// non-blank line that follows one or more blank or whitespace-only lines). The text is encoded one
// paragraph (with the blank lines after it) at a time, so that every section starts on a token;
// for the byte and word tokenizers that is the same stream as encoding the file whole.
std::unique_ptr<Corpus> open_plain_text(const std::filesystem::path& root);
// By format name ("wikitext", "pg19", "text"); an unknown name is an error listing the names.
std::unique_ptr<Corpus> open_corpus(const std::string& format, const std::filesystem::path& root);

// Parses RFC 4180 CSV (quoted fields, "" escapes, embedded commas and newlines; rows end with CRLF,
// LF or CR; blank lines are skipped; a leading UTF-8 BOM is dropped); errors name `where`:line.
// `row_lines`, when given, receives the line on which each row starts. Exposed for tests.
std::vector<std::vector<std::string>> parse_csv(std::string_view text, const std::string& where,
                                                std::vector<int64_t>* row_lines = nullptr);

// ---- packed token cache ---------------------------------------------------------------------

// A split's token ids, concatenated in document order, memory-mapped read-only. File layout
// (little-endian): magic "MGLTOK03", u32 bytes per id (2 or 4), u32 id bound (the largest id + 1; 0
// without tokens), u64 fingerprint length, fingerprint bytes, u64 tokens, u64 documents,
// u64 doc_offsets[documents+1], i64 doc_words[documents], the ids, then u64 sections,
// u64 section_starts[sections] (absolute token offsets, increasing, each inside (0, tokens)).
// Files of the older layouts (MGLTOK01: no id bound; MGLTOK02: no section table) are refused as an
// older version, and load_or_build_tokens rebuilds them.
class PackedTokens {
 public:
  PackedTokens();
  ~PackedTokens();
  PackedTokens(PackedTokens&&) noexcept;
  PackedTokens& operator=(PackedTokens&&) noexcept;
  // Opens a cache file; a bad magic, a short file or inconsistent offsets is an error naming it.
  static PackedTokens open(const std::filesystem::path& file);
  const std::string& fingerprint() const;
  const std::filesystem::path& path() const;
  // The header's bound on the ids (largest id + 1). Reading an id at or above it (a cache damaged
  // after it was written) throws std::runtime_error naming the file and the position.
  int64_t id_bound() const;
  int64_t size() const;           // tokens
  int64_t num_documents() const;
  int64_t document_begin(int64_t d) const;
  int64_t document_end(int64_t d) const;
  int64_t document_words(int64_t d) const;
  int64_t total_words() const;
  int32_t at(int64_t i) const;
  // Where the documents' sections begin (TokenizedDocument::sections), as absolute offsets.
  const std::vector<int64_t>& section_starts() const;
  // ids [begin, begin+length) as an int64 tensor (a copy); the range must lie inside the stream.
  torch::Tensor slice(int64_t begin, int64_t length) const;
  // The same ids written to out[0, length): what slice() does without allocating, so that a batch
  // is filled in place.
  void read(int64_t begin, int64_t length, int64_t* out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes the tokens of `docs` (in order) as a cache file, atomically (temp + rename).
void write_packed_tokens(const std::filesystem::path& file, const std::string& fingerprint,
                         const std::vector<TokenizedDocument>& docs, int64_t vocab_size);

// The cache of (corpus, split, tokenizer) under cache_dir: opened when its fingerprint (tokenizer
// fingerprint + corpus fingerprint of the split) matches, otherwise (re)built by tokenising every
// document with `threads` threads and written atomically. `log` (may be empty) receives progress
// lines ("tokenising valid: 12/60 documents ...") and whether the cache was reused or rebuilt;
// `reused` (may be null) is set to whether an existing file was opened. The file is
// `<format>.<split>.<tokenizer kind>-<12 hex digits of the tokenizer fingerprint>.tokens`, so several
// tokenizers share a cache_dir; a corpus change rewrites that file. A corrupt file, or one whose ids
// reach past the tokenizer's vocabulary (its header's id bound), is rebuilt (logged, naming it).
PackedTokens load_or_build_tokens(const Corpus& corpus, TextSplit split, const Tokenizer& tok,
                                  const std::filesystem::path& cache_dir, int threads = 1,
                                  const std::function<void(const std::string&)>& log = {},
                                  bool* reused = nullptr);

// ---- SentencePiece training (`megalodon data sentencepiece`) ---------------------------------

struct SentencePieceOptions {
  int64_t vocab_size = 8000;
  std::string model_type = "unigram";  // unigram | bpe | char | word
  double character_coverage = 1.0;
  int64_t input_sentence_size = 2000000;  // lines sampled by the trainer (0 = all)
  uint64_t seed = 0;  // the library's global generator (SetRandomGeneratorSeed; 32 bits are used)
  int threads = 1;
  bool byte_fallback = true;     // unknown characters become <0xXX> byte pieces (needs vocab >= 256+)
  bool hard_vocab_limit = true;  // false: vocab_size is an upper bound (small corpora)
  bool verbose = false;          // the library's INFO log on stderr
};
// Trains on the text files (one sentence per line) and writes <prefix>.model and <prefix>.vocab;
// returns the .model path. Library errors are rethrown with the inputs named.
std::filesystem::path train_sentencepiece(const std::vector<std::filesystem::path>& inputs,
                                          const std::filesystem::path& model_prefix,
                                          const SentencePieceOptions& options);

}  // namespace mgl::datasets::text
