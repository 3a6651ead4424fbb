// The synthetic Speech Commands generator (`megalodon data speech`). Oracles: FIPS 180 SHA-1 test
// vectors; which_set percentages computed independently with Python's hashlib and the release's
// formula (python3 -c 'import hashlib; int(hashlib.sha1(b"a69b9b3e").hexdigest(), 16) % 2**27
// * (100.0 / (2**27 - 1))'); the generated files re-read with libsndfile; two runs compared byte
// for byte. The generation tests need espeak-ng (installed by scripts/bootstrap.sh) and are
// skipped with a warning without it.
#undef CHECK
#include <sndfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "datasets/audio/speech_commands.h"
#include "datasets/audio/speech_synth.h"
#include "support/files.h"

using mgl::datasets::generate_speech_commands;
using mgl::datasets::SpeechEngines;
using mgl::datasets::SpeechSet;
using mgl::datasets::SpeechSynthOptions;
using mgl::test::TempDir;
using mgl::test::write_text;
namespace fs = std::filesystem;

namespace {

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (!dir.empty() && ::access((fs::path(dir) / program).c_str(), X_OK) == 0) return true;
  return false;
}

bool have_espeak() {
  if (on_path("espeak-ng")) return true;
  WARN("espeak-ng is not installed (scripts/bootstrap.sh installs it): speech generation not tested");
  return false;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Every regular file under `root`, relative path -> bytes.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = read_all(e.path());
  return files;
}

SpeechSynthOptions small_options(std::vector<std::string> words, int64_t per_word, uint64_t seed) {
  SpeechSynthOptions o;
  o.words = std::move(words);
  o.per_word = per_word;
  o.seed = seed;
  o.threads = 2;
  o.noise_seconds = 0.5;
  o.engines = on_path("flite") ? SpeechEngines::both : SpeechEngines::espeak;
  return o;
}

}  // namespace

