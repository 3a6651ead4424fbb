// The trainer through its public seams: a toy task adapter registered from this file alone, seed
// determinism, SIGKILL + --resume reproducing an uninterrupted run, and sweeps that skip finished
// runs, resume interrupted ones and survive a failing one. Oracles: an uninterrupted run's
// per-step losses (bit-for-bit), and the run/sweep records on disk.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <numeric>
#include <thread>

#include "datasets/idx.h"
#include "harness/experiment.h"
#include "harness/io/weights.h"
#include "harness/report/table.h"
#include "harness/run.h"
#include "harness/sweep.h"
#include "harness/train/data_loader.h"
#include "harness/train/trainer.h"
#include "harness/util/files.h"
#include "support/files.h"
#include "tasks/classification.h"

using mgl::harness::Config;
using mgl::harness::load_experiment;
using mgl::test::TempDir;
using mgl::test::write_text;
using json = nlohmann::json;

namespace {

// ---- a toy task adapter: everything it needs is in this file -----------------------------------
// Sequences of 16 random values; the class is whether the first four sum to more than zero.
class ToySignTask final : public mgl::tasks::ClassificationTask {
 public:
  explicit ToySignTask(const Config& cfg) : ClassificationTask(cfg, 2, 1, -1, 16) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    for (int s = 0; s < 3; ++s) {
      const int64_t n = s == 0 ? cfg.get_int("task.examples") : 128;
      x_[s] = torch::randn({n, 16}, gen);
      y_[s] = (x_[s].narrow(1, 0, 4).sum(1) > 0).to(torch::kInt64);
    }
  }
  int64_t size(mgl::harness::Split s) const override { return x_[int(s)].size(0); }
  mgl::harness::Batch make_batch(mgl::harness::Split s, const std::vector<int64_t>& idx, uint64_t) const override {
    torch::Tensor i = torch::tensor(idx, torch::kInt64);
    mgl::harness::Batch b;
    b.inputs = x_[int(s)].index_select(0, i);
    b.targets = y_[int(s)].index_select(0, i);
    b.examples = b.inputs.size(0);
    b.tokens = b.inputs.numel();
    return b;
  }
  std::string describe() const override { return "toy sign task (16 random values)"; }

 private:
  torch::Tensor x_[3], y_[3];
};

MGL_REGISTER_TASK(
    "toy_sign_test", "test-only toy adapter",
    [](mgl::harness::Schema& s) { s.add_int("task.examples", 512, "training examples"); },
    [](const Config& cfg) { return std::unique_ptr<mgl::harness::Task>(new ToySignTask(cfg)); });

const char* kToyModel = R"(
[model]
num_layers = 1
model_dim = 16
z_dim = 8
value_dim = 16
ffn_hidden_dim = 32
cema_ndim = 4
chunk_size = 8
norm_num_groups = 2
dropout = 0.1
[optim]
lr = 1e-2
weight_decay = 0.01
[schedule]
warmup = 5
[trainer]
batch_size = 16
log_every = 1
progress = "off"
workers = 2
)";

std::vector<double> train_losses(const std::filesystem::path& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    if (j["split"] == "train") {
      REQUIRE(j["step"].get<size_t>() == out.size() + 1);  // every step once, in order
      out.push_back(j["loss"].get<double>());
    }
  }
  return out;
}

int run_cli(const std::vector<std::string>& args, const std::filesystem::path& log) {
  std::string cmd = MEGALODON_CLI_PATH;
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " > '" + log.string() + "' 2>&1";
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#ifdef MEGALODON_HAS_ZLIB
const std::string kGz = ".gz";  // the training files gzipped, as Debian ships Fashion-MNIST
#else
const std::string kGz = "";
#endif

// A small image-classification data set in the real IDX layout: 8×8 images whose brightest
// quadrant is the class.
void write_quadrant_idx(const std::filesystem::path& dir, int64_t n_train, int64_t n_test) {
  auto make = [](int64_t n, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::Tensor y = torch::randint(0, 4, {n}, gen, torch::kInt64);
    torch::Tensor x = torch::rand({n, 8, 8}, gen) * 120;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t q = y[i].item<int64_t>();
      x[i].narrow(0, (q / 2) * 4, 4).narrow(1, (q % 2) * 4, 4) += 120;
    }
    return std::make_pair(x.clamp(0, 255).to(torch::kUInt8), y.to(torch::kUInt8));
  };
  std::filesystem::create_directories(dir);
  auto [xt, yt] = make(n_train, 1);
  auto [xs, ys] = make(n_test, 2);
  mgl::datasets::write_idx_u8(dir / ("train-images.idx" + kGz), xt);
  mgl::datasets::write_idx_u8(dir / ("train-labels.idx" + kGz), yt);
  mgl::datasets::write_idx_u8(dir / "test-images.idx", xs);
  mgl::datasets::write_idx_u8(dir / "test-labels.idx", ys);
}

