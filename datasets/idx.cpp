#include "datasets/idx.h"

#include <fmt/format.h>
#include <zlib.h>

#include <memory>
#include <stdexcept>
#include <vector>

namespace mgl::datasets {

namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const {
    if (f) gzclose(f);
  }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

// Reads exactly n bytes; returns how many were read.
size_t read_some(gzFile f, void* dst, size_t n) {
  size_t got = 0;
  auto* p = static_cast<unsigned char*>(dst);
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    int r = gzread(f, p + got, chunk);
    if (r < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      throw std::runtime_error(std::string("read error: ") + (msg ? msg : "unknown"));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

torch::Tensor read_idx_u8(const std::filesystem::path& file) {
  // gzopen reads plain files transparently.
  GzFile f(gzopen(file.c_str(), "rb"));
  if (!f) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  try {
    unsigned char magic[4];
    if (read_some(f.get(), magic, 4) != 4) throw std::runtime_error("shorter than the 4-byte IDX magic number");
    if (magic[0] != 0 || magic[1] != 0)
      throw std::runtime_error(fmt::format("not an IDX file (magic {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 nd)",
                                           magic[0], magic[1], magic[2], magic[3]));
    if (magic[2] != 0x08)
      throw std::runtime_error(fmt::format("IDX element type 0x{:02x} is not supported (expected 0x08, unsigned byte)",
                                           magic[2]));
    const int ndims = magic[3];
    if (ndims < 1 || ndims > 4) throw std::runtime_error(fmt::format("IDX with {} dimensions (expected 1..4)", ndims));
    std::vector<int64_t> shape(ndims);
    int64_t count = 1;
    for (int i = 0; i < ndims; ++i) {
      unsigned char b[4];
      if (read_some(f.get(), b, 4) != 4) throw std::runtime_error("truncated IDX header");
      shape[i] = (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | int64_t(b[3]);
      if (shape[i] <= 0 || shape[i] > (int64_t(1) << 31))
        throw std::runtime_error(fmt::format("IDX dimension {} has size {}", i, shape[i]));
      count *= shape[i];
      if (count > (int64_t(1) << 36)) throw std::runtime_error("IDX array larger than 64 GiB");
    }
    torch::Tensor out = torch::empty(shape, torch::kUInt8);
    const size_t got = read_some(f.get(), out.data_ptr<uint8_t>(), static_cast<size_t>(count));
    if (got != static_cast<size_t>(count))
      throw std::runtime_error(fmt::format("truncated: the header promises {} bytes of data, the file has {}", count, got));
    unsigned char extra;
    if (read_some(f.get(), &extra, 1) != 0)
      throw std::runtime_error(fmt::format("trailing bytes after the {} bytes the header describes", count));
    return out;
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("{}: {}", file.string(), e.what()));
  }
}

void write_idx_u8(const std::filesystem::path& file, const torch::Tensor& data) {
  TORCH_CHECK(data.scalar_type() == torch::kUInt8 && data.dim() >= 1 && data.dim() <= 4,
              "write_idx_u8: expected a uint8 tensor of 1..4 dimensions");
  const bool gz = file.extension() == ".gz";
  GzFile f(gzopen(file.c_str(), gz ? "wb6" : "wbT"));  // T: write without compression
  if (!f) throw std::runtime_error(fmt::format("{}: cannot create", file.string()));
  std::vector<unsigned char> header = {0, 0, 0x08, static_cast<unsigned char>(data.dim())};
  for (int64_t s : data.sizes())
    for (int shift : {24, 16, 8, 0}) header.push_back(static_cast<unsigned char>((s >> shift) & 0xff));
  torch::Tensor c = data.contiguous();
  if (gzwrite(f.get(), header.data(), static_cast<unsigned>(header.size())) != static_cast<int>(header.size()) ||
      (c.numel() > 0 && gzwrite(f.get(), c.data_ptr<uint8_t>(), static_cast<unsigned>(c.numel())) != c.numel()))
    throw std::runtime_error(fmt::format("{}: write failed", file.string()));
}

}  // namespace mgl::datasets
