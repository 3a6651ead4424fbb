#include "harness/trainer.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <regex>
#include <csignal>
#include <sstream>

#include "core/models/sequence_parallel.h"
#include "harness/autocast.h"
#include "harness/checkpoint_file.h"
#include "harness/data_loader.h"
#include "harness/dist/dist.h"
#include "harness/optim.h"
#include "harness/schema.h"
#include "harness/task.h"
#include "harness/util/files.h"

#ifndef MEGALODON_SOURCE_DIR
#define MEGALODON_SOURCE_DIR "."
#endif

namespace mgl::harness {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  return buf;
}

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

torch::Device pick_device(const Config& cfg) {
  const std::string d = cfg.get_string("run.device");
  if (d == "cuda" && !torch::cuda::is_available())
    throw ConfigError(cfg.origin("run.device"), "run.device", "cuda requested but no CUDA device is available");
  if (d == "cuda" || (d == "auto" && torch::cuda::is_available())) return torch::Device(torch::kCUDA);
  return torch::Device(torch::kCPU);
}

bool monitor_maximises(const Config& cfg) {
  const std::string mode = cfg.get_string("trainer.monitor_mode");
  if (mode != "auto") return mode == "max";
  const std::string m = cfg.get_string("trainer.monitor");
  return !(m.find("loss") != std::string::npos || m.find("ppl") != std::string::npos ||
           m.find("perplexity") != std::string::npos || m.find("bpc") != std::string::npos);
}

// ---- checkpoints ------------------------------------------------------------------------------

struct TrainerState {
  int64_t step = 0;
  LoaderPosition data;
  double best = std::nan("");
  int64_t best_step = -1;
  int64_t bad_evals = 0;
  double train_seconds = 0;
};

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  static const std::regex re("step_([0-9]+)\\.pt");
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) out.emplace_back(std::stoll(m[1]), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void save_archive_atomic(torch::serialize::OutputArchive& ar, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  ar.save_to(tmp.string());
  // save_to does not fsync; reopen and sync so a crash after rename cannot leave an empty file.
  if (FILE* f = std::fopen(tmp.c_str(), "rb+")) {
    fsync(fileno(f));
    std::fclose(f);
  }
  // The checksum first, then the rename: a checkpoint in place always has its checksum beside it.
  write_checksum(tmp, path);
  fs::rename(tmp, path);
}

void save_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer& opt,
                     const TrainerState& s) {
  torch::serialize::OutputArchive ar, model_ar, opt_ar;
  model.save(model_ar);
  opt.save(opt_ar);
  ar.write("model", model_ar);
  ar.write("optimizer", opt_ar);
  ar.write("format", c10::IValue(kCheckpointFormat));
  ar.write("step", c10::IValue(s.step));
  ar.write("data_epoch", c10::IValue(s.data.epoch));
  ar.write("data_batch", c10::IValue(s.data.batch));
  ar.write("best", c10::IValue(s.best));
  ar.write("best_step", c10::IValue(s.best_step));
  ar.write("bad_evals", c10::IValue(s.bad_evals));
  ar.write("train_seconds", c10::IValue(s.train_seconds));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    ar.write("rng_cpu", gen.get_state());
  }
  save_archive_atomic(ar, path);
}

// Reads a checkpoint (verified against its checksum: harness/checkpoint_file.h) into the model, and
// into the optimizer, the trainer's counters and the CPU generator when opt is given.
TrainerState load_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer* opt) {
  const CheckpointFields f = read_checkpoint(path, model, opt);
  TrainerState s;
  if (!opt) return s;
  s.step = f.step;
  s.data.epoch = f.data_epoch;
  s.data.batch = f.data_batch;
  s.best_step = f.best_step;
  s.bad_evals = f.bad_evals;
  s.best = f.best;
  s.train_seconds = f.train_seconds;
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  try {
    gen.set_state(f.rng_cpu);
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format("{}: its random-generator state cannot be restored: {}", path.string(),
                                         e.what_without_backtrace()));
  }
  return s;
}

