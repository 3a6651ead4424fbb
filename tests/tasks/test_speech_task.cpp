// The Speech Commands adapter end to end on a small release written here in the real layout
// (16-bit 16 kHz WAVs in word folders, the split lists, _background_noise_): SC10's stratified
// split and exact-length filter, the official lists with zero padding, the training-split
// standardisation against moments computed here from the files, the augmentations (off by
// default, seeded, a shift is a shift), bad files, and every speech experiment for two steps.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "harness/config/config.h"
#include "harness/experiment.h"
#include "harness/task.h"
#include "harness/train/trainer.h"
#include "harness/util/files.h"
#include "support/files.h"

#ifdef MEGALODON_HAS_AUDIO
#include "datasets/audio/speech_commands.h"

namespace fs = std::filesystem;
using mgl::harness::Config;
using mgl::harness::load_experiment;
using mgl::harness::Split;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

const fs::path kExperiments = fs::path(MEGALODON_SOURCE_DIR) / "experiments";

// SC10 words: 6 clips of 16,000 samples and one of 8,000 (left out by the stratified rule, padded
// by the official one); the other 25 words: 2 clips. Speaker "s<k>" says clip k of every word;
// speaker s0 is in the validation list, s1 in the testing list.
struct SpeechData {
  TempDir dir{"speech-data"};
  fs::path root;
  SpeechData() {
    root = dir / "speech_commands_v0.02";
    const auto& sc10 = mgl::datasets::sc10_classes();
    std::string val_list, test_list;
    int w = 0;
    for (const auto& word : mgl::datasets::speech_commands_words()) {
      const bool ten = std::find(sc10.begin(), sc10.end(), word) != sc10.end();
      const int clips = ten ? 7 : 2;
      for (int k = 0; k < clips; ++k) {
        const int64_t n = ten && k == 6 ? 8000 : 16000;
        std::vector<float> x(n);
        for (int64_t i = 0; i < n; ++i)
          x[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * (200.0 + 40.0 * w + 7.0 * k) * i / 16000.0) + 0.05);
        const std::string rel = fmt::format("{}/s{}_nohash_0.wav", word, k);
        fs::create_directories(root / word);
        mgl::datasets::write_wav_pcm16(root / rel, x, 16000);
        if (k == 0) val_list += rel + "\n";
        if (k == 1) test_list += rel + "\n";
      }
      ++w;
    }
    write_text(root / "validation_list.txt", val_list);
    write_text(root / "testing_list.txt", test_list);
    std::vector<float> noise(24000);
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<float>(0.5 * std::sin(0.37 * i) * std::cos(0.011 * i));
    fs::create_directories(root / "_background_noise_");
    mgl::datasets::write_wav_pcm16(root / "_background_noise_/hum.wav", noise, 16000);
  }
};

SpeechData& data() {
  static SpeechData d;
  return d;
}

std::vector<std::string> base(const fs::path& run_dir) {
  return {"run.dir=" + run_dir.string(), "task.root=" + data().root.string(), "run.device=cpu",
          "trainer.progress=off"};
}

std::unique_ptr<mgl::harness::Task> make_task(const std::string& experiment, std::vector<std::string> o) {
  Config cfg = load_experiment(kExperiments / experiment, o);
  return mgl::harness::task_registry().at("speech_commands", "task.name", "").create(cfg);
}

torch::Tensor all_inputs(const mgl::harness::Task& t, Split s, uint64_t seed = 0) {
  std::vector<int64_t> idx(t.size(s));
  std::iota(idx.begin(), idx.end(), 0);
  return t.make_batch(s, idx, seed).inputs;
}

}  // namespace

TEST_CASE("Speech Commands SC10: exact-length clips, stratified 70/15/15, train-split standardisation", "[tasks][speech]") {
  TempDir runs("speech-sc10");
  auto t = make_task("speech/sc10.toml", base(runs / "r"));
  // 60 clips of 16,000 samples: floor(0.7 · 60) = 42 train, then 9 / 9.
  CHECK(t->size(Split::train) == 42);
  CHECK(t->size(Split::val) == 9);
  CHECK(t->size(Split::test) == 9);
  CHECK_THAT(t->describe(), Catch::Contains("10 clips not 16000 samples long left out"));

  // The moments, computed here from the training files the reader's split names.
  mgl::datasets::SpeechIndexOptions io;
  io.classes = mgl::datasets::sc10_classes();
  const auto index = mgl::datasets::index_speech_commands(data().root, io);
  REQUIRE(index.train.size() == 42);
  double sum = 0, sq = 0;
  int64_t n = 0;
  for (const auto& c : index.train)
    for (float v : mgl::datasets::read_wav(data().root / c.path)) {
      sum += v;
      sq += double(v) * v;
      ++n;
    }
  const double mean = sum / n, std = std::sqrt((sq - n * mean * mean) / (n - 1));
  auto x = all_inputs(*t, Split::train).to(torch::kFloat64);
  CHECK(x.size(1) == 16000);
  CHECK(std::abs(x.mean().item<double>()) < 1e-5);
  CHECK(x.std().item<double>() == Approx(std / (std + 1e-5)).epsilon(1e-5));
  // One value by hand: the first sample of the first training clip.
  const float first = mgl::datasets::read_wav(data().root / index.train[0].path)[0];
  CHECK(x[0][0].item<double>() == Approx((first - mean) / (std + 1e-5)).margin(1e-5));
  // Labels follow the SC10 order (yes = 0 … go = 9), every class present in train.
  auto y = t->make_batch(Split::train, {0, 41}, 0).targets;
  CHECK(y[0].item<int64_t>() == 0);
  CHECK(y[1].item<int64_t>() == 9);
}

