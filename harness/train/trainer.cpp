// The training loop (trainer.h): one run as the steps of a Trainer (set-up, build, resume, then per
// step the optimizer step and evaluate-and-checkpoint, and finish), and the evaluation of a split.
// Checkpoints are in checkpoint.cpp, run.json in run_record.cpp, the step line's display in
// progress.h; reloading a finished run is harness/run.cpp.
#include "harness/train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/modules/sequence_parallel.h"
#include "harness/dist/dist.h"
#include "harness/task.h"
#include "harness/train/autocast.h"
#include "harness/train/checkpoint.h"
#include "harness/train/checkpoint_file.h"
#include "harness/train/data_loader.h"
#include "harness/train/optim.h"
#include "harness/train/progress.h"
#include "harness/util/files.h"

namespace mgl::harness {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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

double peak_flops(const torch::Device& device) {
  if (const char* env = std::getenv("MEGALODON_PEAK_TFLOPS")) return std::atof(env) * 1e12;
  if (!device.is_cuda()) return 0;
  // Dense bf16 tensor-core peaks; the name is not reachable through LibTorch's C++ API without
  // CUDA headers, so H100 SXM is assumed (the only GPU this project benchmarks on).
  return 989e12;
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

// ---- one run ----------------------------------------------------------------------------------

// One call of train(), in its steps: set_up (run directory, settings, device, processes), build
// (task, model, optimizer), resume (or start), write_run_files, then per optimizer step `step`
// and evaluate_and_checkpoint, and finish (the best checkpoint's scores, final.json). Members are
// declared in the order the steps create them, so they are destroyed in reverse, as locals were.
class Trainer {
 public:
  Trainer(const Config& cfg, const TrainOptions& o) : cfg_(cfg), o_(o) {}
  TrainResult run();

 private:
  void set_up();
  void set_up_processes();
  void build();
  void resume();
  void write_run_files();
  void step();
  void log_step(double lr);
  void evaluate_and_checkpoint();
  void checkpoint();
  TrainResult finish();
  void log_json(const json& j);

  const Config& cfg_;
  const TrainOptions& o_;
  const Clock::time_point t_start_ = Clock::now();
  fs::path dir_, ckpt_dir_, metrics_file_;
  std::vector<std::pair<int64_t, fs::path>> existing_;  // checkpoints found at the start
  // Settings.
  torch::Device device_{torch::kCPU};
  int64_t seed_ = 0, steps_ = 0, accumulate_ = 0, log_every_ = 0, eval_every_ = 0, ckpt_every_ = 0, patience_ = 0;
  double clip_ = 0, base_lr_ = 0;
  std::string schedule_, monitor_;
  ScheduleParams sp_;
  bool maximise_ = false, bf16_ = false;
  // Processes (harness/dist).
  dist::Env denv_;
  std::unique_ptr<dist::Context> dctx_;
  bool main_rank_ = true;
  int64_t dp_ = 1;
  // The task, its model on mdev_, the optimizer and where the run stands.
  std::unique_ptr<Task> task_;
  std::shared_ptr<torch::nn::Module> model_;
  torch::Device mdev_{torch::kCPU};
  OptimizerBuild ob_;
  int64_t params_ = 0;
  TrainerState st_;
  std::unique_ptr<dist::Context::GradSync> gsync_;
  json record_;
  std::unique_ptr<Progress> progress_;
  std::ofstream metrics_;
  std::unique_ptr<DataLoader> loader_;
  double peak_ = 0, flops_per_example_ = 0;
  // Interval accumulators for the step line.
  double iv_loss_ = 0, iv_norm_ = 0, iv_time_ = 0, iv_wait_ = 0;
  int64_t iv_steps_ = 0, iv_tokens_ = 0, iv_examples_ = 0;
  bool early_stopped_ = false;
  std::map<std::string, double> last_val_;
  int64_t keep_ = 1;
};

TrainResult Trainer::run() {
  set_up();
  try {
    build();
    resume();
    write_run_files();
    while (st_.step < steps_) {
      step();
      evaluate_and_checkpoint();
      maybe_inject_fault(dctx_ ? dctx_->rank() : 0, st_.step);
      if (early_stopped_) {
        progress_->message(fmt::format("early stop at step {}: {} evaluations without improvement of {}", st_.step,
                                       st_.bad_evals, monitor_));
        if (st_.step != steps_) checkpoint();
        break;
      }
    }
    loader_.reset();
    if (dctx_) dctx_->barrier();  // rank 0 has written best.pt before anyone reads it
    return finish();
  } catch (const ConfigError&) {
    throw;
  } catch (const std::exception& e) {
    if (!dctx_) throw;
    throw std::runtime_error(dist::describe_failure(*dctx_, e));
  }
}

// The run directory (refusing to overwrite a run unless resuming), the settings, the device and
// the processes; settings are checked before anything is built.
void Trainer::set_up() {
  dir_ = run_directory(cfg_);
  ckpt_dir_ = dir_ / "checkpoints";
  metrics_file_ = dir_ / "metrics.jsonl";
  existing_ = list_checkpoints(ckpt_dir_);
  if (!o_.resume && (!existing_.empty() || fs::exists(dir_ / "final.json")))
    throw std::runtime_error(fmt::format("{} already holds a run; pass --resume to continue it, or choose another "
                                         "run.dir / seed / variant",
                                         dir_.string()));

  if (cfg_.get_int("run.threads") > 0) torch::set_num_threads(static_cast<int>(cfg_.get_int("run.threads")));
  device_ = pick_device(cfg_);
  check_precision(cfg_, device_);
  seed_ = cfg_.get_int("seed");
  steps_ = cfg_.get_int("trainer.steps");
  accumulate_ = cfg_.get_int("trainer.accumulate");
  log_every_ = std::max<int64_t>(1, cfg_.get_int("trainer.log_every"));
  eval_every_ = cfg_.get_int("trainer.eval_every");
  ckpt_every_ = cfg_.get_int("trainer.checkpoint_every");
  patience_ = cfg_.get_int("trainer.patience");
  clip_ = cfg_.get_float("optim.clip");
  base_lr_ = cfg_.get_float("optim.lr");
  schedule_ = cfg_.get_string("schedule.name");
  sp_ = schedule_params(cfg_);
  monitor_ = cfg_.get_string("trainer.monitor");
  maximise_ = monitor_maximises(cfg_);
  bf16_ = cfg_.get_string("trainer.precision") == "bf16";
  if (steps_ <= 0) throw ConfigError(cfg_.origin("trainer.steps"), "trainer.steps", "must be positive");
  if (accumulate_ <= 0)
    throw ConfigError(cfg_.origin("trainer.accumulate"), "trainer.accumulate", "must be positive");
  if (monitor_.rfind("val/", 0) != 0)
    throw ConfigError(cfg_.origin("trainer.monitor"), "trainer.monitor",
                      "expected a validation metric, e.g. val/accuracy");
  set_up_processes();
}

// WORLD_SIZE ranks from the environment (torchrun, Slurm, `megalodon launch`), or this one alone.
// Rank 0 writes the run directory; all ranks train.
void Trainer::set_up_processes() {
  denv_ = dist::env_from_environment();
  dist::Options dopt;
  dopt.chunk_parallel = cfg_.get_int("dist.chunk_parallel");
  dopt.timeout_s = cfg_.get_float("dist.timeout_s");
  dopt.bucket_mb = cfg_.get_float("dist.bucket_mb");
  dopt.backend = cfg_.get_string("dist.backend");
  if (dopt.chunk_parallel < 1 || denv_.world % dopt.chunk_parallel != 0)
    throw ConfigError(cfg_.origin("dist.chunk_parallel"), "dist.chunk_parallel",
                      fmt::format("must divide the number of processes (WORLD_SIZE = {})", denv_.world));
  if (dopt.timeout_s <= 0) throw ConfigError(cfg_.origin("dist.timeout_s"), "dist.timeout_s", "must be positive");
  if (denv_.world > 1 || cfg_.get_bool("dist.always")) {
    const torch::Device dev = device_.is_cuda() ? torch::Device(torch::kCUDA, denv_.local_rank) : device_;
    dctx_ = dist::Context::create(denv_, dopt, dev);
  }
  main_rank_ = !dctx_ || dctx_->is_main();
  dp_ = dctx_ ? dctx_->dp_size() : 1;
  if (cfg_.get_int("trainer.batch_size") % dp_ != 0)
    throw ConfigError(cfg_.origin("trainer.batch_size"), "trainer.batch_size",
                      fmt::format("the global batch must split evenly over {} data-parallel ranks", dp_));
}

// One seed drives model init (here), the data order (the loader's generators, derived from the
// same seed) and dropout (the global generator, saved in checkpoints).
void Trainer::build() {
  torch::manual_seed(static_cast<uint64_t>(seed_));
  const TaskEntry& entry = task_registry().at(cfg_.get_string("task.name"), "task.name");
  task_ = entry.create(cfg_);
  torch::manual_seed(static_cast<uint64_t>(seed_));
  model_ = task_->build_model();
  mdev_ = device_.is_cuda() && dctx_ ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(denv_.local_rank))
                                     : device_;
  model_->to(mdev_);
  model_->train();
  ob_ = make_optimizer(cfg_, *model_);
  for (const auto& p : model_->parameters()) params_ += p.numel();
  // The run directory is created only now, once the configuration, the data and the model are known to
  // be good: a run that cannot start leaves nothing behind.
  if (main_rank_) fs::create_directories(ckpt_dir_);
}

// The latest checkpoint's state (model, optimizer, position, generator) when resuming, with the
// metric lines after it dropped; then every rank starts from rank 0's weights.
void Trainer::resume() {
  if (o_.resume && !existing_.empty()) {
    std::vector<fs::path> newest_first;
    for (auto it = existing_.rbegin(); it != existing_.rend(); ++it) newest_first.push_back(it->second);
    st_ = load_newest_intact(newest_first, *model_, ob_.optimizer.get(), main_rank_).first;
    if (main_rank_) truncate_metrics(metrics_file_, st_.step);
  } else if (o_.resume && main_rank_) {
    truncate_metrics(metrics_file_, 0);
  }
  if (dctx_) {
    dctx_->broadcast_module(*model_);  // identical start on every rank whatever happened before
    // Dropout differs per rank (each sees other data); the stream is a function of (seed, rank, step).
    torch::manual_seed(static_cast<uint64_t>(seed_) * 1000003ull + 7919ull * static_cast<uint64_t>(st_.step) +
                       static_cast<uint64_t>(dctx_->rank()));
    std::vector<torch::Tensor> trainable;
    for (const auto& p : model_->parameters())
      if (p.requires_grad()) trainable.push_back(p);
    gsync_ = std::make_unique<dist::Context::GradSync>(*dctx_, trainable);
  }
}

// config.toml and run.json (rank 0), the first message, metrics.jsonl opened for appending, and the
// training data loader at the run's data position.
void Trainer::write_run_files() {
  record_ = run_record(cfg_, device_, o_.command_line, o_.resume, params_, task_->describe());
  record_["optimizer_groups"] = {{"decayed", ob_.decayed}, {"no_decay", ob_.exempt}};
  record_["dist"] = {{"world_size", dctx_ ? dctx_->world() : 1},
                     {"data_parallel", dp_},
                     {"chunk_parallel", dctx_ ? dctx_->cp_size() : 1},
                     {"backend", dctx_ ? dctx_->backend() : "none"}};
  if (main_rank_) {
    write_file_atomic(dir_ / "config.toml", "# resolved configuration of this run\n" + cfg_.to_toml());
    write_json_atomic(dir_ / "run.json", record_);
  }

  progress_ = std::make_unique<Progress>(main_rank_ ? cfg_.get_string("trainer.progress") : "off", steps_, log_every_);
  progress_->message(fmt::format(
      "run {} | {} | {} parameters | {} | {}{}", dir_.string(), task_->describe(), params_,
      record_["device"].get<std::string>(),
      o_.resume && st_.step > 0 ? fmt::format("resumed at step {}", st_.step) : "from scratch",
      dctx_ ? fmt::format(" | {} processes ({} data × {} chunk parallel, {})", dctx_->world(), dp_, dctx_->cp_size(),
                          dctx_->backend())
            : ""));

  if (main_rank_) metrics_.open(metrics_file_, std::ios::app);

  LoaderOptions lo;
  lo.batch_size = cfg_.get_int("trainer.batch_size");
  lo.workers = static_cast<int>(cfg_.get_int("trainer.workers"));
  lo.prefetch = static_cast<int>(cfg_.get_int("trainer.prefetch"));
  lo.seed = static_cast<uint64_t>(seed_);
  if (dctx_) lo.shard = dctx_->dp_rank(), lo.num_shards = static_cast<int>(dp_);
  loader_ = std::make_unique<DataLoader>(*task_, Split::train, lo, st_.data);
  peak_ = peak_flops(device_);
  flops_per_example_ = task_->train_flops_per_example();
  keep_ = std::max<int64_t>(1, cfg_.get_int("trainer.keep_checkpoints"));
}

void Trainer::log_json(const json& j) {
  if (!main_rank_) return;
  metrics_ << j.dump() << "\n";
  metrics_.flush();
}

// One optimizer step: `accumulate` micro-batches (each split across the chunk-parallel ranks),
// gradients averaged over the ranks, clipped, applied; then the step line.
void Trainer::step() {
  const auto t0 = Clock::now();
  const double wait0 = loader_->wait_seconds();
  const double lr = base_lr_ * lr_multiplier(schedule_, st_.step, sp_);
  torch::optim::Optimizer& opt = *ob_.optimizer;
  set_learning_rate(opt, lr);
  opt.zero_grad();
  double loss_sum = 0;
  int64_t tokens = 0, examples = 0;
  for (int64_t micro = 0; micro < accumulate_; ++micro) {
    if (gsync_) gsync_->prepare(micro + 1 == accumulate_);
    Batch b = loader_->next()->to(mdev_);
    if (dctx_ && dctx_->cp_size() > 1) b = chunk_slice(b, *dctx_);
    StepOutput out;
    {
      AutocastScope autocast(bf16_);
      // Chunk parallelism: the model runs this rank's segment of each sequence (SegmentParallel).
      ExchangeBinding exchange(dynamic_cast<SegmentParallel*>(task_->model().get()),
                               dctx_ ? dctx_->exchange() : nullptr);
      out = task_->step(b, true);
    }
    if (dctx_ && dctx_->exchange() && dctx_->exchange()->gathers == 0)
      throw ConfigError(cfg_.origin("dist.chunk_parallel"), "dist.chunk_parallel",
                        "this model carries no state across ranks (only Megalodon language models can split a "
                        "sequence across ranks); use 1");
    (out.loss / double(accumulate_)).backward();
    loss_sum += out.loss.item<double>();
    tokens += b.tokens;
    examples += b.examples;
  }
  if (gsync_) {
    gsync_->finish();  // gradients averaged over every rank
    std::vector<double> v{loss_sum, double(tokens), double(examples)};
    dctx_->all_reduce_sum(v);
    loss_sum = v[0] / dctx_->world();
    tokens = static_cast<int64_t>(v[1]);
    examples = static_cast<int64_t>(v[2]) / dctx_->cp_size();
  }
  const double loss = loss_sum / double(accumulate_);
  if (!std::isfinite(loss))
    throw std::runtime_error(fmt::format("non-finite training loss ({}) at step {}; the last checkpoint is kept in {}",
                                         loss, st_.step + 1, ckpt_dir_.string()));
  const double norm = torch::nn::utils::clip_grad_norm_(model_->parameters(),
                                                        clip_ > 0 ? clip_ : std::numeric_limits<double>::infinity());
  opt.step();
  ++st_.step;
  const double dt = seconds_since(t0);
  st_.train_seconds += dt;
  iv_loss_ += loss;
  iv_norm_ += norm;
  iv_time_ += dt;
  iv_wait_ += loader_->wait_seconds() - wait0;
  iv_tokens_ += tokens;
  iv_examples_ += examples;
  ++iv_steps_;
  log_step(lr);
}

// The step line (every step on a terminal's bar; every log_every steps as text and in
// metrics.jsonl, averaged over the interval).
void Trainer::log_step(double lr) {
  const bool log_now = st_.step % log_every_ == 0 || st_.step == steps_;
  std::string line = fmt::format("step {:>{}}/{} | loss {:.4f} | norm {:.3f} | lr {:.2e} | {:.1f} ms | {:.0f} tok/s",
                                 st_.step, std::to_string(steps_).size(), steps_, iv_loss_ / iv_steps_,
                                 iv_norm_ / iv_steps_, lr, 1e3 * iv_time_ / iv_steps_, iv_tokens_ / iv_time_);
  if (peak_ > 0 && flops_per_example_ > 0)
    line += fmt::format(" | mfu {:.1f}%", 100.0 * flops_per_example_ * iv_examples_ / iv_time_ / peak_);
  line += fmt::format(" | data wait {:.1f}%", 100.0 * iv_wait_ / iv_time_);
  progress_->step(st_.step, line, log_now);
  if (!log_now) return;
  log_json({{"step", st_.step},
            {"split", "train"},
            {"loss", iv_loss_ / iv_steps_},
            {"grad_norm", iv_norm_ / iv_steps_},
            {"lr", lr},
            {"ms", 1e3 * iv_time_ / iv_steps_},
            {"tokens_per_s", iv_tokens_ / iv_time_},
            {"examples_per_s", iv_examples_ / iv_time_},
            {"data_wait", iv_wait_ / iv_time_}});
  iv_loss_ = iv_norm_ = iv_time_ = iv_wait_ = 0;
  iv_steps_ = iv_tokens_ = iv_examples_ = 0;
}

// Every eval_every steps (and at the end): validation, best.pt when the monitored metric improves,
// the patience count, and a checkpoint; otherwise a checkpoint every checkpoint_every steps.
void Trainer::evaluate_and_checkpoint() {
  const bool eval_now = (eval_every_ > 0 && st_.step % eval_every_ == 0) || st_.step == steps_;
  if (!(eval_now && task_->size(Split::val) > 0)) {
    if ((ckpt_every_ > 0 && st_.step % ckpt_every_ == 0) || st_.step == steps_) checkpoint();
    return;
  }
  auto m = evaluate_split(*task_, Split::val, cfg_, mdev_, *model_, dctx_.get());
  json j = {{"step", st_.step}, {"split", "val"}};
  std::string msg = fmt::format("eval step {} |", st_.step);
  for (const auto& [k, v] : m) {
    j[k] = v;
    msg += fmt::format(" val/{} {:.4f}", k, v);
  }
  log_json(j);
  last_val_ = m;
  const std::string key = monitor_.substr(4);
  if (!m.count(key))
    throw ConfigError(cfg_.origin("trainer.monitor"), "trainer.monitor",
                      fmt::format("the task reports no validation metric '{}'", key));
  const double v = m.at(key);
  const bool better = std::isnan(st_.best) || (maximise_ ? v > st_.best : v < st_.best);
  if (better) {
    st_.best = v;
    st_.best_step = st_.step;
    st_.bad_evals = 0;
    if (main_rank_) save_model_only(dir_ / "best.pt", *model_);
    msg += " (best)";
  } else {
    ++st_.bad_evals;
  }
  progress_->message(msg);
  if (patience_ > 0 && st_.bad_evals >= patience_) early_stopped_ = true;
  checkpoint();  // every evaluation is a consistent point to resume from
}

// A step_<N>.pt of the current state (rank 0), keeping the newest trainer.keep_checkpoints.
void Trainer::checkpoint() {
  st_.data = loader_->position();
  if (!main_rank_) return;
  save_checkpoint(ckpt_dir_ / fmt::format("step_{:08d}.pt", st_.step), *model_, *ob_.optimizer, st_);
  auto all = list_checkpoints(ckpt_dir_);
  for (size_t i = 0; i + keep_ < all.size(); ++i) {
    fs::remove(all[i].second);
    fs::remove(checksum_path(all[i].second));
  }
}

// Final metrics: validation of the best checkpoint (as monitored) and its test score; final.json.
TrainResult Trainer::finish() {
  TrainResult result;
  result.run_dir = dir_;
  result.steps = st_.step;
  result.early_stopped = early_stopped_;
  if (fs::exists(dir_ / "best.pt")) load_checkpoint(dir_ / "best.pt", *model_, nullptr);
  if (task_->size(Split::val) > 0) {
    for (const auto& [k, v] : (st_.best_step == st_.step && !last_val_.empty())
                                  ? last_val_
                                  : evaluate_split(*task_, Split::val, cfg_, mdev_, *model_, dctx_.get()))
      result.metrics["val/" + k] = v;
  }
  if (cfg_.get_bool("trainer.test_at_end") && task_->size(Split::test) > 0) {
    auto m = evaluate_split(*task_, Split::test, cfg_, mdev_, *model_, dctx_.get());
    json j = {{"step", st_.step}, {"split", "test"}, {"checkpoint_step", st_.best_step}};
    std::string msg = "test (best checkpoint) |";
    for (const auto& [k, v] : m) {
      j[k] = v;
      result.metrics["test/" + k] = v;
      msg += fmt::format(" test/{} {:.4f}", k, v);
    }
    log_json(j);
    progress_->message(msg);
  }
  json fin = {{"status", "finished"},
              {"variant", cfg_.get_string("run.variant")},
              {"seed", seed_},
              {"steps", st_.step},
              {"best_step", st_.best_step},
              {"early_stopped", early_stopped_},
              {"train_seconds", st_.train_seconds},
              {"wall_seconds_last_session", seconds_since(t_start_)},
              {"parameters", params_},
              {"task", task_->describe()},
              {"metrics", result.metrics}};
  if (main_rank_) write_json_atomic(dir_ / "final.json", fin);
  if (dctx_) dctx_->barrier();  // nobody leaves (and tears down the group) before final.json exists
  return result;
}

}  // namespace

TrainResult train(const Config& cfg, const TrainOptions& options) { return Trainer(cfg, options).run(); }

std::map<std::string, double> evaluate_split(Task& task, Split split, const Config& cfg, const torch::Device& device,
                                             torch::nn::Module& model, dist::Context* dctx) {
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

torch::Device run_device(const Config& cfg) { return pick_device(cfg); }

}  // namespace mgl::harness
