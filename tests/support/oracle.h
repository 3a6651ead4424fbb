// Test helpers: error measures and a float64 finite-difference gradient check (LibTorch has no
// C++ gradcheck).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace mgl::test {

inline torch::Tensor f64(const torch::Tensor& t) {
  return t.is_complex() ? t.to(torch::kComplexDouble) : t.to(torch::kFloat64);
}
// ‖a − ref‖₂ / ‖ref‖₂ in fp64 (the fla-style relative RMS error, robust in low precision).
inline double rel_err(const torch::Tensor& a, const torch::Tensor& ref) {
  auto d = (f64(a) - f64(ref)).abs().pow(2).sum().sqrt().item<double>();
  auto n = f64(ref).abs().pow(2).sum().sqrt().item<double>();
  return n > 0 ? d / n : d;
}
inline double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (f64(a) - f64(b)).abs().max().item<double>();
}

struct GradcheckResult {
  bool ok = true;
  double worst = 0;  // max |num − ana| / (atol + rtol·|num|): ≤ 1 passes
  std::string where;
};

// Checks the autograd gradient of sum(w ⊙ f(inputs)) (w fixed random weights) against central
// differences, element by element, for every input. Inputs must be fp64 leaves; f must return a
// real tensor.
inline GradcheckResult gradcheck(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
                                 std::vector<torch::Tensor> inputs, double eps = 1e-6, double atol = 1e-7,
                                 double rtol = 1e-5) {
  for (auto& x : inputs) x = x.detach().to(torch::kFloat64).set_requires_grad(true);
  auto out = f(inputs);
  auto gen = at::detail::createCPUGenerator(1234);
  auto w = at::randn(out.sizes(), gen, torch::TensorOptions().dtype(torch::kFloat64));
  auto grads = torch::autograd::grad({(out * w).sum()}, inputs, {}, false, false, true);
  GradcheckResult r;
  torch::NoGradGuard g;
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto flat = inputs[i].view({-1});
    auto ana = grads[i].defined() ? grads[i].reshape({-1}) : torch::zeros_like(flat);
    for (int64_t j = 0; j < flat.numel(); ++j) {
      const double orig = flat[j].item<double>();
      flat[j] = orig + eps;
      const double lp = (f(inputs) * w).sum().item<double>();
      flat[j] = orig - eps;
      const double lm = (f(inputs) * w).sum().item<double>();
      flat[j] = orig;
      const double num = (lp - lm) / (2 * eps), a = ana[j].item<double>();
      const double score = std::abs(num - a) / (atol + rtol * std::abs(num));
      if (score > r.worst) {
        r.worst = score;
        r.where = "input " + std::to_string(i) + " element " + std::to_string(j) + ": numeric " +
                  std::to_string(num) + " vs autograd " + std::to_string(a);
      }
    }
  }
  r.ok = r.worst <= 1.0;
  return r;
}

}  // namespace mgl::test
