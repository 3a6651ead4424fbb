#include "datasets/lra/listops.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>
#include <string_view>
#include <unordered_set>
#include <utility>

namespace mgl::datasets {

namespace {

// The operators in LRA's order (OPERATORS = [MIN, MAX, MED, SUM_MOD]); FIRST and LAST follow so the
// evaluator can read expressions that use them, but the generator draws only the first four.
constexpr std::array<std::string_view, 6> kOperatorNames = {"[MIN", "[MAX", "[MED", "[SM", "[FIRST", "[LAST"};
enum Operator : int { kMin = 0, kMax, kMed, kSumMod, kFirst, kLast };
constexpr int kGeneratedOperators = 4;

int operator_index(std::string_view token) {
  for (size_t i = 0; i < kOperatorNames.size(); ++i)
    if (token == kOperatorNames[i]) return static_cast<int>(i);
  return -1;
}

// The value of one operator applied to its arguments (§4.1 "Evaluation"). `args` are 0..9.
int apply_operator(int op, const int8_t* args, size_t n) {
  if (op == kFirst) return args[0];
  if (op == kLast) return args[n - 1];
  // MIN/MAX/MED/SM only need the multiset of the arguments: count the ten values.
  std::array<int64_t, 10> count{};
  int64_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    ++count[args[i]];
    sum += args[i];
  }
  auto nth = [&](int64_t rank) {  // the rank-th smallest argument, 0-based
    for (int v = 0; v < 10; ++v) {
      if (rank < count[v]) return v;
      rank -= count[v];
    }
    return 9;
  };
  switch (op) {
    case kMin:
      return nth(0);
    case kMax:
      return nth(static_cast<int64_t>(n) - 1);
    case kMed: {
      // int(numpy.median(...)): the middle value, or for an even count the mean of the two middle
      // values truncated toward zero, which is the floor since values are >= 0.
      const int64_t m = static_cast<int64_t>(n);
      if (m % 2 == 1) return nth(m / 2);
      return (nth(m / 2 - 1) + nth(m / 2)) / 2;
    }
    default:
      return static_cast<int>(sum % 10);
  }
}

// Splits on runs of ASCII whitespace (Python's str.split()).
template <typename Fn>
void for_each_token(std::string_view s, Fn&& fn) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) fn(s.substr(i, j - i));
    i = j;
  }
}

// ---- the generator's random numbers -------------------------------------------------------------
// std::mt19937_64's output sequence is fixed by the standard; the distributions are not, so the
// draws below are written out to give the same files with every standard library.
class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  // U[0,1) with 53 random bits (like Python's random.random()).
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  // Uniform on {0, ..., n-1}, n >= 1, by rejection of the incomplete top block (no modulo bias).
  uint64_t below(uint64_t n) {
    const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
    uint64_t x;
    do x = engine_();
    while (x >= limit);
    return x % n;
  }

 private:
  std::mt19937_64 engine_;
};

// The tree is kept in a compact form: one byte per token of the expression without parentheses
// ('0'..'9', 'a'+operator, ']'). The parenthesised string is a function of this token sequence
// (serialize() below), so de-duplicating the compact form is de-duplicating the serialized string,
// at a fifth of the memory (100K expressions of ~1K tokens).
constexpr char kEndToken = ']';
inline bool is_operator_byte(char c) {
  return c >= 'a' && c < 'a' + static_cast<char>(kOperatorNames.size());
}

class TreeGenerator {
 public:
  TreeGenerator(const ListOpsGenOptions& o, Random& rng) : o_(o), rng_(rng) {}

  // Draws one root tree (LRA's generate_tree(1, ...)) into `tokens`; returns its value, or -1 when
  // the tree was abandoned because it already has max_length tokens or more. Abandoning a tree the
  // length filter will reject anyway leaves the distribution of the kept trees unchanged: every
  // tree starts from fresh independent draws.
  int draw(std::string& tokens) {
    tokens.clear();
    values_.clear();
    if (!node(1, tokens)) return -1;
    return values_.back();
  }