// Loads the newest checkpoint of `newest_first` that is intact. A damaged one is set aside
// (<file>.damaged) with a warning naming it, and the next older one is tried: the intact checkpoints
// trainer.keep_checkpoints kept are what make a resume possible after a crash mid-write or a damaged
// disk. Throws naming every file when none is usable.
std::pair<TrainerState, fs::path> load_newest_intact(const std::vector<fs::path>& newest_first,
                                                     torch::nn::Module& model, torch::optim::Optimizer* opt,
                                                     bool set_aside) {
  std::string damaged;
  for (size_t i = 0; i < newest_first.size(); ++i) {
    const fs::path& path = newest_first[i];
    try {
      TrainerState s = load_checkpoint(path, model, opt);
      return {s, path};
    } catch (const CheckpointDamaged& e) {
      const fs::path moved = set_aside ? set_aside_damaged(path) : path;
      if (i + 1 < newest_first.size())  // the last one's damage is in the error below
        std::fprintf(stderr, "warning: %s%s; trying the previous checkpoint\n", e.what(),
                     set_aside ? fmt::format(" (moved to {})", moved.filename().string()).c_str() : "");
      damaged += fmt::format("{}{}", damaged.empty() ? "" : "; ", e.what());
    }
  }
  throw std::runtime_error(fmt::format("no intact checkpoint to load: {}", damaged));
}

void save_model_only(const fs::path& path, torch::nn::Module& model) {
  torch::serialize::OutputArchive ar, model_ar;
  model.save(model_ar);
  ar.write("model", model_ar);
  ar.write("format", c10::IValue(kCheckpointFormat));
  save_archive_atomic(ar, path);
}

// Keeps the metric lines a checkpoint at `step` has seen; later lines belong to the lost part of an
// interrupted run and are dropped (so the resumed run writes them again, once).
void truncate_metrics(const fs::path& file, int64_t step) {
  if (!fs::exists(file)) return;
  std::ifstream in(file);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      json j = json::parse(line);
      if (j.value("step", int64_t(0)) <= step) kept += line + "\n";
    } catch (const json::parse_error&) {
      // a torn last line of a killed run
    }
  }
  write_file_atomic(file, kept);
}

// ---- progress -------------------------------------------------------------------------------

