// Small file utilities shared by the harness: atomic writes and JSON files.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace mgl::harness {

// Writes `content` to `<path>.tmp`, flushes it to disk and renames it over `path`, so a reader
// (or a run killed mid-write) sees either the old file or the new one, never a torn one.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);
std::string read_file(const std::filesystem::path& path);
nlohmann::json read_json(const std::filesystem::path& path);  // errors name the file and position
void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace mgl::harness
