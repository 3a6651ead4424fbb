// `megalodon lm-eval` (streaming perplexity, perplexity versus context length) and
// `megalodon generate` (text from a trained language model), both on a run directory of the `lm` task.
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/models/factory.h"
#include "harness/report/plot.h"
#include "harness/run.h"
#include "harness/train/trainer.h"
#include "harness/util/files.h"
#include "tasks/language_model.h"
#include "tasks/lm_eval.h"

namespace mgl::cli {
namespace {

namespace fs = std::filesystem;
using harness::Split;

const char* kLmEvalHelp = R"(usage: megalodon lm-eval <run_dir> [--split test|val] [--which best|latest|FILE]
                         [--contexts auto|N,N,...] [--blocks K] [--segment N] [--tsn-window T]
                         [--max-docs N] [--max-tokens N] [--out FILE.json] [--plot FILE.png]
                         [key.path=value ...]

Streaming evaluation of a language-model run (task "lm"): every document of the split is fed
segment by segment with the carried state (constant memory), and perplexity is reported
  - over whole documents (unlimited context; Megalodon's state carries everything), with the
    per-position breakdown (tokens at positions [C, 2C), [2C, 4C), ... of their document);
  - at each context length X of --contexts (the state is reset every X tokens), the
    perplexity-versus-context curve; auto = 4096, 8192, ... below the longest document;
  - with --blocks K: the split cut into K contiguous blocks, each one stream (the paper's
    WikiText-103 protocol, K = 10), instead of the context sweep.
Word-level perplexity is exp(total NLL / words) (PG-19's definition; WikiText: words = tokens).

  --segment N      tokens per forward call (default 2·chunk, as the official eval)
  --tsn-window T   the official eval's TimestepNorm window heuristic (spec §7.2, T = 8); off by default
  --max-docs N     only the first N documents;  --max-tokens N: cut documents to N tokens
  --out FILE       write the report as JSON (atomically); --plot FILE.png draws ppl vs context
)";

const char* kGenerateHelp = R"(usage: megalodon generate <run_dir> (--prompt TEXT | --prompt-file FILE)
                           [--max-tokens N] [--greedy] [--temperature T] [--top-k K] [--top-p P]
                           [--seed S] [--which best|latest|FILE] [--stop-at-eos] [key.path=value ...]

Prints the prompt, then the continuation as it is produced. The prompt is prefilled two chunks per
call, then one token per call with the carried state (Megalodon: chunk-local KV cache + CEMA and
norm state; the Transformer: its full KV cache). Sampling: --greedy (argmax), or softmax at
--temperature (default 1) restricted to the --top-k most likely ids and/or the smallest set of
mass --top-p; the same --seed gives the same text.
)";

std::vector<int64_t> parse_int_list(const std::string& s, const char* what) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 0) throw std::invalid_argument(fmt::format("{}: '{}' is not a token count", what, item));
    out.push_back(v);
  }
  return out;
}

double param_count(const torch::nn::Module& m) { return double(count_parameters(m)); }

