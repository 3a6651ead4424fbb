// The LRA byte-level text tasks' raw files (paper-benchmarks §3.3, §3.4): IMDB reviews (Text) and
// the AAN citation pairs (Retrieval), plus the byte encoding both use.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mgl::datasets {

struct TextExample {
  std::string text;
  int64_t label = 0;
};

// Reads `<root>/{split}/{neg,pos}/*.txt` of the Stanford release (root = the `aclImdb` folder;
// split = "train" or "test"). Labels: neg = 0, pos = 1. Files are taken in a deterministic order:
// neg then pos, each sorted by the numeric review id of `<id>_<rating>.txt` (names that do not
// match that pattern sort after, by name). Throws std::runtime_error naming the folder if it is
// missing or holds no .txt file, or naming a file that cannot be read. `limit_per_class` >= 0
// keeps only the first N files of each class.
std::vector<TextExample> read_imdb_split(const std::filesystem::path& root, const std::string& split,
                                         int64_t limit_per_class = -1);

struct TextPairExample {
  std::string id1, id2;
  std::string text1, text2;
  int64_t label = 0;
};

// Reads `new_aan_pairs.{train,eval,test}.tsv`: no header, five tab-separated fields
// `label id1 id2 text1 text2`, no quoting (a literal split on '\t'). The label is a float that
// must be 0 or 1 ("0", "1", "0.0", "1.0"). Throws std::runtime_error naming file:line for a wrong
// field count or label. A trailing empty line is allowed. `limit` >= 0 stops after N examples.
std::vector<TextPairExample> read_aan_tsv(const std::filesystem::path& file, int64_t limit = -1);

// Byte-level ids: byte value + 1 (0 is padding), at most max_length bytes (truncation at the end).
constexpr int64_t kByteVocabSize = 257;
std::vector<int64_t> encode_bytes(std::string_view text, int64_t max_length);

}  // namespace mgl::datasets
