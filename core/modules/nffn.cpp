#include "core/modules/nffn.h"

#include <cmath>

#include "core/init.h"
#include "core/modules/drop_path.h"
#include "core/ops/ffn.h"
#include "core/util/autocast_state.h"

namespace mgl {

using torch::Tensor;
namespace F = torch::nn::functional;

NormalizedFeedForwardNetworkImpl::NormalizedFeedForwardNetworkImpl(const MegalodonConfig& c, int64_t id)
    : cfg(c), layer_id(id) {
  const int64_t D = c.model_dim, Fh = c.ffn_hidden_dim;
  norm = register_module("norm", LayerNorm(D, c.norm_affine, c.norm_eps, c.kernel_row_norm));
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(D, Fh).bias(false)));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(Fh, D).bias(false)));
  if (c.swiglu) fc3 = register_module("fc3", torch::nn::Linear(torch::nn::LinearOptions(D, Fh).bias(false)));
  if (c.rescale_nffn) alpha = register_parameter("alpha", torch::empty({D}));
  reset_parameters();
}

void NormalizedFeedForwardNetworkImpl::reset_parameters() {
  init_linear(fc1, cfg.init_mode);
  init_linear(fc2, cfg.init_mode);
  if (fc3) init_linear(fc3, cfg.init_mode);
  if (alpha.defined()) {
    torch::NoGradGuard g;
    alpha.fill_(0.1 * std::pow(0.5, static_cast<double>(layer_id)));
  }
}

Tensor NormalizedFeedForwardNetworkImpl::forward(const Tensor& x, const Tensor& residual) {
  const bool train = is_training();
  auto drop = [&](const Tensor& t, double p) {
    return (p > 0.0 && train) ? F::dropout(t, F::DropoutFuncOptions().p(p).training(true)) : t;
  };
  Tensor u = norm(x);
  Tensor f;
  if (!(cfg.hidden_dropout > 0.0 && train) && !(u.is_cuda() && cuda_autocast_enabled()) &&
      u.scalar_type() == fc1->weight.scalar_type()) {
    // fc2(silu(fc1 u) [⊙ fc3 u]) keeping u only, recomputing fc1 u in the backward (issue 22).
    f = ops::silu_ffn(u, fc1->weight, fc2->weight, fc3 ? fc3->weight : Tensor());
  } else {
    Tensor hid = torch::silu(fc1(u));
    if (fc3) hid = hid * fc3(u);
    f = fc2(drop(hid, cfg.hidden_dropout));
  }
  f = drop(f, cfg.dropout);
  if (alpha.defined()) f = f * alpha;
  return residual + drop_path(f, drop_path_rate, train);
}

}  // namespace mgl
