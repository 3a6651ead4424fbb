// CIFAR-10, binary version (paper-benchmarks §3.5): `data_batch_{1..5}.bin`, `test_batch.bin`,
// 10,000 records of 3073 bytes each (label, 1024 R, 1024 G, 1024 B; planes row-major 32×32).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace mgl::datasets {

struct Cifar10Set {
  torch::Tensor images;  // N×3×32×32 uint8 (RGB planes)
  torch::Tensor labels;  // N int64, 0..9
};

// The release's batch files all hold this many records (the five training batches and the test batch).
inline constexpr int64_t kCifar10RecordsPerBatch = 10000;

// A batch file with another number of records than records_per_file asks for.
struct Cifar10SizeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Reads and concatenates binary batch files in the given order. Throws std::runtime_error naming
// the file if it is missing, its size is not a multiple of 3073, a label byte is > 9 (with the
// record index), or (Cifar10SizeError), when records_per_file >= 0, it holds another number of records (a batch cut
// on a record boundary would otherwise be read as a smaller data set without a word).
Cifar10Set read_cifar10_bin(const std::vector<std::filesystem::path>& files, int64_t records_per_file = -1);

// The training (data_batch_1..5) or test (test_batch) files under `dir` (cifar-10-batches-bin).
std::vector<std::filesystem::path> cifar10_files(const std::filesystem::path& dir, bool train);

// Grayscale conversion as the reference pipelines do it (N×3×H×W uint8 → N×H×W uint8):
//   pil: Mega / torchvision — PIL convert('L') integer luma (R·19595 + G·38470 + B·7471 + 0x8000) >> 16,
//        then ToTensor().mul(255).int(): the float32 round trip v/255·255, truncated.
//   tf:  LRA — tf.image.rgb_to_grayscale on the uint8 image (weights 0.2989, 0.5870, 0.1140 in
//        float32 on values scaled to [0,1]), converted back to uint8 as tf.image.convert_image_dtype
//        does, then cast to int.
enum class GrayRule { pil, tf };
GrayRule parse_gray_rule(const std::string& name);  // "pil" | "tf"; throws std::invalid_argument
torch::Tensor cifar10_to_gray(const torch::Tensor& rgb, GrayRule rule);

// Writes records in the binary format (for tests and tools). images N×3×32×32 uint8, labels N.
void write_cifar10_bin(const std::filesystem::path& file, const torch::Tensor& images, const torch::Tensor& labels);

}  // namespace mgl::datasets
