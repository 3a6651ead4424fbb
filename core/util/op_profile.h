// Where CPU time goes, per operator (issue 22: the benchmark's CPU breakdown). While an OpProfile
// lives, every ATen operator and autograd backward node run through LibTorch's RecordFunction is
// timed; each name gets its calls, its total time and its self time (total minus the operators it
// called itself), so the self times of one step add up to the step's time spent inside operators.
// With MEGALODON_OP_PROFILE_CALLERS=N in the environment, a row is an operator under its N innermost
// callers ("aten::copy_ < aten::to < aten::contiguous"): which call sites a hot operator comes from.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mgl {

class OpProfile {
 public:
  struct Row {
    std::string name;
    int64_t calls = 0;
    double self_ms = 0, total_ms = 0;
  };
  OpProfile();   // starts recording (one profile at a time per process)
  ~OpProfile();  // stops
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;
  // The operators seen so far, by decreasing self time.
  std::vector<Row> rows() const;
  void clear();

 private:
  uint64_t handle_ = 0;
};

}  // namespace mgl
