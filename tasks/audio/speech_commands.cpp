// Raw Speech Commands (paper-benchmarks §1.2, §2.3, §3.7): classify one-second 16 kHz waveforms
// given as 16,000 scalar samples, embedded as real numbers into the Megalodon encoder.
//
// Two conventions (task.split):
// - "stratified": SC10 as the Megalodon and Mega papers (the S4 / CKConv recipe): the ten words
//   yes … go, only clips of exactly 16,000 samples, a stratified 70 / 15 / 15 split. The original
//   split depends on os.listdir order and cannot be reproduced; ours is deterministic for
//   task.split_seed (rule in datasets/audio/speech_commands.h).
// - "official": validation_list.txt and testing_list.txt of the release (the 35-class task, or any
//   class subset); shorter clips are zero-padded at the end to task.clip_length.
//
// Samples are int16 / 32768, then standardised with the training split's mean and unbiased std as
// (x − μ)/(σ + 1e-5), like Mega's loader. Optional training augmentations (off by default, so the
// paper setup stays exact): a random time shift and background-noise mixing from
// `_background_noise_`, applied to the raw waveform before the standardisation.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "datasets/audio/speech_commands.h"
#include "harness/task.h"
#include "tasks/classification.h"

namespace mgl::tasks {
namespace {

using harness::Config;
using harness::ConfigError;
using harness::Split;
namespace fs = std::filesystem;

template <typename E>
E choose(const Config& cfg, const std::string& key, std::initializer_list<std::pair<const char*, E>> options) {
  const std::string v = cfg.get_string(key);
  for (const auto& [name, e] : options)
    if (v == name) return e;
  throw ConfigError(cfg.origin(key), key, fmt::format("unexpected value '{}'", v));  // the schema lists the choices
}

class SpeechCommandsTask final : public ClassificationTask {
 public:
  SpeechCommandsTask(const Config& cfg, int64_t num_classes, int64_t length)
      : ClassificationTask(cfg, num_classes, 1, -1, length), length_(length) {}

