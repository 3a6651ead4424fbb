// IMDB (Stanford aclImdb layout) and AAN TSV readers, and the byte encoding of the LRA text
// tasks. Oracle: small files written in the real formats, with the expected order and values
// worked out by hand.
#include <catch2/catch.hpp>

#include "datasets/lra/text.h"
#include "support/files.h"

using mgl::datasets::encode_bytes;
using mgl::datasets::read_aan_tsv;
using mgl::datasets::read_imdb_split;
using mgl::test::TempDir;
using mgl::test::write_text;

TEST_CASE("IMDB: neg before pos, numeric review-id order, labels 0/1", "[lra-text][imdb]") {
  TempDir d("imdb");
  const auto root = d / "aclImdb";
  // Names sort lexically as 10_2 < 1_3 < 2_1; the reader must use the numeric id.
  write_text(root / "train" / "neg" / "10_2.txt", "ten");
  write_text(root / "train" / "neg" / "2_1.txt", "two");
  write_text(root / "train" / "neg" / "1_3.txt", "one<br /><br />caf\xc3\xa9");
  write_text(root / "train" / "neg" / "readme.txt", "odd name");  // not <id>_<rating>: last
  write_text(root / "train" / "neg" / "3_4.feat", "not a review");
  write_text(root / "train" / "pos" / "11_7.txt", "eleven");
  write_text(root / "train" / "pos" / "0_9.txt", "zero");
  write_text(root / "train" / "unsup" / "5_0.txt", "unlabelled");

  auto ex = read_imdb_split(root, "train");
  REQUIRE(ex.size() == 6);
  const std::vector<std::string> texts = {
      "one<br /><br />caf\xc3\xa9", "two", "ten", "odd name", "zero", "eleven"};
  const std::vector<int64_t> labels = {0, 0, 0, 0, 1, 1};
  for (size_t i = 0; i < ex.size(); ++i) {
    CHECK(ex[i].text == texts[i]);
    CHECK(ex[i].label == labels[i]);
  }

  auto limited = read_imdb_split(root, "train", 1);
  REQUIRE(limited.size() == 2);
  CHECK(limited[0].text == "one<br /><br />caf\xc3\xa9");
  CHECK(limited[1].text == "zero");
  CHECK(limited[1].label == 1);
}

TEST_CASE("IMDB: a missing or empty class folder is an error naming it", "[lra-text][imdb]") {
  TempDir d("imdb");
  const auto root = d / "aclImdb";
  write_text(root / "train" / "neg" / "1_1.txt", "x");
  REQUIRE_THROWS_WITH(read_imdb_split(root, "test"),
                      Catch::Contains("test/neg") && Catch::Contains("missing"));
  REQUIRE_THROWS_WITH(read_imdb_split(root, "train"), Catch::Contains("train/pos"));
  std::filesystem::create_directories(root / "train" / "pos");
  REQUIRE_THROWS_WITH(read_imdb_split(root, "train"),
                      Catch::Contains("train/pos") && Catch::Contains("no .txt"));
}

TEST_CASE("AAN TSV: five tab-separated fields, float labels, no quoting", "[lra-text][aan]") {
  TempDir d("aan");
  write_text(d / "new_aan_pairs.eval.tsv",
             "1.0\tP01-1001\tW02-0202\tFirst paper, with \"quotes\" and  spaces.\tSecond paper.\n"
             "0.0\tA\tB\ttext a\ttext b\n"
             "1\tC\tD\t\tempty text1\n"
             "0\tE\tF\tx\ty\n");
  auto ex = read_aan_tsv(d / "new_aan_pairs.eval.tsv");
  REQUIRE(ex.size() == 4);
  CHECK(ex[0].label == 1);
  CHECK(ex[0].id1 == "P01-1001");
  CHECK(ex[0].id2 == "W02-0202");
  CHECK(ex[0].text1 == "First paper, with \"quotes\" and  spaces.");  // quotes kept literally
  CHECK(ex[0].text2 == "Second paper.");
  CHECK(ex[1].label == 0);
  CHECK(ex[1].text1 == "text a");
  CHECK(ex[2].label == 1);
  CHECK(ex[2].text1.empty());
  CHECK(ex[3].label == 0);
  CHECK(read_aan_tsv(d / "new_aan_pairs.eval.tsv", 2).size() == 2);

  write_text(d / "trailing.tsv", "1\ta\tb\tc\td\n\n");
  CHECK(read_aan_tsv(d / "trailing.tsv").size() == 1);
}

TEST_CASE("AAN TSV: wrong field counts and labels name file and line", "[lra-text][aan]") {
  TempDir d("aan");
  write_text(d / "fields.tsv", "1\ta\tb\tc\td\n0\ta\tb\tc d\n");
  REQUIRE_THROWS_WITH(read_aan_tsv(d / "fields.tsv"),
                      Catch::Contains("fields.tsv:2") && Catch::Contains("found 4"));
  // Only tabs separate fields: spaces or commas do not.
  write_text(d / "spaces.tsv", "1 a b c d\n");
  REQUIRE_THROWS_WITH(read_aan_tsv(d / "spaces.tsv"),
                      Catch::Contains("spaces.tsv:1") && Catch::Contains("found 1"));
  write_text(d / "extra.tsv", "1\ta\tb\tc\td\n1\ta\tb\tc\td\n1\ta\tb\tc\td\te\n");
  REQUIRE_THROWS_WITH(read_aan_tsv(d / "extra.tsv"),
                      Catch::Contains("extra.tsv:3") && Catch::Contains("found 6"));
  write_text(d / "label.tsv", "1\ta\tb\tc\td\n2.0\ta\tb\tc\td\n");
  REQUIRE_THROWS_WITH(read_aan_tsv(d / "label.tsv"),
                      Catch::Contains("label.tsv:2") && Catch::Contains("'2.0'"));
  write_text(d / "word.tsv", "yes\ta\tb\tc\td\n");
  REQUIRE_THROWS_WITH(read_aan_tsv(d / "word.tsv"), Catch::Contains("word.tsv:1"));
  write_text(d / "gap.tsv", "1\ta\tb\tc\td\n\n1\ta\tb\tc\td\n");
  REQUIRE_THROWS_WITH(read_aan_tsv(d / "gap.tsv"), Catch::Contains("gap.tsv:2"));
  REQUIRE_THROWS_WITH(read_aan_tsv(d / "absent.tsv"), Catch::Contains("absent.tsv"));
}

TEST_CASE("byte encoding: byte + 1, truncation at the end, UTF-8 kept as bytes", "[lra-text]") {
  CHECK(encode_bytes("ab", 10) == std::vector<int64_t>{98, 99});
  CHECK(encode_bytes("hello", 3) == std::vector<int64_t>{105, 102, 109});
  CHECK(encode_bytes("hello", 0).empty());
  CHECK(encode_bytes("", 4).empty());
  // "é" is C3 A9 in UTF-8: two ids, 0xC3+1 and 0xA9+1; truncation may cut inside a character.
  CHECK(encode_bytes("\xc3\xa9!", 8) == std::vector<int64_t>{196, 170, 34});
  CHECK(encode_bytes("\xc3\xa9!", 1) == std::vector<int64_t>{196});
  CHECK(encode_bytes(std::string_view("\x00\xff", 2), 2) == std::vector<int64_t>{1, 256});
  CHECK(mgl::datasets::kByteVocabSize == 257);
}
