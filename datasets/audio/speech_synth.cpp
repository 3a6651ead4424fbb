// The synthetic Speech Commands generator (see speech_synth.h): speaker pool, engine subprocesses,
// clip shaping (resample, trim, place in one second), the release's split rule, noise files.
#include "datasets/audio/speech_synth.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sndfile.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "datasets/audio/speech_commands.h"

extern char** environ;

namespace mgl::datasets {
namespace fs = std::filesystem;

// ---- SHA-1 (FIPS 180-4) ------------------------------------------------------------------------

namespace {

uint32_t rotl32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

std::array<uint8_t, 20> sha1(const std::string& bytes) {
  uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
  // Message + 0x80 + zeros + 64-bit big-endian bit length, a multiple of 64 bytes.
  std::string m = bytes;
  const uint64_t bit_length = static_cast<uint64_t>(bytes.size()) * 8u;
  m.push_back(static_cast<char>(0x80));
  while (m.size() % 64 != 56) m.push_back('\0');
  for (int i = 7; i >= 0; --i) m.push_back(static_cast<char>((bit_length >> (8 * i)) & 0xFFu));
  uint32_t w[80];
  for (size_t block = 0; block < m.size(); block += 64) {
    for (int t = 0; t < 16; ++t) {
      const auto* p = reinterpret_cast<const unsigned char*>(m.data() + block + 4 * t);
      w[t] = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    }
    for (int t = 16; t < 80; ++t) w[t] = rotl32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; ++t) {
      uint32_t f, k;
      if (t < 20) {
        f = (b & c) | (~b & d);
        k = 0x5A827999u;
      } else if (t < 40) {
        f = b ^ c ^ d;
        k = 0x6ED9EBA1u;
      } else if (t < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8F1BBCDCu;
      } else {
        f = b ^ c ^ d;
        k = 0xCA62C1D6u;
      }
      const uint32_t tmp = rotl32(a, 5) + f + e + k + w[t];
      e = d;
      d = c;
      c = rotl32(b, 30);
      b = a;
      a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
  }
  std::array<uint8_t, 20> out{};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j) out[size_t(4 * i + j)] = static_cast<uint8_t>(h[i] >> (24 - 8 * j));
  return out;
}

}  // namespace

std::string sha1_hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : sha1(bytes)) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

// ---- the split rule ----------------------------------------------------------------------------

const char* speech_set_name(SpeechSet set) {
  switch (set) {
    case SpeechSet::validation:
      return "validation";
    case SpeechSet::testing:
      return "testing";
    default:
      return "training";
  }
}

double speech_split_percentage(const std::string& filename) {
  std::string base =
      filename.substr(filename.find_last_of('/') == std::string::npos ? 0 : filename.find_last_of('/') + 1);
  const auto cut = base.find("_nohash_");
  if (cut != std::string::npos) base.resize(cut);
  const auto d = sha1(base);
  // The digest as a 160-bit big-endian integer modulo 2^27 is its last 27 bits.
  const uint32_t tail =
      (uint32_t(d[16]) << 24) | (uint32_t(d[17]) << 16) | (uint32_t(d[18]) << 8) | uint32_t(d[19]);
  const uint32_t mod = tail & ((1u << 27) - 1u);
  constexpr double kMaxWavsPerClass = 134217727.0;  // 2^27 - 1
  return static_cast<double>(mod) * (100.0 / kMaxWavsPerClass);
}

SpeechSet speech_which_set(const std::string& filename, double validation_percentage,
                           double testing_percentage) {
  const double p = speech_split_percentage(filename);
  if (p < validation_percentage) return SpeechSet::validation;
  if (p < testing_percentage + validation_percentage) return SpeechSet::testing;
  return SpeechSet::training;
}

// ---- words -------------------------------------------------------------------------------------

