#include "datasets/idx.h"

#include <fmt/format.h>
#ifdef MEGALODON_HAS_ZLIB
#include <zlib.h>
#endif

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

namespace mgl::datasets {

namespace {

// A byte source over gzip (zlib reads plain files transparently too) or, in a build without zlib,
// a plain file whose gzip magic is detected and refused with a clear message.
class ByteReader {
 public:
  explicit ByteReader(const std::filesystem::path& file) {
#ifdef MEGALODON_HAS_ZLIB
    gz_ = gzopen(file.c_str(), "rb");
    if (!gz_) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
#else
    f_ = std::fopen(file.c_str(), "rb");
    if (!f_) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
    unsigned char m[2] = {0, 0};
    const size_t got = std::fread(m, 1, 2, f_);
    if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) {
      std::fclose(f_);
      throw std::runtime_error(fmt::format("{}: gzip-compressed, and this build has no zlib (gunzip it first, or "
                                           "install zlib1g-dev and rebuild)",
                                           file.string()));
    }
    std::rewind(f_);
#endif
  }
  ~ByteReader() {
#ifdef MEGALODON_HAS_ZLIB
    if (gz_) gzclose(gz_);
#else
    if (f_) std::fclose(f_);
#endif
  }
  ByteReader(const ByteReader&) = delete;
  ByteReader& operator=(const ByteReader&) = delete;

  // Reads up to n bytes; returns how many were read (fewer only at the end of the file).
  size_t read(void* dst, size_t n) {
    size_t got = 0;
    auto* p = static_cast<unsigned char*>(dst);
    while (got < n) {
#ifdef MEGALODON_HAS_ZLIB
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
      int r = gzread(gz_, p + got, chunk);
      if (r < 0) {
        int errnum = 0;
        const char* msg = gzerror(gz_, &errnum);
        throw std::runtime_error(std::string("read error: ") + (msg ? msg : "unknown"));
      }
#else
      const size_t r = std::fread(p + got, 1, n - got, f_);
      if (r == 0 && std::ferror(f_)) throw std::runtime_error("read error");
#endif
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  }

 private:
#ifdef MEGALODON_HAS_ZLIB
  gzFile gz_ = nullptr;
#else
  FILE* f_ = nullptr;
#endif
};

}  // namespace

torch::Tensor read_idx_u8(const std::filesystem::path& file) {
  ByteReader f(file);
  try {
    unsigned char magic[4];
    if (f.read(magic, 4) != 4) throw std::runtime_error("shorter than the 4-byte IDX magic number");
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
      if (f.read(b, 4) != 4) throw std::runtime_error("truncated IDX header");
      shape[i] = (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | int64_t(b[3]);
      if (shape[i] <= 0 || shape[i] > (int64_t(1) << 31))
        throw std::runtime_error(fmt::format("IDX dimension {} has size {}", i, shape[i]));
      count *= shape[i];
      if (count > (int64_t(1) << 36)) throw std::runtime_error("IDX array larger than 64 GiB");
    }
    torch::Tensor out = torch::empty(shape, torch::kUInt8);
    const size_t got = f.read(out.data_ptr<uint8_t>(), static_cast<size_t>(count));
    if (got != static_cast<size_t>(count))
      throw std::runtime_error(fmt::format("truncated: the header promises {} bytes of data, the file has {}", count, got));
    unsigned char extra;
    if (f.read(&extra, 1) != 0)
      throw std::runtime_error(fmt::format("trailing bytes after the {} bytes the header describes", count));
    return out;
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(fmt::format("{}: {}", file.string(), e.what()));
  }
}

void write_idx_u8(const std::filesystem::path& file, const torch::Tensor& data) {
  TORCH_CHECK(data.scalar_type() == torch::kUInt8 && data.dim() >= 1 && data.dim() <= 4,
              "write_idx_u8: expected a uint8 tensor of 1..4 dimensions");
  std::vector<unsigned char> header = {0, 0, 0x08, static_cast<unsigned char>(data.dim())};
  for (int64_t s : data.sizes())
    for (int shift : {24, 16, 8, 0}) header.push_back(static_cast<unsigned char>((s >> shift) & 0xff));
  torch::Tensor c = data.contiguous();
  const bool gz = file.extension() == ".gz";
#ifdef MEGALODON_HAS_ZLIB
  gzFile f = gzopen(file.c_str(), gz ? "wb6" : "wbT");  // T: write without compression
  if (!f) throw std::runtime_error(fmt::format("{}: cannot create", file.string()));
  const bool ok = gzwrite(f, header.data(), static_cast<unsigned>(header.size())) == static_cast<int>(header.size()) &&
                  (c.numel() == 0 || gzwrite(f, c.data_ptr<uint8_t>(), static_cast<unsigned>(c.numel())) == c.numel());
  if (gzclose(f) != Z_OK || !ok) throw std::runtime_error(fmt::format("{}: write failed", file.string()));
#else
  if (gz) throw std::runtime_error(fmt::format("{}: writing gzip needs zlib, which this build lacks", file.string()));
  FILE* f = std::fopen(file.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("{}: cannot create", file.string()));
  const bool ok = std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
                  std::fwrite(c.data_ptr<uint8_t>(), 1, static_cast<size_t>(c.numel()), f) == static_cast<size_t>(c.numel());
  if (std::fclose(f) != 0 || !ok) throw std::runtime_error(fmt::format("{}: write failed", file.string()));
#endif
}

}  // namespace mgl::datasets
