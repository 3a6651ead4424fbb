// `megalodon bench data`: throughput of a task's input pipeline alone (reading, decoding,
// augmenting and collating batches in the loader threads), without a model. It answers "can the
// loader keep the accelerator busy?" for any experiment, e.g. the ImageNet pipeline.
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <sstream>

#include <sys/resource.h>

#include "cli/args.h"
#include "cli/bench/bench.h"
#include "harness/experiment.h"
#include "harness/task.h"
#include "harness/train/data_loader.h"

namespace mgl::cli {
namespace {

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

const char* kBenchDataHelp = R"(usage: megalodon bench data <experiment.toml> [key.path=value ...] [--split train|val|test]
                            [--batches N] [--workers 0,1,2] [--batch-size B]
                            [--worker-threads N] [--seconds S]
Builds the experiment's task and times its data loader alone: for each worker count, at least
--batches batches (default 20) and at least --seconds seconds (default 2), after one warm-up batch,
of --batch-size examples (default trainer.batch_size) from the split, with trainer.prefetch. Prints
a table of examples/s, ms per batch, cores busy (the process's CPU time over the wall time of the
timed window) and the calling thread's share of them (with loader threads: what taking the batches
over costs the consumer). Workers 0 builds batches in the calling thread. --worker-threads: LibTorch intra-op threads inside each loader
thread and in the calling thread's row (default 1, as training, so that row is one core's rate;
0: LibTorch's default, the core count).
)";

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(std::stoi(item));
    } catch (const std::exception&) {
      throw std::invalid_argument("--workers: expected a comma-separated list of integers, got '" + s + "'");
    }
    if (out.back() < 0) throw std::invalid_argument("--workers: counts must be >= 0");
  }
  if (out.empty()) throw std::invalid_argument("--workers: empty list");
  return out;
}

int bench_data_main(const std::vector<std::string>& args) {
  auto p = parse_args(args, {"--split", "--batches", "--workers", "--batch-size", "--worker-threads", "--seconds"}, {"--help"});
  if (p.flag("--help")) {
    std::fputs(kBenchDataHelp, stdout);
    return 0;
  }
  if (p.positional.size() != 1) {
    std::fputs(kBenchDataHelp, stderr);
    return 2;
  }
  harness::Config cfg = harness::load_experiment(p.positional[0], p.overrides);
  const std::string split_name = p.option("--split", "train");
  const harness::Split split = split_name == "train" ? harness::Split::train
                               : split_name == "val" ? harness::Split::val
                               : split_name == "test"
                                   ? harness::Split::test
                                   : throw std::invalid_argument("--split: expected train, val or test, got '" +
                                                                 split_name + "'");
  const int64_t batches = p.int_option("--batches", 20, 1);
  const int64_t bs = p.int_option("--batch-size", cfg.get_int("trainer.batch_size"), 1);
  const auto workers = parse_list(p.option("--workers", "0,1,2"));
  const int worker_threads = static_cast<int>(p.int_option("--worker-threads", 1, 0));
  const double min_seconds = p.float_option("--seconds", 2.0);
  if (!(min_seconds >= 0)) throw std::invalid_argument("--seconds: expected a number >= 0");

  auto t0 = std::chrono::steady_clock::now();
  auto task = harness::task_registry().at(cfg.get_string("task.name"), "task.name").create(cfg);
  const double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s\n(task set-up %.2f s; %s split, %lld examples)\n\n", task->describe().c_str(), setup_s,
              split_name.c_str(), (long long)task->size(split));
  if (task->size(split) < bs) throw std::invalid_argument(fmt::format("the {} split has fewer than {} examples", split_name, bs));
  std::printf("| workers | batch | batches | examples/s | ms / batch | positions / batch | cores busy | of which the "
              "calling thread |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int w : workers) {
    harness::LoaderOptions o;
    o.batch_size = bs;
    o.workers = w;
    o.worker_intra_op_threads = worker_threads;
    o.prefetch = static_cast<int>(cfg.get_int("trainer.prefetch"));
    o.seed = static_cast<uint64_t>(cfg.get_int("seed"));
    // The calling-thread row builds batches with the same intra-op threads as a loader thread.
    const harness::ThreadIntraOpThreads same(w == 0 ? worker_threads : 0);
    harness::DataLoader loader(*task, split, o);
    auto first = loader.next();  // warm-up: thread start, first decode
    int64_t examples = 0, positions = first ? first->tokens : 0;
    auto t = std::chrono::steady_clock::now();
    const double cpu0 = process_cpu_seconds(), own0 = thread_cpu_seconds();
    int64_t done = 0;
    double s = 0;
    // At least --batches batches and at least --seconds: a window of a few milliseconds (cheap LM
    // batches) measures thread start-up and scheduler noise, not the pipeline.
    while (done < batches || s < min_seconds) {
      auto batch = loader.next();
      if (!batch) break;
      examples += batch->examples;
      ++done;
      s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    }
    const double cpu = process_cpu_seconds() - cpu0, own = thread_cpu_seconds() - own0;
    std::printf("| %d | %lld | %lld | %.1f | %.3f | %lld | %.2f | %.2f |\n", w, (long long)bs, (long long)done,
                examples / s, 1000.0 * s / double(std::max<int64_t>(1, done)), (long long)positions, cpu / s, own / s);
    std::fflush(stdout);
  }
  return 0;
}

const BenchOp kData{"data", "throughput of an experiment's input pipeline alone (examples/s per worker count)",
                    bench_data_main};

}  // namespace
}  // namespace mgl::cli
