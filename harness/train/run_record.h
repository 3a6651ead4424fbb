// A run's record of itself (README "Run directories"): where its directory is, and the run.json
// written beside the resolved config: experiment, variant, seed, git revision, versions, device,
// host, command line, start time, parameter count and task.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "harness/config/config.h"

namespace mgl::harness {

// <run.root>/<experiment>/<variant>/seed<seed>/, or run.dir when set.
std::filesystem::path run_directory(const Config& cfg);

// run.json's fields that are known when a run starts (the trainer adds the optimizer groups and
// the process layout).
nlohmann::json run_record(const Config& cfg, const torch::Device& device, const std::string& command_line,
                          bool resumed, int64_t params, const std::string& task_desc);

std::string git_revision(const std::filesystem::path& source_dir);  // "abc123…" (+ "-dirty"), or "unknown"

}  // namespace mgl::harness