  static std::unique_ptr<harness::Task> create(const Config& cfg) {
    const fs::path root =
        task_root(cfg,
                  "the speech_commands_v0.02 release: one folder per word, validation_list.txt, "
                  "testing_list.txt; or make a synthetic one with `megalodon data speech --out DIR`");
    datasets::SpeechIndexOptions io;
    const std::string classes = cfg.get_string("task.classes");
    if (classes == "sc10") io.classes = datasets::sc10_classes();
    else if (classes == "all") io.classes = datasets::speech_commands_words();
    else io.classes = cfg.get_strings("task.class_list");
    if (io.classes.empty())
      throw ConfigError(cfg.origin("task.class_list"), "task.class_list", "is empty (task.classes = \"list\")");
    io.split = choose<datasets::SpeechSplitRule>(
        cfg, "task.split", {{"stratified", datasets::SpeechSplitRule::stratified}, {"official", datasets::SpeechSplitRule::official_lists}});
    const std::string split_name = cfg.get_string("task.split");
    io.clip_length = cfg.get_int("task.clip_length");
    if (io.clip_length < 1) throw ConfigError(cfg.origin("task.clip_length"), "task.clip_length", "must be >= 1");
    io.train_fraction = cfg.get_float("task.train_fraction");
    if (!(io.train_fraction > 0 && io.train_fraction < 1))
      throw ConfigError(cfg.origin("task.train_fraction"), "task.train_fraction", "must be in (0, 1)");
    io.split_seed = static_cast<uint64_t>(cfg.get_int("task.split_seed"));
    io.bad_files = choose<datasets::BadFilePolicy>(cfg, "task.bad_files",
                                                   {{"error", datasets::BadFilePolicy::error}, {"skip", datasets::BadFilePolicy::skip}});
    io.limit_per_class = cfg.get_int("task.limit_per_class");
    io.min_seconds = cfg.get_float("task.min_clip_ms") * 1e-3;
    if (!(io.min_seconds >= 0) || io.min_seconds * 1e3 > 1e7)
      throw ConfigError(cfg.origin("task.min_clip_ms"), "task.min_clip_ms", "must be >= 0 (milliseconds)");

    auto t = std::make_unique<SpeechCommandsTask>(cfg, static_cast<int64_t>(io.classes.size()), io.clip_length);
    t->wav_.sample_rate = cfg.get_int("task.sample_rate");
    if (t->wav_.sample_rate < 1) throw ConfigError(cfg.origin("task.sample_rate"), "task.sample_rate", "must be >= 1");
    t->wav_.rate = choose<datasets::RatePolicy>(cfg, "task.other_rates",
                                                {{"reject", datasets::RatePolicy::reject}, {"resample", datasets::RatePolicy::resample}});
    t->wav_.channels = choose<datasets::ChannelPolicy>(cfg, "task.channels",
                                                       {{"reject", datasets::ChannelPolicy::reject}, {"mix", datasets::ChannelPolicy::mix}});
    t->split_name_ = split_name == "official" ? "official-list" : "stratified 70/15/15";
    t->skip_bad_ = io.bad_files == datasets::BadFilePolicy::skip;
    t->index_ = datasets::index_speech_commands(root, io);
    std::vector<datasets::SpeechClip>* splits[3] = {&t->index_.train, &t->index_.val, &t->index_.test};
    for (int s = 0; s < 3; ++s) *splits[s] = evenly_spaced(*splits[s], split_limit(cfg, s));
    if (t->index_.train.empty())
      throw ConfigError(cfg.origin("task.root"), "task.root", fmt::format("{}: no training clips for the chosen classes", root.string()));

    t->preload_ = cfg.get_bool("task.preload");
    if (t->preload_)
      for (int s = 0; s < 3; ++s) t->load_split(s);
    t->compute_moments(cfg.get_bool("task.standardize"));

    t->shift_ = static_cast<int64_t>(std::llround(cfg.get_float("task.time_shift_ms") * 1e-3 * t->wav_.sample_rate));
    if (t->shift_ < 0) throw ConfigError(cfg.origin("task.time_shift_ms"), "task.time_shift_ms", "must be >= 0");
    t->noise_prob_ = cfg.get_float("task.noise_prob");
    t->noise_volume_ = cfg.get_float("task.noise_volume");
    if (t->noise_prob_ < 0 || t->noise_prob_ > 1)
      throw ConfigError(cfg.origin("task.noise_prob"), "task.noise_prob", "must be in [0, 1]");
    if (t->noise_volume_ < 0) throw ConfigError(cfg.origin("task.noise_volume"), "task.noise_volume", "must be >= 0");
    if (t->noise_prob_ > 0) {
      for (auto& n : datasets::read_background_noise(root, t->wav_))
        if (static_cast<int64_t>(n.samples.size()) >= t->length_)
          t->noise_.push_back(torch::tensor(n.samples, torch::kFloat32));
      if (t->noise_.empty())
        throw ConfigError(cfg.origin("task.noise_prob"), "task.noise_prob",
                          fmt::format("{}/_background_noise_ holds no recording of at least {} samples", root.string(), t->length_));
    }
    return t;
  }

  int64_t size(Split s) const override { return static_cast<int64_t>(clips(int(s)).size()); }

  // One pass per row (issue 22: loader threads): the clip is read, shifted, mixed with noise,
  // clipped and standardised straight into the batch, instead of a chain of LibTorch ops over the
  // whole 2 MB batch (each pass cold in the loader thread's cache). The random draws are draw()'s,
  // row by row.
  harness::Batch make_batch(Split s, const std::vector<int64_t>& indices, uint64_t seed) const override {
    const int si = int(s);
    const int64_t B = static_cast<int64_t>(indices.size()), T = length_;
    torch::Tensor x = torch::empty({B, T}, torch::kFloat32);
    std::vector<int64_t> y;
    y.reserve(B);
    const bool aug = s == Split::train && (shift_ > 0 || noise_prob_ > 0);
    c10::optional<at::Generator> gen;
    if (aug) gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const float mean = static_cast<float>(mean_), sd = static_cast<float>(std_ + 1e-5);
    std::vector<float> decoded;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t i = indices[b];
      y.push_back(clips(si).at(i).label);
      const int16_t* pcm = nullptr;  // the preloaded int16 row, or the decoded floats
      if (preload_) {
        pcm = audio_[si].data_ptr<int16_t>() + i * T;
      } else {
        torch::Tensor wave = decode(clips(si).at(i));
        decoded.assign(wave.data_ptr<float>(), wave.data_ptr<float>() + T);
      }
      Draw d = aug ? draw(*gen) : Draw{};
      const float* noise = d.noise ? d.noise->data_ptr<float>() + d.start : nullptr;
      const float gain = static_cast<float>(d.gain);
      float* row = x.data_ptr<float>() + b * T;
      // Samples [lo, hi) of the row come from the clip (t − shift); the rest are the shift's zeros.
      const int64_t lo = std::min<int64_t>(T, std::max<int64_t>(0, d.shift));
      const int64_t hi = std::max<int64_t>(lo, std::min<int64_t>(T, T + d.shift));
      auto fill = [&](auto&& sample) {
        auto put = [&](int64_t t, float v) {
          if (noise) v = std::min(1.0f, std::max(-1.0f, v + gain * noise[t]));
          row[t] = (v - mean) / sd;
        };
        for (int64_t t = 0; t < lo; ++t) put(t, 0.0f);
        for (int64_t t = lo; t < hi; ++t) put(t, sample(t - d.shift));
        for (int64_t t = hi; t < T; ++t) put(t, 0.0f);
      };
      if (pcm)
        fill([&](int64_t t) { return static_cast<float>(pcm[t]) / 32768.0f; });
      else
        fill([&](int64_t t) { return decoded[static_cast<size_t>(t)]; });
    }
    harness::Batch out;
    out.inputs = x;
    out.targets = torch::tensor(y, torch::kInt64);
    out.examples = B;
    out.tokens = out.inputs.numel();
    return out;
  }

