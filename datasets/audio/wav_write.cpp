// 16-bit WAV writing (libsndfile) and resampling (libsoxr); the readers are in speech_commands.cpp.
#include <sndfile.h>
#include <soxr.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "datasets/audio/speech_commands.h"

namespace mgl::datasets {

void write_wav_pcm16(const std::filesystem::path& file, const std::vector<float>& samples, int64_t sample_rate) {
  if (sample_rate < 1) throw std::runtime_error(file.string() + ": sample rate must be >= 1");
  std::vector<int16_t> pcm(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const double v = std::nearbyint(static_cast<double>(samples[i]) * 32768.0);
    pcm[i] = static_cast<int16_t>(std::clamp(v, -32768.0, 32767.0));
  }
  const std::string tmp = file.string() + ".tmp." + std::to_string(::getpid());
  SF_INFO info{};
  info.samplerate = static_cast<int>(sample_rate);
  info.channels = 1;
  info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
  SNDFILE* sf = sf_open(tmp.c_str(), SFM_WRITE, &info);
  if (!sf) throw std::runtime_error(file.string() + ": cannot write WAV: " + sf_strerror(nullptr));
  const sf_count_t n = static_cast<sf_count_t>(pcm.size());
  const sf_count_t written = sf_write_short(sf, pcm.data(), n);
  const int rc = sf_close(sf);
  std::error_code ec;
  if (written != n || rc != 0) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(file.string() + ": short write (" + std::to_string(written) + " of " +
                             std::to_string(n) + " samples)");
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(file.string() + ": cannot rename the temporary file: " + ec.message());
  }
}

std::vector<float> resample_audio(const std::vector<float>& samples, double from_rate, double to_rate) {
  if (!(from_rate > 0) || !(to_rate > 0)) throw std::runtime_error("resample_audio: rates must be > 0");
  if (from_rate == to_rate || samples.empty()) return samples;
  const size_t out_len = static_cast<size_t>(std::llround(static_cast<double>(samples.size()) * to_rate / from_rate));
  std::vector<float> out(out_len + 16);
  size_t done = 0;
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  soxr_error_t err = soxr_oneshot(from_rate, to_rate, 1, samples.data(), samples.size(), nullptr, out.data(),
                                  out.size(), &done, &io, &q, nullptr);
  if (err) throw std::runtime_error(std::string("resample_audio: libsoxr: ") + err);
  out.resize(std::min(done, out_len));
  out.resize(out_len, 0.0f);
  return out;
}

}  // namespace mgl::datasets
