#include "core/cuda/attention/attention.cuh"

namespace mgl::cuda {
template const char* attention_forward<bf16>(const AttentionShape&, const bf16*, const bf16*, const bf16*,
                                             const uint8_t*, bf16*, float*, void*);
template const char* attention_backward<bf16>(const AttentionShape&, const bf16*, const bf16*, const bf16*,
                                              const uint8_t*, const bf16*, const bf16*, const float*, float*, bf16*,
                                              bf16*, bf16*, void*);
}  // namespace mgl::cuda