  std::string describe() const override {
    std::vector<int64_t> labels;
    for (const auto& c : index_.train) labels.push_back(c.label);
    std::string extra;
    if (index_.skipped_length) extra += fmt::format(", {} clips not {} samples long left out", index_.skipped_length, length_);
    if (!index_.skipped_bad.empty() || dropped_)
      extra += fmt::format(", {} unreadable files skipped", index_.skipped_bad.size() + dropped_);
    if (shift_ > 0) extra += fmt::format(", time shift ±{} samples", shift_);
    if (noise_prob_ > 0) extra += fmt::format(", background noise p={} ≤{}", noise_prob_, noise_volume_);
    return fmt::format("Speech Commands {}: {} classes, {} split; {} train (labels {}) / {} val / {} test clips of {} "
                       "samples at {} Hz; standardised with train mean {:.4g}, std {:.4g}{}",
                       index_.root.string(), index_.classes.size(), split_name_, index_.train.size(),
                       label_counts(labels, static_cast<int64_t>(index_.classes.size())), index_.val.size(),
                       index_.test.size(), length_, wav_.sample_rate, mean_, std_, extra);
  }

 private:
  const std::vector<datasets::SpeechClip>& clips(int s) const {
    return s == 0 ? index_.train : s == 1 ? index_.val : index_.test;
  }
  std::vector<datasets::SpeechClip>& clips_mut(int s) { return s == 0 ? index_.train : s == 1 ? index_.val : index_.test; }

  torch::Tensor decode(const datasets::SpeechClip& c) const {
    auto v = datasets::fit_length(datasets::read_wav(index_.root / c.path, wav_), length_);
    return torch::tensor(v, torch::kFloat32);
  }

  // Decodes a split into int16 rows (exact for 16-bit files; resampled clips are rounded to 16 bits).
  // Under task.bad_files = "skip", a clip whose header was readable but whose data are not is dropped.
  void load_split(int s) {
    auto& cs = clips_mut(s);
    std::vector<datasets::SpeechClip> kept;
    std::vector<torch::Tensor> rows;
    for (const auto& c : cs) {
      torch::Tensor v;
      try {
        v = decode(c);
      } catch (const std::exception& e) {
        if (!skip_bad_) throw;
        index_.skipped_bad.push_back({c.path, e.what()});
        ++dropped_;
        continue;
      }
      rows.push_back(v.mul_(32768.0).round_().clamp_(-32768, 32767).to(torch::kInt16));
      kept.push_back(c);
    }
    cs = std::move(kept);
    audio_[s] = rows.empty() ? torch::empty({0, length_}, torch::kInt16) : torch::stack(rows);
  }

  // The training split's mean and unbiased std over every sample (fp64 sums), as Mega computes them.
  void compute_moments(bool standardize) {
    if (!standardize) return;
    double sum = 0, sq = 0;
    int64_t n = 0;
    auto add = [&](const torch::Tensor& x) {
      auto d = x.to(torch::kFloat64);
      sum += d.sum().item<double>();
      sq += d.square().sum().item<double>();
      n += d.numel();
    };
    if (preload_) add(audio_[0].to(torch::kFloat64).div_(32768.0));
    else
      for (const auto& c : index_.train) add(decode(c));
    mean_ = sum / n;
    std_ = n > 1 ? std::sqrt(std::max(0.0, (sq - n * mean_ * mean_) / (n - 1))) : 1.0;
  }

