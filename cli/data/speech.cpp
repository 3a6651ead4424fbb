// `megalodon data speech`: a small Speech Commands v0.02 look-alike from synthesised speech
// (espeak-ng and flite), in the release layout (paper-benchmarks §3.7); see datasets/audio/speech_synth.h.
#ifdef MEGALODON_HAS_AUDIO

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/data/data.h"
#include "datasets/audio/speech_commands.h"
#include "datasets/audio/speech_synth.h"

namespace mgl::cli {
namespace {

constexpr const char* kSpeechUsage =
    "usage: megalodon data speech --out DIR [options]\n"
    "\n"
    "Synthesises a small Speech Commands v0.02 look-alike with espeak-ng and flite, in the release layout:\n"
    "DIR/<word>/<speaker>_nohash_<k>.wav (mono 16 kHz 16-bit, exactly 16,000 samples), validation_list.txt\n"
    "and testing_list.txt (the release's SHA-1 rule: 10% / 10% by speaker), _background_noise_/ (synthetic\n"
    "white, pink, brown and tap-like noise), README.md, LICENSE and speakers.tsv. A speaker is one voice "
    "with\n"
    "its settings (accent, variant, pitch, speed); speakers say several words. Deterministic for a seed.\n"
    "\n"
    "options:\n"
    "  --out DIR              output folder (required)\n"
    "  --words LIST           comma-separated words, or 'sc10' (yes,no,up,down,left,right,on,off,stop,go)\n"
    "                         or 'all' (the 35 words of v0.02; the default)\n"
    "  --per-word N           clips per word (default 300)\n"
    "  --speakers N           size of the speaker pool (default: max(4, per-word))\n"
    "  --seed S               64-bit seed (default 0)\n"
    "  --threads T            engine processes at once; the output does not depend on T (default: all "
    "cores)\n"
    "  --engines E            both | espeak-ng | flite (default both)\n"
    "  --flite-share F        share of flite speakers in the pool with both engines (default 0.35)\n"
    "  --noise-seconds S      length of each _background_noise_ file (default 60)\n"
    "  --peak-dbfs LO,HI      range of each clip's peak level (default -10,-2)\n"
    "  --espeak PROGRAM       the espeak-ng program (default: espeak-ng from PATH)\n"
    "  --flite PROGRAM        the flite program (default: flite from PATH)\n"
    "  --force                replace a release already in DIR (its clips, lists and noise are deleted)\n"
    "\n"
    "A word longer than 1 s after trimming its silence is sped up (resampled) to fit; the summary counts "
    "them.\n"
    "An engine run that fails is retried with another speaker (8 runs at most per clip).\n";

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

int speech_main(const std::vector<std::string>& args) {
  const auto p =
      parse_args(args,
                 {"--out", "--words", "--per-word", "--speakers", "--seed", "--threads", "--engines",
                  "--flite-share", "--noise-seconds", "--peak-dbfs", "--espeak", "--flite"},
                 {"--help", "--force"});
  if (p.flag("--help")) {
    std::fputs(kSpeechUsage, stdout);
    return 0;
  }
  if (p.option("--out").empty() || !p.positional.empty() || !p.overrides.empty()) {
    std::fputs(kSpeechUsage, stderr);
    return 2;
  }
  datasets::SpeechSynthOptions o;
  const std::string words = p.option("--words", "all");
  if (words == "sc10") {
    o.words = datasets::sc10_classes();
  } else if (words != "all") {
    o.words = split_commas(words);
    if (o.words.empty()) throw std::invalid_argument("--words: no word given");
  }
  o.per_word = p.int_option("--per-word", o.per_word, 1);
  o.speakers = p.int_option("--speakers", 0, 1);
  o.threads = p.int_option("--threads", std::max(1u, std::thread::hardware_concurrency()), 1);
  {
    const std::string v = p.option("--seed", "0");
    size_t used = 0;
    try {
      o.seed = std::stoull(v, &used, 0);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != v.size() || v[0] == '-')
      throw std::invalid_argument(fmt::format("--seed expects a non-negative integer, got '{}'", v));
  }
  const std::string engines = p.option("--engines", "both");
  if (engines == "both") {
    o.engines = datasets::SpeechEngines::both;
  } else if (engines == "espeak-ng" || engines == "espeak") {
    o.engines = datasets::SpeechEngines::espeak;
  } else if (engines == "flite") {
    o.engines = datasets::SpeechEngines::flite;
  } else {
    throw std::invalid_argument(fmt::format("--engines must be both, espeak-ng or flite, got '{}'", engines));
  }
  if (!p.option("--flite-share").empty())
    o.flite_share = parse_number("--flite-share", p.option("--flite-share"));
  if (!p.option("--noise-seconds").empty())
    o.noise_seconds = parse_number("--noise-seconds", p.option("--noise-seconds"));
  if (!p.option("--peak-dbfs").empty()) {
    const auto parts = split_commas(p.option("--peak-dbfs"));
    if (parts.size() != 2) throw std::invalid_argument("--peak-dbfs expects LO,HI, e.g. -10,-2");
    o.peak_dbfs_min = parse_number("--peak-dbfs", parts[0]);
    o.peak_dbfs_max = parse_number("--peak-dbfs", parts[1]);
  }
  o.espeak_program = p.option("--espeak", o.espeak_program);
  o.flite_program = p.option("--flite", o.flite_program);
  o.force = p.flag("--force");
  const std::filesystem::path out = p.option("--out");
  const size_t n_words = o.words.empty() ? datasets::speech_commands_words().size() : o.words.size();

  std::printf("speech: %zu words x %lld clips into %s (seed %llu, engines %s, %lld threads)\n", n_words,
              (long long)o.per_word, out.string().c_str(), (unsigned long long)o.seed, engines.c_str(),
              (long long)o.threads);
  std::fflush(stdout);
  const bool tty = ::isatty(::fileno(stdout));
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double last_line = -1e9;
  int64_t last_done = -1;
  const auto stats = datasets::generate_speech_commands(o, out, [&](int64_t done, int64_t total) {
    const double s = seconds();
    if (done == last_done) return;
    if (!tty && done < total && s - last_line < 5.0) return;
    last_line = s;
    last_done = done;
    const double rate = s > 0 ? double(done) / s : 0.0;
    const double eta = rate > 0 ? double(total - done) / rate : 0.0;
    if (tty) {
      std::printf("\r  %lld/%lld clips, %.1f s, %.1f clips/s, ~%.0f s left   ", (long long)done,
                  (long long)total, s, rate, eta);
      if (done == total) std::printf("\n");
    } else {
      std::printf("  %lld/%lld clips, %.1f s, %.1f clips/s\n", (long long)done, (long long)total, s, rate);
    }
    std::fflush(stdout);
  });
  const double s = seconds();

  std::printf("done: %lld clips in %.1f s (%.1f clips/s, %.1f ms per clip per thread)\n",
              (long long)stats.clips, s, double(stats.clips) / std::max(s, 1e-9),
              1000.0 * s * double(o.threads) / double(std::max<int64_t>(1, stats.clips)));
  auto pct = [&](int64_t n) { return stats.clips ? 100.0 * double(n) / double(stats.clips) : 0.0; };
  std::printf("  splits        %lld training (%.1f%%), %lld validation (%.1f%%), %lld testing (%.1f%%)\n",
              (long long)stats.train, pct(stats.train), (long long)stats.validation, pct(stats.validation),
              (long long)stats.test, pct(stats.test));
  std::printf("  speakers      %lld heard of a pool of %lld; clips by espeak-ng %lld, by flite %lld\n",
              (long long)stats.speakers_used, (long long)stats.speaker_pool, (long long)stats.espeak_clips,
              (long long)stats.flite_clips);
  std::printf("  word length   %.2f / %.2f / %.2f s (min / mean / max, after trimming)\n", stats.min_word_s,
              stats.mean_word_s, stats.max_word_s);
  std::printf("  sped up       %lld clips longer than 1 s (largest factor %.2f)\n", (long long)stats.sped_up,
              stats.max_speedup);
  std::printf("  engine runs   %lld failed, %lld clips retried with another speaker\n",
              (long long)stats.failed_runs, (long long)stats.retried_clips);
  for (const auto& f : stats.failure_examples) std::printf("    %s\n", f.c_str());
  std::printf("  noise         %lld files in _background_noise_/\n", (long long)stats.noise_files);
  if (!stats.espeak_version.empty()) std::printf("  espeak-ng     %s\n", stats.espeak_version.c_str());
  if (!stats.flite_version.empty()) std::printf("  flite         %s\n", stats.flite_version.c_str());
  std::printf("wrote %s/{validation_list.txt,testing_list.txt,README.md,LICENSE,speakers.tsv}\n",
              out.string().c_str());
  return 0;
}

const DataTool kSpeech{"speech", "synthesise a small Speech Commands v0.02 set (espeak-ng, flite)",
                       speech_main};

}  // namespace
}  // namespace mgl::cli

#endif  // MEGALODON_HAS_AUDIO
