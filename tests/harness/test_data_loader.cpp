// The data loader's hand-over between loader threads and the consumer (issue 22: batches are
// handed over in groups, and a starved consumer may poll before it sleeps). Oracle: the batches
// built in the calling thread (workers = 0), which no scheduling can reorder. Every combination of
// loader threads and prefetch depth must give exactly that sequence, end a non-repeating pass after
// exactly its batches, hand a failed batch's exception to the consumer at that batch and carry on,
// and shut down without hanging wherever the consumer stops.
#include <catch2/catch.hpp>

#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>

#include "harness/task.h"
#include "harness/train/data_loader.h"

namespace {

using mgl::harness::Batch;
using mgl::harness::DataLoader;
using mgl::harness::LoaderOptions;
using mgl::harness::LoaderPosition;
using mgl::harness::Split;

// Batches that record what they were built from: the indices and the batch seed. Building takes a
// random few tens of microseconds, so loader threads finish out of order; one index can be made to
// fail.
class RecordingTask final : public mgl::harness::Task {
 public:
  RecordingTask(int64_t n, int64_t failing_index) : n_(n), failing_(failing_index) {}
  int64_t size(Split) const override { return n_; }
  Batch make_batch(Split, const std::vector<int64_t>& idx, uint64_t seed) const override {
    std::mt19937_64 rng(seed);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 60));
    for (int64_t i : idx)
      if (i == failing_) throw std::runtime_error("example " + std::to_string(i) + " is damaged");
    Batch b;
    b.inputs = torch::tensor(idx, torch::kInt64);
    b.targets = torch::tensor({static_cast<int64_t>(seed >> 1)}, torch::kInt64);
    b.examples = static_cast<int64_t>(idx.size());
    b.tokens = b.examples;
    return b;
  }
  std::shared_ptr<torch::nn::Module> build_model() override { return nullptr; }
  std::shared_ptr<torch::nn::Module> model() const override { return nullptr; }
  mgl::harness::StepOutput step(const Batch&, bool) override { return {}; }
  std::map<std::string, double> finalize(const mgl::harness::MetricSums&) const override { return {}; }
  std::string describe() const override { return "recording task"; }

 private:
  int64_t n_, failing_;
};

// What next() returned, batch by batch: the indices and seed, or the error's text.
std::vector<std::string> drain(const mgl::harness::Task& task, LoaderOptions o, int64_t limit,
                               LoaderPosition start = {}) {
  DataLoader loader(task, Split::train, o, start);
  std::vector<std::string> out;
  for (int64_t k = 0; k < limit; ++k) {
    try {
      auto b = loader.next();
      if (!b) break;
      std::string s;
      for (int64_t i = 0; i < b->inputs.numel(); ++i) s += std::to_string(b->inputs[i].item<int64_t>()) + ",";
      out.push_back(s + "#" + std::to_string(b->targets[0].item<int64_t>()));
    } catch (const std::runtime_error& e) {
      out.push_back(std::string("error: ") + e.what());
    }
  }
  return out;
}

}  // namespace

TEST_CASE("loader threads hand batches over in order for any thread count and prefetch depth", "[loader]") {
  const RecordingTask task(/*n=*/53, /*failing_index=*/-1);
  for (bool repeat : {false, true}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.repeat = repeat;
    o.drop_last = !repeat;
    o.workers = 0;
    const int64_t limit = repeat ? 40 : 1000;  // repeating: three epochs and a bit
    const auto expected = drain(task, o, limit, {1, 5});
    REQUIRE(expected.size() == (repeat ? 40u : 13u - 5u));
    for (int workers : {1, 2, 3, 5})
      for (int prefetch : {1, 2, 3, 4, 7}) {
        CAPTURE(repeat, workers, prefetch);
        o.workers = workers;
        o.prefetch = prefetch;
        CHECK(drain(task, o, limit, {1, 5}) == expected);
      }
  }
}

TEST_CASE("a failed batch reaches the consumer at its place, and the batches after it still come", "[loader]") {
  const RecordingTask task(/*n=*/40, /*failing_index=*/17);
  LoaderOptions o;
  o.batch_size = 5;
  o.repeat = false;
  o.shuffle = false;
  o.workers = 0;
  const auto expected = drain(task, o, 1000);
  REQUIRE(expected.size() == 8);
  REQUIRE(expected[3].rfind("error: example 17 is damaged", 0) == 0);
  for (int workers : {1, 3})
    for (int prefetch : {1, 4}) {
      CAPTURE(workers, prefetch);
      o.workers = workers;
      o.prefetch = prefetch;
      CHECK(drain(task, o, 1000) == expected);
    }
}

TEST_CASE("a loader destroyed with full queues and sleeping threads shuts down", "[loader]") {
  const RecordingTask task(/*n=*/64, /*failing_index=*/-1);
  for (int workers : {1, 2, 4})
    for (int prefetch : {1, 2, 6})
      for (int64_t taken : {0, 1, 3}) {
        CAPTURE(workers, prefetch, taken);
        LoaderOptions o;
        o.batch_size = 2;
        o.workers = workers;
        o.prefetch = prefetch;
        DataLoader loader(task, Split::train, o);
        for (int64_t k = 0; k < taken; ++k) REQUIRE(loader.next().has_value());
        // Let the loader threads fill the queue and go to sleep on it.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        CHECK(loader.position().batch == taken);
      }  // the destructor must return: a hang fails the test by ctest's timeout
}
