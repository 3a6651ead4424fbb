// Planted bug: see planted.h (attention_forward_partial_mask). The included attention.cuh is the
// generated scratch copy.
#include <cuda_runtime.h>

#include "simt/planted/planted.h"

#define mgl mgl_planted_attention_partial_mask
#include "planted/attention_partial_mask/attention.cuh"
#undef mgl

const char* planted::attention_forward_partial_mask(int64_t B, int64_t H, int64_t L, int64_t chunk,
                                                    int64_t dk, int64_t dv, const float* q, const float* k,
                                                    const float* v, float* o, float* lse) {
  mgl_planted_attention_partial_mask::cuda::AttentionShape s;
  s.B = B;
  s.H = H;
  s.Lq = s.Lk = L;
  s.chunk_q = s.chunk_k = chunk;
  s.dk = dk;
  s.dv = dv;
  s.causal = true;
  return mgl_planted_attention_partial_mask::cuda::attention_forward<float>(s, q, k, v, nullptr, o, lse,
                                                                            nullptr);
}
