// `megalodon data listops` (the LRA ListOps generator, paper-benchmarks §4.1) and
// `megalodon data listops-info` (reads basic_*.tsv files back and checks every target).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "cli/args.h"
#include "cli/data/data.h"
#include "datasets/lra/listops.h"

namespace mgl::cli {
namespace {

int64_t parse_int(const ParsedArgs& p, const std::string& key, int64_t def, int64_t lo = 0) {
  const std::string v = p.option(key);
  if (v.empty()) return def;
  int64_t out = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || end != v.data() + v.size())
    throw std::invalid_argument(fmt::format("{}: '{}' is not an integer", key, v));
  if (out < lo) throw std::invalid_argument(fmt::format("{}: {} is below the minimum {}", key, out, lo));
  return out;
}

// "  label 0:  1691 (16.9%)" lines, and the class a constant predictor would pick.
int64_t print_histogram(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (auto c : counts) total += c;
  const auto majority = static_cast<int64_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  for (size_t c = 0; c < counts.size(); ++c)
    fmt::print("  label {}: {:>7} ({:5.1f}%){}\n", c, counts[c], total ? 100.0 * counts[c] / total : 0.0,
               static_cast<int64_t>(c) == majority ? "  <- majority" : "");
  return majority;
}

const char* kListOpsHelp =
    "usage: megalodon data listops --out DIR [options]\n"
    "Generates LRA ListOps (paper-benchmarks §4.1) into DIR/basic_{train,val,test}.tsv.\n\n"
    "  --train 96000 --val 2000 --test 2000   split sizes\n"
    "  --min-length 500 --max-length 2000     strict bounds on the tokens without parentheses\n"
    "  --max-depth 10 --max-args 10           tree depth (root = 1) and arguments per operator\n"
    "  --seed 0                               deterministic for a seed\n\n"
    "Small faithful instances keep the grammar and lower the lengths, e.g. --min-length 20 --max-length "
    "200.\n";

int listops_main(const std::vector<std::string>& args) {
  const auto p = parse_args(args,
                            {"--out", "--train", "--val", "--test", "--min-length", "--max-length",
                             "--max-depth", "--max-args", "--seed"},
                            {"--help"});
  if (p.flag("--help") || p.option("--out").empty() || !p.positional.empty()) {
    std::fputs(kListOpsHelp, p.flag("--help") ? stdout : stderr);
    return p.flag("--help") ? 0 : 2;
  }
  datasets::ListOpsGenOptions o;
  o.num_train = parse_int(p, "--train", o.num_train);
  o.num_val = parse_int(p, "--val", o.num_val);
  o.num_test = parse_int(p, "--test", o.num_test);
  o.min_length = parse_int(p, "--min-length", o.min_length);
  o.max_length = parse_int(p, "--max-length", o.max_length);
  o.max_depth = parse_int(p, "--max-depth", o.max_depth, 1);
  o.max_args = parse_int(p, "--max-args", o.max_args, 2);
  o.seed = static_cast<uint64_t>(parse_int(p, "--seed", 0));
  const std::filesystem::path out = p.option("--out");
  const int64_t total = o.num_train + o.num_val + o.num_test;

  fmt::print(
      "ListOps: {} train / {} val / {} test, {} < length < {}, max depth {}, max args {}, seed {} -> {}\n",
      o.num_train, o.num_val, o.num_test, o.min_length, o.max_length, o.max_depth, o.max_args, o.seed,
      out.string());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double last_print = -1;
  auto progress = [&](int64_t done, int64_t all) {
    const double t = seconds();
    if (done < all && t - last_print < 2.0) return;
    last_print = t;
    std::fprintf(stderr, "  %lld / %lld unique expressions (%.1f s)\n", static_cast<long long>(done),
                 static_cast<long long>(all), t);
  };
  const auto stats = datasets::generate_listops(o, out, progress);
  const double elapsed = seconds();

  fmt::print("done in {:.1f} s\n", elapsed);
  fmt::print("  root trees drawn     {}\n", stats.generated);
  fmt::print("  rejected (length)    {} ({:.1f}%)\n", stats.rejected_length,
             stats.generated ? 100.0 * stats.rejected_length / stats.generated : 0.0);
  fmt::print("  duplicates           {}\n", stats.duplicates);
  fmt::print("  kept                 {}\n", total);
  fmt::print("  mean length          {:.1f} tokens (without parentheses)\n", stats.mean_length);
  fmt::print("labels over all splits:\n");
  const int64_t majority = print_histogram(stats.label_counts);

  // The labels are skewed (MIN and MAX favour 0 and 9): the accuracy of always answering the
  // majority class is the floor a model has to beat.
  const auto test = datasets::read_listops_tsv(out / "basic_test.tsv");
  int64_t hits = 0;
  for (const auto& e : test) hits += e.target == majority;
  fmt::print("majority-class baseline on the test split: class {}, {:.2f}% ({} of {})\n", majority,
             test.empty() ? 0.0 : 100.0 * hits / test.size(), hits, test.size());
  for (const char* f : {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"})
    fmt::print("wrote {}\n", (out / f).string());
  return 0;
}

int listops_info_main(const std::vector<std::string>& args) {
  const auto p = parse_args(args, {"--limit"}, {"--help"});
  if (p.flag("--help") || p.positional.empty()) {
    std::fputs(
        "usage: megalodon data listops-info FILE.tsv ... [--limit N]\n\nReads ListOps TSV files (header "
        "Source<TAB>Target), prints counts, token-length statistics and the label\nhistogram, and checks "
        "every target against the evaluator. Exit status 1 if any target disagrees.\n",
        p.flag("--help") ? stdout : stderr);
    return p.flag("--help") ? 0 : 2;
  }
  const int64_t limit = parse_int(p, "--limit", -1, -1);
  bool all_ok = true;
  for (const auto& file : p.positional) {
    const auto examples = datasets::read_listops_tsv(file, limit);
    std::vector<int64_t> labels(10, 0);
    int64_t min_len = std::numeric_limits<int64_t>::max(), max_len = 0, unknown = 0, mismatches = 0,
            malformed = 0;
    double sum_len = 0;
    std::vector<std::string> reports;
    for (size_t i = 0; i < examples.size(); ++i) {
      const auto& e = examples[i];
      const int64_t line = static_cast<int64_t>(i) + 2;  // after the header; no blank lines in between
      int64_t unk = 0;
      const auto len = static_cast<int64_t>(datasets::ListOpsVocab::encode(e.source, &unk).size());
      unknown += unk;
      min_len = std::min(min_len, len);
      max_len = std::max(max_len, len);
      sum_len += static_cast<double>(len);
      ++labels[e.target];
      try {
        const int64_t v = datasets::evaluate_listops(e.source);
        if (v != e.target) {
          ++mismatches;
          if (reports.size() < 5)
            reports.push_back(fmt::format("line {}: target {}, evaluates to {}", line, e.target, v));
        }
      } catch (const std::invalid_argument& err) {
        ++malformed;
        if (reports.size() < 5) reports.push_back(fmt::format("line {}: {}", line, err.what()));
      }
    }
    fmt::print("{}: {} examples\n", file, examples.size());
    if (!examples.empty())
      fmt::print("  length (tokens without parentheses): min {}, mean {:.1f}, max {}\n", min_len,
                 sum_len / static_cast<double>(examples.size()), max_len);
    if (unknown) fmt::print("  unknown tokens: {}\n", unknown);
    const int64_t majority = print_histogram(labels);
    fmt::print("  majority-class accuracy: {:.2f}%\n",
               examples.empty() ? 0.0 : 100.0 * labels[majority] / static_cast<double>(examples.size()));
    fmt::print("  targets checked by the evaluator: {} agree, {} disagree, {} malformed\n",
               static_cast<int64_t>(examples.size()) - mismatches - malformed, mismatches, malformed);
    for (const auto& r : reports) fmt::print("    {}\n", r);
    all_ok = all_ok && mismatches == 0 && malformed == 0;
  }
  return all_ok ? 0 : 1;
}

const DataTool kListOps{"listops", "generate LRA ListOps TSVs (basic_{train,val,test}.tsv)", listops_main};
const DataTool kListOpsInfo{"listops-info", "counts, lengths, labels of ListOps TSVs; checks every target",
                            listops_info_main};

}  // namespace
}  // namespace mgl::cli