TEST_CASE("Speech Commands, 35 words: the official lists, short clips zero-padded", "[tasks][speech]") {
  TempDir runs("speech-sc35");
  auto t = make_task("speech/sc35.toml", base(runs / "r"));
  CHECK(t->size(Split::val) == 35);   // speaker s0
  CHECK(t->size(Split::test) == 35);  // speaker s1
  CHECK(t->size(Split::train) == 10 * 5);  // s2..s6 of the SC10 words; the others have no third clip
  // The short clips (s6 of each SC10 word) are padded with zeros: after standardisation every tail sample is
  // (0 − μ)/(σ + 1e-5), one value, unlike its first half.
  auto x = all_inputs(*t, Split::train);
  int64_t padded_rows = 0;
  for (int64_t r = 0; r < x.size(0); ++r) {
    auto tail = x[r].narrow(0, 8000, 8000);
    if ((tail == tail[0]).all().item<bool>()) {
      ++padded_rows;
      CHECK(x[r].narrow(0, 0, 8000).std().item<double>() > 0.1);
    }
  }
  CHECK(padded_rows == 10);
}

TEST_CASE("Speech Commands augmentations: off by default, seeded, a shift is a shift, noise is bounded", "[tasks][speech]") {
  TempDir runs("speech-aug");
  auto o = base(runs / "r");
  auto plain = make_task("speech/sc10.toml", o);
  auto clean = plain->make_batch(Split::train, {0, 1, 2, 3}, 11).inputs;
  CHECK(torch::equal(clean, plain->make_batch(Split::train, {0, 1, 2, 3}, 12).inputs));

  auto shifted_task = make_task("speech/sc10.toml", [&] { auto v = o; v.push_back("task.time_shift_ms=2"); return v; }());
  auto a = shifted_task->make_batch(Split::train, {0, 1, 2, 3}, 11).inputs;
  CHECK(torch::equal(a, shifted_task->make_batch(Split::train, {0, 1, 2, 3}, 11).inputs));
  CHECK_FALSE(torch::equal(a, shifted_task->make_batch(Split::train, {0, 1, 2, 3}, 12).inputs));
  // Validation batches are never augmented.
  CHECK(torch::equal(plain->make_batch(Split::val, {0, 1}, 1).inputs, shifted_task->make_batch(Split::val, {0, 1}, 2).inputs));
  // Each augmented row is its clean row moved by some k in [−32, 32] samples (2 ms at 16 kHz).
  for (int64_t r = 0; r < 4; ++r) {
    bool found = false;
    for (int64_t k = -32; k <= 32 && !found; ++k) {
      auto c = clean[r], s = a[r];
      if (k >= 0) found = torch::allclose(s.narrow(0, k, 16000 - k), c.narrow(0, 0, 16000 - k));
      else found = torch::allclose(s.narrow(0, 0, 16000 + k), c.narrow(0, -k, 16000 + k));
    }
    CHECK(found);
  }

  // A shift beyond the clip's length (up to ±3 s of a 1 s clip) leaves a row of the shift's zeros
  // (one standardised value), not an error; every such row holds the same value.
  auto far_task = make_task("speech/sc10.toml", [&] { auto v = o; v.push_back("task.time_shift_ms=3000"); return v; }());
  auto far = far_task->make_batch(Split::train, {0, 1, 2, 3, 4, 5, 6, 7}, 7).inputs;
  REQUIRE(torch::isfinite(far).all().item<bool>());
  std::vector<double> constant_rows;
  for (int64_t r = 0; r < far.size(0); ++r)
    if (far[r].max().item<double>() == far[r].min().item<double>()) constant_rows.push_back(far[r][0].item<double>());
  REQUIRE(constant_rows.size() >= 2);
  for (double v : constant_rows) CHECK(v == constant_rows[0]);

  auto noisy_task = make_task("speech/sc10.toml", [&] {
    auto v = o;
    v.push_back("task.noise_prob=1");
    v.push_back("task.noise_volume=0.2");
    return v;
  }());
  auto nz = noisy_task->make_batch(Split::train, {0, 1, 2, 3}, 5).inputs;
  CHECK_FALSE(torch::allclose(nz, clean));
  // |noise| ≤ 0.5 in the file and the gain ≤ 0.2, so no standardised sample moves by more than
  // 0.1 / (σ + 1e-5); 1 / (σ + 1e-5) is read off the first training clip's first two samples.
  mgl::datasets::SpeechIndexOptions io;
  io.classes = mgl::datasets::sc10_classes();
  const auto first = mgl::datasets::read_wav(data().root / mgl::datasets::index_speech_commands(data().root, io).train[0].path);
  const double inv_sigma = (clean[0][1] - clean[0][0]).item<double>() / (first[1] - first[0]);
  const double dev = (nz - clean).abs().max().item<double>();
  CHECK(dev > 0.01 * inv_sigma);
  CHECK(dev <= 0.1 * inv_sigma * (1 + 1e-4));
}