int lm_eval_main(const std::vector<std::string>& args) {
  auto p = parse_args(args, {"--split", "--which", "--contexts", "--blocks", "--segment", "--tsn-window", "--max-docs",
                             "--max-tokens", "--out", "--plot"},
                      {"--help"});
  if (p.flag("--help")) return std::fputs(kLmEvalHelp, stdout), 0;
  if (p.positional.size() != 1) return std::fputs(kLmEvalHelp, stderr), 2;
  const fs::path run_dir = p.positional[0];
  const std::string split_name = p.option("--split", "test");
  if (split_name != "test" && split_name != "val") throw std::invalid_argument("--split must be test or val");
  const Split split = split_name == "test" ? Split::test : Split::val;
  auto r = harness::load_run(run_dir, p.option("--which", "best"), p.overrides);
  auto* task = dynamic_cast<tasks::LanguageModelTask*>(r.task.get());
  if (!task) throw std::invalid_argument(fmt::format("{}: not a language-model run (task.name = \"{}\")",
                                                     run_dir.string(), r.cfg.get_string("task.name")));
  const torch::Device device = harness::run_device(r.cfg);
  r.model->to(device);
  auto& lm = task->lm();
  const auto& toks = task->tokens(split);

  tasks::StreamEvalOptions base;
  base.chunk = task->chunk_size();
  base.segment = p.int_option("--segment", 0, 0);
  base.tsn_window_chunks = p.int_option("--tsn-window", 0, 0);
  base.max_documents = p.int_option("--max-docs", -1, -1);
  base.max_tokens_per_document = p.int_option("--max-tokens", -1, -1);
  base.device = device;
  int64_t longest = 0, total = 0;
  const int64_t ndocs = base.max_documents >= 0 ? std::min(base.max_documents, toks.num_documents()) : toks.num_documents();
  for (int64_t d = 0; d < ndocs; ++d) {
    int64_t n = toks.document_end(d) - toks.document_begin(d);
    if (base.max_tokens_per_document > 0) n = std::min(n, base.max_tokens_per_document);
    longest = std::max(longest, n);
    total += n;
  }
  if (total < 2) throw std::runtime_error(fmt::format("the {} split has no tokens to evaluate", split_name));

  // The passes: unlimited context (with the per-position breakdown), then the context sweep or blocks.
  std::vector<int64_t> contexts;
  const int64_t blocks = p.int_option("--blocks", 0, 0);
  if (blocks > 0) {
    contexts.push_back((total + blocks - 1) / blocks);
  } else {
    const std::string c = p.option("--contexts", "auto");
    if (c == "auto") {
      for (int64_t x = 4096; x < longest; x *= 2) contexts.push_back(x);
    } else {
      contexts = parse_int_list(c, "--contexts");
    }
  }
  const bool tty = isatty(fileno(stderr));
  auto progress_for = [&](const std::string& label) {
    return [label, tty, last = std::chrono::steady_clock::now()](int64_t done, int64_t all) mutable {
      const auto now = std::chrono::steady_clock::now();
      if (done < all && now - last < std::chrono::seconds(tty ? 1 : 30)) return;
      last = now;
      std::fprintf(stderr, tty ? "\r%s: %lld/%lld tokens%s" : "%s: %lld/%lld tokens%s\n", label.c_str(), (long long)done,
                   (long long)all, tty && done >= all ? "\n" : "");
    };
  };
  std::vector<int64_t> edges{0};
  for (int64_t e = task->chunk_size(); e < longest; e *= 2) edges.push_back(e);
  edges.push_back(longest + 1);

  nlohmann::json report;
  report["run"] = run_dir.string();
  report["split"] = split_name;
  report["which"] = p.option("--which", "best");
  report["model"] = lm.name();
  report["parameters"] = param_count(lm);
  report["task"] = task->describe();
  report["tokenizer"] = task->tokenizer().describe();
  report["segment"] = base.segment > 0 ? base.segment : 2 * base.chunk;
  report["chunk"] = base.chunk;
  report["tsn_window_chunks"] = base.tsn_window_chunks;
  report["device"] = device.str();
  report["threads"] = torch::get_num_threads();

  auto pass_json = [&](int64_t context, const tasks::StreamEvalResult& res) {
    return nlohmann::json{{"context", context == 0 ? nlohmann::json("document") : nlohmann::json(context)},
                          {"ppl", res.ppl()},
                          {"word_ppl", res.word_ppl()},
                          {"nll_sum", res.nll_sum},
                          {"tokens", res.tokens},
                          {"words", res.words},
                          {"documents", res.documents},
                          {"seconds", res.seconds},
                          {"tokens_per_second", res.tokens / std::max(1e-9, res.seconds)}};
  };
  // Unlimited context.
  tasks::StreamEvalOptions full = base;
  full.position_edges = edges;
  const auto whole = tasks::stream_eval(lm, toks, full, progress_for("whole documents"));
  report["documents"] = whole.documents;
  report["longest_document"] = whole.longest_document;
  report["tokens"] = whole.tokens;
  report["words"] = whole.words;
  nlohmann::json passes = nlohmann::json::array();
  passes.push_back(pass_json(0, whole));
  nlohmann::json by_pos = nlohmann::json::array();
  for (size_t b = 0; b + 1 < edges.size(); ++b)
    if (whole.bucket_tokens[b] > 0)
      by_pos.push_back({{"from", edges[b]},
                        {"to", std::min(edges[b + 1], longest)},
                        {"tokens", whole.bucket_tokens[b]},
                        {"ppl", std::exp(whole.bucket_nll[b] / whole.bucket_tokens[b])}});
  for (int64_t x : contexts) {
    tasks::StreamEvalOptions o = base;
    o.context = x;
    passes.push_back(pass_json(x, tasks::stream_eval(lm, toks, o, progress_for(fmt::format("context {}", x)))));
  }
  report["passes"] = passes;
  report["by_position"] = by_pos;
  if (blocks > 0) report["blocks"] = blocks;

  std::printf("%s on %s (%s), %lld documents, %lld tokens, %.0f words\n\n", lm.name().c_str(), split_name.c_str(),
              task->tokenizer().describe().c_str(), (long long)whole.documents, (long long)whole.tokens, whole.words);
  std::printf("| context | ppl | word ppl | tokens/s |\n|---:|---:|---:|---:|\n");
  for (const auto& ps : passes)
    std::printf("| %s | %.3f | %.3f | %.0f |\n",
                ps["context"].is_string() ? "whole document" : std::to_string(ps["context"].get<int64_t>()).c_str(),
                ps["ppl"].get<double>(), ps["word_ppl"].get<double>(), ps["tokens_per_second"].get<double>());
  std::printf("\nper position (whole-document pass):\n| positions | tokens | ppl |\n|---|---:|---:|\n");
  for (const auto& b : by_pos)
    std::printf("| [%lld, %lld) | %lld | %.3f |\n", (long long)b["from"].get<int64_t>(), (long long)b["to"].get<int64_t>(),
                (long long)b["tokens"].get<int64_t>(), b["ppl"].get<double>());

  if (p.options.count("--out")) {
    harness::write_json_atomic(p.option("--out"), report);
    std::printf("\nwrote %s\n", p.option("--out").c_str());
  }
  if (p.options.count("--plot")) {
    harness::LinePlot plot;
    plot.title = fmt::format("{} {} perplexity vs context", lm.name(), split_name);
    plot.x_label = "log2(context length in tokens)";
    plot.y_label = "perplexity";
    harness::PlotSeries s{"reset every X tokens", {}, {}};
    for (const auto& ps : passes)
      if (!ps["context"].is_string()) s.points.emplace_back(std::log2(double(ps["context"].get<int64_t>())), ps["ppl"].get<double>());
    s.points.emplace_back(std::log2(double(longest)), whole.ppl());
    std::sort(s.points.begin(), s.points.end());
    plot.series.push_back(s);
    harness::PlotSeries pos{"by position (whole document)", {}, {}};
    for (const auto& b : by_pos)
      pos.points.emplace_back(std::log2(double(std::max<int64_t>(1, b["to"].get<int64_t>()))), b["ppl"].get<double>());
    plot.series.push_back(pos);
    harness::write_line_plot(plot, p.option("--plot"));
    std::printf("wrote %s\n", p.option("--plot").c_str());
  }
  return 0;
}