std::string quadrant_experiment(const std::filesystem::path& data) {
  return fmt::format(R"(
[task]
name = "pixel_sequence"
root = "{}"
train_images = "train-images.idx{}"
train_labels = "train-labels.idx{}"
test_images = "test-images.idx"
test_labels = "test-labels.idx"
num_classes = 4
mean = 0.3
std = 0.3
val_size = 64
{})",
                     data.string(), kGz, kGz, kToyModel);
}

}  // namespace

TEST_CASE("a task adapter registered from a test file alone trains through the harness", "[trainer]") {
  TempDir d("toy");
  write_text(d / "toy.toml", std::string("[task]\nname = \"toy_sign_test\"\n") + kToyModel +
                                 "steps = 120\neval_every = 40\ncheckpoint_every = 50\n");
  Config cfg = load_experiment(d / "toy.toml", {"run.dir=" + (d / "run").string()});
  auto r = mgl::harness::train(cfg, {});
  CHECK(r.steps == 120);
  // The toy problem is learnable: well above chance (0.5) on held-out data.
  CHECK(r.metrics.at("val/accuracy") > 0.8);
  CHECK(r.metrics.at("test/accuracy") > 0.8);
  // The run records itself.
  for (const char* f : {"config.toml", "run.json", "metrics.jsonl", "final.json", "best.pt"})
    CHECK(std::filesystem::exists(d / "run" / f));
  json run = mgl::harness::read_json(d / "run/run.json");
  CHECK(run["seed"] == 1);
  CHECK(run.contains("git_revision"));
  CHECK(run.contains("torch_version"));
  CHECK(run["device"].get<std::string>().rfind("cpu", 0) == 0);
  json fin = mgl::harness::read_json(d / "run/final.json");
  CHECK(fin["status"] == "finished");
  CHECK(fin["metrics"]["val/accuracy"].get<double>() == Approx(r.metrics.at("val/accuracy")));
  // keep_checkpoints = 2: only the two newest step checkpoints remain.
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(d / "run/checkpoints")) n += e.path().extension() == ".pt";
  CHECK(n == 2);
  // A finished run directory is not silently overwritten.
  CHECK_THROWS_WITH(mgl::harness::train(cfg, {}), Catch::Contains("--resume"));

  // `megalodon eval` and `megalodon export` on the run: the exported safetensors weights, imported
  // into a model built from the exported config.json alone, score what the best checkpoint scores.
  auto ev = mgl::harness::evaluate_run(d / "run", "val", "best", {});
  CHECK(ev.at("val/accuracy") == Approx(r.metrics.at("val/accuracy")));
  CHECK(mgl::harness::export_run(d / "run", "best", d / "export", {}) == "megalodon_classifier");
  auto spec = mgl::harness::read_model_spec(d / "export/config.json");
  auto model = mgl::harness::build_model(spec);
  mgl::harness::import_weights(*model, d / "export/model.safetensors");
  model->eval();
  ToySignTask data(cfg);
  std::vector<int64_t> all(data.size(mgl::harness::Split::val));
  std::iota(all.begin(), all.end(), 0);
  auto batch = data.make_batch(mgl::harness::Split::val, all, 0);
  torch::NoGradGuard no_grad;
  auto logits = std::dynamic_pointer_cast<mgl::MegalodonClassifierImpl>(model)->forward(batch.inputs);
  const double acc = logits.argmax(-1).eq(batch.targets).to(torch::kFloat64).mean().item<double>();
  CHECK(acc == Approx(ev.at("val/accuracy")));
}

TEST_CASE("the same seed gives identical losses, the worker count does not change them", "[trainer]") {
  TempDir d("det");
  write_text(d / "toy.toml", std::string("[task]\nname = \"toy_sign_test\"\n") + kToyModel + "steps = 25\n");
  auto losses = [&](const std::string& name, std::vector<std::string> o) {
    o.push_back("run.dir=" + (d / name).string());
    mgl::harness::train(load_experiment(d / "toy.toml", o), {});
    return train_losses(d / name / "metrics.jsonl");
  };
  auto a = losses("a", {});
  auto b = losses("b", {});
  auto c = losses("c", {"trainer.workers=0"});
  auto e = losses("e", {"trainer.workers=3", "trainer.prefetch=1"});
  auto other = losses("s2", {"seed=2"});
  REQUIRE(a.size() == 25);
  CHECK(a == b);
  CHECK(a == c);
  CHECK(a == e);
  CHECK(a != other);
}