TEST_CASE("speech synth: SHA-1 test vectors", "[speech-synth]") {
  using mgl::datasets::sha1_hex;
  CHECK(sha1_hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK(sha1_hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK(sha1_hex(std::string(1000000, 'a')) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

TEST_CASE("speech synth: which_set follows the release's rule", "[speech-synth]") {
  using mgl::datasets::speech_split_percentage;
  using mgl::datasets::speech_which_set;
  // Values from Python (hashlib, int(hexdigest, 16) % 2**27 * (100.0 / (2**27 - 1))), exact doubles.
  CHECK(speech_split_percentage("a69b9b3e_nohash_0.wav") == 4.881121999629751);
  CHECK(speech_split_percentage("right/a69b9b3e_nohash_0.wav") == 4.881121999629751);
  CHECK(speech_split_percentage("0a7c2a8d_nohash_3.wav") == 56.836387193474074);
  CHECK(speech_split_percentage("be1e0823_nohash_0.wav") == 16.829276955345847);
  CHECK(speech_split_percentage("000e6141_nohash_0.wav") == 10.000010654330332);  // just above 10
  CHECK(speech_split_percentage("002badf4_nohash_5.wav") == 19.99996840953803);   // just below 20
  CHECK(speech_split_percentage("abc") == 60.19756615309094);  // no _nohash_: the whole name is hashed

  CHECK(speech_which_set("right/a69b9b3e_nohash_0.wav") == SpeechSet::validation);
  CHECK(speech_which_set("00000000_nohash_0.wav") == SpeechSet::validation);  // 9.5557
  CHECK(speech_which_set("yes/0a7c2a8d_nohash_0.wav") == SpeechSet::training);
  CHECK(speech_which_set("0a7c2a8d_nohash_3.wav") == SpeechSet::training);  // only the part before _nohash_
  CHECK(speech_which_set("be1e0823_nohash_0.wav") == SpeechSet::testing);
  CHECK(speech_which_set("c6ef3620_nohash_1.wav") == SpeechSet::testing);  // 14.58
  CHECK(speech_which_set("000e6141_nohash_0.wav") == SpeechSet::testing);
  CHECK(speech_which_set("002badf4_nohash_0.wav") == SpeechSet::testing);
  CHECK(speech_which_set("deadbeef_nohash_0.wav") == SpeechSet::training);
  // Other percentages move the boundaries.
  CHECK(speech_which_set("000e6141_nohash_0.wav", 10.00002, 10) == SpeechSet::validation);
  CHECK(speech_which_set("002badf4_nohash_0.wav", 10, 9.9999) == SpeechSet::training);
}

TEST_CASE("speech synth: silence trimming finds the active part", "[speech-synth]") {
  using mgl::datasets::speech_active_range;
  std::vector<float> x(16000, 0.0f);
  for (int i = 8000; i < 12000; ++i) x[size_t(i)] = 0.5f * std::sin(0.2f * float(i));
  x[100] = 0.001f;  // a click far below the threshold (-40 dB of the loudest frame)
  const auto [b, e] = speech_active_range(x, 16000);  // 10 ms frames, 20 ms margins
  CHECK(b == 8000 - 320);
  CHECK(e == 12000 + 320);
  const auto [b0, e0] = speech_active_range(std::vector<float>(1000, 0.0f), 16000);
  CHECK(b0 == 0);
  CHECK(e0 == 0);
}

TEST_CASE("speech synth: layout, WAV format and split lists", "[speech-synth]") {
  if (!have_espeak()) return;
  TempDir dir("speech-synth");
  const fs::path out = dir / "sc";
  auto o = small_options({"yes", "no", "up"}, 5, 3);
  o.speakers = 8;
  const auto stats = generate_speech_commands(o, out);
  CHECK(stats.clips == 15);
  CHECK(stats.train + stats.validation + stats.test == 15);
  CHECK(stats.speaker_pool == 8);
  CHECK(stats.noise_files == 4);

  const std::regex clip_name("[0-9a-f]{8}_nohash_[0-9]+\\.wav");
  std::set<std::string> val, test;
  std::set<std::string> speakers_seen;
  for (const auto& word : o.words) {
    std::map<std::string, std::set<int>> repeats;  // speaker -> k of this word
    int64_t n = 0;
    for (const auto& e : fs::directory_iterator(out / word)) {
      const std::string name = e.path().filename().string();
      INFO(word + "/" + name);
      REQUIRE(std::regex_match(name, clip_name));
      ++n;
      repeats[name.substr(0, 8)].insert(std::stoi(name.substr(16)));
      speakers_seen.insert(name.substr(0, 8));
      SF_INFO info{};
      SNDFILE* sf = sf_open(e.path().c_str(), SFM_READ, &info);
      REQUIRE(sf != nullptr);
      CHECK(info.samplerate == 16000);
      CHECK(info.channels == 1);
      CHECK(info.format == (SF_FORMAT_WAV | SF_FORMAT_PCM_16));
      CHECK(info.frames == 16000);
      std::vector<float> x(size_t(info.frames));
      CHECK(sf_readf_float(sf, x.data(), info.frames) == info.frames);
      sf_close(sf);
      float peak = 0;
      double ss = 0;
      for (float v : x) {
        peak = std::max(peak, std::fabs(v));
        ss += double(v) * v;
      }
      CHECK(peak > 0.3f);  // peaks are drawn in -10..-2 dBFS
      CHECK(peak < 0.81f);
      CHECK(std::sqrt(ss / 16000) > 0.01);
      CHECK(std::fabs(x.front()) < 1e-3f);  // a fade-in and a random offset: no click at the edges
      const std::string rel = word + "/" + name;
      const auto set = mgl::datasets::speech_which_set(rel);
      if (set == SpeechSet::validation) val.insert(rel);
      if (set == SpeechSet::testing) test.insert(rel);
    }
    CHECK(n == 5);
    for (const auto& [speaker, ks] : repeats) {  // _nohash_0.._nohash_{m-1}, no gaps
      INFO(word << " " << speaker);
      CHECK(*ks.rbegin() == int(ks.size()) - 1);
    }
  }
  // The lists hold exactly the clips which_set puts there, sorted, with '/' paths.
  const auto val_lines = lines_of(out / "validation_list.txt");
  const auto test_lines = lines_of(out / "testing_list.txt");
  CHECK(std::set<std::string>(val_lines.begin(), val_lines.end()) == val);
  CHECK(std::set<std::string>(test_lines.begin(), test_lines.end()) == test);
  CHECK(std::is_sorted(val_lines.begin(), val_lines.end()));
  CHECK(int64_t(val.size()) == stats.validation);
  CHECK(int64_t(test.size()) == stats.test);
  CHECK(stats.validation + stats.test > 0);  // this seed puts some speakers outside training
  CHECK(int64_t(speakers_seen.size()) == stats.speakers_used);
  // Speakers say several words: the pool of 8 is shared by 15 clips.
  CHECK(stats.speakers_used <= 8);

  // speakers.tsv names every speaker heard, with its description.
  const auto tsv = lines_of(out / "speakers.tsv");
  REQUIRE(tsv.size() == speakers_seen.size() + 1);
  for (size_t i = 1; i < tsv.size(); ++i) {
    CHECK(speakers_seen.count(tsv[i].substr(0, 8)) == 1);
    const auto desc = tsv[i].substr(tsv[i].rfind('\t') + 1);
    CHECK(mgl::datasets::sha1_hex(desc).substr(0, 8) == tsv[i].substr(0, 8));
  }

  // Background noise, README and LICENSE.
  for (const char* f : {"white_noise.wav", "pink_noise.wav", "brown_noise.wav", "tap_noise.wav"}) {
    INFO(f);
    SF_INFO info{};
    SNDFILE* sf = sf_open((out / "_background_noise_" / f).c_str(), SFM_READ, &info);
    REQUIRE(sf != nullptr);
    sf_close(sf);
    CHECK(info.samplerate == 16000);
    CHECK(info.channels == 1);
    CHECK(info.frames == 8000);
  }
  CHECK(fs::exists(out / "_background_noise_" / "README.md"));
  CHECK(read_all(out / "README.md").find("Synthetic data") != std::string::npos);
  CHECK(read_all(out / "LICENSE").find("synthetic") != std::string::npos);
  // Nothing else: no temporary files left behind.
  for (const auto& e : fs::recursive_directory_iterator(out))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("speech synth: deterministic for a seed, whatever the thread count", "[speech-synth]") {
  if (!have_espeak()) return;
  TempDir dir("speech-synth-det");
  auto o = small_options({"go", "stop"}, 3, 11);
  o.threads = 1;
  generate_speech_commands(o, dir / "a");
  const auto a = snapshot(dir / "a");
  CHECK(a.size() == 2 * 3 + 4 + 1 + 5);  // clips, noise WAVs + README, root files
  // Our part is deterministic only if the engine is: some espeak-ng releases (1.52 in Debian
  // trixie) vary their output from one run to the next. Then the thread count cannot be judged.
  generate_speech_commands(o, dir / "a2");
  if (snapshot(dir / "a2") != a) {
    WARN("this espeak-ng gives different audio for the same input on two runs: thread-count check skipped");
    return;
  }
  o.threads = 3;
  generate_speech_commands(o, dir / "b");
  CHECK(snapshot(dir / "b") == a);
  o.seed = 12;
  generate_speech_commands(o, dir / "c");
  CHECK(snapshot(dir / "c") != a);
}

TEST_CASE("speech synth: an existing release is refused unless forced", "[speech-synth]") {
  if (!have_espeak()) return;
  TempDir dir("speech-synth-force");
  const fs::path out = dir / "sc";
  auto o = small_options({"on"}, 2, 5);
  generate_speech_commands(o, out);
  const std::string err = error_of([&] { generate_speech_commands(o, out); });
  CHECK(err.find("already holds") != std::string::npos);
  CHECK(err.find("validation_list.txt") != std::string::npos);

  // Clips without lists (an interrupted run) count as a release too.
  TempDir dir2("speech-synth-partial");
  write_text(dir2 / "off" / "0123abcd_nohash_0.wav", "x");
  CHECK(error_of([&] { generate_speech_commands(o, dir2.path()); }).find("off/") != std::string::npos);
  // An unrelated folder is fine.
  write_text(dir2 / "other" / "notes.txt", "keep me");

  // --force replaces the release: stale clips of other words go, other files stay.
  write_text(out / "left" / "ffffffff_nohash_0.wav", "stale");
  write_text(out / "notes.txt", "keep me");
  o.force = true;
  o.words = {"off"};
  generate_speech_commands(o, out);
  CHECK_FALSE(fs::exists(out / "left"));
  CHECK_FALSE(fs::exists(out / "on"));
  CHECK(fs::exists(out / "notes.txt"));
  int64_t clips = 0;
  for (const auto& e : fs::directory_iterator(out / "off")) clips += e.path().extension() == ".wav";
  CHECK(clips == 2);
}

TEST_CASE("speech synth: missing engines are named", "[speech-synth]") {
  TempDir dir("speech-synth-missing");
  auto o = small_options({"yes"}, 1, 0);
  o.engines = SpeechEngines::espeak;
  o.espeak_program = "/nonexistent/espeak-ng";
  std::string err = error_of([&] { generate_speech_commands(o, dir / "a"); });
  CHECK(err.find("espeak-ng") != std::string::npos);
  CHECK(err.find("not found") != std::string::npos);
  o.espeak_program = "no-such-speech-engine-xyz";
  err = error_of([&] { generate_speech_commands(o, dir / "a"); });
  CHECK(err.find("not in PATH") != std::string::npos);
  o.engines = SpeechEngines::flite;
  o.flite_program = "no-such-flite-xyz";
  err = error_of([&] { generate_speech_commands(o, dir / "a"); });
  CHECK(err.find("flite") != std::string::npos);
  CHECK(err.find("not in PATH") != std::string::npos);
}

TEST_CASE("speech synth: a failing engine run is retried with another speaker", "[speech-synth]") {
  if (!have_espeak()) return;
  TempDir dir("speech-synth-retry");
  // A wrapper that fails for pitches ending in 0 or 5 (a fifth of the espeak-ng speakers).
  const fs::path fake = dir / "flaky-espeak";
  write_text(
      fake,
      "#!/bin/sh\n"
      "prev=\n"
      "for a in \"$@\"; do\n"
      "  if [ \"$prev\" = -p ]; then case \"$a\" in *[05]) echo \"flaky: pitch $a\" >&2; exit 3;; esac; fi\n"
      "  prev=$a\n"
      "done\n"
      "exec espeak-ng \"$@\"\n");
  ::chmod(fake.c_str(), 0755);
  auto o = small_options({"yes", "no"}, 6, 2);
  o.engines = SpeechEngines::espeak;
  o.espeak_program = fake.string();
  o.speakers = 20;
  const auto stats = generate_speech_commands(o, dir / "sc");
  CHECK(stats.clips == 12);
  CHECK(stats.failed_runs > 0);
  CHECK(stats.retried_clips > 0);
  REQUIRE_FALSE(stats.failure_examples.empty());
  CHECK(stats.failure_examples[0].find("flaky: pitch") != std::string::npos);
  // No clip comes from a failing speaker.
  const std::regex failing(".*pitch=[0-9]*[05] .*");
  for (const auto& line : lines_of(dir / "sc" / "speakers.tsv")) CHECK_FALSE(std::regex_match(line, failing));

  // An engine that always fails: an error after max_attempts runs, with its message.
  write_text(
      fake,
      "#!/bin/sh\ncase \"$1\" in --*) exec espeak-ng \"$@\";; esac\necho 'broken engine' >&2\nexit 1\n");
  o.max_attempts = 3;
  const std::string err = error_of([&] { generate_speech_commands(o, dir / "sc2"); });
  CHECK(err.find("failed 3 times") != std::string::npos);
  CHECK(err.find("broken engine") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "sc2" / "validation_list.txt"));
}