int generate_main(const std::vector<std::string>& args) {
  auto p = parse_args(args, {"--prompt", "--prompt-file", "--max-tokens", "--temperature", "--top-k", "--top-p", "--seed",
                             "--which"},
                      {"--help", "--greedy", "--stop-at-eos"});
  if (p.flag("--help")) return std::fputs(kGenerateHelp, stdout), 0;
  if (p.positional.size() != 1 || (p.options.count("--prompt") == p.options.count("--prompt-file")))
    return std::fputs(kGenerateHelp, stderr), 2;
  std::string prompt = p.option("--prompt");
  if (p.options.count("--prompt-file")) prompt = harness::read_file(p.option("--prompt-file"));
  auto r = harness::load_run(p.positional[0], p.option("--which", "best"), p.overrides);
  auto* task = dynamic_cast<tasks::LanguageModelTask*>(r.task.get());
  if (!task) throw std::invalid_argument(fmt::format("{}: not a language-model run", p.positional[0]));
  const torch::Device device = harness::run_device(r.cfg);
  r.model->to(device);
  const auto& tok = task->tokenizer();
  tasks::GenerateOptions o;
  o.max_new_tokens = p.int_option("--max-tokens", 200, 1);
  o.greedy = p.flag("--greedy");
  o.temperature = p.float_option("--temperature", 1.0);
  o.top_k = p.int_option("--top-k", 0, 0);
  o.top_p = p.float_option("--top-p", 1.0);
  if (o.temperature <= 0 && !o.greedy) throw std::invalid_argument("--temperature must be > 0 (or use --greedy)");
  if (o.top_p <= 0 || o.top_p > 1) throw std::invalid_argument("--top-p must be in (0, 1]");
  o.seed = p.seed_option("--seed", 0);
  o.chunk = task->chunk_size();
  o.stop_id = p.flag("--stop-at-eos") ? tok.eos_id() : -1;
  o.device = device;
  const auto ids = tok.encode(prompt);
  if (ids.empty()) throw std::invalid_argument("the prompt encodes to no tokens");
  // Print the prompt, then each new piece as the decoded text grows (decoding a short tail of the
  // prompt with the new ids keeps word-boundary spacing right for SentencePiece and words).
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);
  const size_t tail = std::min<size_t>(8, ids.size());
  std::vector<int32_t> window(ids.end() - static_cast<std::ptrdiff_t>(tail), ids.end());
  const std::string base = tok.decode(window);
  size_t printed = base.size();
  const auto t0 = std::chrono::steady_clock::now();
  const auto out = tasks::generate(task->lm(), ids, o, [&](int32_t id) {
    window.push_back(id);
    const std::string text = tok.decode(window);
    if (text.size() > printed && text.compare(0, std::min(printed, base.size()), base, 0, std::min(printed, base.size())) == 0) {
      std::fwrite(text.data() + printed, 1, text.size() - printed, stdout);
      std::fflush(stdout);
      printed = text.size();
    }
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "\n[generate] %zu prompt tokens, %zu new tokens in %.2f s (%.1f tokens/s, %s)\n", ids.size(),
               out.size(), s, out.size() / std::max(1e-9, s), task->lm().name().c_str());
  return 0;
}

const Command kLmEval{"lm-eval", "streaming perplexity of an LM run, and perplexity versus context length", lm_eval_main};
const Command kGenerate{"generate", "text from an LM run (greedy, temperature, top-k, top-p; streaming output)",
                        generate_main};

}  // namespace
}  // namespace mgl::cli
