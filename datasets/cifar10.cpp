#include "datasets/cifar10.h"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <stdexcept>

namespace mgl::datasets {

namespace {

constexpr int64_t kSide = 32, kPlane = kSide * kSide, kRecord = 1 + 3 * kPlane;  // 3073 bytes

// PIL convert('L') followed by torchvision ToTensor() and Mega's .mul(255).int(), for every luma
// value: ToTensor divides the uint8 image by 255 in float32, mul(255) multiplies in float32, and
// int() truncates. Each step rounds to float32 on its own (stored through `volatile` so that no
// compiler setting can keep extra precision or fold the two steps together).
std::array<uint8_t, 256> pil_round_trip_table() {
  std::array<uint8_t, 256> t{};
  for (int v = 0; v < 256; ++v) {
    volatile float scaled = static_cast<float>(v) / 255.0f;
    volatile float back = scaled * 255.0f;
    t[v] = static_cast<uint8_t>(static_cast<int>(back));
  }
  return t;
}

// tf.image.rgb_to_grayscale on a uint8 image, as LRA calls it:
//   convert_image_dtype(uint8 -> float32) = float32(v) * float32(1/255);
//   gray = sum over channels of float32(x_c * w_c), w = (0.2989, 0.5870, 0.1140) as float32;
//   convert_image_dtype(float32 -> uint8) = cast(gray * 255.5) (truncation, no saturation needed
//   since gray <= 0.9999).
// The products are tabulated per channel (each rounded to float32) and summed left to right, R+G
// then +B. Approximation: TensorFlow sums the three products inside a tensordot / reduce_sum whose
// order, and whether it fuses multiply-adds, depends on the build; a different order can move the
// float sum by one ulp and, for a value landing within an ulp of an integer after ×255.5, the
// truncated result by one grey level.
struct TfGrayTables {
  std::array<float, 256> r{}, g{}, b{};
};
TfGrayTables tf_gray_tables() {
  TfGrayTables t;
  const float inv255 = static_cast<float>(1.0 / 255.0);
  const float w[3] = {0.2989f, 0.5870f, 0.1140f};
  for (int v = 0; v < 256; ++v) {
    volatile float x = static_cast<float>(v) * inv255;
    volatile float pr = x * w[0], pg = x * w[1], pb = x * w[2];
    t.r[v] = pr;
    t.g[v] = pg;
    t.b[v] = pb;
  }
  return t;
}

}  // namespace

Cifar10Set read_cifar10_bin(const std::vector<std::filesystem::path>& files, int64_t records_per_file) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& file : files) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (ec) throw std::runtime_error(fmt::format("{}: cannot read ({})", file.string(), ec.message()));
    if (size % kRecord != 0)
      throw std::runtime_error(fmt::format("{}: {} bytes is not a whole number of 3073-byte CIFAR-10 records",
                                           file.string(), size));
    const auto n = static_cast<int64_t>(size / kRecord);
    if (records_per_file >= 0 && n != records_per_file)
      throw Cifar10SizeError(fmt::format("{}: {} records, expected {} (a CIFAR-10 batch file of the release; a cut "
                                           "or partial copy?)",
                                           file.string(), n, records_per_file));
    torch::Tensor raw = torch::empty({n, kRecord}, torch::kUInt8);
    FILE* f = std::fopen(file.c_str(), "rb");
    if (!f) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
    const size_t got = std::fread(raw.data_ptr<uint8_t>(), 1, static_cast<size_t>(size), f);
    std::fclose(f);
    if (got != size)
      throw std::runtime_error(fmt::format("{}: short read ({} of {} bytes)", file.string(), got, size));
    const uint8_t* p = raw.data_ptr<uint8_t>();
    for (int64_t i = 0; i < n; ++i)
      if (p[i * kRecord] > 9)
        throw std::runtime_error(
            fmt::format("{}: record {} has label byte {} (expected 0..9)", file.string(), i, p[i * kRecord]));
    labels.push_back(raw.select(1, 0).to(torch::kInt64));
    images.push_back(raw.narrow(1, 1, 3 * kPlane).reshape({n, 3, kSide, kSide}));
  }
  if (images.empty())
    return {torch::empty({0, 3, kSide, kSide}, torch::kUInt8), torch::empty({0}, torch::kInt64)};
  return {torch::cat(images).contiguous(), torch::cat(labels)};
}

