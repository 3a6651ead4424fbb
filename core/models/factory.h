// Builds the causal LMs by name, so benchmarks and the harness can pick one from a config.
#pragma once
#include <string>

#include "core/config.h"
#include "core/models/lm.h"
#include "core/models/megalodon.h"
#include "core/models/transformer.h"

namespace mgl {

CausalLM make_megalodon_lm(const MegalodonConfig& cfg);
CausalLM make_transformer_lm(const TransformerConfig& cfg);
// Total number of parameter elements (tied weights counted once).
int64_t count_parameters(const torch::nn::Module& m);

}  // namespace mgl
