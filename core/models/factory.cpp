#include "core/models/factory.h"

namespace mgl {

CausalLM make_megalodon_lm(const MegalodonConfig& cfg) { return std::make_shared<MegalodonLMImpl>(cfg); }
CausalLM make_transformer_lm(const TransformerConfig& cfg) { return std::make_shared<TransformerLMImpl>(cfg); }

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

}  // namespace mgl
