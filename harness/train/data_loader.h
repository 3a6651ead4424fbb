// Multi-threaded, prefetching, resumable batch loader over a Task split.
//
// The order of examples is a pure function of (seed, epoch): epoch e is the permutation
// randperm(n) drawn from a CPU generator seeded with seed·1000003 + e, cut into batches. A loader
// position is therefore just (epoch, batch in epoch), which is what checkpoints store, and a
// resumed run sees exactly the batches an uninterrupted run would. Worker threads build batches
// ahead of the consumer (bounded by `prefetch`); batches are handed out strictly in order, so the
// number of workers never changes the data order.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "harness/task.h"

namespace mgl::harness {

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_last = true;  // training drops the ragged last batch of an epoch
  bool repeat = true;     // training cycles through epochs forever; evaluation stops after one
  int workers = 2;        // 0: batches are built in the caller's thread
  int prefetch = 4;
  // LibTorch intra-op threads inside each loader thread (0: LibTorch's default, the core count).
  // One batch per loader thread on one core is the parallelism; an OpenMP team per loader thread
  // on top of it oversubscribes the cores (issue 22: one loader thread ran at a third of the
  // calling thread's rate).
  int worker_intra_op_threads = 1;
  uint64_t seed = 1;
  // Data parallelism: this loader returns shard `shard` of `num_shards` of every batch (the batch
  // size and the order stay global, so every example is seen once per epoch across the shards);
  // see Task::make_batch_shard.
  int shard = 0, num_shards = 1;
};

// Sets LibTorch's intra-op thread count for the calling thread only, and restores it on scope exit
// (n <= 0: leaves it). What each loader thread does; `bench data` does it too for its calling-thread
// row, so that all rows build a batch with the same number of threads.
class ThreadIntraOpThreads {
 public:
  explicit ThreadIntraOpThreads(int n);
  ~ThreadIntraOpThreads();
  ThreadIntraOpThreads(const ThreadIntraOpThreads&) = delete;
  ThreadIntraOpThreads& operator=(const ThreadIntraOpThreads&) = delete;

 private:
  int old_ = 0;
};

struct LoaderPosition {
  int64_t epoch = 0, batch = 0;  // of the next batch to be returned
};

class DataLoader {
 public:
  DataLoader(const Task& task, Split split, LoaderOptions options, LoaderPosition start = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch, in order; std::nullopt at the end of a non-repeating pass. A worker's exception
  // is rethrown here.
  std::optional<Batch> next();
  LoaderPosition position() const { return pos_; }
  int64_t batches_per_epoch() const { return per_epoch_; }
  // Seconds next() spent blocked waiting for a batch that was not ready yet.
  double wait_seconds() const { return wait_s_; }

 private:
  std::vector<int64_t> indices_for(int64_t seq);  // seq counts batches from the start position
  LoaderPosition position_of(int64_t seq) const;
  void worker_loop();
  bool consumer_may_go(int64_t seq) const;  // under mu_
  void poll_for(int64_t seq, std::unique_lock<std::mutex>& lock);
  static void acquire(std::unique_lock<std::mutex>& lock);  // spins briefly, then sleeps
  Batch build(int64_t seq);

  const Task& task_;
  Split split_;
  LoaderOptions o_;
  LoaderPosition start_, pos_;
  int64_t n_ = 0, per_epoch_ = 0, total_ = -1;  // total_ = -1: unbounded
  double wait_s_ = 0;

  std::mutex mu_;
  std::condition_variable cv_ready_, cv_space_;
  int64_t next_claim_ = 0, consumed_ = 0;
  // Hand-over in groups (see the .cpp): a starved consumer sleeps until `wake_` batches are ready,
  // and loader threads that filled the queue sleep until `wake_` places are free.
  int64_t wake_ = 1;
  // Whether a starved consumer first polls for a while (there is a core to spare: fewer loader
  // threads than cores), and the count of batches made ready, which it polls.
  bool spin_ = false;
  std::atomic<int64_t> ready_events_{0};
  bool consumer_waiting_ = false;
  int workers_waiting_ = 0;
  std::map<int64_t, std::variant<Batch, std::exception_ptr>> ready_;
  std::mutex perms_mu_;  // guards perms_ (loader threads only; not the queue's lock)
  std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> perms_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace mgl::harness
