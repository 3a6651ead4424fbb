// Checkpoints of a training run (checkpoint.h).
#include "harness/train/checkpoint.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>

#include "harness/util/files.h"

namespace mgl::harness {

namespace {

using json = nlohmann::json;
constexpr int64_t kCheckpointFormat = 1;

void save_archive_atomic(torch::serialize::OutputArchive& ar, const fs::path& path) {
  const fs::path tmp = path.string() + ".tmp";
  ar.save_to(tmp.string());
  // save_to does not fsync; reopen and sync so a crash after rename cannot leave an empty file.
  if (FILE* f = std::fopen(tmp.c_str(), "rb+")) {
    fsync(fileno(f));
    std::fclose(f);
  }
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

TrainerState load_checkpoint(const fs::path& path, torch::nn::Module& model, torch::optim::Optimizer* opt) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path.string());
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot read checkpoint: {}", path.string(), e.what()));
  }
  torch::serialize::InputArchive model_ar;
  ar.read("model", model_ar);
  model.load(model_ar);
  TrainerState s;
  c10::IValue v;
  auto get_int = [&](const char* k) {
    ar.read(k, v);
    return v.toInt();
  };
  if (get_int("format") != kCheckpointFormat)
    throw std::runtime_error(fmt::format("{}: checkpoint format {} (expected {})", path.string(), v.toInt(),
                                         kCheckpointFormat));
  if (!opt) return s;
  torch::serialize::InputArchive opt_ar;
  ar.read("optimizer", opt_ar);
  opt->load(opt_ar);
  s.step = get_int("step");
  s.data.epoch = get_int("data_epoch");
  s.data.batch = get_int("data_batch");
  s.best_step = get_int("best_step");
  s.bad_evals = get_int("bad_evals");
  ar.read("best", v);
  s.best = v.toDouble();
  ar.read("train_seconds", v);
  s.train_seconds = v.toDouble();
  torch::Tensor rng;
  ar.read("rng_cpu", rng);
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(rng);
  return s;
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
