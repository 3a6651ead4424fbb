// The shared helpers of internal.h: FNV-1a hex, the memory-mapped file, atomic writes.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "datasets/text/internal.h"

namespace mgl::datasets::text::detail {

std::string Fnv1a::hex() const { return fmt::format("{:016x}", h); }

std::string fnv1a_hex(std::string_view bytes) {
  Fnv1a f;
  f.add(bytes);
  return f.hex();
}

MappedFile::MappedFile(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(fmt::format("{}: cannot open ({})", file.string(), std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error(fmt::format("{}: cannot stat ({})", file.string(), std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error(fmt::format("{}: not a regular file", file.string()));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(fmt::format("{}: cannot mmap ({})", file.string(), std::strerror(err)));
    }
    data_ = p;
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(data_, size_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

std::filesystem::path temporary_sibling(const std::filesystem::path& file) {
  static std::atomic<uint64_t> counter{0};
  return file.parent_path() /
         fmt::format(".{}.tmp.{}.{}", file.filename().string(), static_cast<long>(::getpid()), counter++);
}

void write_file_atomically(const std::filesystem::path& file, std::string_view bytes) {
  if (!file.parent_path().empty()) std::filesystem::create_directories(file.parent_path());
  const auto tmp = temporary_sibling(file);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error(fmt::format("{}: cannot create ({})", tmp.string(), std::strerror(errno)));
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0 &&
                  ::fsync(::fileno(f)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  std::error_code ec;
  if (!ok || !closed) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error(fmt::format("{}: write failed ({})", tmp.string(), std::strerror(err)));
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    std::error_code ignore;
    std::filesystem::remove(tmp, ignore);
    throw std::runtime_error(fmt::format("{}: cannot rename into place ({})", file.string(), ec.message()));
  }
}

}  // namespace mgl::datasets::text::detail
