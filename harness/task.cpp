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

namespace mgl::harness {

Batch Task::make_batch_shard(Split split, const std::vector<int64_t>& indices, uint64_t seed, int shard,
                             int num_shards) const {
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t lo = n * shard / num_shards, hi = n * (shard + 1) / num_shards;
  if (lo == hi) return Batch{};  // examples = 0: nothing for this shard
  const std::vector<int64_t> mine(indices.begin() + lo, indices.begin() + hi);
  return make_batch(split, mine, shard == 0 ? seed : seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(shard)));
}

}  // namespace mgl::harness
