#include "harness/train/data_loader.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <limits>

#include "core/util/memory.h"

namespace mgl::harness {

DataLoader::DataLoader(const Task& task, Split split, LoaderOptions o, LoaderPosition start)
    : task_(task), split_(split), o_(o), start_(start), pos_(start) {
  o_.prefetch = std::max(1, o_.prefetch);
  if (o_.batch_size <= 0) throw std::invalid_argument("data loader: batch_size must be positive");
  n_ = task.size(split);
  if (n_ <= 0) throw std::runtime_error(fmt::format("the {} split is empty", to_string(split)));
  per_epoch_ = o_.drop_last ? n_ / o_.batch_size : (n_ + o_.batch_size - 1) / o_.batch_size;
  if (per_epoch_ == 0)
    throw std::runtime_error(fmt::format("the {} split has {} examples, fewer than one batch of {}", to_string(split),
                                         n_, o_.batch_size));
  if (!o_.repeat) total_ = std::max<int64_t>(0, per_epoch_ - start_.batch);
  wake_ = std::max(1, o_.prefetch / 2);
  spin_ = o_.workers > 0 && static_cast<unsigned>(o_.workers) < std::thread::hardware_concurrency();
  for (int i = 0; i < o_.workers; ++i) threads_.emplace_back([this] { worker_loop(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_space_.notify_all();
  cv_ready_.notify_all();
  for (auto& t : threads_) t.join();
}

LoaderPosition DataLoader::position_of(int64_t seq) const {
  const int64_t b = start_.batch + seq;
  return {start_.epoch + b / per_epoch_, b % per_epoch_};
}

std::vector<int64_t> DataLoader::indices_for(int64_t seq) {
  const LoaderPosition p = position_of(seq);
  std::shared_ptr<const std::vector<int64_t>> perm;
  {
    std::lock_guard<std::mutex> lock(perms_mu_);
    auto it = perms_.find(p.epoch);
    if (it != perms_.end()) perm = it->second;
  }
  if (!perm) {
    auto v = std::make_shared<std::vector<int64_t>>(n_);
    if (o_.shuffle) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(o_.seed * 1000003ull + static_cast<uint64_t>(p.epoch));
      torch::Tensor t = torch::randperm(n_, gen, torch::kInt64);
      std::copy(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n_, v->begin());
    } else {
      for (int64_t i = 0; i < n_; ++i) (*v)[i] = i;
    }
    std::lock_guard<std::mutex> lock(perms_mu_);
    perm = perms_.emplace(p.epoch, v).first->second;
    // Keep the permutations of the epochs still in flight only.
    while (perms_.size() > 2 && perms_.begin()->first < p.epoch) perms_.erase(perms_.begin());
  }
  const int64_t lo = p.batch * o_.batch_size, hi = std::min(n_, lo + o_.batch_size);
  return std::vector<int64_t>(perm->begin() + lo, perm->begin() + hi);
}

Batch DataLoader::build(int64_t seq) {
  const LoaderPosition p = position_of(seq);
  const uint64_t seed = o_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(p.epoch * per_epoch_ + p.batch);
  if (o_.num_shards > 1) return task_.make_batch_shard(split_, indices_for(seq), seed, o_.shard, o_.num_shards);
  return task_.make_batch(split_, indices_for(seq), seed);
}

// LibTorch's CPU ops parallelise with OpenMP, whose thread count is a per-thread setting;
// at::set_num_threads would change the process-wide default the model's threads use. OpenMP's own
// setter is reached through a weak reference: it resolves to libgomp when LibTorch was built with
// OpenMP (Debian's 1.13 and 2.6 both are, and load it), and stays null otherwise (nothing to set),
// so the project needs no OpenMP flags of its own (they would also disable the precompiled header).
extern "C" void omp_set_num_threads(int) __attribute__((weak));

ThreadIntraOpThreads::ThreadIntraOpThreads(int n) {
  if (n <= 0 || !omp_set_num_threads) return;
  old_ = at::get_num_threads();  // also LibTorch's lazy per-thread set-up, which would undo the line below
  omp_set_num_threads(n);
}

ThreadIntraOpThreads::~ThreadIntraOpThreads() {
  if (old_ > 0) omp_set_num_threads(old_);
}

// Hand-over. Waking a sleeping thread costs the waker a system call and, on a virtual machine, an
// interrupt to an idle core: about 20 µs here, as much as building a whole LM batch (issue 22).
// So neither side is woken for every batch. A consumer that finds its batch missing sleeps until
// that batch and `wake_` (half the prefetch depth) batches in all are ready; loader threads that
// find the queue full sleep until `wake_` places are free, and then fill them without sleeping in
// between. A starved consumer is then woken once per `wake_` batches, and so are loader threads
// that run ahead of the model. Neither can wait on the other forever: loader threads all asleep
// means no batch in flight, so at least prefetch - wake_ + 1 >= wake_ batches are ready, the next
// one among them.
bool DataLoader::consumer_may_go(int64_t seq) const {
  if (!ready_.count(seq)) return false;
  const int64_t remaining = total_ >= 0 ? total_ - seq : std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(ready_.size()) >= std::min(wake_, remaining);
}

// With a core to spare, a starved consumer polls for up to 200 µs before it sleeps: a batch that
// arrives meanwhile costs its loader thread no wake-up, and the consumer's core has nothing else
// to do. (With as many loader threads as cores, polling would take a core from them: it sleeps.)
void DataLoader::poll_for(int64_t seq, std::unique_lock<std::mutex>& lock) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  while (!consumer_may_go(seq)) {
    const int64_t seen = ready_events_.load(std::memory_order_acquire);
    lock.unlock();
    bool changed = false;
    for (int i = 0; !changed; ++i) {
      changed = ready_events_.load(std::memory_order_acquire) != seen;
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) break;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    acquire(lock);
    if (!changed) return;
  }
}

// The queue's lock is held for a few map operations at a time. A thread that finds it taken
// spins briefly before it sleeps in the kernel: waking it would cost the holder a system call and
// this thread's core a round trip through the hypervisor, several times the wait (issue 22: with
// cheap LM batches, a loader thread sleeping on the lock the consumer held ran at 0.6 of the
// calling thread's rate).
void DataLoader::acquire(std::unique_lock<std::mutex>& lock) {
  for (int i = 0; i < 256; ++i) {
    if (lock.try_lock()) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  lock.lock();
}

namespace {

constexpr int64_t kLendBytes = int64_t{8} << 20;

// Whether `b`'s tensors are referenced from this Batch alone.
bool only_here(const Batch& b) {
  auto alone = [](const torch::Tensor& t) { return !t.defined() || t.use_count() == 1; };
  return alone(b.inputs) && alone(b.mask) && alone(b.targets) && std::all_of(b.extra.begin(), b.extra.end(), alone);
}

int64_t batch_bytes(const Batch& b) {
  auto bytes = [](const torch::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : int64_t{0}; };
  int64_t n = bytes(b.inputs) + bytes(b.mask) + bytes(b.targets);
  for (const auto& t : b.extra) n += bytes(t);
  return n;
}

}  // namespace

void DataLoader::worker_loop() {
  const ThreadIntraOpThreads one_core(o_.worker_intra_op_threads);
  const tensor_memory::HeaderBlocksInThisThread batches_freed_elsewhere;
  // A built batch is handed over in the same critical section that claims the next one.
  std::optional<std::pair<int64_t, std::variant<Batch, std::exception_ptr>>> built;
  // Batches below 8 MiB stay referenced here too after the hand-over, and are destroyed here once
  // the consumer has let go of them (checked before each build). A tensor's bookkeeping objects
  // come from the malloc arena of the thread that made them, and glibc's free() takes that arena's
  // lock: freed by the consumer, cheap batches (an LM batch takes 25 µs) made loader threads and
  // consumer contend for it. At most 2·prefetch + 2 are kept; past that the oldest is let go (its
  // last holder frees it, as before). Large batches are let go at once: keeping one would add a
  // batch to the peak memory, and their build time dwarfs the frees.
  std::deque<Batch> lent;
  const size_t max_lent = 2 * static_cast<size_t>(o_.prefetch) + 2;
  for (;;) {
    int64_t seq;
    bool wake = false;
    {
      std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
      acquire(lock);
      if (built) {
        ready_.emplace(built->first, std::move(built->second));
        built.reset();
        ready_events_.fetch_add(1, std::memory_order_release);
        wake = consumer_waiting_ && consumer_may_go(consumed_);
      }
      if (!stop_ && next_claim_ >= consumed_ + o_.prefetch) {
        if (wake) cv_ready_.notify_one();
        wake = false;
        ++workers_waiting_;
        cv_space_.wait(lock, [&] { return stop_ || next_claim_ + wake_ <= consumed_ + o_.prefetch; });
        --workers_waiting_;
      }
      if (stop_ || (total_ >= 0 && next_claim_ >= total_)) {
        if (wake) cv_ready_.notify_one();
        return;
      }
      seq = next_claim_++;
    }
    if (wake) cv_ready_.notify_one();
    lent.erase(std::remove_if(lent.begin(), lent.end(), only_here), lent.end());
    while (lent.size() > max_lent) lent.pop_front();
    try {
      built.emplace(seq, build(seq));
      const Batch& b = std::get<Batch>(built->second);
      if (batch_bytes(b) <= kLendBytes) lent.push_back(b);
    } catch (...) {
      built.emplace(seq, std::current_exception());
    }
  }
}

std::optional<Batch> DataLoader::next() {
  const int64_t seq = consumed_;
  if (total_ >= 0 && seq >= total_) return std::nullopt;
  std::variant<Batch, std::exception_ptr> result;
  if (threads_.empty()) {
    // As from a loader thread: a batch that fails is reported once, and the next call goes on.
    try {
      result = build(seq);
    } catch (...) {
      result = std::current_exception();
    }
    consumed_ = seq + 1;
  } else {
    bool wake = false;
    {
      std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
      acquire(lock);
      if (!ready_.count(seq)) {
        const auto t0 = std::chrono::steady_clock::now();
        if (spin_) poll_for(seq, lock);
        consumer_waiting_ = true;
        cv_ready_.wait(lock, [&] { return consumer_may_go(seq); });
        consumer_waiting_ = false;
        wait_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      auto it = ready_.find(seq);
      result = std::move(it->second);
      ready_.erase(it);
      consumed_ = seq + 1;
      wake = workers_waiting_ > 0 && next_claim_ + wake_ <= consumed_ + o_.prefetch;
    }
    if (wake) cv_space_.notify_all();
  }
  pos_ = position_of(seq + 1);
  if (auto e = std::get_if<std::exception_ptr>(&result)) std::rethrow_exception(*e);
  return std::get<Batch>(std::move(result));
}

}  // namespace mgl::harness