std::vector<std::filesystem::path> cifar10_files(const std::filesystem::path& dir, bool train) {
  if (!train) return {dir / "test_batch.bin"};
  std::vector<std::filesystem::path> files;
  for (int i = 1; i <= 5; ++i) files.push_back(dir / fmt::format("data_batch_{}.bin", i));
  return files;
}

GrayRule parse_gray_rule(const std::string& name) {
  if (name == "pil") return GrayRule::pil;
  if (name == "tf") return GrayRule::tf;
  throw std::invalid_argument(fmt::format("unknown grayscale rule '{}' (expected pil or tf)", name));
}

torch::Tensor cifar10_to_gray(const torch::Tensor& rgb, GrayRule rule) {
  if (rgb.scalar_type() != torch::kUInt8 || rgb.dim() != 4 || rgb.size(1) != 3)
    throw std::invalid_argument("cifar10_to_gray: expected an N×3×H×W uint8 tensor");
  const torch::Tensor c = rgb.contiguous();
  const int64_t n = c.size(0), hw = c.size(2) * c.size(3);
  torch::Tensor out = torch::empty({n, c.size(2), c.size(3)}, torch::kUInt8);
  const uint8_t* src = c.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  if (rule == GrayRule::pil) {
    static const std::array<uint8_t, 256> round_trip = pil_round_trip_table();
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t *r = src + i * 3 * hw, *g = r + hw, *b = g + hw;
      for (int64_t j = 0; j < hw; ++j) {
        // PIL's ImagingConvert RGB -> L (libImaging/Convert.c): ITU-R 601-2 luma in 16-bit fixed point.
        const uint32_t luma = (r[j] * 19595u + g[j] * 38470u + b[j] * 7471u + 0x8000u) >> 16;
        dst[i * hw + j] = round_trip[luma];
      }
    }
  } else {
    static const TfGrayTables t = tf_gray_tables();
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t *r = src + i * 3 * hw, *g = r + hw, *b = g + hw;
      for (int64_t j = 0; j < hw; ++j) {
        // Plain float32 arithmetic: no product is left here for a fused multiply-add to absorb.
        const float gray = (t.r[r[j]] + t.g[g[j]]) + t.b[b[j]];
        const int v = static_cast<int>(gray * 255.5f);
        dst[i * hw + j] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    }
  }
  return out;
}

void write_cifar10_bin(const std::filesystem::path& file, const torch::Tensor& images,
                       const torch::Tensor& labels) {
  if (images.scalar_type() != torch::kUInt8 || images.dim() != 4 || images.size(1) != 3 ||
      images.size(2) != kSide || images.size(3) != kSide)
    throw std::invalid_argument("write_cifar10_bin: images must be N×3×32×32 uint8");
  if (labels.dim() != 1 || labels.size(0) != images.size(0))
    throw std::invalid_argument("write_cifar10_bin: labels must be a vector with one label per image");
  const int64_t n = images.size(0);
  torch::Tensor lab = labels.to(torch::kInt64).contiguous();
  // Labels are written as bytes unchecked beyond 0..255, so tests can make files the reader refuses.
  if (n > 0 && (lab.min().item<int64_t>() < 0 || lab.max().item<int64_t>() > 255))
    throw std::invalid_argument("write_cifar10_bin: labels must fit in a byte");
  torch::Tensor raw = torch::empty({n, kRecord}, torch::kUInt8);
  raw.select(1, 0).copy_(lab.to(torch::kUInt8));
  raw.narrow(1, 1, 3 * kPlane).copy_(images.reshape({n, 3 * kPlane}));
  FILE* f = std::fopen(file.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("{}: cannot create", file.string()));
  const size_t bytes = static_cast<size_t>(n * kRecord);
  const bool ok = std::fwrite(raw.data_ptr<uint8_t>(), 1, bytes, f) == bytes;
  if (std::fclose(f) != 0 || !ok) throw std::runtime_error(fmt::format("{}: write failed", file.string()));
}

}  // namespace mgl::datasets
