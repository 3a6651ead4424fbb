// Reading and writing the safetensors format: the weights exchange format between this project and
// the official PyTorch code (spec §5; names in harness/io/weights.h).
//
// Layout: an 8-byte little-endian unsigned header length N, N bytes of UTF-8 JSON
//   {"<name>": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"<key>": "<string>"}}
// (padded with spaces to a multiple of 8 bytes), then the byte buffer. Offsets are relative to the
// start of the buffer; every tensor is contiguous, row-major, little-endian, and the tensors tile the
// buffer exactly. dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

namespace mgl::harness {

// Writes `tensors` (any device, any strides: they are written from CPU contiguous copies) and the
// string metadata to `path` atomically (`<path>.tmp`, fsync, rename). Tensors are laid out in name
// order. Throws std::runtime_error naming the file and tensor for a dtype the format lacks (complex)
// or a reserved name ("__metadata__").
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, torch::Tensor> tensors;  // CPU, contiguous, in the file's dtype
  std::map<std::string, std::string> metadata;
};

// Reads and validates a whole file. Anything malformed (a truncated file, a header length beyond the
// file, invalid JSON, an unknown dtype, a shape whose byte size is not its offset span, offsets out of
// range, overlapping or leaving gaps, non-string metadata, duplicate names) is a std::runtime_error
// whose message names the file and, where there is one, the tensor.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

// "F32", "BF16", ... for a torch dtype the format supports; throws std::invalid_argument otherwise.
const char* safetensors_dtype_name(torch::ScalarType t);

}  // namespace mgl::harness
