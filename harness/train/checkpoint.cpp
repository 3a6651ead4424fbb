// Checkpoints of a training run (checkpoint.h).
#include "harness/train/checkpoint.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>

#include "harness/train/checkpoint_file.h"
#include "harness/util/files.h"

namespace mgl::harness {

namespace {

using json = nlohmann::json;

void save_archive_atomic(torch::serialize::OutputArchive& ar, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  ar.save_to(tmp.string());
  // save_to does not fsync; reopen and sync so a crash after rename cannot leave an empty file.
  if (FILE* f = std::fopen(tmp.c_str(), "rb+")) {
    fsync(fileno(f));
    std::fclose(f);
  }
  // The checksum first, then the rename: a checkpoint in place always has its checksum beside it.
  write_checksum(tmp, path);
  fs::rename(tmp, path);
}

}  // namespace

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(dir)) return out;
  static const std::regex re("step_([0-9]+)\\.pt");
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, m, re)) out.emplace_back(std::stoll(m[1]), e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}


void save_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer& opt,
                     const TrainerState& s) {
  torch::serialize::OutputArchive ar, model_ar, opt_ar;
  model.save(model_ar);
  opt.save(opt_ar);
  ar.write("model", model_ar);
  ar.write("optimizer", opt_ar);
  ar.write("format", c10::IValue(kCheckpointFormat));
  ar.write("step", c10::IValue(s.step));
  ar.write("data_epoch", c10::IValue(s.data.epoch));
  ar.write("data_batch", c10::IValue(s.data.batch));
  ar.write("best", c10::IValue(s.best));
  ar.write("best_step", c10::IValue(s.best_step));
  ar.write("bad_evals", c10::IValue(s.bad_evals));
  ar.write("train_seconds", c10::IValue(s.train_seconds));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    ar.write("rng_cpu", gen.get_state());
  }
  save_archive_atomic(ar, path);
}

// Reads a checkpoint (verified against its checksum: checkpoint_file.h) into the model, and into
// the optimizer, the trainer's counters and the CPU generator when opt is given.
TrainerState load_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer* opt) {
  const CheckpointFields f = read_checkpoint(path, model, opt);
  TrainerState s;
  if (!opt) return s;
  s.step = f.step;
  s.data.epoch = f.data_epoch;
  s.data.batch = f.data_batch;
  s.best_step = f.best_step;
  s.bad_evals = f.bad_evals;
  s.best = f.best;
  s.train_seconds = f.train_seconds;
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  try {
    gen.set_state(f.rng_cpu);
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format("{}: its random-generator state cannot be restored: {}", path.string(),
                                         e.what_without_backtrace()));
  }
  return s;
}

std::pair<TrainerState, fs::path> load_newest_intact(const std::vector<fs::path>& newest_first,
                                                     torch::nn::Module& model, torch::optim::Optimizer* opt,
                                                     bool set_aside) {
  std::string damaged;
  for (size_t i = 0; i < newest_first.size(); ++i) {
    const fs::path& path = newest_first[i];
    try {
      TrainerState s = load_checkpoint(path, model, opt);
      return {s, path};
    } catch (const CheckpointDamaged& e) {
      const fs::path moved = set_aside ? set_aside_damaged(path) : path;
      if (i + 1 < newest_first.size())  // the last one's damage is in the error below
        std::fprintf(stderr, "warning: %s%s; trying the previous checkpoint\n", e.what(),
                     set_aside ? fmt::format(" (moved to {})", moved.filename().string()).c_str() : "");
      damaged += fmt::format("{}{}", damaged.empty() ? "" : "; ", e.what());
    }
  }
  throw std::runtime_error(fmt::format("no intact checkpoint to load: {}", damaged));
}

void save_model_only(const fs::path& path, torch::nn::Module& model) {
  torch::serialize::OutputArchive ar, model_ar;
  model.save(model_ar);
  ar.write("model", model_ar);
  ar.write("format", c10::IValue(kCheckpointFormat));
  save_archive_atomic(ar, path);
}

void truncate_metrics(const fs::path& file, int64_t step) {
  if (!fs::exists(file)) return;
  std::ifstream in(file);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      json j = json::parse(line);
      if (j.value("step", int64_t(0)) <= step) kept += line + "\n";
    } catch (const json::parse_error&) {
      // a torn last line of a killed run
    }
  }
  write_file_atomic(file, kept);
}

}  // namespace mgl::harness
