// Speech Commands v0.02: WAV decoding (libsndfile), the folder index and both split rules. The
// rules are stated in speech_commands.h; the writer and resampler are in wav_write.cpp.
#include "datasets/audio/speech_commands.h"

#include <fmt/format.h>
#include <sndfile.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>

namespace mgl::datasets {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw std::runtime_error(file.string() + ": " + what);
}

uint32_t le32(const unsigned char* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }

// libsndfile accepts a RIFF/WAVE file whose data chunk declares more bytes than the file holds
// (it shortens the frame count). Walk the chunks up to `data` and refuse such a file.
void check_riff_complete(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char head[12];
  if (!in.read(reinterpret_cast<char*>(head), 12)) return;  // too short for RIFF: libsndfile decides
  if (std::string(reinterpret_cast<char*>(head), 4) != "RIFF" || std::string(reinterpret_cast<char*>(head) + 8, 4) != "WAVE")
    return;
  const uint64_t size = fs::file_size(file);
  uint64_t pos = 12;
  while (pos + 8 <= size) {
    unsigned char ch[8];
    in.seekg(static_cast<std::streamoff>(pos));
    if (!in.read(reinterpret_cast<char*>(ch), 8)) return;
    const std::string id(reinterpret_cast<char*>(ch), 4);
    const uint64_t len = le32(ch + 4);
    if (id == "data") {
      if (pos + 8 + len > size)
        fail(file, fmt::format("truncated: the data chunk declares {} bytes, the file holds {}", len, size - pos - 8));
      return;
    }
    pos += 8 + len + (len & 1);
  }
  fail(file, "truncated: no data chunk in the RIFF/WAVE file");
}

struct SndFile {
  SNDFILE* sf = nullptr;
  SF_INFO info{};
  explicit SndFile(const fs::path& file) {
    if (!fs::exists(file)) fail(file, "no such file");
    if (fs::is_directory(file)) fail(file, "is a directory, not a sound file");
    if (fs::file_size(file) == 0) fail(file, "empty file (0 bytes), not a sound file");
    check_riff_complete(file);
    sf = sf_open(file.c_str(), SFM_READ, &info);
    if (!sf) fail(file, std::string("not a sound file libsndfile can read: ") + sf_strerror(nullptr));
    if (info.channels < 1 || info.samplerate < 1) fail(file, "header declares no channels or no sample rate");
  }
  ~SndFile() {
    if (sf) sf_close(sf);
  }
  SndFile(const SndFile&) = delete;
  SndFile& operator=(const SndFile&) = delete;
};

std::string format_name(int format) {
  SF_FORMAT_INFO major{}, sub{};
  major.format = format & SF_FORMAT_TYPEMASK;
  sub.format = format & SF_FORMAT_SUBMASK;
  std::string a = sf_command(nullptr, SFC_GET_FORMAT_INFO, &major, sizeof(major)) == 0 && major.name ? major.name : "?";
  std::string b = sf_command(nullptr, SFC_GET_FORMAT_INFO, &sub, sizeof(sub)) == 0 && sub.name ? sub.name : "?";
  return a + " " + b;
}

std::vector<std::string> sorted_wavs(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".wav") names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

WavInfo read_wav_info(const fs::path& file) {
  SndFile f(file);
  WavInfo w;
  w.frames = f.info.frames;
  w.sample_rate = f.info.samplerate;
  w.channels = f.info.channels;
  w.format = format_name(f.info.format);
  return w;
}

