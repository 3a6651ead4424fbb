// Speech Commands v0.02: WAV decoding (libsndfile), the release-layout index with its two split
// rules, the background-noise folder (paper-benchmarks §2.3, §3.7). The writer and the resampler
// are in wav_write.cpp.
#include "datasets/audio/speech_commands.h"

#include <fmt/format.h>
#include <sndfile.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

namespace mgl::datasets {

namespace {

struct SndFileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndFilePtr = std::unique_ptr<SNDFILE, SndFileCloser>;

uint32_t read_le32(const unsigned char* b) {
  return static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[1]) << 8 | static_cast<uint32_t>(b[2]) << 16 |
         static_cast<uint32_t>(b[3]) << 24;
}

std::string printable_chunk_id(const unsigned char* b) {
  std::string id(4, '?');
  for (int i = 0; i < 4; ++i)
    if (b[i] >= 0x20 && b[i] < 0x7f) id[static_cast<size_t>(i)] = static_cast<char>(b[i]);
  return id;
}

// libsndfile opens a RIFF/WAVE whose data chunk declares more bytes than the file holds and just
// returns fewer frames, so a clip cut short in a download would pass unnoticed. Walk the chunks
// (id, little-endian size, bodies padded to an even length) up to `data` and compare its declared
// size with what follows. Files that are not RIFF/WAVE are left to libsndfile. A data size of
// 0xFFFFFFFF is the streaming writers' "unknown length" placeholder, not a claim.
void check_riff_not_truncated(const std::filesystem::path& file, uint64_t file_size) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::array<unsigned char, 12> riff{};
  if (!in.read(reinterpret_cast<char*>(riff.data()), riff.size())) return;  // too short: libsndfile decides
  if (std::memcmp(riff.data(), "RIFF", 4) != 0 || std::memcmp(riff.data() + 8, "WAVE", 4) != 0) return;
  uint64_t pos = 12;
  while (pos + 8 <= file_size) {
    std::array<unsigned char, 8> head{};
    in.seekg(static_cast<std::streamoff>(pos));
    if (!in.read(reinterpret_cast<char*>(head.data()), head.size()))
      throw std::runtime_error(fmt::format("{}: read error at byte {}", file.string(), pos));
    const uint64_t declared = read_le32(head.data() + 4);
    const uint64_t body = pos + 8, present = file_size - body;
    const bool is_data = std::memcmp(head.data(), "data", 4) == 0;
    if (is_data && declared == 0xFFFFFFFFu) return;
    if (declared > present)
      throw std::runtime_error(fmt::format(
          "{}: truncated: {} chunk declares {} bytes, file holds {}", file.string(),
          is_data ? std::string("data") : "'" + printable_chunk_id(head.data()) + "'", declared, present));
    if (is_data) return;
    pos = body + declared + (declared & 1);
  }
  // No data chunk: libsndfile reports it when opening.
}

std::string format_name(int format) {
  static const std::map<int, const char*> majors = {
      {SF_FORMAT_WAV, "WAV"}, {SF_FORMAT_WAVEX, "WAVEX"}, {SF_FORMAT_AIFF, "AIFF"}, {SF_FORMAT_AU, "AU"},
      {SF_FORMAT_RAW, "RAW"}, {SF_FORMAT_W64, "W64"},     {SF_FORMAT_RF64, "RF64"}, {SF_FORMAT_FLAC, "FLAC"},
      {SF_FORMAT_OGG, "OGG"}, {SF_FORMAT_CAF, "CAF"},
  };
  static const std::map<int, const char*> subtypes = {
      {SF_FORMAT_PCM_S8, "PCM_S8"},       {SF_FORMAT_PCM_16, "PCM_16"},     {SF_FORMAT_PCM_24, "PCM_24"},
      {SF_FORMAT_PCM_32, "PCM_32"},       {SF_FORMAT_PCM_U8, "PCM_U8"},     {SF_FORMAT_FLOAT, "FLOAT"},
      {SF_FORMAT_DOUBLE, "DOUBLE"},       {SF_FORMAT_ULAW, "ULAW"},         {SF_FORMAT_ALAW, "ALAW"},
      {SF_FORMAT_IMA_ADPCM, "IMA_ADPCM"}, {SF_FORMAT_MS_ADPCM, "MS_ADPCM"}, {SF_FORMAT_GSM610, "GSM610"},
      {SF_FORMAT_VORBIS, "VORBIS"},
  };
  auto name_of = [](const std::map<int, const char*>& table, int code) {
    auto it = table.find(code);
    if (it != table.end()) return std::string(it->second);
    SF_FORMAT_INFO info{};
    info.format = code;
    if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &info, sizeof(info)) == 0 && info.name)
      return std::string(info.name);
    return fmt::format("0x{:x}", code);
  };
  return name_of(majors, format & SF_FORMAT_TYPEMASK) + " " + name_of(subtypes, format & SF_FORMAT_SUBMASK);
}