namespace {

// ---- seeded randomness (portable: no std:: distributions) --------------------------------------

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
uint64_t mix(uint64_t a, uint64_t b) { return splitmix64(splitmix64(a) ^ (b + 0x632BE59BD9B4E019ull)); }
uint64_t hash_text(const std::string& s) {  // FNV-1a, 64 bit
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  double uniform() { return static_cast<double>(gen_() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t below(int64_t n) { return static_cast<int64_t>(gen_() % static_cast<uint64_t>(n)); }
  int64_t between(int64_t lo, int64_t hi) { return lo + below(hi - lo + 1); }  // inclusive
  double normal() {                                                            // Box-Muller
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  std::mt19937_64 gen_;
};

// ---- speakers ----------------------------------------------------------------------------------

// espeak-ng's English accents (formant synthesis, gmw/ voices; the mbrola ones need extra
// packages) and its ordinary voice variants; whisper, croak, klatt*, robot-like and novelty
// variants are left out (poorly intelligible).
const std::vector<std::string> kEspeakAccents = {"en-us",      "en-gb",          "en-gb-scotland",
                                                 "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                                                 "en-029",     "en-us-nyc"};
const std::vector<std::string> kEspeakVariants = {"",   "m1", "m2", "m3", "m4", "m5", "m6",
                                                  "m7", "m8", "f1", "f2", "f3", "f4", "f5"};
// flite's voices (awb_time is a talking clock and left out), with the range drawn for
// int_f0_target_mean in Hz; rms ignores that setting, so it gets none (0).
struct FliteVoice {
  const char* name;
  int f0_lo, f0_hi;
};
const std::vector<FliteVoice> kFliteVoices = {
    {"kal", 85, 135}, {"kal16", 85, 135}, {"awb", 85, 140}, {"rms", 0, 0}, {"slt", 150, 230}};

struct Speaker {
  bool flite = false;
  std::string voice, variant;   // espeak: accent and variant ("" = default); flite: voice
  int pitch = 50, speed = 175;  // espeak -p (0..99) and -s (words per minute)
  int stretch_pc = 100;         // flite duration_stretch × 100
  int f0 = 0;                   // flite int_f0_target_mean in Hz (0: the voice's own)
  int rate_pc = 100;            // resampling perturbation × 100: duration ÷ r, pitch and formants × r
  std::string description, id;
};

void describe(Speaker& s) {
  const std::string perturb = fmt::format("perturb={}.{:02d}", s.rate_pc / 100, s.rate_pc % 100);
  if (s.flite) {
    s.description = fmt::format("flite voice={} stretch={}.{:02d}{} {}", s.voice, s.stretch_pc / 100,
                                s.stretch_pc % 100, s.f0 ? fmt::format(" f0={}", s.f0) : "", perturb);
  } else {
    s.description = fmt::format("espeak-ng voice={}{} pitch={} speed={} {}", s.voice,
                                s.variant.empty() ? "" : "+" + s.variant, s.pitch, s.speed, perturb);
  }
  s.id = sha1_hex(s.description).substr(0, 8);
}

struct Inventory {
  std::string espeak, flite;  // resolved program paths ("" = engine not used)
  std::vector<std::string> accents, variants;
  std::vector<FliteVoice> flite_voices;
  std::string espeak_version, flite_version;
};

Speaker draw_speaker(Rng& r, const Inventory& inv, bool flite) {
  Speaker s;
  s.flite = flite;
  if (s.flite) {
    const auto& v = inv.flite_voices[size_t(r.below(int64_t(inv.flite_voices.size())))];
    s.voice = v.name;
    s.stretch_pc = int(r.between(90, 135));
    s.f0 = v.f0_hi > 0 ? int(r.between(v.f0_lo, v.f0_hi)) : 0;
  } else {
    s.voice = inv.accents[size_t(r.below(int64_t(inv.accents.size())))];
    s.variant = inv.variants[size_t(r.below(int64_t(inv.variants.size())))];
    s.pitch = int(r.between(25, 75));
    s.speed = int(r.between(120, 185));
  }
  s.rate_pc = int(r.between(92, 108));
  describe(s);
  return s;
}

// ---- subprocesses ------------------------------------------------------------------------------

std::string find_program(const std::string& program, const char* engine, const char* package) {
  auto executable = [](const fs::path& p) { return ::access(p.c_str(), X_OK) == 0 && !fs::is_directory(p); };
  if (program.find('/') != std::string::npos) {
    if (executable(program)) return program;
    throw std::runtime_error(
        fmt::format("{}: speech engine not found: '{}' is not an executable file", engine, program));
  }
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const fs::path candidate = fs::path(dir.empty() ? "." : dir) / program;
    if (executable(candidate)) return candidate.string();
  }
  throw std::runtime_error(
      fmt::format("{}: speech engine not found: '{}' is not in PATH (install the Debian package {}, as "
                  "scripts/bootstrap.sh "
                  "does, or generate with the other engine only)",
                  engine, program, package));
}

struct RunResult {
  bool ok = false;
  std::string problem;  // why not ok
};

// Runs argv[0] (a path) with stdin from /dev/null and stdout / stderr into files.
RunResult run_process(const std::vector<std::string>& argv, const std::string& out_file,
                      const std::string& err_file, double timeout_s) {
  RunResult r;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    r.problem = fmt::format("cannot start: {}", std::strerror(rc));
    return r;
  }
  const auto start = std::chrono::steady_clock::now();
  int status = 0, sleep_us = 100;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      r.problem = fmt::format("waitpid: {}", std::strerror(errno));
      return r;
    }
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      r.problem = fmt::format("killed after {:.0f} s", timeout_s);
      return r;
    }
    ::usleep(static_cast<useconds_t>(sleep_us));
    sleep_us = std::min(sleep_us * 2, 5000);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    r.ok = true;
  } else if (WIFEXITED(status)) {
    r.problem = fmt::format("exit status {}", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    r.problem = fmt::format("killed by signal {}", WTERMSIG(status));
  } else {
    r.problem = "ended abnormally";
  }
  return r;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  return line;
}

// A scratch folder for engine outputs, removed with its contents on destruction.
class Scratch {
 public:
  Scratch() {
    std::string name = (fs::temp_directory_path() / "megalodon-tts-XXXXXX").string();
    if (!::mkdtemp(name.data()))
      throw std::runtime_error(
          fmt::format("cannot create a scratch folder {}: {}", name, std::strerror(errno)));
    path_ = name;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs `argv` and returns its stdout; throws naming the engine when it fails (or, with `lenient`,
// only when it cannot be run at all: `flite --version` exits with status 1).
std::string capture(const std::vector<std::string>& argv, const Scratch& scratch, const char* engine,
                    bool lenient = false) {
  static std::atomic<int> counter{0};
  const int n = counter++;
  const std::string out = (scratch.path() / fmt::format("probe-{}.out", n)).string();
  const std::string err = (scratch.path() / fmt::format("probe-{}.err", n)).string();
  const RunResult r = run_process(argv, out, err, 30.0);
  std::string text = read_text(out);
  if (!r.ok && !(lenient && r.problem.rfind("exit status", 0) == 0))
    throw std::runtime_error(fmt::format("{}: '{} {}' failed ({}): {}", engine, argv[0],
                                         argv.size() > 1 ? argv[1] : "", r.problem,
                                         first_line(read_text(err))));
  return text;
}

std::vector<std::string> split_ws(const std::string& line) {
  std::istringstream s(line);
  std::vector<std::string> out;
  std::string t;
  while (s >> t) out.push_back(t);
  return out;
}

Inventory probe_engines(const SpeechSynthOptions& o, const Scratch& scratch) {
  Inventory inv;
  if (o.engines != SpeechEngines::flite) {
    inv.espeak = find_program(o.espeak_program, "espeak-ng", "espeak-ng");
    // "Pty Language Age/Gender VoiceName File Other" lines; English formant voices live in gmw/.
    std::set<std::string> accents, variants;
    std::istringstream voices(capture({inv.espeak, "--voices=en"}, scratch, "espeak-ng"));
    for (std::string line; std::getline(voices, line);) {
      const auto t = split_ws(line);
      for (const auto& tok : t)
        if (t.size() > 1 && tok.rfind("gmw/", 0) == 0) accents.insert(t[1]);
    }
    std::istringstream vars(capture({inv.espeak, "--voices=variant"}, scratch, "espeak-ng"));
    for (std::string line; std::getline(vars, line);)
      for (const auto& tok : split_ws(line))
        if (tok.rfind("!v/", 0) == 0) variants.insert(tok.substr(3));
    for (const auto& a : kEspeakAccents)
      if (accents.count(a)) inv.accents.push_back(a);
    for (const auto& v : kEspeakVariants)
      if (v.empty() || variants.count(v)) inv.variants.push_back(v);
    if (inv.accents.empty())
      throw std::runtime_error(fmt::format("espeak-ng: '{} --voices=en' lists none of the English voices {}",
                                           inv.espeak, fmt::join(kEspeakAccents, ", ")));
    inv.espeak_version = first_line(capture({inv.espeak, "--version"}, scratch, "espeak-ng"));
    const auto data = inv.espeak_version.find("Data at");
    if (data != std::string::npos) inv.espeak_version = inv.espeak_version.substr(0, data);
    while (!inv.espeak_version.empty() && inv.espeak_version.back() == ' ') inv.espeak_version.pop_back();
  }
  if (o.engines != SpeechEngines::espeak) {
    inv.flite = find_program(o.flite_program, "flite", "flite");
    // "Voices available: kal awb_time kal16 awb rms slt". An unknown -voice silently falls back to
    // kal, so only listed voices are used.
    const std::string list = capture({inv.flite, "-lv"}, scratch, "flite");
    const auto colon = list.find(':');
    const auto names = split_ws(colon == std::string::npos ? list : list.substr(colon + 1));
    for (const auto& v : kFliteVoices)
      if (std::find(names.begin(), names.end(), v.name) != names.end()) inv.flite_voices.push_back(v);
    if (inv.flite_voices.empty())
      throw std::runtime_error(
          fmt::format("flite: '{} -lv' lists none of the voices kal, kal16, awb, rms, slt", inv.flite));
    std::istringstream version(capture({inv.flite, "--version"}, scratch, "flite", true));
    for (std::string line; std::getline(version, line);)
      if (line.find("version") != std::string::npos) {
        const auto v = line.find("flite-");
        inv.flite_version = first_line(v == std::string::npos ? line : line.substr(v));
        inv.flite_version = inv.flite_version.substr(0, inv.flite_version.find(" ("));
      }
  }
  return inv;
}

// ---- audio -------------------------------------------------------------------------------------

constexpr int64_t kRate = 16000, kClip = 16000;

// Reads an engine's WAV as float (int16 / 32768), averaging channels. Empty on failure.
std::vector<float> read_engine_wav(const std::string& file, int64_t& rate, std::string& problem) {
  SF_INFO info{};
  SNDFILE* sf = sf_open(file.c_str(), SFM_READ, &info);
  if (!sf) {
    problem = fmt::format("no readable WAV ({})", sf_strerror(nullptr));
    return {};
  }
  std::vector<float> frames(static_cast<size_t>(std::max<sf_count_t>(info.frames, 0) * info.channels));
  const sf_count_t got = frames.empty() ? 0 : sf_readf_float(sf, frames.data(), info.frames);
  sf_close(sf);
  if (got <= 0 || info.samplerate <= 0 || info.channels <= 0) {
    problem = "empty WAV";
    return {};
  }
  rate = info.samplerate;
  std::vector<float> mono(static_cast<size_t>(got));
  for (sf_count_t i = 0; i < got; ++i) {
    float s = 0;
    for (int c = 0; c < info.channels; ++c) s += frames[size_t(i * info.channels + c)];
    mono[size_t(i)] = s / static_cast<float>(info.channels);
  }
  return mono;
}

struct ClipResult {
  int64_t speaker = -1;
  std::vector<int16_t> pcm;
  int64_t failed_runs = 0;
  std::vector<std::string> failures;
  double word_s = 0, speedup = 1.0;
};

// Engine output -> 16,000 samples: perturb + resample to 16 kHz, trim, speed up if longer than one
// second, fade the edges, place at a random offset, scale the peak. Empty on silent input.
std::vector<int16_t> shape_clip(const std::vector<float>& raw, int64_t rate, const Speaker& spk,
                                double offset_u, double peak_dbfs, double& word_s, double& speedup) {
  const double from = static_cast<double>(rate) * spk.rate_pc / 100.0;
  std::vector<float> x = resample_audio(raw, from, static_cast<double>(kRate));
  const auto [b, e] = speech_active_range(x, kRate);
  if (e <= b) return {};
  std::vector<float> w(x.begin() + b, x.begin() + e);
  word_s = static_cast<double>(w.size()) / kRate;
  speedup = 1.0;
  if (int64_t(w.size()) > kClip) {  // speed up (tempo and pitch together) by resampling
    speedup = static_cast<double>(w.size()) / kClip;
    w = resample_audio(w, static_cast<double>(w.size()), static_cast<double>(kClip));
    w.resize(size_t(kClip), 0.0f);
  }
  const int64_t len = int64_t(w.size());
  const int64_t fade = std::min<int64_t>(80, len / 4);  // 5 ms raised-cosine edges
  for (int64_t i = 0; i < fade; ++i) {
    const float g = static_cast<float>(0.5 - 0.5 * std::cos(3.141592653589793 * (i + 0.5) / fade));
    w[size_t(i)] *= g;
    w[size_t(len - 1 - i)] *= g;
  }
  float peak = 0;
  for (float v : w) peak = std::max(peak, std::fabs(v));
  if (!(peak > 0)) return {};
  const double gain = std::pow(10.0, peak_dbfs / 20.0) / peak;
  const int64_t offset =
      std::min<int64_t>(kClip - len, static_cast<int64_t>(offset_u * double(kClip - len + 1)));
  std::vector<int16_t> pcm(size_t(kClip), 0);
  for (int64_t i = 0; i < len; ++i) {
    const double v = std::nearbyint(double(w[size_t(i)]) * gain * 32768.0);
    pcm[size_t(offset + i)] = static_cast<int16_t>(std::clamp(v, -32768.0, 32767.0));
  }
  return pcm;
}

// ---- background noise --------------------------------------------------------------------------

std::vector<float> make_noise(const std::string& kind, int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<double> x(size_t(n), 0.0);
  if (kind == "white") {
    for (auto& v : x) v = r.normal();
  } else if (kind == "pink") {
    // Voss-McCartney: 16 random rows, row k refreshed every 2^k samples, plus a white term;
    // about -3 dB per octave over the audible band.
    std::array<double, 16> rows{};
    double sum = 0;
    for (auto& row : rows) sum += (row = r.normal());
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t c = static_cast<uint64_t>(i) + 1;
      int k = 0;
      while (k < 15 && ((c >> k) & 1u) == 0) ++k;
      sum -= rows[size_t(k)];
      sum += (rows[size_t(k)] = r.normal());
      x[size_t(i)] = sum + r.normal();
    }
  } else if (kind == "brown") {
    // Leaky integration of white noise (-6 dB per octave), then a DC-blocking high-pass at ~20 Hz.
    double y = 0, prev = 0, hp = 0;
    for (auto& v : x) {
      y = 0.999 * y + r.normal();
      hp = 0.992 * (hp + y - prev);
      prev = y;
      v = hp;
    }
  } else {  // "tap": band-passed noise (~0.6-4 kHz) with a slowly wandering level, like running water
    double lp1 = 0, lp2 = 0, env = 0, target = 1.0;
    for (int64_t i = 0; i < n; ++i) {
      const double w = r.normal();
      lp1 += 0.78 * (w - lp1);    // low-pass near 4 kHz
      lp2 += 0.21 * (lp1 - lp2);  // low-pass near 600 Hz
      if (i % 800 == 0) target = 0.6 + 0.4 * r.uniform();
      env += 0.002 * (target - env);
      x[size_t(i)] = (lp1 - lp2) * env;
    }
  }
  double ss = 0, peak = 0;
  for (double v : x) {
    ss += v * v;
    peak = std::max(peak, std::fabs(v));
  }
  const double rms = std::sqrt(ss / std::max<int64_t>(n, 1));
  double gain = rms > 0 ? 0.1 / rms : 0.0;  // -20 dBFS RMS
  if (peak * gain > 0.95) gain = 0.95 / peak;
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[size_t(i)] = static_cast<float>(x[size_t(i)] * gain);
  return out;
}

// ---- files -------------------------------------------------------------------------------------

void write_text_atomic(const fs::path& file, const std::string& text) {
  const fs::path tmp = file.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(fmt::format("{}: cannot write", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw std::runtime_error(fmt::format("{}: cannot rename the temporary file", file.string()));
  }
}

bool is_clip_name(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".wav") == 0 &&
         name.find("_nohash_") != std::string::npos;
}

// What marks a release in `out`: the list files, clips in any folder, noise WAVs.
std::vector<std::string> release_markers(const fs::path& out) {
  std::vector<std::string> found;
  if (!fs::is_directory(out)) return found;
  for (const char* f : {"validation_list.txt", "testing_list.txt"})
    if (fs::exists(out / f)) found.push_back(f);
  for (const auto& d : fs::directory_iterator(out)) {
    if (!d.is_directory()) continue;
    const std::string name = d.path().filename().string();
    for (const auto& f : fs::directory_iterator(d.path())) {
      const std::string fname = f.path().filename().string();
      if (name == "_background_noise_" ? f.path().extension() == ".wav" : is_clip_name(fname)) {
        found.push_back(name + "/");
        break;
      }
    }
  }
  return found;
}

void remove_release(const fs::path& out) {
  for (const char* f : {"validation_list.txt", "testing_list.txt", "speakers.tsv"}) fs::remove(out / f);
  std::vector<fs::path> dirs;
  for (const auto& d : fs::directory_iterator(out))
    if (d.is_directory()) dirs.push_back(d.path());
  for (const auto& d : dirs) {
    if (d.filename() == "_background_noise_") {
      fs::remove_all(d);
      continue;
    }
    std::vector<fs::path> clips;
    for (const auto& f : fs::directory_iterator(d))
      if (f.is_regular_file() && is_clip_name(f.path().filename().string())) clips.push_back(f.path());
    for (const auto& f : clips) fs::remove(f);
    if (!clips.empty() && fs::is_empty(d)) fs::remove(d);
  }
}

std::string engines_name(SpeechEngines e) {
  return e == SpeechEngines::both     ? "espeak-ng and flite"
         : e == SpeechEngines::espeak ? "espeak-ng"
                                      : "flite";
}

}  // namespace

// ---- trimming ----------------------------------------------------------------------------------

std::pair<int64_t, int64_t> speech_active_range(const std::vector<float>& samples, int64_t sample_rate,
                                                double threshold_db, double pad_s) {
  const int64_t n = int64_t(samples.size());
  const int64_t frame = std::max<int64_t>(1, sample_rate / 100);
  const int64_t frames = (n + frame - 1) / frame;
  std::vector<double> rms(size_t(frames), 0.0);
  double loudest = 0;
  for (int64_t f = 0; f < frames; ++f) {
    const int64_t b = f * frame, e = std::min(n, b + frame);
    double ss = 0;
    for (int64_t i = b; i < e; ++i) ss += double(samples[size_t(i)]) * samples[size_t(i)];
    rms[size_t(f)] = std::sqrt(ss / double(e - b));
    loudest = std::max(loudest, rms[size_t(f)]);
  }
  constexpr double kFloor = 1e-4;
  if (loudest <= kFloor) return {0, 0};
  const double threshold = std::max(loudest * std::pow(10.0, threshold_db / 20.0), kFloor);
  int64_t first = 0, last = frames - 1;
  while (rms[size_t(first)] < threshold) ++first;
  while (rms[size_t(last)] < threshold) --last;
  const int64_t pad = static_cast<int64_t>(std::llround(pad_s * double(sample_rate)));
  return {std::max<int64_t>(0, first * frame - pad), std::min(n, (last + 1) * frame + pad)};
}

// ---- the generator -----------------------------------------------------------------------------

SpeechSynthStats generate_speech_commands(const SpeechSynthOptions& o, const fs::path& out,
                                          const std::function<void(int64_t, int64_t)>& progress) {
  const std::vector<std::string> words = o.words.empty() ? speech_commands_words() : o.words;
  {
    std::set<std::string> seen;
    for (const auto& w : words) {
      if (w.empty() || !std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
        throw std::invalid_argument(fmt::format("word '{}': words must be lower-case letters a-z", w));
      if (!seen.insert(w).second) throw std::invalid_argument(fmt::format("word '{}' is given twice", w));
    }
  }
  if (o.per_word < 1) throw std::invalid_argument("per_word must be >= 1");
  if (o.speakers < 0) throw std::invalid_argument("speakers must be >= 0");
  if (o.max_attempts < 1) throw std::invalid_argument("max_attempts must be >= 1");
  if (!(o.noise_seconds >= 0)) throw std::invalid_argument("noise_seconds must be >= 0");
  if (!(o.flite_share >= 0 && o.flite_share <= 1))
    throw std::invalid_argument("flite_share must be in [0, 1]");
  if (!(o.peak_dbfs_min <= o.peak_dbfs_max && o.peak_dbfs_max <= 0))
    throw std::invalid_argument("peak range must satisfy min <= max <= 0 dBFS");

  const auto markers = release_markers(out);
  if (!markers.empty() && !o.force)
    throw std::runtime_error(fmt::format(
        "{} already holds a Speech Commands release ({}); refusing to overwrite it (--force replaces it)",
        out.string(), fmt::join(markers, ", ")));
  Scratch scratch;
  const Inventory inv = probe_engines(o, scratch);  // before deleting anything
  if (!markers.empty()) remove_release(out);
  SpeechSynthStats stats;
  stats.espeak_version = inv.espeak_version;
  stats.flite_version = inv.flite_version;

  // The speaker pool, drawn sequentially from the seed; no two share an id.
  const int64_t pool_size = o.speakers > 0 ? o.speakers : std::max<int64_t>(4, o.per_word);
  std::vector<Speaker> pool;
  {
    Rng r(mix(o.seed, 0x5BEA4E25ull));
    std::set<std::string> ids;
    int64_t tries = 0;
    while (int64_t(pool.size()) < pool_size) {
      // With both engines, flite speakers are spread evenly: speaker p is one when
      // floor((p + 1) * share) > floor(p * share), so the pool holds floor(P * share) of them.
      const double p = static_cast<double>(pool.size());
      const bool flite = inv.espeak.empty() || (!inv.flite.empty() && std::floor((p + 1) * o.flite_share) >
                                                                          std::floor(p * o.flite_share));
      Speaker s = draw_speaker(r, inv, flite);
      if (ids.insert(s.id).second) {
        pool.push_back(std::move(s));
      } else if (++tries > 100 * pool_size + 1000) {
        throw std::runtime_error(
            fmt::format("cannot draw {} distinct speakers from the available voices", pool_size));
      }
    }
  }
  stats.speaker_pool = pool_size;

  fs::create_directories(out);
  for (const auto& w : words) fs::create_directories(out / w);

  const int64_t per_word = o.per_word, total = int64_t(words.size()) * per_word;
  std::vector<std::vector<ClipResult>> results(words.size(), std::vector<ClipResult>(size_t(per_word)));
  std::vector<int64_t> remaining(words.size(), per_word);
  std::array<std::vector<std::string>, 3> lists;  // training, validation, testing
  std::map<int64_t, int64_t> clips_per_speaker;
  double sum_word_s = 0;
  stats.min_word_s = 1e9;

  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int64_t> next{0}, done{0};
  std::atomic<bool> stop{false};
  std::exception_ptr error;

  // Synthesises clip i of word w; draws another speaker after each failed run.
  auto synth = [&](size_t w, int64_t i, int64_t job) {
    Rng r(mix(mix(o.seed, hash_text(words[w])), static_cast<uint64_t>(i)));
    const double offset_u = r.uniform();
    const double peak_dbfs = r.uniform(o.peak_dbfs_min, o.peak_dbfs_max);
    ClipResult& res = results[w][size_t(i)];
    for (int64_t attempt = 0; attempt < o.max_attempts && !stop; ++attempt) {
      const int64_t si = r.below(pool_size);
      const Speaker& s = pool[size_t(si)];
      const std::string wav = (scratch.path() / fmt::format("clip-{}-{}.wav", job, attempt)).string();
      const std::string err = (scratch.path() / fmt::format("clip-{}-{}.err", job, attempt)).string();
      std::vector<std::string> argv;
      if (s.flite) {
        argv = {inv.flite, "-voice", s.voice, "--setf",
                fmt::format("duration_stretch={}.{:02d}", s.stretch_pc / 100, s.stretch_pc % 100)};
        if (s.f0) argv.insert(argv.end(), {"--setf", fmt::format("int_f0_target_mean={}", s.f0)});
        argv.insert(argv.end(), {"-t", words[w], "-o", wav});
      } else {
        argv = {inv.espeak,
                "-v",
                s.voice + (s.variant.empty() ? "" : "+" + s.variant),
                "-p",
                std::to_string(s.pitch),
                "-s",
                std::to_string(s.speed),
                "-w",
                wav,
                words[w]};
      }
      const RunResult run = run_process(argv, "/dev/null", err, o.engine_timeout_s);
      std::string problem = run.problem;
      std::vector<int16_t> pcm;
      if (run.ok) {
        int64_t rate = 0;
        const auto raw = read_engine_wav(wav, rate, problem);
        if (!raw.empty()) {
          float peak = 0;
          for (float v : raw) peak = std::max(peak, std::fabs(v));
          if (peak < 1e-3f) {
            problem = "silent output";
          } else {
            pcm = shape_clip(raw, rate, s, offset_u, peak_dbfs, res.word_s, res.speedup);
            if (pcm.empty()) problem = "silent output";
          }
        }
      } else {
        const std::string msg = first_line(read_text(err));
        if (!msg.empty()) problem += ": " + msg;
      }
      std::error_code ec;
      fs::remove(wav, ec);
      fs::remove(err, ec);
      if (!pcm.empty()) {
        res.speaker = si;
        res.pcm = std::move(pcm);
        return;
      }
      ++res.failed_runs;
      res.failures.push_back(fmt::format("'{}' by {} [{}]: {}", words[w], s.id, s.description, problem));
    }
    if (stop) return;
    throw std::runtime_error(fmt::format("clip {} of '{}': the engine failed {} times; last: {}", i, words[w],
                                         o.max_attempts, res.failures.empty() ? "?" : res.failures.back()));
  };

  // Names and writes a finished word: _nohash_<k> counts the speaker's earlier clips of the word.
  auto finish_word = [&](size_t w) {
    std::map<int64_t, int64_t> repeats;
    std::vector<float> samples(static_cast<size_t>(kClip));
    for (auto& res : results[w]) {
      const Speaker& s = pool[size_t(res.speaker)];
      const std::string name = fmt::format("{}_nohash_{}.wav", s.id, repeats[res.speaker]++);
      for (int64_t i = 0; i < kClip; ++i)
        samples[size_t(i)] = static_cast<float>(res.pcm[size_t(i)]) / 32768.0f;
      write_wav_pcm16(out / words[w] / name, samples, kRate);
      const SpeechSet set = speech_which_set(name);
      std::lock_guard<std::mutex> lock(mu);
      lists[size_t(set)].push_back(words[w] + "/" + name);
      ++clips_per_speaker[res.speaker];
      (s.flite ? stats.flite_clips : stats.espeak_clips)++;
      stats.failed_runs += res.failed_runs;
      stats.retried_clips += res.failed_runs > 0;
      for (const auto& f : res.failures)
        if (stats.failure_examples.size() < 5) stats.failure_examples.push_back(f);
      if (res.speedup > 1.0) {
        ++stats.sped_up;
        stats.max_speedup = std::max(stats.max_speedup, res.speedup);
      }
      stats.min_word_s = std::min(stats.min_word_s, res.word_s);
      stats.max_word_s = std::max(stats.max_word_s, res.word_s);
      sum_word_s += res.word_s;
      res.pcm = {};
      res.pcm.shrink_to_fit();
    }
  };

  auto worker = [&] {
    try {
      for (;;) {
        if (stop) return;
        const int64_t job = next++;
        if (job >= total) return;
        const size_t w = size_t(job / per_word);
        synth(w, job % per_word, job);
        if (stop) return;
        bool last = false;
        {
          std::lock_guard<std::mutex> lock(mu);
          last = --remaining[w] == 0;
        }
        if (last) finish_word(w);
        ++done;
        cv.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
      stop = true;
      cv.notify_all();
    }
  };

  const int64_t threads = std::max<int64_t>(1, std::min(o.threads, total));
  std::vector<std::thread> pool_threads;
  for (int64_t t = 0; t < threads; ++t) pool_threads.emplace_back(worker);
  {
    std::unique_lock<std::mutex> lock(mu);
    while (!stop && done < total) {
      cv.wait_for(lock, std::chrono::milliseconds(250));
      if (progress && !stop) {
        lock.unlock();
        progress(done, total);
        lock.lock();
      }
    }
  }
  for (auto& t : pool_threads) t.join();
  if (error) std::rethrow_exception(error);

  stats.clips = total;
  stats.speakers_used = int64_t(clips_per_speaker.size());
  stats.mean_word_s = total ? sum_word_s / double(total) : 0.0;
  stats.train = int64_t(lists[size_t(SpeechSet::training)].size());
  stats.validation = int64_t(lists[size_t(SpeechSet::validation)].size());
  stats.test = int64_t(lists[size_t(SpeechSet::testing)].size());

  // Background noise.
  const fs::path noise_dir = out / "_background_noise_";
  fs::create_directories(noise_dir);
  const int64_t noise_n = static_cast<int64_t>(std::llround(o.noise_seconds * kRate));
  const std::vector<std::pair<std::string, std::string>> noises = {{"white", "white_noise.wav"},
                                                                   {"pink", "pink_noise.wav"},
                                                                   {"brown", "brown_noise.wav"},
                                                                   {"tap", "tap_noise.wav"}};
  for (const auto& [kind, file] : noises) {
    write_wav_pcm16(noise_dir / file, make_noise(kind, noise_n, mix(o.seed, hash_text(kind))), kRate);
    ++stats.noise_files;
  }
  write_text_atomic(
      noise_dir / "README.md",
      fmt::format("# _background_noise_ (synthetic)\n\n"
                  "Generated by `megalodon data speech` (seed {}), {:.1f} s each, 16 kHz mono 16-bit, "
                  "about -20 dBFS RMS:\n\n"
                  "- white_noise.wav: Gaussian white noise\n"
                  "- pink_noise.wav: pink (1/f) noise, Voss-McCartney algorithm\n"
                  "- brown_noise.wav: brown (1/f^2) noise, leaky-integrated white noise, high-passed\n"
                  "- tap_noise.wav: band-passed noise (~0.6-4 kHz) with a slowly wandering level, "
                  "a stand-in for running water\n\n"
                  "None of these is a recording.\n",
                  o.seed, double(noise_n) / kRate));

  // speakers.tsv: every speaker heard in the set.
  std::vector<std::pair<std::string, int64_t>> used;
  for (const auto& [si, n] : clips_per_speaker) used.emplace_back(pool[size_t(si)].id, si);
  std::sort(used.begin(), used.end());
  std::string tsv = "speaker\tclips\tsplit\tdescription\n";
  for (const auto& [id, si] : used)
    tsv += fmt::format("{}\t{}\t{}\t{}\n", id, clips_per_speaker[si], speech_set_name(speech_which_set(id)),
                       pool[size_t(si)].description);
  write_text_atomic(out / "speakers.tsv", tsv);

  const std::string engines_line = (inv.espeak_version.empty() ? std::string() : inv.espeak_version) +
                                   (!inv.espeak_version.empty() && !inv.flite_version.empty() ? "; " : "") +
                                   inv.flite_version;
  write_text_atomic(
      out / "README.md",
      fmt::format(
          "# Synthetic Speech Commands (v0.02 layout)\n\n"
          "**Synthetic data.** Every clip was synthesised by text-to-speech engines ({}); nothing here was "
          "spoken "
          "by a person, and this is not the Speech Commands data set of Warden (2018). Only its layout is "
          "the "
          "same: one folder per word, `<speaker>_nohash_<k>.wav` clips, `validation_list.txt` and "
          "`testing_list.txt`, `_background_noise_/`.\n\n"
          "Generated by `megalodon data speech` with seed {}: {} words x {} clips = {} clips, a pool of {} "
          "speakers ({} heard).\n\n"
          "- Words: {}\n"
          "- Clips: mono 16 kHz 16-bit PCM WAV, exactly 16,000 samples. The word was synthesised, resampled "
          "to "
          "16 kHz (with a per-speaker perturbation factor 0.92-1.08 that scales duration and pitch), trimmed "
          "where the 10 ms frame RMS is more than 40 dB below the loudest frame (keeping 20 ms margins), "
          "sped "
          "up by resampling if still longer than 1 s ({} clips), faded in and out over 5 ms, placed at a "
          "random offset in one second of zeros and scaled to a peak of {} to {} dBFS.\n"
          "- Speakers: one engine voice with its settings (espeak-ng accent + variant, pitch, speed; flite "
          "voice, "
          "duration stretch, mean F0), listed in speakers.tsv. The id is the first 8 hex digits of the SHA-1 "
          "of "
          "that description. A speaker says several words; `_nohash_<k>` counts its repeats of one word.\n"
          "- Splits: the release's own rule (`which_set` in the Speech Commands README): SHA-1 of the file "
          "name "
          "without `_nohash_...`, modulo 2^27, scaled to a percentage; below 10 is validation, below 20 "
          "testing, "
          "the rest training. Clips of one speaker share a split. This set: {} training, {} validation, {} "
          "testing clips.\n"
          "- Engines: {}\n",
          engines_name(o.engines), o.seed, words.size(), per_word, total, pool_size, stats.speakers_used,
          fmt::join(words, " "), stats.sped_up, fmt::format("{:g}", o.peak_dbfs_min),
          fmt::format("{:g}", o.peak_dbfs_max), stats.train, stats.validation, stats.test, engines_line));
  write_text_atomic(
      out / "LICENSE",
      "This folder holds synthetic data: speech produced by the espeak-ng and/or flite text-to-speech\n"
      "engines and noise produced by a random number generator, all by `megalodon data speech`.\n"
      "It contains no recording of any person and none of the Speech Commands data set (which is\n"
      "distributed by Google under CC BY 4.0). The generated files may be used without restriction.\n");

  // The list files last: their presence marks a complete release.
  for (auto set : {SpeechSet::validation, SpeechSet::testing}) {
    auto& list = lists[size_t(set)];
    std::sort(list.begin(), list.end());
    std::string text;
    for (const auto& p : list) text += p + "\n";
    write_text_atomic(out / (set == SpeechSet::validation ? "validation_list.txt" : "testing_list.txt"),
                      text);
  }
  if (progress) progress(total, total);
  return stats;
}

}  // namespace mgl::datasets
