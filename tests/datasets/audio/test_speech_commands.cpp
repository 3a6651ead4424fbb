// Speech Commands readers (paper-benchmarks §2.3, §3.7). Oracles: WAV files written here with
// libsndfile (or byte by byte) from known integer samples, whose exact float values follow from
// the format's full scale; an analytic sine for the resampler; split counts worked out by hand
// from the header's rounding and largest-remainder rules; per-class membership from
// torch::randperm with the documented seed.
//
// LibTorch before Catch: c10 is built with glog, whose logging.h defines its own CHECK (a fatal
// assertion); included after catch.hpp it would replace Catch's CHECK in this file.
#ifdef MEGALODON_HAS_AUDIO
// clang-format off
#include <torch/torch.h>
#include "datasets/audio/speech_commands.h"

#include <catch2/catch.hpp>
// clang-format on

#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <type_traits>

#include "support/files.h"

namespace fs = std::filesystem;
using Catch::Contains;
using mgl::test::TempDir;
namespace ds = mgl::datasets;

namespace {

// Writes interleaved samples with libsndfile in the given format (T = short, int or float).
template <typename T>
void write_sound(const fs::path& file, int format, int rate, int channels, const std::vector<T>& data) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* sf = sf_open(file.c_str(), SFM_WRITE, &info);
  REQUIRE(sf != nullptr);
  const sf_count_t frames = static_cast<sf_count_t>(data.size()) / channels;
  sf_count_t written = 0;
  if constexpr (std::is_same_v<T, short>) written = sf_writef_short(sf, data.data(), frames);
  if constexpr (std::is_same_v<T, int>) written = sf_writef_int(sf, data.data(), frames);
  if constexpr (std::is_same_v<T, float>) written = sf_writef_float(sf, data.data(), frames);
  REQUIRE(written == frames);
  REQUIRE(sf_close(sf) == 0);
}

void write_bytes(const fs::path& p, const std::vector<unsigned char>& b) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void put_le(std::vector<unsigned char>& b, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}
void put_id(std::vector<unsigned char>& b, const char* id) { b.insert(b.end(), id, id + 4); }

// A ramp of n 16-bit values k / 32768 (distinct per offset), written as mono 16-bit PCM.
void write_clip(const fs::path& file, int64_t n, int offset = 0, int64_t rate = 16000) {
  std::vector<float> s(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    s[static_cast<size_t>(i)] = static_cast<float>((i * 7 + offset) % 2000 - 1000) / 32768.0f;
  fs::create_directories(file.parent_path());
  ds::write_wav_pcm16(file, s, rate);
}

std::vector<std::string> paths(const std::vector<ds::SpeechClip>& clips) {
  std::vector<std::string> p;
  for (const auto& c : clips) p.push_back(c.path);
  return p;
}

std::vector<int64_t> per_label(const std::vector<ds::SpeechClip>& clips, size_t n_classes) {
  std::vector<int64_t> n(n_classes, 0);
  for (const auto& c : clips) ++n[static_cast<size_t>(c.label)];
  return n;
}

bool in_label_name_order(const std::vector<ds::SpeechClip>& clips) {
  return std::is_sorted(clips.begin(), clips.end(), [](const ds::SpeechClip& a, const ds::SpeechClip& b) {
    return a.label != b.label ? a.label < b.label : a.path < b.path;
  });
}

// A small release: yes 6 full + 2 short clips, no 5 + 1, up 5 + 0 (full = 160 frames, short = 100),
// a `bed` folder that is not chosen, the two lists, and `_background_noise_`.
constexpr int64_t kFull = 160, kShort = 100;
const std::vector<std::string> kClasses = {"yes", "no", "up"};
const std::map<std::string, std::pair<int, int>> kCounts = {{"yes", {6, 2}}, {"no", {5, 1}}, {"up", {5, 0}}};

std::string full_name(int i) { return "s" + std::to_string(i) + "_nohash_0.wav"; }
std::string short_name(int i) { return "t" + std::to_string(i) + "_nohash_0.wav"; }

void make_release(const fs::path& root) {
  int offset = 0;
  for (const auto& [cls, n] : kCounts) {
    for (int i = 0; i < n.first; ++i) write_clip(root / cls / full_name(i), kFull, offset++);
    for (int i = 0; i < n.second; ++i) write_clip(root / cls / short_name(i), kShort, offset++);
  }
  write_clip(root / "bed" / full_name(0), kFull);
  mgl::test::write_text(root / "yes" / "notes.txt", "not a clip\n");  // not *.wav: ignored
  mgl::test::write_text(root / "validation_list.txt",
                        "yes/s0_nohash_0.wav\n\nno/s1_nohash_0.wav\nbed/s0_nohash_0.wav\n");
  mgl::test::write_text(root / "testing_list.txt", "yes/t0_nohash_0.wav\r\nup/s2_nohash_0.wav\r\n");
  write_clip(root / "_background_noise_" / "white_noise.wav", 300, 1);
  write_clip(root / "_background_noise_" / "dude_miaowing.wav", 200, 2);
  mgl::test::write_text(root / "_background_noise_" / "README.md", "noise\n");
}

ds::SpeechIndexOptions stratified_options(uint64_t seed = 0) {
  ds::SpeechIndexOptions o;
  o.classes = kClasses;
  o.split = ds::SpeechSplitRule::stratified;
  o.clip_length = kFull;
  o.split_seed = seed;
  return o;
}

}  // namespace

