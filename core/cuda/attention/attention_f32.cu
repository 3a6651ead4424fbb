#include "core/cuda/attention/attention.cuh"

namespace mgl::cuda {
template const char* attention_forward<float>(const AttentionShape&, const float*, const float*, const float*,
                                              const uint8_t*, float*, float*, void*);
template const char* attention_backward<float>(const AttentionShape&, const float*, const float*, const float*,
                                               const uint8_t*, const float*, const float*, const float*, float*,
                                               float*, float*, float*, void*);
}  // namespace mgl::cuda
