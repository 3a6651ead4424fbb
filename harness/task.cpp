#include "harness/task.h"

namespace mgl::harness {

const char* to_string(Split s) {
  switch (s) {
    case Split::train: return "train";
    case Split::val: return "val";
    case Split::test: return "test";
  }
  return "?";
}

Batch Batch::to(const torch::Device& device) const {
  Batch b = *this;
  auto move = [&](torch::Tensor& t) {
    if (t.defined()) t = t.to(device, /*non_blocking=*/true);
  };
  move(b.inputs);
  move(b.mask);
  move(b.targets);
  for (auto& e : b.extra) move(e);
  return b;
}

Registry<TaskEntry>& task_registry() {
  static Registry<TaskEntry> r("task");
  return r;
}

}  // namespace mgl::harness
