// Reader for the IDX format of MNIST / Fashion-MNIST (LeCun et al.): a big-endian header
// `00 00 <type> <ndims>`, ndims big-endian uint32 sizes, then the row-major data. Files may be
// gzip-compressed (as Debian's dataset-fashion-mnist ships them) or plain.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace mgl::datasets {

// Reads an IDX file of unsigned bytes (type 0x08) into a uint8 tensor with the file's shape.
// Throws std::runtime_error naming the file for a bad magic number, an unsupported type, or a
// truncated or over-long body.
torch::Tensor read_idx_u8(const std::filesystem::path& file);

// Writes a uint8 tensor as IDX (plain, or gzip when the name ends in .gz). For tests and tools.
void write_idx_u8(const std::filesystem::path& file, const torch::Tensor& data);

}  // namespace mgl::datasets
