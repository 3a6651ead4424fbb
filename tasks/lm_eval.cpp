#include "tasks/lm_eval.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>

#include "core/models/state.h"

namespace mgl::tasks {

using torch::Tensor;

double StreamEvalResult::ppl() const { return std::exp(nll_sum / std::max<int64_t>(1, tokens)); }
double StreamEvalResult::word_ppl() const { return std::exp(nll_sum / std::max(1.0, words)); }

namespace {

// Spec §7.2: re-estimate the TimestepNorm statistics over the last (T−2)·C tokens from a fresh
// state and put them into the live state (KV cache and CEMA state untouched).
void refresh_norm_window(CausalLMImpl& lm, StreamState& live, const Tensor& ids, int64_t end, int64_t chunk,
                         int64_t window_chunks) {
  auto* st = dynamic_cast<MegalodonState*>(&live);
  TORCH_CHECK(st, "the TimestepNorm window (tsn_window_chunks) applies to Megalodon models only");
  const int64_t keep = (window_chunks - 2) * chunk;
  auto fresh = lm.make_state(1);
  lm.last_logits(ids.narrow(0, end - keep, keep).unsqueeze(0), fresh.get());
  auto* f = dynamic_cast<MegalodonState*>(fresh.get());
  for (size_t i = 0; i < st->layers.size(); ++i) st->layers[i].norm = f->layers[i].norm;
  st->final_norm = f->final_norm;
}

}  // namespace

StreamEvalResult stream_eval(CausalLMImpl& lm, const datasets::text::PackedTokens& tokens,
                             const StreamEvalOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  torch::NoGradGuard no_grad;
  const bool was_training = lm.is_training();
  lm.eval();
  const int64_t chunk = o.chunk > 0 ? o.chunk : 2048;
  const int64_t segment = o.segment > 0 ? o.segment : 2 * chunk;
  TORCH_CHECK(o.tsn_window_chunks == 0 || o.tsn_window_chunks >= 3, "tsn_window_chunks must be 0 (off) or >= 3");
  StreamEvalResult r;
  const size_t nb = o.position_edges.size() > 1 ? o.position_edges.size() - 1 : 0;
  r.bucket_nll.assign(nb, 0.0);
  r.bucket_tokens.assign(nb, 0);
  const int64_t ndocs = o.max_documents >= 0 ? std::min(o.max_documents, tokens.num_documents()) : tokens.num_documents();
  int64_t total = 0;
  for (int64_t d = 0; d < ndocs; ++d) {
    const int64_t n = tokens.document_end(d) - tokens.document_begin(d);
    total += o.max_tokens_per_document > 0 ? std::min(n, o.max_tokens_per_document) : n;
  }
  const auto t0 = std::chrono::steady_clock::now();
  int64_t done = 0;
  for (int64_t d = 0; d < ndocs; ++d) {
    const int64_t full = tokens.document_end(d) - tokens.document_begin(d);
    const int64_t n = o.max_tokens_per_document > 0 ? std::min(full, o.max_tokens_per_document) : full;
    r.words += full > 0 ? double(tokens.document_words(d)) * double(n) / double(full) : 0.0;
    ++r.documents;
    r.longest_document = std::max(r.longest_document, n);
    if (n < 2) {
      done += n;
      continue;
    }
    const Tensor ids = tokens.slice(tokens.document_begin(d), n).to(o.device);
    std::unique_ptr<StreamState> state;
    int64_t reset_at = 0;  // position of the current stream's first input
    for (int64_t pos = 0; pos < n - 1;) {
      if (!state || (o.context > 0 && pos - reset_at >= o.context)) {
        state = lm.make_state(1);
        reset_at = pos;
      }
      int64_t len = std::min(segment, n - 1 - pos);
      if (o.context > 0) len = std::min(len, reset_at + o.context - pos);
      const Tensor x = ids.narrow(0, pos, len).unsqueeze(0);
      const Tensor y = ids.narrow(0, pos + 1, len).unsqueeze(0);
      const Tensor nll = lm.nll(x, y, state.get()).squeeze(0).to(torch::kFloat64).cpu();
      r.nll_sum += nll.sum().item<double>();
      r.tokens += len;
      if (nb) {
        // Target k of this segment sits at position (pos + 1 + k) − reset_at of its stream.
        const auto* v = nll.data_ptr<double>();
        size_t b = 0;
        for (int64_t k = 0; k < len; ++k) {
          const int64_t p = pos + 1 + k - reset_at;
          while (b < nb && p >= o.position_edges[b + 1]) ++b;
          if (b < nb && p >= o.position_edges[b]) {
            r.bucket_nll[b] += v[k];
            ++r.bucket_tokens[b];
          }
        }
      }
      pos += len;
      const int64_t consumed = pos - reset_at;
      if (o.tsn_window_chunks > 0 && consumed >= o.tsn_window_chunks * chunk && pos < n - 1)
        refresh_norm_window(lm, *state, ids, pos, chunk, o.tsn_window_chunks);
      if (progress) progress(done + pos, total);
    }
    done += n;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  lm.train(was_training);
  return r;
}

Tensor one_shot_nll(CausalLMImpl& lm, const Tensor& ids) {
  torch::NoGradGuard no_grad;
  const bool was_training = lm.is_training();
  lm.eval();
  const int64_t n = ids.size(0);
  Tensor out = lm.nll(ids.narrow(0, 0, n - 1).unsqueeze(0), ids.narrow(0, 1, n - 1).unsqueeze(0)).squeeze(0);
  lm.train(was_training);
  return out;
}

int64_t sample_next(const Tensor& logits_in, const GenerateOptions& o, at::Generator& gen) {
  Tensor logits = logits_in.reshape({-1}).to(torch::kCPU, torch::kFloat64);
  if (o.greedy || o.temperature <= 0) return logits.argmax().item<int64_t>();
  logits = logits / o.temperature;
  const int64_t V = logits.size(0);
  if (o.top_k > 0 && o.top_k < V) {
    const double kth = std::get<0>(logits.topk(o.top_k)).min().item<double>();
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<double>::infinity());
  }
  Tensor probs = torch::softmax(logits, 0);
  if (o.top_p < 1.0) {
    // Nucleus: keep the most probable ids whose mass before them is below top_p (the first always).
    auto [sorted, order] = probs.sort(0, /*descending=*/true);
    const Tensor before = sorted.cumsum(0) - sorted;
    sorted = sorted.masked_fill(before >= o.top_p, 0.0);
    probs = torch::zeros_like(probs).scatter(0, order, sorted);
    probs = probs / probs.sum();
  }
  return torch::multinomial(probs, 1, false, gen).item<int64_t>();
}

std::vector<int32_t> generate(CausalLMImpl& lm, const std::vector<int32_t>& prompt, const GenerateOptions& o,
                              const std::function<void(int32_t)>& on_token) {
  TORCH_CHECK(!prompt.empty(), "generate: the prompt is empty (give at least one token)");
  torch::NoGradGuard no_grad;
  const bool was_training = lm.is_training();
  lm.eval();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const int64_t segment = o.segment > 0 ? o.segment : 2 * o.chunk;
  auto state = lm.make_state(1);
  const Tensor ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), torch::kInt64).to(o.device);
  Tensor last;
  for (int64_t pos = 0; pos < ids.size(0); pos += segment) {
    const int64_t len = std::min<int64_t>(segment, ids.size(0) - pos);
    last = lm.last_logits(ids.narrow(0, pos, len).unsqueeze(0), state.get());
  }
  std::vector<int32_t> out;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    const int32_t next = static_cast<int32_t>(sample_next(last, o, gen));
    out.push_back(next);
    if (on_token) on_token(next);
    if (next == o.stop_id || i + 1 == o.max_new_tokens) break;
    last = lm.last_logits(torch::full({1, 1}, int64_t(next), torch::TensorOptions().dtype(torch::kInt64).device(o.device)),
                          state.get());
  }
  lm.train(was_training);
  return out;
}

}  // namespace mgl::tasks