 private:
  // generate_tree(depth): a leaf with probability 0.75 (always at max_depth), otherwise an
  // operator over k ~ U{2..max_args} children generated first, then the operator drawn uniformly.
  bool node(int64_t depth, std::string& tokens) {
    const double r = depth < o_.max_depth ? rng_.uniform() : 1.0;
    if (r > 0.25) {
      const int v = static_cast<int>(rng_.below(10));
      tokens.push_back(static_cast<char>('0' + v));
      values_.push_back(static_cast<int8_t>(v));
      return true;
    }
    const int64_t k = 2 + static_cast<int64_t>(rng_.below(static_cast<uint64_t>(o_.max_args - 1)));
    const size_t op_at = tokens.size();
    tokens.push_back('?');  // the operator, drawn after the children as LRA does
    const size_t first_value = values_.size();
    for (int64_t i = 0; i < k; ++i) {
      if (!node(depth + 1, tokens)) return false;
      if (static_cast<int64_t>(tokens.size()) >= o_.max_length) return false;
    }
    const int op = static_cast<int>(rng_.below(kGeneratedOperators));
    tokens[op_at] = static_cast<char>('a' + op);
    tokens.push_back(kEndToken);
    const int v = apply_operator(op, values_.data() + first_value, values_.size() - first_value);
    values_.resize(first_value);
    values_.push_back(static_cast<int8_t>(v));
    return true;
  }

  const ListOpsGenOptions& o_;
  Random& rng_;
  std::vector<int8_t> values_;  // a stack of the values of finished children
};

// Writes LRA's to_string() of the tree: an operator node with children c1..ck is the left-nested
// tuple ((((op, c1), c2), ..., ck), ']') and a pair (a, b) prints as "( a b )", so the node reads
// "( " × (k+1), op, then " ci )" for each child, then " ] )".
void serialize(std::string_view tokens, std::string& out, std::vector<int64_t>& children,
               std::vector<size_t>& open) {
  out.clear();
  children.assign(tokens.size(), 0);
  open.clear();
  for (size_t i = 0; i < tokens.size(); ++i) {  // pass 1: the child count of every operator
    const char t = tokens[i];
    if (t == kEndToken) {
      open.pop_back();
      continue;
    }
    if (!open.empty()) ++children[open.back()];
    if (is_operator_byte(t)) open.push_back(i);
  }
  open.clear();
  for (size_t i = 0; i < tokens.size(); ++i) {  // pass 2: the text
    const char t = tokens[i];
    if (t == kEndToken) {
      out += " ] )";
      open.pop_back();
      if (!open.empty()) out += " )";  // this operator node was a child of the enclosing one
      continue;
    }
    if (!open.empty()) out += ' ';
    if (is_operator_byte(t)) {
      for (int64_t c = 0; c <= children[i]; ++c) out += "( ";
      out += kOperatorNames[t - 'a'];
      open.push_back(i);
    } else {
      out += t;
      if (!open.empty()) out += " )";
    }
  }
}

struct Kept {
  const std::string* tokens;  // owned by the de-duplication set (node addresses are stable)
  int8_t target;
};

void write_split(const std::filesystem::path& file, const std::vector<Kept>& all, size_t begin, size_t end) {
  // Written beside the target and renamed into place, so a reader never sees a half-written file.
  std::filesystem::path tmp = file;
  tmp += ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("{}: cannot create", tmp.string()));
  std::string line;
  std::vector<int64_t> children;
  std::vector<size_t> open;
  bool ok = std::fputs("Source\tTarget\n", f) >= 0;
  for (size_t i = begin; i < end && ok; ++i) {
    serialize(*all[i].tokens, line, children, open);
    line += '\t';
    line += static_cast<char>('0' + all[i].target);
    line += '\n';
    ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  }
  if (std::fclose(f) != 0 || !ok) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(fmt::format("{}: write failed", tmp.string()));
  }
  std::filesystem::rename(tmp, file);
}

}  // namespace