  // One training row's augmentation: a random shift in [−shift, shift] samples (zero fill), then
  // with probability noise_prob a random window of a random noise recording scaled by
  // U(0, noise_volume) is added; the sum is clipped to [−1, 1].
  struct Draw {
    int64_t shift = 0;
    const torch::Tensor* noise = nullptr;
    int64_t start = 0;
    double gain = 0;
  };
  Draw draw(at::Generator& gen) const {
    Draw d;
    if (shift_ > 0) d.shift = torch::randint(-shift_, shift_ + 1, {1}, gen, torch::kInt64).item<int64_t>();
    if (noise_prob_ > 0 && torch::rand({1}, gen).item<double>() < noise_prob_) {
      d.noise = &noise_[torch::randint(0, static_cast<int64_t>(noise_.size()), {1}, gen, torch::kInt64).item<int64_t>()];
      d.start = torch::randint(0, d.noise->size(0) - length_ + 1, {1}, gen, torch::kInt64).item<int64_t>();
      d.gain = torch::rand({1}, gen).item<double>() * noise_volume_;
    }
    return d;
  }

  int64_t length_;
  datasets::WavReadOptions wav_;
  datasets::SpeechCommandsIndex index_;
  std::string split_name_;
  bool preload_ = true, skip_bad_ = false;
  int64_t dropped_ = 0;
  torch::Tensor audio_[3];  // N×length int16 per split when preloaded
  double mean_ = 0, std_ = 1;
  int64_t shift_ = 0;
  double noise_prob_ = 0, noise_volume_ = 0.1;
  std::vector<torch::Tensor> noise_;
};

void speech_commands_schema(harness::Schema& s) {
  s.add_string("task.root", "data/speech_commands_v0.02", "the release folder: one folder per word, the split lists");
  s.add_string("task.classes", "sc10", "sc10 (yes no up down left right on off stop go), all (the 35 words) or list",
               {"sc10", "all", "list"});
  s.add_strings("task.class_list", {}, "the label folders in label order, when task.classes = \"list\"");
  s.add_string("task.split", "stratified",
               "stratified (SC10: exact-length clips, 70/15/15 per class) or official (validation_list.txt, "
               "testing_list.txt)",
               {"stratified", "official"});
  s.add_float("task.train_fraction", 0.7, "stratified split: training share; the rest is halved into val and test", harness::Range{0, 1, true, true, std::nullopt});
  s.add_int("task.split_seed", 0, "stratified split: seed of the per-class shuffles", harness::Range::at_least(0));
  s.add_int("task.clip_length", 16000, "samples per clip: the stratified split keeps only this length; others are padded or cropped", harness::Range::at_least(1));
  s.add_int("task.sample_rate", 16000, "expected sample rate (Hz)", harness::Range::at_least(1));
  s.add_string("task.other_rates", "reject", "a clip at another rate: reject (error or skip) or resample (libsoxr)",
               {"reject", "resample"});
  s.add_string("task.channels", "reject", "a clip with several channels: reject or mix (average)", {"reject", "mix"});
  s.add_string("task.bad_files", "error", "an unreadable, truncated or non-audio file: error (stop) or skip (counted)",
               {"error", "skip"});
  s.add_float("task.min_clip_ms", 50,
              "a clip shorter than this (or empty) is a bad file, handled as task.bad_files says (no word fits in 50 ms)", harness::Range::at_least(0));
  s.add_bool("task.standardize", true, "(x − train mean)/(train std + 1e-5), as Mega; false: raw int16/32768");
  s.add_bool("task.preload", true, "decode every clip up front (2 bytes per sample); false: decode per batch");
  s.add_float("task.time_shift_ms", 0, "augmentation: random time shift of up to ± this many ms (0 = off)", harness::Range::at_least(0));
  s.add_float("task.noise_prob", 0, "augmentation: probability of mixing in _background_noise_ (0 = off)", harness::Range::fraction());
  s.add_float("task.noise_volume", 0.1, "augmentation: noise gain drawn from U(0, noise_volume)", harness::Range::at_least(0));
  s.add_int("task.limit_per_class", -1, "index only the first N files of each class folder; -1 = all", harness::Range::at_least(0).or_value(-1));
  add_split_limits(s, "use only N training clips (evenly spaced over the split)",
                   "use only N validation clips (evenly spaced)", "use only N test clips (evenly spaced)");
}

MGL_REGISTER_TASK("speech_commands", "Speech Commands from raw 16 kHz waveforms (SC10 or 35 words)", speech_commands_schema,
                  [](const Config& cfg) { return SpeechCommandsTask::create(cfg); });

}  // namespace
}  // namespace mgl::tasks
