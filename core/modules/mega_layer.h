// The MEGA sub-layer of a Megalodon block (MovingAverageGatedAttention, spec §0, §3): timestep
// norm → CEMA → RMSNorm → shared normalised z → RoPE → chunked attention → gates.
#pragma once
#include <torch/torch.h>

#include "core/config.h"
#include "core/modules/layer_state.h"
#include "core/modules/cema.h"
#include "core/modules/norms.h"
#include "core/modules/sequence_parallel.h"

namespace mgl {

class MovingAverageGatedAttentionImpl : public torch::nn::Module {
 public:
  explicit MovingAverageGatedAttentionImpl(const MegalodonConfig& cfg);
  void reset_parameters();

  // x: B×L×D (any L). state: carried streaming state of this layer (updated in place) or null for
  // a stand-alone segment. padding_mask: B×L bool (true = padded), encoder use.
  // documents: packed documents (core/ops/documents.h, made once per forward by the model): the
  // timestep norm, the CEMA state, the attention and the cache restart at every document start.
  // exchange: chunk parallelism (core/modules/sequence_parallel.h): x is this rank's segment of
  // each sequence, which starts from the norm statistics and EMA state of the segments before it
  // (null: whole sequences; ignored with a streaming state).
  // Returns y = x + h (or the Mega update-gate form), B×L×D.
  torch::Tensor forward(const torch::Tensor& x, MegaLayerState* state = nullptr,
                        const torch::Tensor& padding_mask = {}, const ops::DocumentPlan* documents = nullptr,
                        SequenceExchange* exchange = nullptr);

  // The attention part alone on already projected inputs, exposed for tests: q, k B×L×H×d_z
  // (before RoPE), v B×L×H×d_v; handles RoPE positions, the cache and chunking. silu_v: v is the
  // pre-activation and the values are silu(v); the reference chunked attention then keeps only v
  // for the backward (ops::BlockedAttentionOptions::silu_v), the other paths apply silu first.
  torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                       MegaLayerState* state, const torch::Tensor& padding_mask, bool silu_v = false);
  // The same with document resets: attention within the plan's segments, RoPE at its positions,
  // the cache kept per its keep / keep_valid.
  torch::Tensor attend_documents(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 MegaLayerState* state, const ops::DocumentPlan& plan);

  MegalodonConfig cfg;
  double drop_path_rate = 0.0;  // stochastic depth of this block's branch (set by MegaBlock)
  SequenceNorm timenorm{nullptr};
  ComplexEMA cema{nullptr};
  RMSNorm rmsnorm{nullptr}, znorm{nullptr};
  torch::nn::Linear wv{nullptr}, wz{nullptr}, wr{nullptr}, wh1{nullptr}, wh2{nullptr};
  torch::nn::Linear wu{nullptr};  // update gate (update_gate = mega only)
  torch::Tensor gamma, beta;      // 2×Z: q/k affine
};
TORCH_MODULE(MovingAverageGatedAttention);

}  // namespace mgl
