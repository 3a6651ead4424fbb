// A small Speech Commands v0.02 look-alike built from synthesised speech (espeak-ng and flite run
// as subprocesses), written in the release layout of paper-benchmarks §3.7:
//   <out>/<word>/<speaker>_nohash_<k>.wav   mono 16 kHz 16-bit PCM, exactly 16,000 samples
//   <out>/validation_list.txt, <out>/testing_list.txt   (the release's own hashing rule)
//   <out>/_background_noise_/*.wav + README.md, <out>/README.md, <out>/LICENSE, <out>/speakers.tsv
// A "speaker" is one engine voice plus its settings (accent, variant, pitch, speed, ...); its id is
// the first 8 hex digits of the SHA-1 of that description, and it says several words, like the
// volunteers of the real release.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mgl::datasets {

// ---- the release's split rule ------------------------------------------------------------------

// SHA-1 of a byte string as 40 lower-case hex digits.
std::string sha1_hex(const std::string& bytes);

enum class SpeechSet { training, validation, testing };
const char* speech_set_name(SpeechSet set);  // "training", "validation", "testing"

// `which_set` of the Speech Commands README / TensorFlow's speech_commands/input_data.py: the base
// name (after the last '/') is cut at its first "_nohash_", hashed with SHA-1, and the digest read
// as an integer is taken modulo 2^27 (MAX_NUM_WAVS_PER_CLASS + 1, with MAX = 2^27 − 1) and scaled
// by 100 / (2^27 − 1) (double arithmetic, as Python does). Returns that percentage in [0, 100].
double speech_split_percentage(const std::string& filename);
// validation when the percentage is < validation_percentage, testing when it is below the sum of
// both, else training (the release used 10 and 10).
SpeechSet speech_which_set(const std::string& filename, double validation_percentage = 10.0,
                           double testing_percentage = 10.0);

// ---- the generator -----------------------------------------------------------------------------


enum class SpeechEngines { both, espeak, flite };

struct SpeechSynthOptions {
  std::vector<std::string> words;  // folder names = spoken text (lower-case letters); empty: all 35
  int64_t per_word = 300;          // clips per word
  int64_t speakers = 0;            // size of the speaker pool the clips draw from; 0: max(4, per_word)
  uint64_t seed = 0;
  int64_t threads = 1;  // engine subprocesses at once; the output does not depend on it
  SpeechEngines engines = SpeechEngines::both;
  double flite_share = 0.35;  // share of flite speakers in the pool (spread evenly) with both engines
  std::string espeak_program = "espeak-ng";  // a name looked up in PATH, or a path
  std::string flite_program = "flite";
  double noise_seconds = 60.0;                         // length of each _background_noise_ file
  double peak_dbfs_min = -10.0, peak_dbfs_max = -2.0;  // each clip's peak is drawn in this range
  int64_t max_attempts = 8;        // engine runs per clip (each retry draws another speaker)
  double engine_timeout_s = 30.0;  // an engine run taking longer is killed and counts as a failure
  bool force = false;              // replace a release already in the output folder
};

struct SpeechSynthStats {
  int64_t clips = 0, train = 0, validation = 0, test = 0;
  int64_t speaker_pool = 0, speakers_used = 0;
  int64_t espeak_clips = 0, flite_clips = 0;
  int64_t failed_runs = 0;    // engine runs that failed (exit status, timeout, no or silent output)
  int64_t retried_clips = 0;  // clips that needed more than one run
  std::vector<std::string> failure_examples;  // the first few failure messages
  int64_t sped_up = 0;  // clips longer than 1 s after trimming, sped up to fit (see .cpp)
  double max_speedup = 1.0;
  double min_word_s = 0, mean_word_s = 0, max_word_s = 0;  // trimmed word durations
  int64_t noise_files = 0;
  std::string espeak_version, flite_version;  // empty when the engine was not used
};

// Generates the data set into `out` (created if needed). Throws std::runtime_error when an engine
// that is needed cannot be found or run (the message names it), when `out` already holds a release
// (validation_list.txt / testing_list.txt, or WAVs in a word folder or _background_noise_) and
// `force` is off, and when a clip still fails after max_attempts engine runs. With `force` the
// previous release's clips, lists and noise files are deleted first. Clip files are written
// atomically, a word's clips once all of them are synthesised; the list files come last.
// `progress(done, total)` is called from the calling thread about four times a second and at the end.
SpeechSynthStats generate_speech_commands(const SpeechSynthOptions& options, const std::filesystem::path& out,
                                          const std::function<void(int64_t, int64_t)>& progress = {});

// The part of a clip that holds speech: frames of 10 ms whose RMS is within `threshold_db` of the
// loudest frame (and above an absolute floor of 1e-4), widened by `pad_s` on both sides and
// clipped to the clip. Returns [begin, end) in samples; {0, 0} for a silent clip.
std::pair<int64_t, int64_t> speech_active_range(const std::vector<float>& samples, int64_t sample_rate,
                                                double threshold_db = -40.0, double pad_s = 0.02);

}  // namespace mgl::datasets