std::vector<ListOpsExample> read_listops_tsv(const std::filesystem::path& file, int64_t limit) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::vector<ListOpsExample> out;
  std::string line;
  int64_t line_no = 0, blank_line = 0;
  auto fail = [&](int64_t at, const std::string& what) {
    return std::runtime_error(fmt::format("{}:{}: {}", file.string(), at, what));
  };
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // tolerate CRLF line ends
    if (line_no == 1) {
      if (line != "Source\tTarget")
        throw fail(1, fmt::format("expected the header 'Source<TAB>Target', found '{}'", line.substr(0, 60)));
      continue;
    }
    if (limit >= 0 && static_cast<int64_t>(out.size()) >= limit) break;
    if (line.empty()) {  // allowed only at the end of the file
      if (!blank_line) blank_line = line_no;
      continue;
    }
    if (blank_line) throw fail(blank_line, "empty line before the end of the file");
    const size_t tab = line.find('\t');
    const size_t fields = 1 + static_cast<size_t>(std::count(line.begin(), line.end(), '\t'));
    if (fields != 2)
      throw fail(line_no, fmt::format("expected 2 tab-separated fields (Source, Target), found {}", fields));
    const std::string_view target(line.data() + tab + 1, line.size() - tab - 1);
    int64_t value = -1;
    const auto [end, ec] = std::from_chars(target.data(), target.data() + target.size(), value);
    if (ec != std::errc() || end != target.data() + target.size() || value < 0 || value > 9)
      throw fail(line_no, fmt::format("target '{}' is not an integer in 0..9", target));
    out.push_back({line.substr(0, tab), value, line_no});
  }
  if (line_no == 0) throw fail(1, "empty file (expected the header 'Source<TAB>Target')");
  return out;
}

std::vector<int64_t> ListOpsVocab::encode(const std::string& source, int64_t* unknown,
                                          std::string* first_unknown) {
  // LRA: source.replace(']', 'X').replace('(', '').replace(')', '') then split on whitespace.
  // Parentheses are deleted as characters, wherever they are.
  std::string cleaned;
  cleaned.reserve(source.size());
  for (char c : source)
    if (c != '(' && c != ')') cleaned += c;
  std::vector<int64_t> ids;
  ids.reserve(cleaned.size() / 2 + 1);
  int64_t unk_count = 0;
  if (first_unknown) first_unknown->clear();
  for_each_token(cleaned, [&](std::string_view t) {
    int64_t id = unk;
    if (t.size() == 1 && t[0] >= '0' && t[0] <= '9') {
      id = 2 + (t[0] - '0');
    } else if (t == "]" || t == "X") {  // after LRA's ']' -> 'X' both are the same symbol
      id = 16;
    } else {
      const int op = operator_index(t);
      if (op >= 0 && op < kGeneratedOperators) id = 12 + op;
    }
    if (id == unk && unk_count++ == 0 && first_unknown) first_unknown->assign(t);
    ids.push_back(id);
  });
  if (unknown) *unknown = unk_count;
  return ids;
}

int64_t evaluate_listops(const std::string& source) {
  // A prefix reading of the tokens (LRA's to_value() on the tuple tree is the same thing): an
  // operator opens a frame, digits and finished frames are arguments of the innermost frame, `]`
  // closes it. Parentheses carry no information beyond that but must balance.
  std::vector<int8_t> values;                  // arguments of all open frames, innermost last
  std::vector<std::pair<int, size_t>> frames;  // operator, index of its first argument in `values`
  int64_t parens = 0, position = 0, result = -1;
  auto bad = [&](const std::string& what) {
    return std::invalid_argument(fmt::format("ListOps expression, token {}: {}", position, what));
  };
  auto bad_end = [&](const std::string& what) {
    return std::invalid_argument(fmt::format("ListOps expression, at the end: {}", what));
  };
  auto emit = [&](int v) {
    if (frames.empty()) {
      if (result >= 0) throw bad("a second top-level value");
      result = v;
    } else {
      values.push_back(static_cast<int8_t>(v));
    }
  };
  for_each_token(source, [&](std::string_view t) {
    ++position;
    if (t == "(") {
      ++parens;
    } else if (t == ")") {
      if (--parens < 0) throw bad("')' without a matching '('");
    } else if (t.size() == 1 && t[0] >= '0' && t[0] <= '9') {
      emit(t[0] - '0');
    } else if (t == "]") {
      if (frames.empty()) throw bad("']' without an operator");
      const auto [op, first] = frames.back();
      if (values.size() == first) throw bad(fmt::format("{} without arguments", kOperatorNames[op]));
      const int v = apply_operator(op, values.data() + first, values.size() - first);
      values.resize(first);
      frames.pop_back();
      emit(v);
    } else {
      const int op = operator_index(t);
      if (op < 0) throw bad(fmt::format("unknown token '{}'", t));
      if (frames.empty() && result >= 0) throw bad("an operator after the complete expression");
      frames.push_back({op, values.size()});
    }
  });
  if (!frames.empty()) throw bad_end(fmt::format("{} operator(s) not closed by ']'", frames.size()));
  if (parens != 0) throw bad_end(fmt::format("{} '(' not closed", parens));
  if (result < 0) throw bad_end("no value");
  return result;
}

