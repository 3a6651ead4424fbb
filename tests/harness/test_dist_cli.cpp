// Whole distributed training runs as real processes: `megalodon launch` with Gloo over loopback,
// compared step by step with the one-process run of the same experiment file; resuming onto
// another world size; a rank that dies or hangs; a restart that resumes from the last checkpoint.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <random>

#include "harness/util/files.h"
#include "support/files.h"

namespace fs = std::filesystem;
using mgl::test::TempDir;
using json = nlohmann::json;

#ifdef MEGALODON_WITH_GLOO
namespace {

const std::string kCli = MEGALODON_CLI_PATH;
const fs::path kExperiment = fs::path(MEGALODON_SOURCE_DIR) / "experiments/lm/small/kjv_megalodon.toml";

std::string prose(uint64_t seed, int sentences) {
  static const char* words[] = {"the", "king", "said", "unto", "them", "and", "it", "came", "to", "pass",
                                "that", "in", "those", "days", "a", "man", "of", "great", "house", "went"};
  std::mt19937_64 rng(seed);
  std::string s;
  for (int k = 0; k < sentences; ++k) {
    const int n = 4 + static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) s += std::string(words[rng() % 20]) + (i + 1 < n ? " " : ".\n");
  }
  return s;
}

struct Corpus {
  TempDir dir{"dist-corpus"};
  Corpus() {
    mgl::test::write_text(dir / "train/a.txt", prose(1, 300));
    mgl::test::write_text(dir / "valid/b.txt", prose(2, 30));
    mgl::test::write_text(dir / "test/c.txt", prose(3, 30));
  }
};
Corpus& corpus() {
  static Corpus c;
  return c;
}

// The small KJV experiment shrunk to a few seconds, on a byte-level plain-text corpus.
std::string overrides(const fs::path& run, int steps, const std::string& extra = "") {
  return fmt::format(
      "run.dir={} task.root={} task.format=text task.tokenizer=byte task.tokenizer_model= "
      "task.cache_dir={} task.threads=1 task.sample_chunk=16 task.min_chunks=2 task.max_chunks=2 "
      "task.eval_length=32 task.eval_tokens_limit=300 model.num_layers=2 model.model_dim=32 model.z_dim=16 "
      "model.value_dim=32 model.ffn_hidden_dim=32 model.norm_num_groups=4 model.chunk_size=16 model.dropout=0 "
      "trainer.steps={} trainer.batch_size=4 trainer.eval_every=0 trainer.eval_batch_size=4 trainer.log_every=1 "
      "trainer.workers=1 trainer.checkpoint_every=1 trainer.progress=off schedule.warmup=1 run.device=cpu "
      "run.threads=1 trainer.precision=fp32 dist.timeout_s=30 {}",
      run.string(), (corpus().dir / "").string(), (run.parent_path() / "cache").string(), steps, extra);
}

struct Result {
  int code = -1;
  double seconds = 0;
  std::string output;
};
Result sh(const std::string& cmd, const fs::path& log) {
  const auto t0 = std::chrono::steady_clock::now();
  Result r;
  const int s = std::system((cmd + " > " + log.string() + " 2>&1").c_str());
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.code = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  r.output = mgl::harness::read_file(log);
  return r;
}

// Train lines in metrics.jsonl (a resumed run truncates the lines after its checkpoint: no step twice).
int train_lines(const fs::path& run) {
  int n = 0;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) n += json::parse(line)["split"] == "train";
  return n;
}

std::map<int64_t, double> train_losses(const fs::path& run) {
  std::map<int64_t, double> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line);
    if (j["split"] == "train") out[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return out;
}

void same_losses(const fs::path& a, const fs::path& ref, double tol = 1e-5) {
  const auto la = train_losses(a), lr = train_losses(ref);
  REQUIRE(la.size() == lr.size());
  for (const auto& [step, v] : lr) {
    INFO("step " << step);
    REQUIRE(la.count(step));
    CHECK(std::abs(la.at(step) - v) <= tol * std::abs(v));
  }
  const auto fa = mgl::harness::read_json(a / "final.json"), fr = mgl::harness::read_json(ref / "final.json");
  const double va = fa["metrics"]["val/loss"].get<double>(), vr = fr["metrics"]["val/loss"].get<double>();
  CHECK(std::abs(va - vr) <= tol * std::abs(vr));
}

}  // namespace

