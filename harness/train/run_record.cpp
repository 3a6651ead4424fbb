// A run's record of itself (run_record.h).
#include "harness/train/run_record.h"

#include <fmt/format.h>
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <ctime>

#include "harness/util/files.h"

#ifndef MEGALODON_SOURCE_DIR
#define MEGALODON_SOURCE_DIR "."
#endif

namespace mgl::harness {

namespace {

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  return buf;
}

std::string hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

// NAME=value pairs of /proc/self/environ (empty where it cannot be read).
std::map<std::string, std::string> startup_environment() {
  std::map<std::string, std::string> out;
  std::ifstream in("/proc/self/environ", std::ios::binary);
  std::string entry;
  while (std::getline(in, entry, '\0')) {
    const auto eq = entry.find('=');
    if (eq != std::string::npos) out.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return out;
}

}  // namespace

fs::path run_directory(const Config& cfg) {
  const std::string dir = cfg.get_string("run.dir");
  if (!dir.empty()) return dir;
  return fs::path(cfg.get_string("run.root")) / cfg.experiment_name / slug(cfg.get_string("run.variant")) /
         fmt::format("seed{}", cfg.get_int("seed"));
}

nlohmann::json run_record(const Config& cfg, const torch::Device& device, const std::string& command_line,
                          bool resumed, int64_t params, const std::string& task_desc) {
  using json = nlohmann::json;
  json j;
  j["experiment"] = cfg.experiment_name;
  j["experiment_file"] = cfg.experiment_file.string();
  j["variant"] = cfg.get_string("run.variant");
  j["seed"] = cfg.get_int("seed");
  j["git_revision"] = git_revision(MEGALODON_SOURCE_DIR);
  j["torch_version"] = TORCH_VERSION;
  j["cuda"] = torch::cuda::is_available() ? fmt::format("{} device(s)", torch::cuda::device_count()) : "none";
  j["device"] = device.is_cuda() ? "cuda" : fmt::format("cpu ({} threads)", torch::get_num_threads());
  j["threads"] = torch::get_num_threads();
  // The thread pools' settings move CPU speed by up to 3× (harness/util/thread_env.h); null = unset.
  // Read from /proc/self/environ, the environment this process image started with, which is what
  // the libraries read when they were loaded (a later setenv does not reach them).
  const auto start_env = startup_environment();
  for (const char* var : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS",
                          "OPENBLAS_NUM_THREADS"}) {
    auto it = start_env.find(var);
    j["thread_environment"][var] = it != start_env.end() ? json(it->second) : json(nullptr);
  }
  j["hostname"] = hostname();
  j["command"] = command_line;
  j["started"] = now_iso();
  j["resumed"] = resumed;
  j["parameters"] = params;
  j["task"] = task_desc;
  return j;
}

std::string git_revision(const fs::path& source_dir) {
  auto run = [&](const std::string& cmd) {
    std::string out;
    FILE* p = popen(fmt::format("git -C '{}' {} 2>/dev/null", source_dir.string(), cmd).c_str(), "r");
    if (!p) return out;
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  };
  std::string rev = run("rev-parse HEAD");
  if (rev.empty()) return "unknown";
  if (!run("status --porcelain --untracked-files=no").empty()) rev += "-dirty";
  return rev;
}

}  // namespace mgl::harness
