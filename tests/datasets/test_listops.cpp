// ListOps reader, tokenisation, evaluator and generator. Oracles: hand-computed expressions and
// values; for the generator, an independent re-implementation of LRA's to_string() over the
// token sequence, and the evaluator.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "datasets/lra/listops.h"
#include "support/files.h"

using mgl::datasets::evaluate_listops;
using mgl::datasets::ListOpsVocab;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

std::vector<std::string> split_ws(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string t; in >> t;) out.push_back(t);
  return out;
}

// LRA's tuple construction and to_string(), written recursively over the prefix tokens (the
// expression without parentheses): an operator node is ((((op, c1), c2), ...), ']'), a pair
// (a, b) prints as "( a b )".
std::string lra_to_string(const std::vector<std::string>& tokens, size_t& pos) {
  const std::string t = tokens.at(pos++);
  if (t.size() == 1 && std::isdigit(static_cast<unsigned char>(t[0]))) return t;
  std::string node = t;
  while (tokens.at(pos) != "]") node = "( " + node + " " + lra_to_string(tokens, pos) + " )";
  ++pos;
  return "( " + node + " ] )";
}

std::string without_parens(const std::string& source) {
  std::string out;
  for (const auto& t : split_ws(source))
    if (t != "(" && t != ")") out += (out.empty() ? "" : " ") + t;
  return out;
}

