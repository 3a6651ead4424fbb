#include "harness/util/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mgl::harness {

AtomicWriter::AtomicWriter(std::filesystem::path path) : path_(std::move(path)), tmp_(path_.string() + ".tmp") {
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot create '{}': {}", tmp_, std::strerror(errno)));
}

AtomicWriter::~AtomicWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicWriter::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw std::runtime_error(fmt::format("cannot write '{}': {}", tmp_, std::strerror(errno)));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicWriter::commit() {
  if (::fsync(fd_) != 0) throw std::runtime_error(fmt::format("cannot fsync '{}': {}", tmp_, std::strerror(errno)));
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(tmp_.c_str());
    throw std::runtime_error(fmt::format("cannot close '{}': {}", tmp_, std::strerror(errno)));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp_.c_str());
    throw std::runtime_error(fmt::format("cannot rename '{}' to '{}': {}", tmp_, path_.string(), std::strerror(err)));
  }
  // The rename itself is durable only once the directory entry is on disk.
  const std::filesystem::path dir = path_.has_parent_path() ? path_.parent_path() : std::filesystem::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::filesystem::path& path, const std::string& content) {
  AtomicWriter w(path);
  w.write(content.data(), content.size());
  w.commit();
}

std::string slug(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    const bool keep = std::isalnum(c) || c == '.' || c == '_' || c == '=' || c == ',' || c == '+';
    if (keep) out += static_cast<char>(c);
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "run" : out;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const std::filesystem::path& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
}

void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

}  // namespace mgl::harness