ListOpsGenStats generate_listops(const ListOpsGenOptions& o, const std::filesystem::path& out_dir,
                                 const std::function<void(int64_t, int64_t)>& progress) {
  if (o.max_depth < 1) throw std::invalid_argument(fmt::format("ListOps max_depth {} < 1", o.max_depth));
  if (o.max_args < 2) throw std::invalid_argument(fmt::format("ListOps max_args {} < 2", o.max_args));
  if (o.max_length - o.min_length < 2)
    throw std::invalid_argument(
        fmt::format("ListOps lengths must satisfy min_length < L < max_length for some L "
                    "(min_length {}, max_length {})",
                    o.min_length, o.max_length));
  if (o.num_train < 0 || o.num_val < 0 || o.num_test < 0)
    throw std::invalid_argument("ListOps split sizes must be >= 0");
  const int64_t total = o.num_train + o.num_val + o.num_test;

  ListOpsGenStats stats;
  Random rng(o.seed);
  TreeGenerator gen(o, rng);
  std::unordered_set<std::string> seen;
  seen.reserve(static_cast<size_t>(total) * 2);
  std::vector<Kept> kept;
  kept.reserve(static_cast<size_t>(total));
  std::string tokens;
  double length_sum = 0;
  // Settings whose length window holds fewer distinct expressions than asked for would loop for
  // ever; give up after this many draws in a row that add nothing.
  constexpr int64_t kMaxFruitlessDraws = 20'000'000;
  int64_t fruitless = 0;
  while (static_cast<int64_t>(kept.size()) < total) {
    ++stats.generated;
    const int value = gen.draw(tokens);
    const auto length = static_cast<int64_t>(tokens.size());
    if (value < 0 || length <= o.min_length || length >= o.max_length) {
      ++stats.rejected_length;
    } else if (auto [it, fresh] = seen.insert(tokens); !fresh) {
      ++stats.duplicates;
    } else {
      kept.push_back({&*it, static_cast<int8_t>(value)});
      ++stats.label_counts[value];
      length_sum += static_cast<double>(length);
      fruitless = -1;
      if (progress && kept.size() % 1000 == 0) progress(static_cast<int64_t>(kept.size()), total);
    }
    if (++fruitless > kMaxFruitlessDraws)
      throw std::runtime_error(
          fmt::format("ListOps generator: only {} unique expressions after {} draws; the length "
                      "window ({}, {}) with max_depth {} and max_args {} seems too narrow",
                      kept.size(), stats.generated, o.min_length, o.max_length, o.max_depth, o.max_args));
  }
  stats.mean_length = kept.empty() ? 0.0 : length_sum / static_cast<double>(kept.size());

  // LRA splits the examples in the iteration order of a Python set, i.e. an arbitrary order
  // unrelated to generation time; a seeded Fisher-Yates shuffle stands in for it.
  for (size_t i = kept.size(); i > 1; --i) std::swap(kept[i - 1], kept[rng.below(i)]);

  std::filesystem::create_directories(out_dir);
  const auto n_train = static_cast<size_t>(o.num_train), n_val = static_cast<size_t>(o.num_val);
  write_split(out_dir / "basic_train.tsv", kept, 0, n_train);
  write_split(out_dir / "basic_val.tsv", kept, n_train, n_train + n_val);
  write_split(out_dir / "basic_test.tsv", kept, n_train + n_val, kept.size());
  if (progress && kept.size() % 1000 != 0) progress(static_cast<int64_t>(kept.size()), total);
  return stats;
}

}  // namespace mgl::datasets