// Depth of the deepest node, the root being depth 1 (a leaf inside k nested operators is at k+1).
int64_t tree_depth(const std::string& source) {
  int64_t open = 0, deepest = 0;
  for (const auto& t : split_ws(source)) {
    if (t[0] == '[')
      deepest = std::max(deepest, ++open);
    else if (t == "]")
      --open;
    else if (t != "(" && t != ")")
      deepest = std::max(deepest, open + 1);
  }
  return deepest;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("ListOps TSV: header, fields and targets are read as in the LRA files", "[listops]") {
  TempDir d("listops");
  write_text(d / "basic_val.tsv",
             "Source\tTarget\n"
             "( ( ( [MIN 8 ) 2 ) ] )\t2\n"
             "( ( ( ( [SM 7 ) 8 ) 9 ) ] )\t4\n"
             "5\t5\n");
  auto ex = mgl::datasets::read_listops_tsv(d / "basic_val.tsv");
  REQUIRE(ex.size() == 3);
  CHECK(ex[0].source == "( ( ( [MIN 8 ) 2 ) ] )");
  CHECK(ex[0].target == 2);
  CHECK(ex[1].target == 4);
  CHECK(ex[2].source == "5");
  CHECK(mgl::datasets::read_listops_tsv(d / "basic_val.tsv", 2).size() == 2);
  CHECK(mgl::datasets::read_listops_tsv(d / "basic_val.tsv", 0).empty());

  // A trailing empty line is fine; one in the middle is not.
  write_text(d / "trailing.tsv", "Source\tTarget\n3\t3\n\n");
  CHECK(mgl::datasets::read_listops_tsv(d / "trailing.tsv").size() == 1);
  write_text(d / "gap.tsv", "Source\tTarget\n3\t3\n\n4\t4\n");
  REQUIRE_THROWS_WITH(mgl::datasets::read_listops_tsv(d / "gap.tsv"), Catch::Contains("gap.tsv:3"));
}

TEST_CASE("ListOps TSV: malformed files name file and line", "[listops]") {
  TempDir d("listops");
  write_text(d / "noheader.tsv", "( ( ( [MIN 8 ) 2 ) ] )\t2\n");
  REQUIRE_THROWS_WITH(mgl::datasets::read_listops_tsv(d / "noheader.tsv"),
                      Catch::Contains("noheader.tsv:1") && Catch::Contains("header"));
  write_text(d / "fields.tsv", "Source\tTarget\n1\t1\n( ( [MAX 1 ) ] )\t1\textra\n");
  REQUIRE_THROWS_WITH(mgl::datasets::read_listops_tsv(d / "fields.tsv"),
                      Catch::Contains("fields.tsv:3") && Catch::Contains("found 3"));
  write_text(d / "nofield.tsv", "Source\tTarget\n( ( [MAX 1 ) ] ) 1\n");
  REQUIRE_THROWS_WITH(mgl::datasets::read_listops_tsv(d / "nofield.tsv"), Catch::Contains("nofield.tsv:2"));
  write_text(d / "target.tsv", "Source\tTarget\n1\t1\n2\t2\n3\t12\n");
  REQUIRE_THROWS_WITH(mgl::datasets::read_listops_tsv(d / "target.tsv"),
                      Catch::Contains("target.tsv:4") && Catch::Contains("'12'"));
  write_text(d / "float.tsv", "Source\tTarget\n1\t1.0\n");
  REQUIRE_THROWS_WITH(mgl::datasets::read_listops_tsv(d / "float.tsv"), Catch::Contains("float.tsv:2"));
  REQUIRE_THROWS_WITH(mgl::datasets::read_listops_tsv(d / "absent.tsv"), Catch::Contains("absent.tsv"));
}

TEST_CASE("ListOps tokenisation: parentheses dropped, LRA's 17-symbol vocabulary", "[listops]") {
  int64_t unknown = -1;
  auto ids = ListOpsVocab::encode("( ( ( ( [MAX ( ( ( [MIN 8 ) 2 ) ] ) ) 0 ) 9 ) ] )", &unknown);
  // [MAX [MIN 8 2 ] 0 9 ]: MAX=13, MIN=12, digit d = 2+d, ']' = 16.
  CHECK(ids == std::vector<int64_t>{13, 12, 10, 4, 16, 2, 11, 16});
  CHECK(unknown == 0);
  CHECK(ListOpsVocab::encode("( ( [MED 1 ) 2 ) ] )") == std::vector<int64_t>{14, 3, 4, 16});
  CHECK(ListOpsVocab::encode("( ( [SM 1 ) 2 ) ] )") == std::vector<int64_t>{15, 3, 4, 16});
  // FIRST/LAST are defined but disabled in LRA: they are unknown to the vocabulary.
  CHECK(ListOpsVocab::encode("( ( [FIRST 1 ) ] ) 12", &unknown) ==
        std::vector<int64_t>{ListOpsVocab::unk, 3, 16, 1});
  CHECK(unknown == 2);
  CHECK(ListOpsVocab::size == 17);
}

TEST_CASE("ListOps evaluator on hand-computed expressions", "[listops]") {
  CHECK(evaluate_listops("7") == 7);
  CHECK(evaluate_listops("( ( ( [MIN 8 ) 2 ) ] )") == 2);
  CHECK(evaluate_listops("( ( ( ( [MAX 3 ) 9 ) 4 ) ] )") == 9);
  CHECK(evaluate_listops("( ( ( ( [MED 3 ) 1 ) 7 ) ] )") == 3);
  // MED of an even count: int(numpy.median) = floor of the mean of the two middle values.
  CHECK(evaluate_listops("( ( ( ( ( [MED 8 ) 1 ) 4 ) 2 ) ] )") == 3);  // 1 2 4 8 -> 3.0
  CHECK(evaluate_listops("( ( ( [MED 1 ) 2 ) ] )") == 1);              // 1.5
  CHECK(evaluate_listops("( ( ( [MED 5 ) 2 ) ] )") == 3);              // 3.5
  CHECK(evaluate_listops("( ( ( ( [SM 7 ) 8 ) 9 ) ] )") == 4);         // 24 mod 10
  CHECK(evaluate_listops("( ( ( [SM 0 ) 0 ) ] )") == 0);
  // Nesting: [MED [SM 5 6] [MAX 3 9] 4 7] -> MED(1, 9, 4, 7) = (4 + 7) / 2 -> 5.
  const std::string sm = "( ( ( [SM 5 ) 6 ) ] )", mx = "( ( ( [MAX 3 ) 9 ) ] )";
  CHECK(evaluate_listops("( ( ( ( ( [MED " + sm + " ) " + mx + " ) 4 ) 7 ) ] )") == 5);
  // [MIN [MAX [SM 9 9] 0] [MED 6 6 0]] -> MIN(8, 6) = 6.
  CHECK(evaluate_listops("( ( ( [MIN ( ( ( [MAX " + std::string("( ( ( [SM 9 ) 9 ) ] )") +
                         " ) 0 ) ] ) ) ( ( ( ( [MED 6 ) 6 ) 0 ) ] ) ) ] )") == 6);
  CHECK(evaluate_listops("( ( ( [FIRST 3 ) 4 ) ] )") == 3);
  CHECK(evaluate_listops("( ( ( [LAST 3 ) 4 ) ] )") == 4);
}

TEST_CASE("ListOps evaluator refuses malformed expressions", "[listops]") {
  CHECK_THROWS_AS(evaluate_listops(""), std::invalid_argument);
  CHECK_THROWS_AS(evaluate_listops("( ( [MIN 8 ) 2 )"), std::invalid_argument);    // no ']'
  CHECK_THROWS_AS(evaluate_listops("8 ]"), std::invalid_argument);                 // stray ']'
  CHECK_THROWS_AS(evaluate_listops("( ( [MIN 8 ) ] ) )"), std::invalid_argument);  // unbalanced ')'
  CHECK_THROWS_AS(evaluate_listops("( ( [MIN 8 ) ] "), std::invalid_argument);     // unclosed '('
  CHECK_THROWS_AS(evaluate_listops("( [MIN ] )"), std::invalid_argument);          // no arguments
  CHECK_THROWS_AS(evaluate_listops("3 4"), std::invalid_argument);
  CHECK_THROWS_WITH(evaluate_listops("( ( [FOO 8 ) ] )"), Catch::Contains("[FOO"));
  CHECK_THROWS_AS(evaluate_listops("( ( [MIN 12 ) ] )"), std::invalid_argument);
}

TEST_CASE("ListOps generator: LRA's grammar, strict lengths, unique, deterministic", "[listops][generator]") {
  TempDir d("listops-gen");
  mgl::datasets::ListOpsGenOptions o;
  o.min_length = 5;
  o.max_length = 60;
  o.num_train = 200;
  o.num_val = 50;
  o.num_test = 50;
  o.seed = 7;
  int64_t progress_calls = 0, last_done = 0;
  auto stats = mgl::datasets::generate_listops(o, d / "a", [&](int64_t done, int64_t total) {
    ++progress_calls;
    last_done = done;
    CHECK(total == 300);
  });
  CHECK(progress_calls >= 1);
  CHECK(last_done == 300);
  int64_t labelled = 0;
  for (auto c : stats.label_counts) labelled += c;
  CHECK(labelled == 300);
  CHECK(stats.generated == 300 + stats.rejected_length + stats.duplicates);
  CHECK(stats.rejected_length > 0);  // a root is a single digit 3 times out of 4
  CHECK(stats.mean_length > 5);
  CHECK(stats.mean_length < 60);

  // Same seed, same bytes; another seed, other data.
  mgl::datasets::generate_listops(o, d / "b");
  o.seed = 8;
  mgl::datasets::generate_listops(o, d / "c");
  for (const char* f : {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"}) {
    CHECK(slurp(d / "a" / f) == slurp(d / "b" / f));
    CHECK(slurp(d / "a" / f) != slurp(d / "c" / f));
  }
  for (const auto& e : std::filesystem::directory_iterator(d / "a")) CHECK(e.path().extension() == ".tsv");
  CHECK(slurp(d / "a" / "basic_val.tsv").rfind("Source\tTarget\n", 0) == 0);

  std::set<std::string> seen;
  std::vector<int64_t> labels(10, 0);
  const std::pair<const char*, size_t> splits[] = {
      {"basic_train.tsv", 200}, {"basic_val.tsv", 50}, {"basic_test.tsv", 50}};
  for (const auto& [name, count] : splits) {
    auto ex = mgl::datasets::read_listops_tsv(d / "a" / name);
    REQUIRE(ex.size() == count);
    for (const auto& e : ex) {
      const auto tokens = split_ws(without_parens(e.source));
      const auto length = static_cast<int64_t>(tokens.size());
      CHECK(length > o.min_length);
      CHECK(length < o.max_length);
      CHECK(static_cast<int64_t>(ListOpsVocab::encode(e.source).size()) == length);
      CHECK(tree_depth(e.source) <= o.max_depth);
      CHECK(e.target == evaluate_listops(e.source));
      size_t pos = 0;
      CHECK(lra_to_string(tokens, pos) == e.source);  // exact left-nested, single-spaced form
      CHECK(pos == tokens.size());
      CHECK(seen.insert(e.source).second);  // no duplicates within or across splits
      ++labels[e.target];
    }
  }
  CHECK(labels == stats.label_counts);
}

TEST_CASE("ListOps generator: depth limit and argument counts", "[listops][generator]") {
  TempDir d("listops-gen");
  mgl::datasets::ListOpsGenOptions o;
  o.max_depth = 3;
  o.max_args = 3;
  o.min_length = 3;
  o.max_length = 40;
  o.num_train = 100;
  o.num_val = 10;
  o.num_test = 10;
  o.seed = 1;
  mgl::datasets::generate_listops(o, d.path());
  bool reached_depth = false;
  for (const auto& e : mgl::datasets::read_listops_tsv(d / "basic_train.tsv")) {
    CHECK(tree_depth(e.source) <= 3);
    reached_depth = reached_depth || tree_depth(e.source) == 3;
    // At most max_args arguments per operator: count them with a stack over the prefix tokens.
    std::vector<int> args;
    for (const auto& t : split_ws(without_parens(e.source))) {
      if (t == "]") {
        CHECK(args.back() >= 2);
        CHECK(args.back() <= 3);
        args.pop_back();
        continue;
      }
      if (!args.empty()) ++args.back();
      if (t[0] == '[') args.push_back(0);
    }
    CHECK(e.target == evaluate_listops(e.source));
  }
  CHECK(reached_depth);
}

TEST_CASE("ListOps generator refuses an empty length window", "[listops][generator]") {
  TempDir d("listops-gen");
  mgl::datasets::ListOpsGenOptions o;
  o.min_length = 10;
  o.max_length = 11;
  CHECK_THROWS_AS(mgl::datasets::generate_listops(o, d.path()), std::invalid_argument);
  o.max_length = 100;
  o.max_args = 1;
  CHECK_THROWS_AS(mgl::datasets::generate_listops(o, d.path()), std::invalid_argument);
}
