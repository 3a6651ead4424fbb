// Speech Commands v0.02 (Warden 2018; paper-benchmarks §2.3, §3.7): WAV decoding through libsndfile,
// the folder index of the release layout, the two split conventions (SC10's stratified 70/15/15 of
// the S4 / Mega recipe, and the official validation_list.txt / testing_list.txt for all 35 words),
// the background-noise folder, and a 16-bit WAV writer.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace mgl::datasets {

// ---- WAV --------------------------------------------------------------------------------------

// What to do with a clip whose sample rate is not the expected one.
enum class RatePolicy { reject, resample };
// What to do with a clip that has more than one channel.
enum class ChannelPolicy { reject, mix };

struct WavReadOptions {
  int64_t sample_rate = 16000;  // expected rate
  RatePolicy rate = RatePolicy::reject;
  ChannelPolicy channels = ChannelPolicy::reject;
};

struct WavInfo {
  int64_t frames = 0;  // samples per channel, as the header declares them (see read_wav_info)
  int64_t sample_rate = 0;
  int64_t channels = 0;
  std::string format;  // e.g. "WAV PCM_16"
};

// Opens the file's header only (no decoding). Throws std::runtime_error naming the file when it is
// missing, not a sound file libsndfile can read, or truncated (a RIFF/WAVE whose data chunk
// declares more bytes than the file holds): the message says which.
WavInfo read_wav_info(const std::filesystem::path& file);

// Decodes a clip to float samples scaled as int16 / 32768 (so a 16-bit PCM file gives exactly
// k / 32768), mono at options.sample_rate: a different rate is an error naming the file, the rate
// found and the rate expected (RatePolicy::reject) or is resampled with libsoxr (high quality);
// more than one channel is an error (reject) or averaged (mix). Same errors as read_wav_info.
std::vector<float> read_wav(const std::filesystem::path& file, const WavReadOptions& options = {});

// Writes mono 16-bit PCM WAV, samples in [-1, 1) scaled by 32768, rounded to nearest and clipped to
// the int16 range. Atomic (temporary file + rename). Throws naming the file on failure.
void write_wav_pcm16(const std::filesystem::path& file, const std::vector<float>& samples,
                     int64_t sample_rate);

// Resamples mono float audio from one rate to another with libsoxr (high quality, no clipping).
std::vector<float> resample_audio(const std::vector<float>& samples, double from_rate, double to_rate);

// ---- the release layout -----------------------------------------------------------------------

// The 35 words of v0.02 in the order of paper-benchmarks §3.7, and SC10's ten classes in Mega's
// label order: yes no up down left right on off stop go (labels 0..9).
const std::vector<std::string>& speech_commands_words();
const std::vector<std::string>& sc10_classes();

struct SpeechClip {
  std::string path;    // relative to the root, '/'-separated: "yes/0a7c2a8d_nohash_0.wav"
  int64_t label = 0;   // index into SpeechCommandsIndex::classes
  int64_t frames = 0;  // from the header (read_wav_info), at the file's own rate
};

enum class SpeechSplitRule {
  // SC10 (Mega / S4 recipe, §2.3): only clips of exactly `clip_length` frames; stratified by label,
  // 70% train, the rest split 50/50 into validation and test (see index_speech_commands).
  stratified,
  // The 35-class convention: validation_list.txt and testing_list.txt; every other clip of the
  // chosen classes is training. Clips of any length are kept (padded or cropped by the reader).
  official_lists,
};

// What to do with a file that cannot be read (not audio, truncated, wrong rate under reject, ...).
// index_speech_commands opens headers only (read_wav_info), so there it covers what
// read_wav_info rejects; rate and channel checks belong to whoever decodes (read_wav).
enum class BadFilePolicy { error, skip };

struct SpeechIndexOptions {
  std::vector<std::string> classes;  // the label folders in label order; empty = all 35 words
  SpeechSplitRule split = SpeechSplitRule::stratified;
  int64_t clip_length = 16000;  // the stratified rule keeps clips of exactly this many frames
  double train_fraction = 0.7;  // stratified: share of train; the remainder is halved
  uint64_t split_seed = 0;      // stratified: seed of the per-class shuffles
  BadFilePolicy bad_files = BadFilePolicy::error;
  // A clip with no samples, or shorter than this many seconds (at its own rate), is a bad file
  // (error or skip, as bad_files says), whatever the split rule.
  double min_seconds = 0;
  int64_t limit_per_class = -1;  // >= 0: only the first N files (in sorted order) of each class
};

struct SpeechBadFile {
  std::string path;    // relative to the root
  std::string reason;  // the reader's message
};

struct SpeechCommandsIndex {
  std::filesystem::path root;
  std::vector<std::string> classes;
  std::vector<SpeechClip> train, val, test;
  std::vector<SpeechBadFile> skipped_bad;  // unreadable files left out (BadFilePolicy::skip)
  int64_t skipped_length = 0;              // stratified rule: readable clips not clip_length long
};

// Indexes `<root>/<class>/*.wav` for every class folder (a missing class folder is an error naming
// it). Files are taken in a deterministic order: classes in the given order, file names sorted
// bytewise within a class. Every header is opened (read_wav_info) to get its length; unreadable
// files, empty clips and clips shorter than min_seconds are an error naming the file, or skipped and
// listed (BadFilePolicy::skip).
//
// Stratified rule, made reproducible (the original depends on os.listdir order, §2.3): with N kept
// clips, n_train = floor(train_fraction·N); of the R = N − n_train others, n_test = ceil(R/2) and
// n_val = R − n_test — sklearn's train_test_split rounding, so 34,975 clips give 24,482 / 5,246 /
// 5,247. Per-class shares follow the largest-remainder rule (each class gets floor(n_c·n/N), the
// leftover units go to the classes with the largest fractional parts, ties to the lower label);
// within a class the clips are shuffled by torch::randperm seeded with split_seed + label and the
// first go to train, the next to val. Each split is returned in (label, file name) order.
//
// Official-lists rule: `<root>/validation_list.txt` and `<root>/testing_list.txt` (one relative
// path per line, '/'-separated; blank lines ignored) — both required, an error naming the file
// when missing; listed paths outside the chosen classes are ignored, a listed path of a chosen
// class that does not exist is an error naming the list file and line.
SpeechCommandsIndex index_speech_commands(const std::filesystem::path& root,
                                          const SpeechIndexOptions& options);

// The stratified rule's split sizes for N kept clips (the rounding described above): 34,975 clips
// give 24,482 / 5,246 / 5,247. Throws unless N >= 0 and 0 <= train_fraction <= 1.
struct SpeechSplitSizes {
  int64_t train = 0, val = 0, test = 0;
};
SpeechSplitSizes speech_split_sizes(int64_t n, double train_fraction);

// The long noise recordings of `<root>/_background_noise_/*.wav` (sorted by name), decoded with
// the given options. Throws naming the folder when it is missing or holds no WAV file.
struct NoiseClip {
  std::string name;  // the file name without ".wav": "white_noise"
  std::vector<float> samples;
};
std::vector<NoiseClip> read_background_noise(const std::filesystem::path& root,
                                             const WavReadOptions& options = {});

// Fits a clip to `length` samples: zero-pads at the end or crops the end.
std::vector<float> fit_length(std::vector<float> samples, int64_t length);

}  // namespace mgl::datasets