TEST_CASE("gradient accumulation of k micro-batches equals one batch k times larger", "[trainer]") {
  TempDir d("accum");
  write_text(d / "toy.toml", std::string("[task]\nname = \"toy_sign_test\"\n") + kToyModel +
                                 "steps = 6\n");
  // Without dropout the two are the same computation up to summation order.
  auto run = [&](const std::string& name, std::vector<std::string> o) {
    o.push_back("run.dir=" + (d / name).string());
    o.push_back("model.dropout=0.0");
    mgl::harness::train(load_experiment(d / "toy.toml", o), {});
    return train_losses(d / name / "metrics.jsonl");
  };
  auto big = run("big", {"trainer.batch_size=32"});
  auto acc = run("acc", {"trainer.batch_size=16", "trainer.accumulate=2"});
  REQUIRE(big.size() == acc.size());
  for (size_t i = 0; i < big.size(); ++i) CHECK(acc[i] == Approx(big[i]).epsilon(1e-4));
}

TEST_CASE("megalodon starts itself again with sleeping idle threads, and keeps what the user set", "[trainer]") {
  TempDir d("threadenv");
  write_quadrant_idx(d / "data", 160, 16);
  write_text(d / "exp.toml", quadrant_experiment(d / "data") + "steps = 2\neval_every = 0\n");
  const std::string exp = (d / "exp.toml").string();
  const std::string unset = "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u OPENBLAS_THREAD_TIMEOUT ";
  // Nothing set: the process set both and ran on in the re-started image.
  REQUIRE(std::system((unset + MEGALODON_CLI_PATH + " train '" + exp + "' run.dir='" + (d / "a").string() + "' > '" +
                       (d / "a.log").string() + "' 2>&1")
                          .c_str()) == 0);
  json a = mgl::harness::read_json(d / "a/run.json")["thread_environment"];
  CHECK(a["OMP_WAIT_POLICY"] == "PASSIVE");
  CHECK(a["OPENBLAS_THREAD_TIMEOUT"] == "20");
  CHECK(a["GOMP_SPINCOUNT"].is_null());
  // The user's choices stay: a spin count counts as one for OpenMP.
  REQUIRE(std::system((unset + "GOMP_SPINCOUNT=1000 OPENBLAS_THREAD_TIMEOUT=7 " + MEGALODON_CLI_PATH + " train '" +
                       exp + "' run.dir='" + (d / "b").string() + "' > '" + (d / "b.log").string() + "' 2>&1")
                          .c_str()) == 0);
  json b = mgl::harness::read_json(d / "b/run.json")["thread_environment"];
  CHECK(b["OMP_WAIT_POLICY"].is_null());
  CHECK(b["GOMP_SPINCOUNT"] == "1000");
  CHECK(b["OPENBLAS_THREAD_TIMEOUT"] == "7");
}

TEST_CASE("a run killed with SIGKILL and resumed reproduces the uninterrupted run's losses", "[trainer][resume]") {
  TempDir d("resume");
  write_quadrant_idx(d / "data", 448, 64);
  write_text(d / "exp.toml", quadrant_experiment(d / "data") +
                                 "steps = 160\ncheckpoint_every = 10\neval_every = 50\n");
  const std::string exp = (d / "exp.toml").string();
  // The uninterrupted reference.
  REQUIRE(run_cli({"train", exp, "run.dir=" + (d / "ref").string()}, d / "ref.log") == 0);
  const auto ref = train_losses(d / "ref/metrics.jsonl");
  REQUIRE(ref.size() == 160);

  // The same run, killed once its second checkpoint exists.
  const std::filesystem::path run = d / "killed";
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    freopen((d / "killed.log").c_str(), "w", stdout);
    execl(MEGALODON_CLI_PATH, MEGALODON_CLI_PATH, "train", exp.c_str(), ("run.dir=" + run.string()).c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!std::filesystem::exists(run / "checkpoints/step_00000020.pt") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));  // it really was interrupted
  REQUIRE_FALSE(std::filesystem::exists(run / "final.json"));

  // Without --resume the harness refuses to overwrite; with it, the run continues.
  CHECK(run_cli({"train", exp, "run.dir=" + run.string()}, d / "refused.log") != 0);
  REQUIRE(run_cli({"train", exp, "run.dir=" + run.string(), "--resume"}, d / "resumed.log") == 0);
  const auto resumed = train_losses(run / "metrics.jsonl");
  REQUIRE(resumed.size() == ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(resumed[i] == ref[i]);  // bit-identical, not approximately equal
  }
  json a = mgl::harness::read_json(d / "ref/final.json"), b = mgl::harness::read_json(run / "final.json");
  CHECK(a["metrics"] == b["metrics"]);
}