// The checks shared by read_wav_info and read_wav, then libsndfile's open (header only).
SndFilePtr open_sound(const std::filesystem::path& file, SF_INFO& info) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (!std::filesystem::exists(status))
    throw std::runtime_error(fmt::format("{}: missing (no such file)", file.string()));
  if (!std::filesystem::is_regular_file(status))
    throw std::runtime_error(fmt::format("{}: not a regular file", file.string()));
  const uint64_t size = std::filesystem::file_size(file, ec);
  if (ec) throw std::runtime_error(fmt::format("{}: cannot read ({})", file.string(), ec.message()));
  if (size == 0) throw std::runtime_error(fmt::format("{}: empty file (0 bytes)", file.string()));
  check_riff_not_truncated(file, size);
  info = SF_INFO{};
  SndFilePtr sf(sf_open(file.c_str(), SFM_READ, &info));
  if (!sf)
    throw std::runtime_error(
        fmt::format("{}: not a sound file libsndfile can read: {}", file.string(), sf_strerror(nullptr)));
  if (info.channels < 1 || info.samplerate < 1 || info.frames < 0)
    throw std::runtime_error(fmt::format("{}: bad header ({} channels, {} Hz, {} frames)", file.string(),
                                         info.channels, info.samplerate, info.frames));
  return sf;
}

// `<folder>/*.wav`, regular files only, names sorted bytewise.
std::vector<std::string> sorted_wav_names(const std::filesystem::path& folder) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(folder)) {
    if (e.path().extension() != ".wav" || !e.is_regular_file()) continue;
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());  // std::string compares as unsigned bytes
  return names;
}

// Largest-remainder apportionment of `total` units over classes of sizes `counts` (sum `n`): each
// class gets floor(count·total/n); the leftover units go to the largest fractional parts
// (compared exactly as integer remainders), ties to the lower index.
std::vector<int64_t> largest_remainder(const std::vector<int64_t>& counts, int64_t n, int64_t total) {
  std::vector<int64_t> share(counts.size(), 0), rem(counts.size(), 0);
  if (n == 0) return share;
  int64_t given = 0;
  for (size_t c = 0; c < counts.size(); ++c) {
    share[c] = counts[c] * total / n;
    rem[c] = counts[c] * total % n;
    given += share[c];
  }
  std::vector<size_t> order(counts.size());
  for (size_t c = 0; c < order.size(); ++c) order[c] = c;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rem[a] > rem[b]; });
  for (int64_t k = 0; k < total - given; ++k) ++share[order[static_cast<size_t>(k)]];
  return share;
}

struct ListEntry {
  std::filesystem::path list;
  int64_t line = 0;
};

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

void sort_split(std::vector<SpeechClip>& clips) {
  std::sort(clips.begin(), clips.end(), [](const SpeechClip& a, const SpeechClip& b) {
    return a.label != b.label ? a.label < b.label : a.path < b.path;
  });
}

}  // namespace

