// `megalodon data tokenize` and `megalodon data sentencepiece` driven through the real executable:
// output, cache reuse across runs, the saved word vocabulary, and the exit codes (2 = bad usage,
// 1 = bad data).
#include <fmt/format.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>

#include "datasets/text/text.h"
#include "support/files.h"

using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

struct Run {
  int code;
  std::string output;
};

Run megalodon(const std::string& args, const std::filesystem::path& log) {
  const std::string cmd = fmt::format("'{}' {} > '{}' 2>&1", MEGALODON_CLI_PATH, args, log.string());
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("cli: data tokenize builds, then reuses, word vocabulary saved, exit codes", "[text][cli]") {
  TempDir d("text-cli");
  write_text(d / "wt" / "wiki.train.tokens", " = A = \n\n the cat sat \n");
  write_text(d / "wt" / "wiki.valid.tokens", " the dog \n");
  const std::string base =
      fmt::format("data tokenize --format wikitext --root '{}' --cache '{}' --splits train,valid",
                  (d / "wt").string(), (d / "cache").string());
  auto r = megalodon(base + " --tokenizer word", d / "log1");
  INFO(r.output);
  CHECK(r.code == 0);
  CHECK(contains(r.output, "built"));
  CHECK_FALSE(contains(r.output, "reused"));
  CHECK(std::filesystem::exists(d / "cache" / "dict.txt"));
  // valid: " the dog " -> the <unk> </s>: 3 tokens, 3 words.
  CHECK(std::regex_search(r.output, std::regex(R"(valid +1 +3 +3 +1\.0000 )")));

  r = megalodon(base + " --tokenizer word --threads 2", d / "log2");
  CHECK(r.code == 0);
  CHECK(contains(r.output, "reused"));
  CHECK_FALSE(contains(r.output, "built"));

  // Each run loads LibTorch (about a second of CPU): one bad-usage and one bad-data case only.
  CHECK(megalodon(base + " --tokenizer sentencepiece", d / "log3").code == 2);  // no --model: usage
  r = megalodon(fmt::format("data tokenize --format pg19 --root '{}' --cache '{}' --tokenizer byte",
                            (d / "wt").string(), (d / "cache").string()),
                d / "log4");
  CHECK(r.code == 1);  // no metadata.csv: bad data
  CHECK(contains(r.output, "metadata.csv"));
}

TEST_CASE("cli: data sentencepiece trains from a folder of .txt files", "[text][cli][sentencepiece]") {
  TempDir d("text-cli-spm");
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += fmt::format("line {} of the small corpus, with words {} and {}.\n", i, i % 7, i % 11);
  write_text(d / "books" / "train" / "1.txt", text);
  write_text(d / "books" / "train" / "2.txt", text.substr(0, text.size() / 2));
  auto r = megalodon(fmt::format("data sentencepiece --input '{}' --model-prefix '{}' --vocab-size 80 "
                                 "--no-byte-fallback --soft-vocab-limit --seed 3",
                                 (d / "books").string(), (d / "out" / "spm").string()),
                     d / "log1");
  INFO(r.output);
  if (!mgl::datasets::text::sentencepiece_available()) {  // built without libsentencepiece-dev
    CHECK(r.code != 0);
    CHECK(contains(r.output, "this build has no SentencePiece"));
    return;
  }
  CHECK(r.code == 0);
  CHECK(std::filesystem::exists(d / "out" / "spm.model"));
  CHECK(contains(r.output, "2 files"));
  CHECK(contains(r.output, "eos 2"));
}
