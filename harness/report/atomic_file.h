// Report outputs are replaced whole: a reader (or a crash half-way) never sees a partial file.
#pragma once
#include <filesystem>
#include <string_view>

namespace mgl::harness {

// Writes `bytes` to `<path>.tmp` and renames it over `path`; throws std::runtime_error naming the
// file on any I/O failure (the .tmp is removed then).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace mgl::harness