WavInfo read_wav_info(const std::filesystem::path& file) {
  SF_INFO info{};
  SndFilePtr sf = open_sound(file, info);
  return {info.frames, info.samplerate, info.channels, format_name(info.format)};
}

std::vector<float> read_wav(const std::filesystem::path& file, const WavReadOptions& options) {
  if (options.sample_rate < 1)
    throw std::runtime_error(
        fmt::format("{}: expected sample rate must be >= 1 (got {})", file.string(), options.sample_rate));
  SF_INFO info{};
  SndFilePtr sf = open_sound(file, info);
  if (info.samplerate != options.sample_rate && options.rate == RatePolicy::reject)
    throw std::runtime_error(fmt::format("{}: sample rate {} Hz, expected {} Hz", file.string(),
                                         info.samplerate, options.sample_rate));
  if (info.channels != 1 && options.channels == ChannelPolicy::reject)
    throw std::runtime_error(fmt::format("{}: {} channels, expected mono", file.string(), info.channels));

  const auto frames = static_cast<size_t>(info.frames);
  const auto channels = static_cast<size_t>(info.channels);
  std::vector<float> interleaved(frames * channels);
  sf_count_t got = 0;
  if ((info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16) {
    // Integer path: k / 32768 exactly, whatever libsndfile's float conversion does.
    std::vector<short> pcm(frames * channels);
    got = sf_readf_short(sf.get(), pcm.data(), info.frames);
    for (size_t i = 0; i < pcm.size(); ++i) interleaved[i] = static_cast<float>(pcm[i]) / 32768.0f;
  } else {
    // libsndfile normalises integer PCM by its full scale (2^(bits−1)), the same k / 32768 scale
    // for 16 bits; float files are passed through.
    sf_command(sf.get(), SFC_SET_NORM_FLOAT, nullptr, SF_TRUE);
    got = sf_readf_float(sf.get(), interleaved.data(), info.frames);
  }
  if (got != info.frames)
    throw std::runtime_error(
        fmt::format("{}: decoded {} of the {} frames the header declares", file.string(), got, info.frames));

  std::vector<float> mono;
  if (channels == 1) {
    mono = std::move(interleaved);
  } else {
    mono.resize(frames);
    for (size_t f = 0; f < frames; ++f) {
      double sum = 0;
      for (size_t c = 0; c < channels; ++c) sum += interleaved[f * channels + c];
      mono[f] = static_cast<float>(sum / static_cast<double>(channels));
    }
  }
  if (info.samplerate != options.sample_rate)
    mono =
        resample_audio(mono, static_cast<double>(info.samplerate), static_cast<double>(options.sample_rate));
  return mono;
}

const std::vector<std::string>& speech_commands_words() {
  static const std::vector<std::string> words = {
      "bed",  "bird", "cat",   "dog",    "down",  "eight",  "five",   "follow",  "forward",
      "four", "go",   "happy", "house",  "learn", "left",   "marvin", "nine",    "no",
      "off",  "on",   "one",   "right",  "seven", "sheila", "six",    "stop",    "three",
      "tree", "two",  "up",    "visual", "wow",   "yes",    "zero",   "backward"};
  return words;
}

const std::vector<std::string>& sc10_classes() {
  static const std::vector<std::string> classes = {"yes",   "no", "up",  "down", "left",
                                                   "right", "on", "off", "stop", "go"};
  return classes;
}

SpeechSplitSizes speech_split_sizes(int64_t n, double train_fraction) {
  if (n < 0) throw std::runtime_error(fmt::format("speech_split_sizes: N = {} must be >= 0", n));
  if (!(train_fraction >= 0.0 && train_fraction <= 1.0))
    throw std::runtime_error(
        fmt::format("speech_split_sizes: train_fraction {} must be in [0, 1]", train_fraction));
  // sklearn's train_test_split: n_train = floor(train_size·N) (computed in double); the second call
  // with test_size = 0.5 gives n_test = ceil(R/2).
  SpeechSplitSizes s;
  s.train = static_cast<int64_t>(std::floor(train_fraction * static_cast<double>(n)));
  const int64_t rest = n - s.train;
  s.test = (rest + 1) / 2;
  s.val = rest - s.test;
  return s;
}

SpeechCommandsIndex index_speech_commands(const std::filesystem::path& root,
                                          const SpeechIndexOptions& options) {
  SpeechCommandsIndex index;
  index.root = root;
  index.classes = options.classes.empty() ? speech_commands_words() : options.classes;
  {
    std::set<std::string> seen;
    for (const auto& c : index.classes) {
      if (c.empty() || c.find('/') != std::string::npos)
        throw std::runtime_error(fmt::format("{}: bad class name '{}'", root.string(), c));
      if (!seen.insert(c).second)
        throw std::runtime_error(fmt::format("{}: class '{}' given twice", root.string(), c));
    }
  }
  const bool stratified = options.split == SpeechSplitRule::stratified;
  if (stratified && options.clip_length < 1)
    throw std::runtime_error(
        fmt::format("{}: clip_length {} must be >= 1", root.string(), options.clip_length));

  // Every readable clip per label, in sorted file order; plus, per class, every .wav name in the
  // folder (before limit_per_class and bad-file skipping), to tell "listed but missing" apart.
  const size_t n_classes = index.classes.size();
  std::vector<std::vector<SpeechClip>> by_label(n_classes);
  std::vector<std::set<std::string>> on_disk(n_classes);
  for (size_t label = 0; label < n_classes; ++label) {
    const std::string& cls = index.classes[label];
    const std::filesystem::path folder = root / cls;
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec))
      throw std::runtime_error(
          fmt::format("{}: class folder missing (expected <root>/{}/*.wav)", folder.string(), cls));
    std::vector<std::string> names = sorted_wav_names(folder);
    on_disk[label].insert(names.begin(), names.end());
    if (options.limit_per_class >= 0 && static_cast<int64_t>(names.size()) > options.limit_per_class)
      names.resize(static_cast<size_t>(options.limit_per_class));
    for (const auto& name : names) {
      const std::string rel = cls + "/" + name;
      int64_t frames = 0;
      try {
        const WavInfo info = read_wav_info(folder / name);
        frames = info.frames;
        // An empty clip is never a training example; a clip far shorter than the task expects is
        // a broken recording, not a short word.
        if (frames == 0)
          throw std::runtime_error(fmt::format("{}: empty clip (a valid header but no samples)", (folder / name).string()));
        const double seconds = static_cast<double>(frames) / static_cast<double>(info.sample_rate);
        if (seconds < options.min_seconds)
          throw std::runtime_error(fmt::format("{}: {} samples ({:.1f} ms at {} Hz), shorter than the {:.1f} ms expected "
                                               "of a clip (task.min_clip_ms)",
                                               (folder / name).string(), frames, seconds * 1e3, info.sample_rate,
                                               options.min_seconds * 1e3));
      } catch (const std::runtime_error& e) {
        if (options.bad_files == BadFilePolicy::error) throw;
        index.skipped_bad.push_back({rel, e.what()});
        continue;
      }
      if (stratified && frames != options.clip_length) {
        ++index.skipped_length;
        continue;
      }
      by_label[label].push_back({rel, static_cast<int64_t>(label), frames});
    }
  }

  if (stratified) {
    std::vector<int64_t> counts(n_classes);
    int64_t n = 0;
    for (size_t c = 0; c < n_classes; ++c) n += counts[c] = static_cast<int64_t>(by_label[c].size());
    const SpeechSplitSizes sizes = speech_split_sizes(n, options.train_fraction);
    const std::vector<int64_t> train = largest_remainder(counts, n, sizes.train);
    std::vector<int64_t> rest(n_classes);
    for (size_t c = 0; c < n_classes; ++c) rest[c] = counts[c] - train[c];
    const std::vector<int64_t> val = largest_remainder(rest, n - sizes.train, sizes.val);
    for (size_t c = 0; c < n_classes; ++c) {
      if (counts[c] == 0) continue;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(options.split_seed + static_cast<uint64_t>(c));
      const torch::Tensor perm = torch::randperm(counts[c], gen, torch::kInt64);
      const int64_t* p = perm.data_ptr<int64_t>();
      for (int64_t k = 0; k < counts[c]; ++k) {
        const SpeechClip& clip = by_label[c][static_cast<size_t>(p[k])];
        if (k < train[c])
          index.train.push_back(clip);
        else if (k < train[c] + val[c])
          index.val.push_back(clip);
        else
          index.test.push_back(clip);
      }
    }
  } else {
    std::map<std::string, size_t> label_of;
    for (size_t c = 0; c < n_classes; ++c) label_of[index.classes[c]] = c;
    // path -> 1 (validation) or 2 (testing), with where it was listed.
    std::map<std::string, std::pair<int, ListEntry>> listed;
    const char* list_names[2] = {"validation_list.txt", "testing_list.txt"};
    for (int which = 0; which < 2; ++which) {
      const std::filesystem::path list = root / list_names[which];
      std::ifstream in(list, std::ios::binary);
      if (!in)
        throw std::runtime_error(fmt::format(
            "{}: missing (the official-lists split needs validation_list.txt and testing_list.txt)",
            list.string()));
      std::string line;
      int64_t line_no = 0;
      while (std::getline(in, line)) {
        ++line_no;
        const std::string rel = trim(line);
        if (rel.empty()) continue;
        const size_t slash = rel.find('/');
        const std::string cls = slash == std::string::npos ? std::string() : rel.substr(0, slash);
        auto lab = label_of.find(cls);
        if (lab == label_of.end()) continue;  // a class not chosen
        if (!on_disk[lab->second].count(rel.substr(slash + 1)))
          throw std::runtime_error(fmt::format("{}:{}: {} is listed but {} does not exist", list.string(),
                                               line_no, rel, (root / rel).string()));
        auto [it, inserted] = listed.emplace(rel, std::make_pair(which + 1, ListEntry{list, line_no}));
        if (!inserted && it->second.first != which + 1)
          throw std::runtime_error(fmt::format("{}:{}: {} is also listed in {} line {}", list.string(),
                                               line_no, rel, it->second.second.list.string(),
                                               it->second.second.line));
      }
      if (in.bad()) throw std::runtime_error(fmt::format("{}: read error", list.string()));
    }
    for (const auto& clips : by_label)
      for (const auto& clip : clips) {
        auto it = listed.find(clip.path);
        const int which = it == listed.end() ? 0 : it->second.first;
        (which == 1 ? index.val : which == 2 ? index.test : index.train).push_back(clip);
      }
  }
  sort_split(index.train);
  sort_split(index.val);
  sort_split(index.test);
  return index;
}

std::vector<NoiseClip> read_background_noise(const std::filesystem::path& root,
                                             const WavReadOptions& options) {
  const std::filesystem::path folder = root / "_background_noise_";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    throw std::runtime_error(fmt::format("{}: background-noise folder missing", folder.string()));
  const std::vector<std::string> names = sorted_wav_names(folder);
  if (names.empty()) throw std::runtime_error(fmt::format("{}: holds no .wav file", folder.string()));
  std::vector<NoiseClip> clips;
  clips.reserve(names.size());
  for (const auto& name : names)
    clips.push_back({std::filesystem::path(name).stem().string(), read_wav(folder / name, options)});
  return clips;
}

std::vector<float> fit_length(std::vector<float> samples, int64_t length) {
  if (length < 0) throw std::runtime_error(fmt::format("fit_length: length {} must be >= 0", length));
  samples.resize(static_cast<size_t>(length), 0.0f);
  return samples;
}

}  // namespace mgl::datasets