std::vector<float> read_wav(const fs::path& file, const WavReadOptions& options) {
  SndFile f(file);
  const int64_t frames = f.info.frames, ch = f.info.channels;
  if (ch > 1 && options.channels == ChannelPolicy::reject)
    fail(file, fmt::format("{} channels, expected mono (task.channels = \"mix\" averages them)", ch));
  if (f.info.samplerate != options.sample_rate && options.rate == RatePolicy::reject)
    fail(file, fmt::format("sample rate {} Hz, expected {} Hz (task.other_rates = \"resample\" converts it)",
                           f.info.samplerate, options.sample_rate));
  std::vector<float> inter(static_cast<size_t>(frames * ch));
  sf_count_t got = 0;
  if ((f.info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16) {
    std::vector<int16_t> pcm(inter.size());
    got = sf_readf_short(f.sf, pcm.data(), frames);
    for (size_t i = 0; i < pcm.size(); ++i) inter[i] = static_cast<float>(pcm[i]) / 32768.0f;
  } else {
    got = sf_readf_float(f.sf, inter.data(), frames);
  }
  if (got != frames) fail(file, fmt::format("read {} of the {} frames the header declares", got, frames));
  std::vector<float> mono(static_cast<size_t>(frames));
  if (ch == 1) mono = std::move(inter);
  else
    for (int64_t i = 0; i < frames; ++i) {
      double s = 0;
      for (int64_t c = 0; c < ch; ++c) s += inter[i * ch + c];
      mono[i] = static_cast<float>(s / ch);
    }
  if (f.info.samplerate != options.sample_rate)
    return resample_audio(mono, f.info.samplerate, static_cast<double>(options.sample_rate));
  return mono;
}

const std::vector<std::string>& speech_commands_words() {
  static const std::vector<std::string> w{"bed",   "bird",    "cat",   "dog",   "down",  "eight",  "five",
                                          "follow", "forward", "four",  "go",    "happy", "house",  "learn",
                                          "left",  "marvin",  "nine",  "no",    "off",   "on",     "one",
                                          "right", "seven",   "sheila", "six",  "stop",  "three",  "tree",
                                          "two",   "up",      "visual", "wow",  "yes",   "zero",   "backward"};
  return w;
}

const std::vector<std::string>& sc10_classes() {
  static const std::vector<std::string> c{"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"};
  return c;
}

std::array<int64_t, 3> speech_split_sizes(int64_t n, double train_fraction) {
  const int64_t train = static_cast<int64_t>(std::floor(train_fraction * static_cast<double>(n)));
  const int64_t rest = n - train;
  const int64_t test = (rest + 1) / 2;  // ceil(rest / 2)
  return {train, rest - test, test};
}

SpeechCommandsIndex index_speech_commands(const fs::path& root, const SpeechIndexOptions& options) {
  SpeechCommandsIndex idx;
  idx.root = root;
  idx.classes = options.classes.empty() ? speech_commands_words() : options.classes;
  if (!fs::is_directory(root)) fail(root, "not a directory (expected the Speech Commands release folder)");
  {
    std::set<std::string> seen;
    for (const auto& c : idx.classes)
      if (!seen.insert(c).second) fail(root, "class '" + c + "' is listed twice");
  }

  // Every class folder, sorted file names, headers opened.
  std::vector<SpeechClip> all;
  for (size_t label = 0; label < idx.classes.size(); ++label) {
    const fs::path dir = root / idx.classes[label];
    if (!fs::is_directory(dir)) fail(dir, "missing class folder (class " + std::to_string(label) + ")");
    auto names = sorted_wavs(dir);
    if (options.limit_per_class >= 0 && static_cast<int64_t>(names.size()) > options.limit_per_class)
      names.resize(options.limit_per_class);
    for (const auto& n : names) {
      const std::string rel = idx.classes[label] + "/" + n;
      try {
        const WavInfo w = read_wav_info(root / rel);
        all.push_back({rel, static_cast<int64_t>(label), w.frames});
      } catch (const std::exception& e) {
        if (options.bad_files == BadFilePolicy::error) throw;
        idx.skipped_bad.push_back({rel, e.what()});
      }
    }
  }

  if (options.split == SpeechSplitRule::stratified) {
    std::vector<std::vector<SpeechClip>> per(idx.classes.size());
    int64_t n = 0;
    for (auto& c : all) {
      if (c.frames != options.clip_length) {
        ++idx.skipped_length;
        continue;
      }
      per[c.label].push_back(c);
      ++n;
    }
    const auto sizes = speech_split_sizes(n, options.train_fraction);
    // Largest-remainder allocation of `total` over the classes by their counts.
    auto allocate = [&](const std::vector<int64_t>& counts, int64_t total) {
      const int64_t sum = std::accumulate(counts.begin(), counts.end(), int64_t{0});
      std::vector<int64_t> out(counts.size(), 0);
      if (sum == 0) return out;
      std::vector<std::pair<double, size_t>> rem;
      int64_t given = 0;
      for (size_t c = 0; c < counts.size(); ++c) {
        const double exact = static_cast<double>(counts[c]) * total / sum;
        out[c] = static_cast<int64_t>(std::floor(exact));
        given += out[c];
        rem.push_back({exact - out[c], c});
      }
      std::stable_sort(rem.begin(), rem.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      for (size_t k = 0; given < total && k < rem.size(); ++k)
        if (out[rem[k].second] < counts[rem[k].second]) {
          ++out[rem[k].second];
          ++given;
        }
      return out;
    };
    std::vector<int64_t> counts;
    for (const auto& p : per) counts.push_back(static_cast<int64_t>(p.size()));
    const auto train_n = allocate(counts, sizes[0]);
    std::vector<int64_t> left(counts.size());
    for (size_t c = 0; c < counts.size(); ++c) left[c] = counts[c] - train_n[c];
    const auto val_n = allocate(left, sizes[1]);
    for (size_t c = 0; c < per.size(); ++c) {
      const int64_t m = counts[c];
      if (m == 0) continue;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(options.split_seed + c);
      const torch::Tensor perm = torch::randperm(m, gen, torch::kInt64);
      const int64_t* p = perm.data_ptr<int64_t>();
      std::vector<SpeechClip> tr, va, te;
      for (int64_t k = 0; k < m; ++k) {
        const SpeechClip& clip = per[c][p[k]];
        (k < train_n[c] ? tr : k < train_n[c] + val_n[c] ? va : te).push_back(clip);
      }
      auto by_name = [](const SpeechClip& a, const SpeechClip& b) { return a.path < b.path; };
      std::sort(tr.begin(), tr.end(), by_name);
      std::sort(va.begin(), va.end(), by_name);
      std::sort(te.begin(), te.end(), by_name);
      idx.train.insert(idx.train.end(), tr.begin(), tr.end());
      idx.val.insert(idx.val.end(), va.begin(), va.end());
      idx.test.insert(idx.test.end(), te.begin(), te.end());
    }
    return idx;
  }

  // Official lists.
  std::map<std::string, size_t> where;  // relative path → position in `all`
  for (size_t i = 0; i < all.size(); ++i) where[all[i].path] = i;
  std::set<std::string> chosen(idx.classes.begin(), idx.classes.end());
  std::set<std::string> bad;
  for (const auto& b : idx.skipped_bad) bad.insert(b.path);
  std::vector<int> role(all.size(), 0);  // 0 train, 1 val, 2 test
  for (int r = 1; r <= 2; ++r) {
    const fs::path list = root / (r == 1 ? "validation_list.txt" : "testing_list.txt");
    std::ifstream in(list);
    if (!in) fail(list, "missing (the official split needs validation_list.txt and testing_list.txt)");
    std::string line;
    int64_t no = 0;
    while (std::getline(in, line)) {
      ++no;
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
      if (line.empty()) continue;
      const auto slash = line.find('/');
      if (slash == std::string::npos)
        throw std::runtime_error(fmt::format("{}:{}: expected <word>/<file>.wav, got '{}'", list.string(), no, line));
      if (!chosen.count(line.substr(0, slash)) || bad.count(line)) continue;
      auto it = where.find(line);
      if (it == where.end()) {
        if (options.limit_per_class >= 0) continue;  // beyond the limit
        throw std::runtime_error(fmt::format("{}:{}: '{}' is listed but does not exist", list.string(), no, line));
      }
      role[it->second] = r;
    }
  }
  for (size_t i = 0; i < all.size(); ++i) (role[i] == 0 ? idx.train : role[i] == 1 ? idx.val : idx.test).push_back(all[i]);
  return idx;
}

std::vector<NoiseClip> read_background_noise(const fs::path& root, const WavReadOptions& options) {
  const fs::path dir = root / "_background_noise_";
  if (!fs::is_directory(dir)) fail(dir, "missing (background-noise mixing needs the release's _background_noise_ folder)");
  std::vector<NoiseClip> out;
  for (const auto& n : sorted_wavs(dir)) out.push_back({n, read_wav(dir / n, options)});
  if (out.empty()) fail(dir, "holds no .wav file");
  return out;
}

std::vector<float> fit_length(std::vector<float> samples, int64_t length) {
  samples.resize(static_cast<size_t>(std::max<int64_t>(length, 0)), 0.0f);
  return samples;
}

}  // namespace mgl::datasets