class Progress {
 public:
  Progress(const std::string& mode, int64_t total, int64_t log_every) : total_(total), log_every_(log_every) {
    const bool tty = isatty(fileno(stderr));
    bar_ = mode == "bar" || (mode == "auto" && tty);
    off_ = mode == "off";
  }
  // A step line: printed every log_every steps (and at the end) as plain text; on a terminal the
  // bar line is redrawn every step.
  void step(int64_t step, const std::string& line, bool log_now) {
    if (off_) return;
    if (bar_) {
      int width = 100;
      winsize w{};
      if (ioctl(fileno(stderr), TIOCGWINSZ, &w) == 0 && w.ws_col > 20) width = w.ws_col;
      const int bar_w = 24;
      const int filled = int(bar_w * double(step) / double(std::max<int64_t>(1, total_)));
      std::string s = "[" + std::string(filled, '#') + std::string(bar_w - filled, '.') + "] " + line;
      if (int(s.size()) > width - 1) s.resize(width - 1);
      std::fprintf(stderr, "\r\033[K%s", s.c_str());
      if (log_now && step == total_) std::fprintf(stderr, "\n");
      std::fflush(stderr);
    } else if (log_now) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  void message(const std::string& s) {
    if (off_) return;
    if (bar_) std::fprintf(stderr, "\r\033[K");
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }
  int64_t log_every() const { return log_every_; }

 private:
  int64_t total_, log_every_;
  bool bar_ = false, off_ = false;
};

double peak_flops(const torch::Device& device) {
  if (const char* env = std::getenv("MEGALODON_PEAK_TFLOPS")) return std::atof(env) * 1e12;
  if (!device.is_cuda()) return 0;
  // Dense bf16 tensor-core peaks; the name is not reachable through LibTorch's C++ API without
  // CUDA headers, so H100 SXM is assumed (the only GPU this project benchmarks on).
  return 989e12;
}

json run_record(const Config& cfg, const torch::Device& device, const TrainOptions& o, int64_t params,
                const std::string& task_desc) {
  json j;
  j["experiment"] = cfg.experiment_name;
  j["experiment_file"] = cfg.experiment_file.string();
  j["variant"] = cfg.get_string("run.variant");
  j["seed"] = cfg.get_int("seed");
  j["git_revision"] = git_revision(MEGALODON_SOURCE_DIR);
  j["torch_version"] = TORCH_VERSION;
  j["cuda"] = torch::cuda::is_available() ? fmt::format("{} device(s)", torch::cuda::device_count()) : "none";
  j["device"] = device.is_cuda() ? "cuda" : fmt::format("cpu ({} threads)", torch::get_num_threads());
  j["threads"] = torch::get_num_threads();
  j["hostname"] = hostname();
  j["command"] = o.command_line;
  j["started"] = now_iso();
  j["resumed"] = o.resume;
  j["parameters"] = params;
  j["task"] = task_desc;
  return j;
}

// Evaluation is data-parallel over every rank (no chunk parallelism: each rank scores whole
// sequences), and the additive metric sums are merged before finalising, so the metrics are exact.
std::map<std::string, double> evaluate(Task& task, Split split, const Config& cfg, const torch::Device& device,
                                       torch::nn::Module& model, dist::Context* dctx = nullptr) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  LoaderOptions lo;
  lo.batch_size = cfg.get_int("trainer.eval_batch_size") > 0 ? cfg.get_int("trainer.eval_batch_size")
                                                             : cfg.get_int("trainer.batch_size");
  lo.shuffle = false;
  lo.drop_last = false;
  lo.repeat = false;
  lo.workers = static_cast<int>(cfg.get_int("trainer.workers"));
  lo.prefetch = static_cast<int>(cfg.get_int("trainer.prefetch"));
  lo.seed = static_cast<uint64_t>(cfg.get_int("seed"));
  if (dctx) lo.shard = dctx->rank(), lo.num_shards = dctx->world();
  DataLoader loader(task, split, lo);
  MetricSums sums;
  while (auto b = loader.next()) {
    if (b->examples == 0 && !b->inputs.defined()) continue;  // an empty shard of the last batch
    sums.merge(task.step(b->to(device), false).sums);
  }
  model.train(was_training);
  if (dctx) {
    MetricSums all;
    for (const auto& s : dctx->all_gather_strings(json(sums.sum).dump())) {
      const json j = json::parse(s);  // (not a temporary in the range-for: items() refers to it)
      for (const auto& [k, v] : j.items()) all.add(k, v.get<double>());
    }
    sums = all;
  }
  return task.finalize(sums);
}


void check_precision(const Config& cfg, const torch::Device& device) {
  const std::string p = cfg.get_string("trainer.precision");
  if (p == "fp16" && cfg.get_string("model.ema") == "cema")
    throw ConfigError(cfg.origin("trainer.precision"), "trainer.precision",
                      "fp16 is refused with the complex EMA: its powers and FFT products overflow fp16's range; use "
                      "bf16 (autocast with CEMA and norm statistics kept in fp32) or fp32");
  if (p == "fp16")
    throw ConfigError(cfg.origin("trainer.precision"), "trainer.precision",
                      "fp16 needs loss scaling, which this trainer does not implement; use bf16 or fp32");
  if (p == "bf16" && !device.is_cuda())
    throw ConfigError(cfg.origin("trainer.precision"), "trainer.precision",
                      "bf16 autocast is used on CUDA only; on the CPU use fp32");
}

}  // namespace

// Test hook for the failure behaviour of distributed jobs: MEGALODON_TEST_FAULT =
// "<rank>:<step>:<kill|hang|exit>[:<marker file>]" makes that rank die (SIGKILL), hang (stop
// forever) or exit(3) right after that step (and its checkpoint). With a marker file it fires only
// once (the file records that it did), so a restarted job runs through.
void maybe_inject_fault(int rank, int64_t step) {
  const char* spec = std::getenv("MEGALODON_TEST_FAULT");
  if (!spec || !*spec) return;
  std::vector<std::string> f;
  std::stringstream ss(spec);
  for (std::string t; std::getline(ss, t, ':');) f.push_back(t);
  if (f.size() < 3 || std::stoi(f[0]) != rank || std::stoll(f[1]) != step) return;
  if (f.size() >= 4) {
    if (fs::exists(f[3])) return;
    std::ofstream(f[3]) << "fired\n";
  }
  std::fprintf(stderr, "MEGALODON_TEST_FAULT: rank %d %s after step %lld\n", rank, f[2].c_str(),
               static_cast<long long>(step));
  std::fflush(stderr);
  if (f[2] == "kill") raise(SIGKILL);
  if (f[2] == "hang")
    for (;;) pause();
  std::exit(3);
}

