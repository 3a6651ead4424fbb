// Streaming state (spec §7.1): what one call hands to the next so that a sequence of any length
// is processed segment by segment in constant memory.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "core/modules/layer_state.h"
#include "core/ops/timestep_norm.h"

namespace mgl {

// Base of every model's streaming state, so the LM interface can be shared.
struct StreamState {
  virtual ~StreamState() = default;
  int64_t position = 0;  // tokens consumed so far
};

struct MegalodonState : StreamState {
  std::vector<MegaLayerState> layers;
  ops::NormState final_norm;
  // Detach everything (truncated BPTT between segments), keeping the values.
  void detach_();
};

// The Transformer baseline keeps its full KV cache (it is the non-constant-memory comparison).
struct TransformerState : StreamState {
  std::vector<torch::Tensor> k, v;  // per layer, B×n×H×d
  torch::Tensor kv_valid;           // document resets: keys row b may attend (right-most), B int64; undefined = all
};

}  // namespace mgl