TEST_CASE("read_wav: 16-bit PCM round trip is exactly k / 32768", "[speech]") {
  TempDir d("sc-wav");
  std::vector<float> s;
  for (int k : {-32768, -32767, -1, 0, 1, 12345, -23456, 32767})
    s.push_back(static_cast<float>(k) / 32768.0f);
  for (int k = -3000; k < 3000; k += 37) s.push_back(static_cast<float>(k) / 32768.0f);
  ds::write_wav_pcm16(d / "a.wav", s, 16000);
  const ds::WavInfo info = ds::read_wav_info(d / "a.wav");
  CHECK(info.frames == static_cast<int64_t>(s.size()));
  CHECK(info.sample_rate == 16000);
  CHECK(info.channels == 1);
  CHECK(info.format == "WAV PCM_16");
  CHECK(ds::read_wav(d / "a.wav") == s);
}

TEST_CASE("read_wav: 8-bit, 24-bit and float files", "[speech]") {
  TempDir d("sc-wav");
  // 8-bit WAV is unsigned; libsndfile stores a short k·256 as the byte k + 128, read back as k / 128.
  std::vector<short> s8;
  std::vector<float> want8;
  for (int k : {-128, -127, -1, 0, 1, 64, 127}) {
    s8.push_back(static_cast<short>(k * 256));
    want8.push_back(static_cast<float>(k) / 128.0f);
  }
  write_sound(d / "u8.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 16000, 1, s8);
  CHECK(ds::read_wav_info(d / "u8.wav").format == "WAV PCM_U8");
  CHECK(ds::read_wav(d / "u8.wav") == want8);

  // 24-bit: an int v·256 keeps its top 24 bits v, read back as v / 2^23.
  std::vector<int> s24;
  std::vector<float> want24;
  for (int v : {-8388608, -8388607, -1, 0, 1, 4194304, 1234567, 8388607}) {
    s24.push_back(static_cast<int>(static_cast<unsigned>(v) << 8));
    want24.push_back(static_cast<float>(v) / 8388608.0f);
  }
  write_sound(d / "s24.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_24, 16000, 1, s24);
  CHECK(ds::read_wav_info(d / "s24.wav").format == "WAV PCM_24");
  CHECK(ds::read_wav(d / "s24.wav") == want24);

  // 32-bit float passes through unchanged.
  const std::vector<float> sf = {0.0f, 0.1f, -0.75f, 0.999f, -1.0f, 3e-6f};
  write_sound(d / "f32.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 16000, 1, sf);
  CHECK(ds::read_wav_info(d / "f32.wav").format == "WAV FLOAT");
  CHECK(ds::read_wav(d / "f32.wav") == sf);
}

TEST_CASE("read_wav: another rate is rejected, or resampled keeping the frequency", "[speech]") {
  TempDir d("sc-wav");
  // 1 kHz sine at amplitude 0.5, one second at 8 kHz.
  const double pi = std::acos(-1.0);
  std::vector<float> s(8000);
  for (size_t n = 0; n < s.size(); ++n)
    s[n] = static_cast<float>(0.5 * std::sin(2 * pi * 1000.0 * n / 8000.0));
  const fs::path f = d / "sine8k.wav";
  ds::write_wav_pcm16(f, s, 8000);
  CHECK(ds::read_wav_info(f).sample_rate == 8000);
  CHECK_THROWS_WITH(ds::read_wav(f), Contains(f.string()) && Contains("8000") && Contains("16000"));

  ds::WavReadOptions o;
  o.rate = ds::RatePolicy::resample;
  const std::vector<float> r = ds::read_wav(f, o);
  REQUIRE(r.size() == 16000);
  // Against the analytic sine at 16 kHz, away from the edges where the filter sees zeros.
  double worst = 0;
  for (size_t n = 400; n < 15600; ++n)
    worst = std::max(worst, std::abs(r[n] - 0.5 * std::sin(2 * pi * 1000.0 * n / 16000.0)));
  CHECK(worst < 2e-3);
  // Same rate: no resampling, the file's own samples.
  o.sample_rate = 8000;
  CHECK(ds::read_wav(f, o).size() == 8000);
}

TEST_CASE("read_wav: stereo is rejected or averaged", "[speech]") {
  TempDir d("sc-wav");
  // (L, R) pairs with even sums, so the mean is an exact k / 32768.
  const std::vector<short> lr = {1000, 3000, -2, 4, 32767, 32767, -32768, -32766, 0, 0};
  const fs::path f = d / "stereo.wav";
  write_sound(f, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 2, lr);
  CHECK(ds::read_wav_info(f).channels == 2);
  CHECK_THROWS_WITH(ds::read_wav(f), Contains(f.string()) && Contains("2 channels"));
  ds::WavReadOptions o;
  o.channels = ds::ChannelPolicy::mix;
  const std::vector<float> want = {2000 / 32768.0f, 1 / 32768.0f, 32767 / 32768.0f, -32767 / 32768.0f, 0.0f};
  CHECK(ds::read_wav(f, o) == want);
}

TEST_CASE("read_wav: chunks are walked word-aligned, a truncated data chunk is an error", "[speech]") {
  TempDir d("sc-wav");
  // A hand-made RIFF/WAVE: fmt, an odd-sized LIST chunk (3 bytes + pad byte), then data.
  const std::vector<int16_t> pcm = {100, -200, 300, -32768, 32767, 7};
  std::vector<unsigned char> fmt_body, b;
  put_le(fmt_body, 1, 2);      // PCM
  put_le(fmt_body, 1, 2);      // mono
  put_le(fmt_body, 16000, 4);  // rate
  put_le(fmt_body, 32000, 4);  // byte rate
  put_le(fmt_body, 2, 2);      // block align
  put_le(fmt_body, 16, 2);     // bits
  const uint32_t data_bytes = static_cast<uint32_t>(2 * pcm.size());
  put_id(b, "RIFF");
  put_le(b, 4 + (8 + 16) + (8 + 4) + (8 + data_bytes), 4);
  put_id(b, "WAVE");
  put_id(b, "fmt ");
  put_le(b, 16, 4);
  b.insert(b.end(), fmt_body.begin(), fmt_body.end());
  put_id(b, "LIST");
  put_le(b, 3, 4);
  b.insert(b.end(), {'a', 'b', 'c', 0});
  put_id(b, "data");
  put_le(b, data_bytes, 4);
  for (int16_t v : pcm) put_le(b, static_cast<uint16_t>(v), 2);
  write_bytes(d / "chunks.wav", b);
  std::vector<float> want;
  for (int16_t v : pcm) want.push_back(static_cast<float>(v) / 32768.0f);
  CHECK(ds::read_wav(d / "chunks.wav") == want);

  // The same file cut 5 bytes short: libsndfile alone would return 3 frames.
  b.resize(b.size() - 5);
  write_bytes(d / "cut.wav", b);
  const std::string msg = "truncated: data chunk declares 12 bytes, file holds 7";
  CHECK_THROWS_WITH(ds::read_wav_info(d / "cut.wav"), Contains((d / "cut.wav").string()) && Contains(msg));
  CHECK_THROWS_WITH(ds::read_wav(d / "cut.wav"), Contains(msg));

  // A file written by write_wav_pcm16 and cut in its last frames (44-byte header + 2000 bytes).
  write_clip(d / "clip.wav", 1000);
  REQUIRE(fs::file_size(d / "clip.wav") == 2044);
  fs::resize_file(d / "clip.wav", 2044 - 101);
  CHECK_THROWS_WITH(
      ds::read_wav(d / "clip.wav"),
      Contains("clip.wav") && Contains("truncated: data chunk declares 2000 bytes, file holds 1899"));
}

TEST_CASE("read_wav: not audio, empty and missing files name the file", "[speech]") {
  TempDir d("sc-wav");
  mgl::test::write_text(d / "text.wav", "this is not a RIFF file, just some words\n");
  CHECK_THROWS_WITH(ds::read_wav_info(d / "text.wav"),
                    Contains("text.wav") && Contains("not a sound file libsndfile can read"));
  mgl::test::write_text(d / "empty.wav", "");
  CHECK_THROWS_WITH(ds::read_wav(d / "empty.wav"), Contains("empty.wav") && Contains("empty"));
  CHECK_THROWS_WITH(ds::read_wav(d / "absent.wav"), Contains("absent.wav") && Contains("missing"));
  CHECK_THROWS_AS(ds::read_wav_info(d / "absent.wav"), std::runtime_error);
}

TEST_CASE("fit_length pads with zeros or crops at the end", "[speech]") {
  const std::vector<float> s = {0.5f, -0.25f, 0.125f};
  CHECK(ds::fit_length(s, 5) == std::vector<float>{0.5f, -0.25f, 0.125f, 0.0f, 0.0f});
  CHECK(ds::fit_length(s, 2) == std::vector<float>{0.5f, -0.25f});
  CHECK(ds::fit_length(s, 3) == s);
  CHECK(ds::fit_length(s, 0).empty());
  CHECK_THROWS(ds::fit_length(s, -1));
}

TEST_CASE("the 35 words and SC10's ten classes", "[speech]") {
  const auto& words = ds::speech_commands_words();
  REQUIRE(words.size() == 35);
  CHECK(words.front() == "bed");
  CHECK(words[10] == "go");
  CHECK(words.back() == "backward");
  CHECK(std::set<std::string>(words.begin(), words.end()).size() == 35);
  CHECK(ds::sc10_classes() ==
        std::vector<std::string>{"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"});
  for (const auto& c : ds::sc10_classes()) CHECK(std::count(words.begin(), words.end(), c) == 1);
}

TEST_CASE("stratified split sizes follow sklearn's rounding", "[speech]") {
  auto sizes = [](int64_t n, double f) {
    const ds::SpeechSplitSizes s = ds::speech_split_sizes(n, f);
    return std::vector<int64_t>{s.train, s.val, s.test};
  };
  CHECK(sizes(34975, 0.7) == std::vector<int64_t>{24482, 5246, 5247});  // §2.3
  CHECK(sizes(16, 0.7) == std::vector<int64_t>{11, 2, 3});
  CHECK(sizes(10, 0.7) == std::vector<int64_t>{7, 1, 2});  // 0.7·10 = 7.000000000000001
  CHECK(sizes(0, 0.7) == std::vector<int64_t>{0, 0, 0});
  CHECK(sizes(5, 1.0) == std::vector<int64_t>{5, 0, 0});
  CHECK_THROWS(ds::speech_split_sizes(10, 1.5));
  CHECK_THROWS(ds::speech_split_sizes(-1, 0.7));
}

TEST_CASE("index: stratified rule", "[speech]") {
  TempDir d("sc-index");
  make_release(d.path());
  const ds::SpeechCommandsIndex idx = ds::index_speech_commands(d.path(), stratified_options());
  CHECK(idx.classes == kClasses);
  CHECK(idx.skipped_length == 3);  // the short clips
  CHECK(idx.skipped_bad.empty());
  // N = 16: train floor(11.2) = 11, val 2, test 3. Train shares 6·11/16 = 4.125, 5·11/16 = 3.4375
  // twice -> 4, 3, 3 and the one leftover unit to no (tie with up, lower label). The rest (2, 1, 2)
  // shares val = 2: 0.8, 0.4, 0.8 -> 0, 0, 0 and the two leftover units to yes and up.
  CHECK(per_label(idx.train, 3) == std::vector<int64_t>{4, 4, 3});
  CHECK(per_label(idx.val, 3) == std::vector<int64_t>{1, 0, 1});
  CHECK(per_label(idx.test, 3) == std::vector<int64_t>{1, 1, 1});
  CHECK(in_label_name_order(idx.train));
  CHECK(in_label_name_order(idx.val));
  CHECK(in_label_name_order(idx.test));
  std::set<std::string> all;
  for (const auto* split : {&idx.train, &idx.val, &idx.test})
    for (const auto& c : *split) {
      CHECK(c.frames == kFull);
      CHECK(c.path.rfind(kClasses[static_cast<size_t>(c.label)] + "/s", 0) == 0);
      all.insert(c.path);
    }
  CHECK(all.size() == 16);  // disjoint and complete

  // Membership: randperm(n_c) seeded with split_seed + label over the sorted names; first to train.
  for (uint64_t seed : {0ull, 3ull}) {
    const auto run = ds::index_speech_commands(d.path(), stratified_options(seed));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + 0);  // label 0 = yes, 6 clips
    const torch::Tensor perm = torch::randperm(6, gen, torch::kInt64);
    std::vector<std::string> train, val, test;
    for (int64_t k = 0; k < 6; ++k) {
      const std::string p = "yes/" + full_name(static_cast<int>(perm[k].item<int64_t>()));
      (k < 4 ? train : k < 5 ? val : test).push_back(p);
    }
    std::sort(train.begin(), train.end());
    auto of_yes = [](const std::vector<ds::SpeechClip>& clips) {
      std::vector<std::string> p;
      for (const auto& c : clips)
        if (c.label == 0) p.push_back(c.path);
      return p;
    };
    CHECK(of_yes(run.train) == train);
    CHECK(of_yes(run.val) == val);
    CHECK(of_yes(run.test) == test);
  }

  // Deterministic for a seed; another seed moves some clip.
  const auto again = ds::index_speech_commands(d.path(), stratified_options());
  CHECK(paths(again.train) == paths(idx.train));
  CHECK(paths(again.val) == paths(idx.val));
  CHECK(paths(again.test) == paths(idx.test));
  bool moved = false;
  for (uint64_t seed = 1; seed <= 5 && !moved; ++seed)
    moved = paths(ds::index_speech_commands(d.path(), stratified_options(seed)).train) != paths(idx.train);
  CHECK(moved);

  // limit_per_class: the first 3 names of each class (sorted: s0, s1, s2 ...), all full length.
  auto o = stratified_options();
  o.limit_per_class = 3;
  const auto lim = ds::index_speech_commands(d.path(), o);
  std::set<std::string> kept;
  for (const auto* split : {&lim.train, &lim.val, &lim.test})
    for (const auto& c : *split) kept.insert(c.path);
  std::set<std::string> want;
  for (const auto& c : kClasses)
    for (int i = 0; i < 3; ++i) want.insert(c + "/" + full_name(i));
  CHECK(kept == want);
  CHECK(lim.skipped_length == 0);
}

TEST_CASE("index: official lists", "[speech]") {
  TempDir d("sc-index");
  make_release(d.path());
  ds::SpeechIndexOptions o;
  o.classes = kClasses;
  o.split = ds::SpeechSplitRule::official_lists;
  const ds::SpeechCommandsIndex idx = ds::index_speech_commands(d.path(), o);
  CHECK(paths(idx.val) == std::vector<std::string>{"yes/s0_nohash_0.wav", "no/s1_nohash_0.wav"});
  CHECK(paths(idx.test) == std::vector<std::string>{"yes/t0_nohash_0.wav", "up/s2_nohash_0.wav"});
  CHECK(idx.test[0].frames == kShort);  // any length is kept
  CHECK(idx.skipped_length == 0);
  CHECK(per_label(idx.train, 3) == std::vector<int64_t>{6, 5, 4});  // everything unlisted
  CHECK(in_label_name_order(idx.train));
  const std::vector<std::string> train = paths(idx.train);
  CHECK(std::count(train.begin(), train.end(), "yes/t1_nohash_0.wav") == 1);

  // A listed file beyond limit_per_class exists: not an error, just not indexed.
  o.limit_per_class = 1;
  const auto lim = ds::index_speech_commands(d.path(), o);
  CHECK(paths(lim.train) == std::vector<std::string>{"no/s0_nohash_0.wav", "up/s0_nohash_0.wav"});
  CHECK(paths(lim.val) == std::vector<std::string>{"yes/s0_nohash_0.wav"});
  CHECK(lim.test.empty());
  o.limit_per_class = -1;

  // A listed file of a chosen class that does not exist: the list file and line.
  mgl::test::write_text(d / "validation_list.txt", "yes/s0_nohash_0.wav\n\nyes/ghost_nohash_0.wav\n");
  const std::string list = (d / "validation_list.txt").string();
  CHECK_THROWS_WITH(ds::index_speech_commands(d.path(), o),
                    Contains(list + ":3") && Contains("yes/ghost_nohash_0.wav"));
  // ... but outside the chosen classes it is ignored.
  mgl::test::write_text(d / "validation_list.txt", "bed/ghost_nohash_0.wav\n");
  CHECK(ds::index_speech_commands(d.path(), o).val.empty());
  // A file in both lists.
  mgl::test::write_text(d / "validation_list.txt", "up/s2_nohash_0.wav\n");
  CHECK_THROWS_WITH(ds::index_speech_commands(d.path(), o),
                    Contains("testing_list.txt:2") && Contains("validation_list.txt line 1"));
  // Both lists are required.
  fs::remove(d / "testing_list.txt");
  CHECK_THROWS_WITH(ds::index_speech_commands(d.path(), o), Contains((d / "testing_list.txt").string()));
}

TEST_CASE("index: unreadable files and missing class folders", "[speech]") {
  TempDir d("sc-index");
  make_release(d.path());
  mgl::test::write_text(d / "yes" / "corrupt_nohash_0.wav", "plain text, not audio\n");
  write_clip(d / "no" / "cut_nohash_0.wav", kFull);
  fs::resize_file(d / "no" / "cut_nohash_0.wav", 44 + 2 * kFull - 10);

  auto o = stratified_options();
  CHECK_THROWS_WITH(ds::index_speech_commands(d.path(), o),
                    Contains((d / "yes" / "corrupt_nohash_0.wav").string()) && Contains("not a sound file"));
  o.bad_files = ds::BadFilePolicy::skip;
  const auto idx = ds::index_speech_commands(d.path(), o);
  REQUIRE(idx.skipped_bad.size() == 2);
  CHECK(idx.skipped_bad[0].path == "yes/corrupt_nohash_0.wav");
  CHECK_THAT(idx.skipped_bad[0].reason, Contains("not a sound file"));
  CHECK(idx.skipped_bad[1].path == "no/cut_nohash_0.wav");
  CHECK_THAT(idx.skipped_bad[1].reason, Contains("truncated"));
  CHECK(idx.train.size() + idx.val.size() + idx.test.size() == 16);
  CHECK(per_label(idx.train, 3) == std::vector<int64_t>{4, 4, 3});

  o.classes = {"yes", "nope"};
  CHECK_THROWS_WITH(ds::index_speech_commands(d.path(), o), Contains((d / "nope").string()));
  o.classes = {};  // all 35 words: `bed` exists, `bird` does not
  CHECK_THROWS_WITH(ds::index_speech_commands(d.path(), o), Contains("bird"));
}

TEST_CASE("background noise: the WAVs of _background_noise_ sorted by name", "[speech]") {
  TempDir d("sc-noise");
  make_release(d.path());
  const auto noise = ds::read_background_noise(d.path());
  REQUIRE(noise.size() == 2);
  CHECK(noise[0].name == "dude_miaowing");
  CHECK(noise[1].name == "white_noise");
  CHECK(noise[0].samples == ds::read_wav(d / "_background_noise_" / "dude_miaowing.wav"));
  CHECK(noise[1].samples.size() == 300);

  TempDir e("sc-noise");
  CHECK_THROWS_WITH(ds::read_background_noise(e.path()), Contains("_background_noise_"));
  mgl::test::write_text(e / "_background_noise_" / "README.md", "no clips\n");
  CHECK_THROWS_WITH(ds::read_background_noise(e.path()),
                    Contains("_background_noise_") && Contains("no .wav"));
}

#endif  // MEGALODON_HAS_AUDIO