// Chunk parallelism: this rank's columns [r·L/cp, (r+1)·L/cp) of a B×L language-model batch.
Batch chunk_slice(const Batch& b, const dist::Context& d) {
  const int64_t cp = d.cp_size();
  if (!b.inputs.defined() || b.inputs.dim() < 2 || !b.targets.defined() || b.targets.dim() < 2 || !b.extra.empty())
    throw std::runtime_error("dist.chunk_parallel > 1 splits each sequence across ranks: it needs a task with B×L "
                             "inputs and per-token targets (a language model)");
  const int64_t L = b.inputs.size(1);
  if (L % cp != 0)
    throw std::runtime_error(fmt::format("dist.chunk_parallel = {}: the batch's sequences of {} tokens do not split "
                                         "evenly across {} ranks",
                                         cp, L, cp));
  const int64_t S = L / cp, off = S * d.cp_rank();
  Batch out = b;
  out.inputs = b.inputs.narrow(1, off, S);
  out.targets = b.targets.narrow(1, off, S);
  if (b.mask.defined()) out.mask = b.mask.narrow(1, off, S);
  out.tokens = b.tokens / cp;
  return out;
}

fs::path run_directory(const Config& cfg) {
  const std::string dir = cfg.get_string("run.dir");
  if (!dir.empty()) return dir;
  return fs::path(cfg.get_string("run.root")) / cfg.experiment_name / slug(cfg.get_string("run.variant")) /
         fmt::format("seed{}", cfg.get_int("seed"));
}

