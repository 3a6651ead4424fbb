// Distributed training on LibTorch's c10d (Gloo on CPUs, NCCL on GPUs): process groups from the
// standard environment, the data × chunk parallel layout, gradient all-reduce and the state
// exchange of chunk parallelism.
//
// Layout: WORLD_SIZE ranks = dp × cp, cp = `dist.chunk_parallel`. The cp ranks of one sequence are
// consecutive (rank = dp_rank·cp + cp_rank), so on GPU nodes a sequence's neighbours share a node.
//   data parallelism:  each dp rank trains on its share of the global batch (trainer.batch_size
//                      stays the global batch, so the same experiment gives the same optimisation
//                      on any number of processes);
//   chunk parallelism: the cp ranks split each sequence (core/modules/sequence_parallel.h).
// Every rank's loss is a mean over its equal share, so the gradient of the whole batch is the
// mean over all ranks of the local gradients: one all-reduce over the world, bucketed and launched
// from the backward pass as buckets fill (as DDP does), in a fixed order on every rank.
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/modules/sequence_parallel.h"

namespace c10d {
class Store;
}  // namespace c10d

namespace mgl::harness::dist {

// The rendezvous variables as torchrun and Slurm wrappers set them: RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
// stand in for the first three when those are absent).
struct Env {
  int rank = 0, world = 1, local_rank = 0, local_world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  bool present = false;  // any of the variables was set
};
// Throws std::runtime_error naming the variable when one is malformed or inconsistent.
Env env_from_environment();

struct Options {
  int64_t chunk_parallel = 1;  // cp: ranks per sequence; the world must be a multiple
  double timeout_s = 300;      // a collective (or the rendezvous) that waits longer fails the job
  double bucket_mb = 25;       // gradient all-reduce bucket size
  std::string backend = "auto";  // auto (NCCL for CUDA, else Gloo), gloo, nccl
};

// Whether this build can make NCCL process groups (a CUDA LibTorch with c10d NCCL).
bool nccl_available();

class Context {
 public:
  // Joins the job described by `env` (rank 0 hosts the TCP store at MASTER_ADDR:MASTER_PORT).
  static std::unique_ptr<Context> create(const Env& env, const Options& o, const torch::Device& device);
  // In-process form (tests): ranks share `store` (e.g. a c10d::HashStore).
  static std::unique_ptr<Context> create_with_store(c10::intrusive_ptr<c10d::Store> store, int rank, int world,
                                                    const Options& o, const torch::Device& device);
  ~Context();

  int rank() const { return rank_; }
  int world() const { return world_; }
  int dp_rank() const { return rank_ / cp_; }
  int dp_size() const { return world_ / cp_; }
  int cp_rank() const { return rank_ % cp_; }
  int cp_size() const { return cp_; }
  bool is_main() const { return rank_ == 0; }
  const std::string& backend() const { return backend_; }
  const Options& options() const { return o_; }

  // Rank 0's parameters and buffers to every rank.
  void broadcast_module(torch::nn::Module& m);
  // Sum over all ranks, in place.
  void all_reduce_sum(std::vector<double>& values);
  void barrier();
  // Every rank's string, in rank order (e.g. JSON-encoded metric sums whose keys may differ).
  std::vector<std::string> all_gather_strings(const std::string& mine);
  // The exchange of this rank's chunk-parallel group (null when cp = 1).
  SequenceExchange* exchange() { return exchange_.get(); }

  // Gradient averaging over the world, overlapped with the backward pass.
  class GradSync {
   public:
    GradSync(Context& ctx, std::vector<torch::Tensor> params);
    ~GradSync();
    // Before each backward: `last` = this is the micro-batch after which gradients are synced
    // (earlier micro-batches of an accumulation only accumulate locally).
    void prepare(bool last);
    // After the last backward: launches the buckets the backward did not fill (unused
    // parameters), waits for all, writes the averaged gradients into .grad.
    void finish();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
  };

 private:
  Context() = default;
  void init_groups(c10::intrusive_ptr<c10d::Store> store);
  int rank_ = 0, world_ = 1, cp_ = 1;
  Options o_;
  torch::Device device_{torch::kCPU};
  std::string backend_;
  struct Groups;
  std::unique_ptr<Groups> groups_;

  std::unique_ptr<SequenceExchange> exchange_;
};

// A clear message for an exception thrown by a collective: which rank, and that a peer may have
// died, hung or timed out (dist.timeout_s).
std::string describe_failure(const Context& ctx, const std::exception& e);

}  // namespace mgl::harness::dist