TEST_CASE("sweeps validate every variant first, survive a failing run and resume", "[trainer][sweep]") {
  TempDir d("sweep");
  write_quadrant_idx(d / "data", 192, 32);
  write_text(d / "sweep.toml", quadrant_experiment(d / "data") + "steps = 12\neval_every = 6\n" +
                                   fmt::format("[run]\nroot = \"{}\"\n", (d / "runs").string()) + R"(
[sweep]
seeds = [1, 2]
[[sweep.variant]]
name = "full"
set = []
[[sweep.variant]]
name = "ema"
set = ["model.ema=ema"]
[[sweep.variant]]
name = "broken"
set = ["task.train_images=missing.idx"]
)");
  // A typo in any variant stops the sweep before anything runs.
  write_text(d / "typo.toml", "defaults = [\"sweep.toml\"]\n[[sweep.variant]]\nname = \"x\"\nset = [\"model.nrom=layer\"]\n");
  CHECK_THROWS_WITH(mgl::harness::plan_sweep(d / "typo.toml", {}), Catch::Contains("model.nrom") &&
                                                                       Catch::Contains("did you mean 'model.norm'"));

  auto plan = mgl::harness::plan_sweep(d / "sweep.toml", {});
  REQUIRE(plan.runs.size() == 6);
  mgl::harness::SweepOptions o;
  o.executable = MEGALODON_CLI_PATH;
  auto first = mgl::harness::run_sweep(plan, o);
  CHECK(first.finished == 4);
  CHECK(first.failed == 2);
  json sj = mgl::harness::read_json(d / "runs/sweep/sweep.json");
  int failed = 0;
  for (const auto& r : sj["runs"])
    if (r["status"] == "failed") {
      ++failed;
      CHECK(r["variant"] == "broken");
      CHECK(r["error"].get<std::string>().find("missing.idx") != std::string::npos);
    }
  CHECK(failed == 2);
  for (const char* v : {"full", "ema"})
    for (int s : {1, 2}) CHECK(std::filesystem::exists(d / "runs/sweep" / v / fmt::format("seed{}", s) / "final.json"));
  // The ablation reached the model.
  CHECK(mgl::harness::read_file(d / "runs/sweep/ema/seed1/config.toml").find("ema = 'ema'") != std::string::npos);

  // Interrupt one run (drop its final record: it has checkpoints) and run the sweep again:
  // finished runs are skipped, the interrupted one resumes from its checkpoint.
  const auto t_before = std::filesystem::last_write_time(d / "runs/sweep/full/seed1/final.json");
  std::filesystem::remove(d / "runs/sweep/ema/seed2/final.json");
  auto second = mgl::harness::run_sweep(plan, o);
  CHECK(second.skipped == 3);
  CHECK(second.finished == 1);
  CHECK(std::filesystem::last_write_time(d / "runs/sweep/full/seed1/final.json") == t_before);
  CHECK(mgl::harness::read_file(d / "runs/sweep/ema/seed2/log.txt").find("resumed at step") != std::string::npos);
}

TEST_CASE("a suite sweep runs other experiment files and places them in a two-way table", "[trainer][sweep]") {
  TempDir d("suite");
  write_quadrant_idx(d / "data", 96, 32);
  write_text(d / "experiments/a.toml", quadrant_experiment(d / "data") + "steps = 4\neval_every = 0\n");
  write_text(d / "experiments/sub/b.toml", "defaults = [\"../a.toml\"]\n[model]\nema = \"ema\"\n");
  // The suite file has no task: every variant names an experiment (relative to experiments/).
  write_text(d / "experiments/suite.toml", fmt::format(R"([run]
root = "{}"
[sweep]
seeds = [1]
[[sweep.variant]]
name = "a"
experiment = "a"
row = "M"
column = "Image"
[[sweep.variant]]
name = "b"
experiment = "sub/b.toml"
row = "M-ema"
column = "Image"
[table]
metrics = ["test/accuracy"]
paper = "lra"
)",
                                                        (d / "runs").string()));
  auto plan = mgl::harness::plan_sweep(d / "experiments/suite.toml", {"trainer.steps=3"});
  REQUIRE(plan.runs.size() == 2);
  CHECK(plan.runs[1].experiment_file == d / "experiments/sub/b.toml");
  mgl::harness::SweepOptions o;
  o.executable = MEGALODON_CLI_PATH;
  auto r = mgl::harness::run_sweep(plan, o);
  CHECK(r.finished == 2);
  // Each run trained its own experiment, with the suite's command-line overrides.
  const std::string b_cfg = mgl::harness::read_file(d / "runs/suite/b/seed1/config.toml");
  CHECK(b_cfg.find("ema = 'ema'") != std::string::npos);
  CHECK(mgl::harness::read_json(d / "runs/suite/a/seed1/final.json")["steps"] == 3);
  const auto report = mgl::harness::write_sweep_report(d / "runs/suite", d / "out");
  CHECK(report.markdown.find("| model | Image |\n") != std::string::npos);  // no Avg: one of six LRA tasks
  CHECK(report.markdown.find("| M-ema |") != std::string::npos);
  // A variant without an experiment, or naming a missing file, is refused before anything runs.
  write_text(d / "experiments/bad.toml", "[sweep]\nseeds = [1]\n[[sweep.variant]]\nname = \"x\"\nset = []\n");
  CHECK_THROWS_WITH(mgl::harness::plan_sweep(d / "experiments/bad.toml", {}), Catch::Contains("needs experiment"));
  write_text(d / "experiments/bad2.toml", "[sweep]\nseeds = [1]\n[[sweep.variant]]\nname = \"x\"\nexperiment = \"nope\"\n");
  CHECK_THROWS_WITH(mgl::harness::plan_sweep(d / "experiments/bad2.toml", {}), Catch::Contains("nope.toml"));
}