TrainResult train(const Config& cfg, const TrainOptions& o) {
  const auto t_start = Clock::now();
  const fs::path dir = run_directory(cfg);
  const fs::path ckpt_dir = dir / "checkpoints";
  const fs::path metrics_file = dir / "metrics.jsonl";
  const auto existing = list_checkpoints(ckpt_dir);
  if (!o.resume && (!existing.empty() || fs::exists(dir / "final.json")))
    throw std::runtime_error(fmt::format("{} already holds a run; pass --resume to continue it, or choose another "
                                         "run.dir / seed / variant",
                                         dir.string()));

  if (cfg.get_int("run.threads") > 0) torch::set_num_threads(static_cast<int>(cfg.get_int("run.threads")));
  const torch::Device device = pick_device(cfg);
  check_precision(cfg, device);
  const int64_t seed = cfg.get_int("seed");
  const int64_t steps = cfg.get_int("trainer.steps");
  const int64_t accumulate = cfg.get_int("trainer.accumulate");
  const int64_t log_every = std::max<int64_t>(1, cfg.get_int("trainer.log_every"));
  const int64_t eval_every = cfg.get_int("trainer.eval_every");
  const int64_t ckpt_every = cfg.get_int("trainer.checkpoint_every");
  const int64_t patience = cfg.get_int("trainer.patience");
  const double clip = cfg.get_float("optim.clip");
  const double base_lr = cfg.get_float("optim.lr");
  const std::string schedule = cfg.get_string("schedule.name");
  const ScheduleParams sp = schedule_params(cfg);
  const std::string monitor = cfg.get_string("trainer.monitor");
  const bool maximise = monitor_maximises(cfg);
  const bool bf16 = cfg.get_string("trainer.precision") == "bf16";
  if (steps <= 0) throw ConfigError(cfg.origin("trainer.steps"), "trainer.steps", "must be positive");
  if (accumulate <= 0) throw ConfigError(cfg.origin("trainer.accumulate"), "trainer.accumulate", "must be positive");
  if (monitor.rfind("val/", 0) != 0)
    throw ConfigError(cfg.origin("trainer.monitor"), "trainer.monitor", "expected a validation metric, e.g. val/accuracy");

  // ---- processes (harness/dist): WORLD_SIZE ranks from the environment (torchrun, Slurm,
  // `megalodon launch`), or this one alone. Rank 0 writes the run directory; all ranks train.
  const dist::Env denv = dist::env_from_environment();
  dist::Options dopt;
  dopt.chunk_parallel = cfg.get_int("dist.chunk_parallel");
  dopt.timeout_s = cfg.get_float("dist.timeout_s");
  dopt.bucket_mb = cfg.get_float("dist.bucket_mb");
  dopt.backend = cfg.get_string("dist.backend");
  if (dopt.chunk_parallel < 1 || denv.world % dopt.chunk_parallel != 0)
    throw ConfigError(cfg.origin("dist.chunk_parallel"), "dist.chunk_parallel",
                      fmt::format("must divide the number of processes (WORLD_SIZE = {})", denv.world));
  if (dopt.timeout_s <= 0) throw ConfigError(cfg.origin("dist.timeout_s"), "dist.timeout_s", "must be positive");
  std::unique_ptr<dist::Context> dctx;
  if (denv.world > 1 || cfg.get_bool("dist.always")) {
    const torch::Device dev = device.is_cuda() ? torch::Device(torch::kCUDA, denv.local_rank) : device;
    dctx = dist::Context::create(denv, dopt, dev);
  }
  const bool main_rank = !dctx || dctx->is_main();
  const int64_t dp = dctx ? dctx->dp_size() : 1;
  if (cfg.get_int("trainer.batch_size") % dp != 0)
    throw ConfigError(cfg.origin("trainer.batch_size"), "trainer.batch_size",
                      fmt::format("the global batch must split evenly over {} data-parallel ranks", dp));
  try {

  // One seed drives model init (here), the data order (the loader's generators, derived from the
  // same seed) and dropout (the global generator, saved in checkpoints).
  torch::manual_seed(static_cast<uint64_t>(seed));
  const TaskEntry& entry = task_registry().at(cfg.get_string("task.name"), "task.name");
  std::unique_ptr<Task> task = entry.create(cfg);
  torch::manual_seed(static_cast<uint64_t>(seed));
  std::shared_ptr<torch::nn::Module> model = task->build_model();
  const torch::Device mdev =
      device.is_cuda() && dctx ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(denv.local_rank)) : device;
  model->to(mdev);
  model->train();
  OptimizerBuild ob = make_optimizer(cfg, *model);
  torch::optim::Optimizer& opt = *ob.optimizer;
  // The run directory is created only now, once the configuration, the data and the model are known to
  // be good: a run that cannot start leaves nothing behind.
  if (main_rank) fs::create_directories(ckpt_dir);
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();

  TrainerState st;
  if (o.resume && !existing.empty()) {
    std::vector<fs::path> newest_first;
    for (auto it = existing.rbegin(); it != existing.rend(); ++it) newest_first.push_back(it->second);
    st = load_newest_intact(newest_first, *model, &opt, main_rank).first;
    if (main_rank) truncate_metrics(metrics_file, st.step);
  } else if (o.resume && main_rank) {
    truncate_metrics(metrics_file, 0);
  }
  std::unique_ptr<dist::Context::GradSync> gsync;
  if (dctx) {
    dctx->broadcast_module(*model);  // identical start on every rank whatever happened before
    // Dropout differs per rank (each sees other data); the stream is a function of (seed, rank, step).
    torch::manual_seed(static_cast<uint64_t>(seed) * 1000003ull + 7919ull * static_cast<uint64_t>(st.step) +
                       static_cast<uint64_t>(dctx->rank()));
    std::vector<torch::Tensor> trainable;
    for (const auto& p : model->parameters())
      if (p.requires_grad()) trainable.push_back(p);
    gsync = std::make_unique<dist::Context::GradSync>(*dctx, trainable);
  }
  json record = run_record(cfg, device, o, params, task->describe());
  record["optimizer_groups"] = {{"decayed", ob.decayed}, {"no_decay", ob.exempt}};
  record["dist"] = {{"world_size", dctx ? dctx->world() : 1},
                    {"data_parallel", dp},
                    {"chunk_parallel", dctx ? dctx->cp_size() : 1},
                    {"backend", dctx ? dctx->backend() : "none"}};
  if (main_rank) {
    write_file_atomic(dir / "config.toml", "# resolved configuration of this run\n" + cfg.to_toml());
    write_json_atomic(dir / "run.json", record);
  }

  Progress progress(main_rank ? cfg.get_string("trainer.progress") : "off", steps, log_every);
  progress.message(fmt::format("run {} | {} | {} parameters | {} | {}{}", dir.string(), task->describe(), params,
                               record["device"].get<std::string>(),
                               o.resume && st.step > 0 ? fmt::format("resumed at step {}", st.step) : "from scratch",
                               dctx ? fmt::format(" | {} processes ({} data × {} chunk parallel, {})", dctx->world(), dp,
                                                  dctx->cp_size(), dctx->backend())
                                    : ""));

  std::ofstream metrics;
  if (main_rank) metrics.open(metrics_file, std::ios::app);
  auto log_json = [&](const json& j) {
    if (!main_rank) return;
    metrics << j.dump() << "\n";
    metrics.flush();
  };

  LoaderOptions lo;
  lo.batch_size = cfg.get_int("trainer.batch_size");
  lo.workers = static_cast<int>(cfg.get_int("trainer.workers"));
  lo.prefetch = static_cast<int>(cfg.get_int("trainer.prefetch"));
  lo.seed = static_cast<uint64_t>(seed);
  if (dctx) lo.shard = dctx->dp_rank(), lo.num_shards = static_cast<int>(dp);
  auto loader = std::make_unique<DataLoader>(*task, Split::train, lo, st.data);
  const double peak = peak_flops(device);
  const double flops_per_example = task->train_flops_per_example();

  // Interval accumulators for the step line.
  double iv_loss = 0, iv_norm = 0, iv_time = 0, iv_wait = 0;
  int64_t iv_steps = 0, iv_tokens = 0, iv_examples = 0;
  bool early_stopped = false;
  std::map<std::string, double> last_val;
  const auto keep = std::max<int64_t>(1, cfg.get_int("trainer.keep_checkpoints"));
  auto checkpoint = [&]() {
    st.data = loader->position();
    if (!main_rank) return;
    save_checkpoint(ckpt_dir / fmt::format("step_{:08d}.pt", st.step), *model, opt, st);
    auto all = list_checkpoints(ckpt_dir);
    for (size_t i = 0; i + keep < all.size(); ++i) {
      fs::remove(all[i].second);
      fs::remove(checksum_path(all[i].second));
    }
  };

  while (st.step < steps) {
    const auto t0 = Clock::now();
    const double wait0 = loader->wait_seconds();
    const double lr = base_lr * lr_multiplier(schedule, st.step, sp);
    set_learning_rate(opt, lr);
    opt.zero_grad();
    double loss_sum = 0;
    int64_t tokens = 0, examples = 0;
    for (int64_t micro = 0; micro < accumulate; ++micro) {
      if (gsync) gsync->prepare(micro + 1 == accumulate);
      Batch b = loader->next()->to(mdev);
      if (dctx && dctx->cp_size() > 1) b = chunk_slice(b, *dctx);
      StepOutput out;
      {
        AutocastScope autocast(bf16);
        SequenceExchangeScope exchange(dctx ? dctx->exchange() : nullptr);
        out = task->step(b, true);
      }
      if (dctx && dctx->exchange() && dctx->exchange()->gathers == 0)
        throw ConfigError(cfg.origin("dist.chunk_parallel"), "dist.chunk_parallel",
                          "this model carries no state across ranks (only Megalodon language models can split a "
                          "sequence across ranks); use 1");
      (out.loss / double(accumulate)).backward();
      loss_sum += out.loss.item<double>();
      tokens += b.tokens;
      examples += b.examples;
    }
    if (gsync) {
      gsync->finish();  // gradients averaged over every rank
      std::vector<double> v{loss_sum, double(tokens), double(examples)};
      dctx->all_reduce_sum(v);
      loss_sum = v[0] / dctx->world();
      tokens = static_cast<int64_t>(v[1]);
      examples = static_cast<int64_t>(v[2]) / dctx->cp_size();
    }
    const double loss = loss_sum / double(accumulate);
    if (!std::isfinite(loss))
      throw std::runtime_error(fmt::format("non-finite training loss ({}) at step {}; the last checkpoint is kept in {}",
                                           loss, st.step + 1, ckpt_dir.string()));
    const double norm =
        torch::nn::utils::clip_grad_norm_(model->parameters(), clip > 0 ? clip : std::numeric_limits<double>::infinity());
    opt.step();
    ++st.step;
    const double dt = seconds_since(t0);
    st.train_seconds += dt;
    iv_loss += loss;
    iv_norm += norm;
    iv_time += dt;
    iv_wait += loader->wait_seconds() - wait0;
    iv_tokens += tokens;
    iv_examples += examples;
    ++iv_steps;

    const bool log_now = st.step % log_every == 0 || st.step == steps;
    std::string line = fmt::format("step {:>{}}/{} | loss {:.4f} | norm {:.3f} | lr {:.2e} | {:.1f} ms | {:.0f} tok/s",
                                   st.step, std::to_string(steps).size(), steps, iv_loss / iv_steps,
                                   iv_norm / iv_steps, lr, 1e3 * iv_time / iv_steps, iv_tokens / iv_time);
    if (peak > 0 && flops_per_example > 0)
      line += fmt::format(" | mfu {:.1f}%", 100.0 * flops_per_example * iv_examples / iv_time / peak);
    line += fmt::format(" | data wait {:.1f}%", 100.0 * iv_wait / iv_time);
    progress.step(st.step, line, log_now);
    if (log_now) {
      log_json({{"step", st.step},
                {"split", "train"},
                {"loss", iv_loss / iv_steps},
                {"grad_norm", iv_norm / iv_steps},
                {"lr", lr},
                {"ms", 1e3 * iv_time / iv_steps},
                {"tokens_per_s", iv_tokens / iv_time},
                {"examples_per_s", iv_examples / iv_time},
                {"data_wait", iv_wait / iv_time}});
      iv_loss = iv_norm = iv_time = iv_wait = 0;
      iv_steps = iv_tokens = iv_examples = 0;
    }

    const bool eval_now = (eval_every > 0 && st.step % eval_every == 0) || st.step == steps;
    if (eval_now && task->size(Split::val) > 0) {
      auto m = evaluate(*task, Split::val, cfg, mdev, *model, dctx.get());
      json j = {{"step", st.step}, {"split", "val"}};
      std::string msg = fmt::format("eval step {} |", st.step);
      for (const auto& [k, v] : m) {
        j[k] = v;
        msg += fmt::format(" val/{} {:.4f}", k, v);
      }
      log_json(j);
      last_val = m;
      const std::string key = monitor.substr(4);
      if (!m.count(key))
        throw ConfigError(cfg.origin("trainer.monitor"), "trainer.monitor",
                          fmt::format("the task reports no validation metric '{}'", key));
      const double v = m.at(key);
      const bool better = std::isnan(st.best) || (maximise ? v > st.best : v < st.best);
      if (better) {
        st.best = v;
        st.best_step = st.step;
        st.bad_evals = 0;
        if (main_rank) save_model_only(dir / "best.pt", *model);
        msg += " (best)";
      } else {
        ++st.bad_evals;
      }
      progress.message(msg);
      if (patience > 0 && st.bad_evals >= patience) early_stopped = true;
      checkpoint();  // every evaluation is a consistent point to resume from
    } else if ((ckpt_every > 0 && st.step % ckpt_every == 0) || st.step == steps) {
      checkpoint();
    }
    maybe_inject_fault(dctx ? dctx->rank() : 0, st.step);
    if (early_stopped) {
      progress.message(fmt::format("early stop at step {}: {} evaluations without improvement of {}", st.step,
                                   st.bad_evals, monitor));
      if (st.step != steps) checkpoint();
      break;
    }
  }
  loader.reset();
  if (dctx) dctx->barrier();  // rank 0 has written best.pt before anyone reads it

  TrainResult result;
  result.run_dir = dir;
  result.steps = st.step;
  result.early_stopped = early_stopped;
  // Final metrics: validation of the best checkpoint (as monitored) and its test score.
  if (fs::exists(dir / "best.pt")) load_checkpoint(dir / "best.pt", *model, nullptr);
  if (task->size(Split::val) > 0) {
    for (const auto& [k, v] : (st.best_step == st.step && !last_val.empty()) ? last_val
                                                                             : evaluate(*task, Split::val, cfg, mdev, *model, dctx.get()))
      result.metrics["val/" + k] = v;
  }
  if (cfg.get_bool("trainer.test_at_end") && task->size(Split::test) > 0) {
    auto m = evaluate(*task, Split::test, cfg, mdev, *model, dctx.get());
    json j = {{"step", st.step}, {"split", "test"}, {"checkpoint_step", st.best_step}};
    std::string msg = "test (best checkpoint) |";
    for (const auto& [k, v] : m) {
      j[k] = v;
      result.metrics["test/" + k] = v;
      msg += fmt::format(" test/{} {:.4f}", k, v);
    }
    log_json(j);
    progress.message(msg);
  }
  json fin = {{"status", "finished"},
              {"variant", cfg.get_string("run.variant")},
              {"seed", seed},
              {"steps", st.step},
              {"best_step", st.best_step},
              {"early_stopped", early_stopped},
              {"train_seconds", st.train_seconds},
              {"wall_seconds_last_session", seconds_since(t_start)},
              {"parameters", params},
              {"task", task->describe()},
              {"metrics", result.metrics}};
  if (main_rank) write_json_atomic(dir / "final.json", fin);
  if (dctx) dctx->barrier();  // nobody leaves (and tears down the group) before final.json exists
  return result;
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    if (!dctx) throw;
    throw std::runtime_error(dist::describe_failure(*dctx, e));
  }
}