TEST_CASE("Speech Commands: an unreadable file stops the run or is skipped and counted", "[tasks][speech]") {
  TempDir copy("speech-bad");
  const fs::path root = copy / "sc";
  fs::copy(data().root, root, fs::copy_options::recursive);
  write_text(root / "yes/zz_nohash_0.wav", "RIFF, but not really a wave file");
  TempDir runs("speech-bad-runs");
  auto o = base(runs / "r");
  o.push_back("task.root=" + root.string());
  CHECK_THROWS_WITH(make_task("speech/sc10.toml", o), Catch::Contains("zz_nohash_0.wav"));
  o.push_back("task.bad_files=skip");
  auto t = make_task("speech/sc10.toml", o);
  CHECK_THAT(t->describe(), Catch::Contains("1 unreadable files skipped"));
  CHECK(t->size(Split::train) + t->size(Split::val) + t->size(Split::test) == 60);
}

TEST_CASE("every speech experiment trains a few steps on a small release", "[tasks][experiments][speech]") {
  TempDir runs("speech-runs");
  for (const char* name : {"speech/sc10", "speech/sc35"}) {
    DYNAMIC_SECTION(name) {
      auto o = base(runs / mgl::harness::slug(name));
      for (const char* s : {"trainer.steps=2", "trainer.batch_size=2", "trainer.eval_every=0", "trainer.eval_batch_size=4",
                            "trainer.log_every=1", "trainer.workers=1", "trainer.checkpoint_every=0",
                            "schedule.warmup=1", "task.val_limit=4", "task.test_limit=4"})
        o.push_back(s);
      Config cfg = load_experiment(kExperiments / (std::string(name) + ".toml"), o);
      auto r = mgl::harness::train(cfg, {});
      CHECK(r.steps == 2);
      CHECK(std::isfinite(r.metrics.at("val/loss")));
      CHECK(r.metrics.count("test/accuracy") == 1);
    }
  }
}
#endif  // MEGALODON_HAS_AUDIO

TEST_CASE("Speech Commands: an empty or far too short clip is a bad file, not a silent training clip", "[tasks][speech]") {
  // A valid 16 kHz header with no samples, and one of 10 samples (0.6 ms), in a class folder that
  // the official-lists split would otherwise zero-pad into training clips.
  TempDir copy("speech-empty");
  const fs::path root = copy / "sc";
  fs::copy(data().root, root, fs::copy_options::recursive);
  mgl::datasets::write_wav_pcm16(root / "yes/zz_nohash_0.wav", {}, 16000);
  REQUIRE(mgl::datasets::read_wav_info(root / "yes/zz_nohash_0.wav").frames == 0);
  TempDir runs("speech-empty-runs");
  auto o = base(runs / "r");
  o.push_back("task.root=" + root.string());
  for (const char* split : {"official", "stratified"}) {
    auto os = o;
    os.push_back(std::string("task.split=") + split);
    CHECK_THROWS_WITH(make_task("speech/sc10.toml", os),
                      Catch::Contains("zz_nohash_0.wav") && Catch::Contains("empty clip"));
  }
  o.push_back("task.split=official");
  o.push_back("task.bad_files=skip");
  auto t = make_task("speech/sc10.toml", o);
  CHECK_THAT(t->describe(), Catch::Contains("1 unreadable files skipped"));
  CHECK(t->size(Split::train) + t->size(Split::val) + t->size(Split::test) == 70);  // the 70 good clips

  // Far too short: 10 samples against task.min_clip_ms = 50 (800 samples); 0 turns the check off.
  fs::remove(root / "yes/zz_nohash_0.wav");
  mgl::datasets::write_wav_pcm16(root / "yes/zz_nohash_0.wav", std::vector<float>(10, 0.1f), 16000);
  o.pop_back();
  CHECK_THROWS_WITH(make_task("speech/sc10.toml", o),
                    Catch::Contains("zz_nohash_0.wav") && Catch::Contains("task.min_clip_ms"));
  o.push_back("task.min_clip_ms=0");
  CHECK(make_task("speech/sc10.toml", o)->size(Split::train) == 71 - 20);
}
