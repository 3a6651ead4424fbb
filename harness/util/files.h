// Small file utilities shared by the harness: atomic writes and JSON files.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace mgl::harness {

// Streams a file to `<path>.tmp` and renames it over `path` on commit() (after fsync; the directory
// is synced too), so a reader, or a run killed mid-write, sees the old file or the new one, never a
// torn one. An uncommitted temporary is removed.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::filesystem::path path);
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;
  ~AtomicWriter();
  void write(const void* data, size_t n);
  void commit();

 private:
  std::filesystem::path path_;
  std::string tmp_;
  int fd_ = -1;
};

// A directory-safe name: runs of characters other than [A-Za-z0-9._=,+] become one '-'
// ("cema→ema" → "cema-ema").
std::string slug(const std::string& name);

void write_file_atomic(const std::filesystem::path& path, const std::string& content);
std::string read_file(const std::filesystem::path& path);
nlohmann::json read_json(const std::filesystem::path& path);  // errors name the file and position
void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace mgl::harness
