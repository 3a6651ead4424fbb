#include "core/init.h"

#include <cmath>

namespace mgl {

void trunc_normal_(torch::Tensor t, double std, double a, double b) {
  torch::NoGradGuard g;
  // u ~ U(Φ(a/σ), Φ(b/σ)); x = σ·√2·erfinv(2u − 1).
  auto cdf = [](double x) { return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))); };
  const double lo = cdf(a / std), hi = cdf(b / std);
  auto u = torch::empty(t.sizes(), t.options().dtype(torch::kFloat64)).uniform_(lo, hi);
  auto x = torch::erfinv(u.mul(2.0).sub(1.0)).mul(std * std::sqrt(2.0)).clamp(a, b);
  t.copy_(x);
}

void init_weight(torch::Tensor w, InitMode mode, int64_t dim) {
  torch::NoGradGuard g;
  switch (mode) {
    case InitMode::he: {
      const double fan_in = static_cast<double>(w.size(1));
      w.normal_(0.0, 1.0 / std::sqrt(3.0 * fan_in));
      break;
    }
    case InitMode::gaussian: {
      const double d = dim > 0 ? static_cast<double>(dim) : static_cast<double>(w.size(1));
      const double s = 1.0 / std::sqrt(d);
      trunc_normal_(w, s, -3.0 * s, 3.0 * s);
      break;
    }
    case InitMode::bert:
      w.normal_(0.0, 0.02);
      break;
    case InitMode::xavier:
      torch::nn::init::xavier_uniform_(w);
      break;
    case InitMode::none:
      break;
  }
}

void init_linear(torch::nn::Linear& lin, InitMode mode, int64_t dim) {
  init_weight(lin->weight, mode, dim);
  if (lin->bias.defined()) {
    torch::NoGradGuard g;
    lin->bias.zero_();
  }
}

}  // namespace mgl