TEST_CASE("early stopping ends a run after `patience` evaluations without improvement", "[trainer]") {
  TempDir d("early");
  // lr = 1e-30 (0 is outside optim.lr's range): steps too small to move an fp32 weight, so the
  // validation accuracy never improves after the first evaluation.
  write_text(d / "toy.toml", std::string("[task]\nname = \"toy_sign_test\"\n") + kToyModel +
                                 "steps = 100\neval_every = 5\npatience = 2\n");
  Config cfg = load_experiment(d / "toy.toml", {"run.dir=" + (d / "run").string(), "optim.lr=1e-30"});
  auto r = mgl::harness::train(cfg, {});
  CHECK(r.early_stopped);
  CHECK(r.steps == 15);  // evaluations at 5 (best), 10 and 15 (no improvement)
  json fin = mgl::harness::read_json(d / "run/final.json");
  CHECK(fin["best_step"] == 5);
  CHECK(fin["early_stopped"] == true);
}

namespace {
// Records, per batch, how many LibTorch intra-op threads the building thread would use.
class ThreadCountTask final : public mgl::tasks::ClassificationTask {
 public:
  explicit ThreadCountTask(const Config& cfg) : ClassificationTask(cfg, 2, 1, -1, 16) {}
  int64_t size(mgl::harness::Split) const override { return 64; }
  mgl::harness::Batch make_batch(mgl::harness::Split, const std::vector<int64_t>& idx, uint64_t) const override {
    mgl::harness::Batch b;
    b.inputs = torch::full({static_cast<int64_t>(idx.size()), 1}, double(at::get_num_threads()));
    b.targets = torch::zeros({static_cast<int64_t>(idx.size())}, torch::kInt64);
    b.examples = b.inputs.size(0);
    return b;
  }
  std::string describe() const override { return "thread counts"; }
};
}  // namespace

TEST_CASE("loader threads build batches on one intra-op thread, and the process default stays", "[trainer][loader]") {
  torch::set_num_threads(2);
  const int before = at::get_num_threads();
  REQUIRE(before == 2);
  TempDir d("loader-threads");
  write_text(d / "toy.toml", std::string("[task]\nname = \"toy_sign_test\"\n") + kToyModel);
  ThreadCountTask task(load_experiment(d / "toy.toml", {}));
  for (int per_worker : {1, 0}) {
    mgl::harness::LoaderOptions o;
    o.batch_size = 8;
    o.workers = 2;
    o.worker_intra_op_threads = per_worker;
    mgl::harness::DataLoader loader(task, mgl::harness::Split::train, o);
    for (int b = 0; b < 4; ++b) {
      auto batch = loader.next();
      REQUIRE(batch);
      INFO("per_worker " << per_worker << ", batch " << b);
      // 0 keeps LibTorch's default in the new thread: the process-wide count set above.
      CHECK(batch->inputs[0][0].item<double>() == (per_worker == 1 ? 1.0 : double(before)));
    }
  }
  CHECK(at::get_num_threads() == before);  // the calling thread's own count is untouched
  {
    const mgl::harness::ThreadIntraOpThreads one(1);
    CHECK(at::get_num_threads() == 1);
  }
  CHECK(at::get_num_threads() == before);  // restored on scope exit
}