TEST_CASE("launch: data- and chunk-parallel runs equal the one-process run, resume onto another world size",
          "[dist][cli]") {
  TempDir t("dist-cli");
  const fs::path one = t / "one";
  auto r = sh(fmt::format("{} train {} {}", kCli, kExperiment.string(), overrides(one, 4)), t / "one.log");
  INFO(r.output);
  REQUIRE(r.code == 0);
  REQUIRE(train_losses(one).size() == 4);

  SECTION("data parallel, 2 processes") {
    const fs::path dp = t / "dp";
    r = sh(fmt::format("{} launch -n 2 -- train {} {}", kCli, kExperiment.string(), overrides(dp, 4)), t / "dp.log");
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(mgl::harness::read_json(dp / "run.json")["dist"]["world_size"] == 2);
    same_losses(dp, one);
  }
  SECTION("chunk parallel, 2 processes per sequence") {
    const fs::path cp = t / "cp";
    r = sh(fmt::format("{} launch -n 2 -- train {} {}", kCli, kExperiment.string(),
                       overrides(cp, 4, "dist.chunk_parallel=2")),
           t / "cp.log");
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(mgl::harness::read_json(cp / "run.json")["dist"]["chunk_parallel"] == 2);
    same_losses(cp, one);
  }
  SECTION("data × chunk parallel on 4 processes, stopped after step 2, resumed on one process") {
    const fs::path mixed = t / "mixed";
    const std::string o = overrides(mixed, 4, "dist.chunk_parallel=2");
    r = sh(fmt::format("MEGALODON_TEST_FAULT=0:2:exit {} launch -n 4 --grace 5 -- train {} {}", kCli,
                       kExperiment.string(), o),
           t / "mixed.log");
    INFO(r.output);
    REQUIRE(r.code != 0);
    CHECK(r.output.find("megalodon launch: the job failed: rank 0 exited with code 3") != std::string::npos);
    CHECK(train_losses(mixed).size() == 2);
    r = sh(fmt::format("{} train {} {} --resume", kCli, kExperiment.string(), overrides(mixed, 4)), t / "resume.log");
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(train_lines(mixed) == 4);
    same_losses(mixed, one);
  }
}

TEST_CASE("launch: a rank that dies or hangs ends the job with a clear message, a restart resumes", "[dist][cli]") {
  TempDir t("dist-fail");
  SECTION("killed rank") {
    auto r = sh(fmt::format("MEGALODON_TEST_FAULT=1:2:kill {} launch -n 2 --grace 5 -- train {} {}", kCli,
                            kExperiment.string(), overrides(t / "kill", 4)),
                t / "kill.log");
    INFO(r.output);
    CHECK(r.code == 1);
    CHECK(r.output.find("rank 1 was killed by signal 9") != std::string::npos);
    CHECK(r.seconds < 60);
  }
  SECTION("hung rank: the others time out after dist.timeout_s") {
    auto r = sh(fmt::format("MEGALODON_TEST_FAULT=1:2:hang {} launch -n 2 --grace 3 -- train {} {}", kCli,
                            kExperiment.string(), overrides(t / "hang", 4, "dist.timeout_s=4")),
                t / "hang.log");
    INFO(r.output);
    CHECK(r.code == 1);
    CHECK(r.output.find("rank 0/2:") != std::string::npos);
    CHECK(r.output.find("dist.timeout_s = 4") != std::string::npos);
    CHECK(r.output.find("megalodon launch: rank 0 exited with code 1") != std::string::npos);
    CHECK(r.seconds < 60);
  }
  SECTION("restart: resumes from the last checkpoint and finishes") {
    const fs::path run = t / "restart";
    auto r = sh(fmt::format("MEGALODON_TEST_FAULT=1:2:kill:{} {} launch -n 2 --max-restarts 1 --grace 5 -- train {} {}",
                            (t / "fired").string(), kCli, kExperiment.string(), overrides(run, 4)),
                t / "restart.log");
    INFO(r.output);
    REQUIRE(r.code == 0);
    CHECK(r.output.find("restarting the job") != std::string::npos);
    CHECK(train_lines(run) == 4);
    CHECK(train_losses(run).size() == 4);
    CHECK(fs::exists(run / "final.json"));
  }
  SECTION("bad layouts are named") {
    auto r = sh(fmt::format("{} launch -n 2 -- train {} {}", kCli, kExperiment.string(),
                            overrides(t / "bad", 2, "dist.chunk_parallel=3")),
                t / "bad.log");
    CHECK(r.code == 1);
    CHECK(r.output.find("dist.chunk_parallel") != std::string::npos);
    r = sh(fmt::format("{} launch -- train x.toml", kCli), t / "bad2.log");
    CHECK(r.code == 2);
    CHECK(r.output.find("-n N") != std::string::npos);
  }
}
#endif
