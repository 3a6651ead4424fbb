// Streaming evaluation and generation for the causal LMs (megalodon-spec.md §7): documents of any
// length are fed segment by segment with the carried state (TimestepNorm statistics, CEMA hidden
// state, the chunk-local KV cache), so memory stays constant however long the document is.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/models/lm.h"
#include "datasets/text/text.h"

namespace mgl::tasks {

struct StreamEvalOptions {
  // Tokens per forward call; 0 = two chunks (the official MAX_CHUNKS_PER_BATCH = 2).
  int64_t segment = 0;
  // > 0: the state is reset every `context` tokens of a document (the model sees at most this much
  // history: perplexity "at context length X"); 0 = the whole document is one stream.
  int64_t context = 0;
  // The chunk size C (for the default segment and the TSN window); 0 = 2048.
  int64_t chunk = 0;
  // Spec §7.2, off by default (0): the official eval's TimestepNorm window. Once e ≥ T·C tokens
  // have been consumed and more remain, the model is re-run from a fresh state on the last (T−2)·C
  // tokens and only the norm statistics (per layer and the final norm) are replaced by the re-run's;
  // the KV cache and the CEMA state keep the whole history. The official value is T = 8. Megalodon
  // only.
  int64_t tsn_window_chunks = 0;
  // Per-position buckets: NLL of the tokens whose position since the last reset lies in
  // [edges[i], edges[i+1]); empty = none.
  std::vector<int64_t> position_edges;
  int64_t max_documents = -1;       // evaluate only the first N documents (-1 = all)
  int64_t max_tokens_per_document = -1;  // cut every document to its first N tokens (-1 = whole)
  torch::Device device = torch::kCPU;
};

struct StreamEvalResult {
  double nll_sum = 0;     // nats over every predicted token
  int64_t tokens = 0;     // predicted tokens (a document's first token has no context and is not scored)
  double words = 0;       // words of the evaluated documents (cut documents: in proportion)
  int64_t documents = 0;
  int64_t longest_document = 0;
  std::vector<double> bucket_nll;   // per position bucket
  std::vector<int64_t> bucket_tokens;
  double seconds = 0;
  double ppl() const;
  double word_ppl() const;
};

// Evaluates documents of `tokens` (a packed split) with `lm` in eval mode, without gradients. `progress`
// (may be empty) is called after every segment with (tokens done, tokens total).
StreamEvalResult stream_eval(CausalLMImpl& lm, const datasets::text::PackedTokens& tokens,
                             const StreamEvalOptions& options,
                             const std::function<void(int64_t, int64_t)>& progress = {});

// The per-position NLL of one document, one-shot (the whole sequence in one call, no state): the
// oracle the streaming path is tested against. Runs in eval mode (no dropout).
torch::Tensor one_shot_nll(CausalLMImpl& lm, const torch::Tensor& ids);

struct GenerateOptions {
  int64_t max_new_tokens = 200;
  bool greedy = false;
  double temperature = 1.0;
  int64_t top_k = 0;     // 0 = off
  double top_p = 1.0;    // 1 = off (nucleus sampling below 1)
  uint64_t seed = 0;
  int64_t segment = 0;   // prefill tokens per call; 0 = 2·chunk
  int64_t chunk = 2048;
  int32_t stop_id = -1;  // stop after producing this id (e.g. </s>); -1 = never
  torch::Device device = torch::kCPU;
};

// The next-token id from last-position logits (1×V) by the options' rule, drawing from `gen`.
int64_t sample_next(const torch::Tensor& logits, const GenerateOptions& options, at::Generator& gen);

// Prefills the prompt segment by segment, then produces one token per call with the carried state
// (Megalodon: the chunk-local KV cache, CEMA and norm state; Transformer: its full KV cache).
// `on_token` (may be empty) receives every new id as it is produced. Returns the new ids.
std::vector<int32_t> generate(CausalLMImpl& lm, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                              const std::function<void(int32_t)>& on_token = {});

}  // namespace mgl::tasks
