// The streaming state of one MEGA layer (spec §7.1), owned by the layer's caller: the models keep
// one per layer in their StreamState (core/models/state.h).
#pragma once
#include <torch/torch.h>

#include "core/ops/timestep_norm.h"

namespace mgl {

// Per MEGA layer: the TimestepNorm statistics, the EMA hidden state and the chunk-local KV cache.
struct MegaLayerState {
  ops::NormState norm;  // undefined until the first call (then the prior is used)
  torch::Tensor hx;     // B×D×N (complex for CEMA, real for EMA); undefined = zero state
  torch::Tensor k, v;   // B×n×H×d_z and B×n×H×d_v with n < C (post-RoPE keys); undefined = empty
  // With document resets (core/ops/documents.h) rows may attend different numbers of the cached
  // keys: row b the right-most kv_valid[b] (B int64). Undefined: all n.
  torch::Tensor kv_valid;
  int64_t cache_length() const { return k.defined() ? k.size(1) : 0; }
};

}  // namespace mgl