torch::Device run_device(const Config& cfg) { return pick_device(cfg); }

LoadedRun load_run(const fs::path& run_dir, const std::string& which, const std::vector<std::string>& overrides) {
  const fs::path cfg_file = run_dir / "config.toml";
  if (!fs::exists(cfg_file))
    throw std::runtime_error(fmt::format("{}: no config.toml (not a run directory)", run_dir.string()));
  LoadOptions lo;
  lo.overrides = overrides;
  lo.config_root = run_dir;  // the resolved config has no defaults list
  LoadedRun r;
  r.cfg = ConfigLoader::load(cfg_file, lo, experiment_schema);
  if (r.cfg.get_int("run.threads") > 0) torch::set_num_threads(static_cast<int>(r.cfg.get_int("run.threads")));
  // "latest": the newest intact step checkpoint (a damaged newer one is skipped with a warning, and
  // left in place: eval and export only read); "best" and a path: that file, or a clear error.
  std::vector<fs::path> candidates;
  if (which == "best") {
    candidates.push_back(run_dir / "best.pt");
  } else if (which == "latest") {
    auto all = list_checkpoints(run_dir / "checkpoints");
    for (auto it = all.rbegin(); it != all.rend(); ++it) candidates.push_back(it->second);
  } else {
    candidates.push_back(which);
  }
  if (candidates.empty() || !fs::exists(candidates.front()))
    throw std::runtime_error(fmt::format("{}: no '{}' checkpoint", run_dir.string(), which));
  torch::manual_seed(static_cast<uint64_t>(r.cfg.get_int("seed")));
  r.task = task_registry().at(r.cfg.get_string("task.name"), "task.name").create(r.cfg);
  r.model = r.task->build_model();
  try {
    load_newest_intact(candidates, *r.model, nullptr, false);
  } catch (const std::runtime_error& e) {
    if (which != "best") throw;
    throw std::runtime_error(fmt::format("{} (`--checkpoint latest` loads the newest intact step checkpoint instead)",
                                         e.what()));
  }
  return r;
}


std::map<std::string, double> evaluate_run(const fs::path& run_dir, const std::string& split, const std::string& which,
                                           const std::vector<std::string>& overrides) {
  Split s;
  if (split == "train") s = Split::train;
  else if (split == "val") s = Split::val;
  else if (split == "test") s = Split::test;
  else throw std::invalid_argument("--split must be train, val or test");
  LoadedRun r = load_run(run_dir, which, overrides);
  const torch::Device device = pick_device(r.cfg);
  r.model->to(device);
  std::map<std::string, double> out;
  for (const auto& [k, v] : evaluate(*r.task, s, r.cfg, device, *r.model)) out[split + "/" + k] = v;
  return out;
}

std::string export_run(const fs::path& run_dir, const std::string& which, const fs::path& out,
                       const std::vector<std::string>& overrides) {
  LoadedRun r = load_run(run_dir, which, overrides);
  auto spec = r.task->model_spec();
  if (!spec)
    throw std::runtime_error(fmt::format("task '{}' does not describe its model for export",
                                         r.cfg.get_string("task.name")));
  export_weights(*r.model, *spec, out);
  return spec->architecture;
}

}  // namespace mgl::harness
