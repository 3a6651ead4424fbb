#include "core/modules/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include "core/util/autocast_state.h"

namespace mgl {
namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward pass needs besides the input: the function, its parameters, and the forward's
// generator and autocast states.
struct Recompute : torch::CustomClassHolder {
  std::function<Tensor(const Tensor&)> fn;
  std::vector<Tensor> params;
  Tensor cpu_rng, cuda_rng;
  c10::Device device{c10::kCPU};
  CudaAutocastState autocast;
};

// Sets the generators to the forward's state for a scope and restores the current ones after it.
class ForkRng {
 public:
  explicit ForkRng(const Recompute& r) : cpu_(at::detail::getDefaultCPUGenerator()) {
    cpu_old_ = cpu_.get_state();
    cpu_.set_state(r.cpu_rng);
    if (r.cuda_rng.defined()) {
      cuda_ = at::globalContext().defaultGenerator(r.device);
      cuda_old_ = cuda_.get_state();
      cuda_.set_state(r.cuda_rng);
    }
  }
  ~ForkRng() {
    cpu_.set_state(cpu_old_);
    if (cuda_old_.defined()) cuda_.set_state(cuda_old_);
  }
  ForkRng(const ForkRng&) = delete;
  ForkRng& operator=(const ForkRng&) = delete;

 private:
  at::Generator cpu_, cuda_;
  Tensor cpu_old_, cuda_old_;
};

struct CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
  // `params` are inputs only so that the graph reaches them (fn reads them itself).
  static Tensor forward(AutogradContext* ctx, const Tensor& x, at::TensorList params,
                        const c10::intrusive_ptr<Recompute>& r) {
    (void)params;
    r->cpu_rng = at::detail::getDefaultCPUGenerator().get_state();
    if (x.is_cuda()) {
      r->device = x.device();
      r->cuda_rng = at::globalContext().defaultGenerator(x.device()).get_state();
    }
    r->autocast = CudaAutocastState{};
    Tensor y = r->fn(x);  // gradients are off inside a Function's forward: nothing is kept
    ctx->save_for_backward({x});
    ctx->saved_data["recompute"] = c10::IValue::make_capsule(r);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor x = ctx->get_saved_variables()[0];
    const auto holder = ctx->saved_data["recompute"].toCapsule();
    const auto& r = *static_cast<Recompute*>(holder.get());
    Tensor xd = x.detach().requires_grad_(x.requires_grad());
    Tensor y;
    {
      ForkRng rng(r);
      CudaAutocastRestore ac(r.autocast);
      torch::AutoGradMode on(true);
      y = r.fn(xd);
    }
    // One gradient per forward input: x, each parameter, and none for the closure.
    variable_list out(2 + r.params.size());
    variable_list wrt;
    if (xd.requires_grad()) wrt.push_back(xd);
    for (const auto& p : r.params)
      if (p.requires_grad()) wrt.push_back(p);
    if (!wrt.empty() && y.requires_grad()) {
      auto g = torch::autograd::grad({y}, wrt, {grads[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
      size_t k = 0;
      if (xd.requires_grad()) out[0] = g[k++];
      for (size_t i = 0; i < r.params.size(); ++i)
        if (r.params[i].requires_grad()) out[1 + i] = g[k++];
    }
    return out;
  }
};

}  // namespace

Tensor checkpoint(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, const std::vector<Tensor>& params) {
  bool needs_grad = x.requires_grad();
  for (const auto& p : params) needs_grad = needs_grad || p.requires_grad();
  if (!torch::GradMode::is_enabled() || !needs_grad) return fn(x);
  auto r = c10::make_intrusive<Recompute>();
  r->fn = fn;
  r->params = params;
  return CheckpointFunction::apply(x, at::TensorList(r->params), r);
}

}  // namespace mgl
