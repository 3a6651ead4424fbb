// LRA Pathfinder and Path-X (paper-benchmarks §2.2, §3.6): are the two marker dots connected by a
// dashed contour? Each grey image (32² for Pathfinder, 128² for Path-X) is raster-scanned to a
// sequence of scalar pixels normalised as (p/255 − 0.5)/0.5 and embedded as real numbers.
//
// Data: one difficulty folder of the LRA release (pathfinder32/curv_contour_length_14 is the LRA
// task) or of `megalodon data pathfinder`: metadata/<b>.npy text files + imgs/<b>/sample_<n>.png.
// Order and split as the S4 and Mega loaders: metadata files in numeric order, lines in file
// order, zero-length images dropped; then torch.utils.data.random_split with a generator seeded 42
// into train / val / test with val = ⌊0.1·N⌋, test = ⌊0.1·N⌋ and train the rest — here the same
// randperm(N) of the linked LibTorch, first train, then val, then test indices.
//
// Images are decoded once into memory (task.preload, 1 KB per 32² image) or per batch in the loader
// threads (Path-X: 200,000 × 16 KB would be 3.2 GB).
#include <fmt/format.h>

#include "datasets/vision/pathfinder.h"
#include "harness/task.h"
#include "tasks/classification.h"

namespace mgl::tasks {
namespace {

using harness::Config;
using harness::ConfigError;
using harness::Split;
namespace fs = std::filesystem;

class PathfinderTask final : public ClassificationTask {
 public:
  PathfinderTask(const Config& cfg, int64_t side)
      : ClassificationTask(cfg, 2, 1, -1, side * side), side_(side) {}

  static std::unique_ptr<harness::Task> create(const Config& cfg) {
    const fs::path root = task_root(
        cfg,
        "a difficulty folder with metadata/ and imgs/, e.g. lra_release/pathfinder32/curv_contour_length_14, "
        "or make one with `megalodon data pathfinder --out DIR`");
    const int64_t side = cfg.get_int("task.image_size");
    if (side < 1) throw ConfigError(cfg.origin("task.image_size"), "task.image_size", "must be >= 1");
    auto t = std::make_unique<PathfinderTask>(cfg, side);
    t->index_ = datasets::read_pathfinder_index(root, cfg.get_bool("task.skip_missing"));
    t->mean_ = cfg.get_float("task.mean");
    t->std_ = cfg.get_float("task.std");
    if (t->std_ <= 0) throw ConfigError(cfg.origin("task.std"), "task.std", "must be > 0");
    const int64_t N = static_cast<int64_t>(t->index_.items.size());
    const double fv = cfg.get_float("task.val_fraction"), ft = cfg.get_float("task.test_fraction");
    if (fv < 0 || ft < 0 || fv + ft >= 1)
      throw ConfigError(cfg.origin("task.val_fraction"), "task.val_fraction", "val_fraction + test_fraction must be in [0, 1)");
    const int64_t nv = static_cast<int64_t>(fv * N), nt = static_cast<int64_t>(ft * N), ntr = N - nv - nt;
    if (ntr < 1) throw ConfigError(cfg.origin("task.root"), "task.root", fmt::format("{} holds only {} images", root.string(), N));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.get_int("task.split_seed")));
    torch::Tensor perm = torch::randperm(N, gen, torch::kInt64);
    const int64_t* p = perm.data_ptr<int64_t>();
    auto take = [&](int64_t from, int64_t n, const char* key) {
      const int64_t lim = cfg.get_int(key);
      if (lim >= 0) n = std::min(n, lim);
      return std::vector<int64_t>(p + from, p + from + n);
    };
    t->split_[0] = take(0, ntr, "task.train_limit");
    t->split_[1] = take(ntr, nv, "task.val_limit");
    t->split_[2] = take(ntr + nv, nt, "task.test_limit");
    if (cfg.get_bool("task.preload")) {
      // Decode only the images the splits use, each once.
      t->pixels_ = torch::zeros({N, side, side}, torch::kUInt8);
      std::vector<char> loaded(N, 0);
      for (const auto& s : t->split_)
        for (int64_t i : s)
          if (!loaded[i]) {
            t->pixels_[i].copy_(t->decode(i));
            loaded[i] = 1;
          }
    }
    return t;
  }

  int64_t size(Split s) const override { return static_cast<int64_t>(split_[int(s)].size()); }

  harness::Batch make_batch(Split s, const std::vector<int64_t>& indices, uint64_t) const override {
    const auto& split = split_[int(s)];
    const int64_t B = static_cast<int64_t>(indices.size());
    torch::Tensor img = torch::empty({B, side_, side_}, torch::kUInt8);
    std::vector<int64_t> y;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t i = split.at(indices[b]);
      img[b].copy_(pixels_.defined() ? pixels_[i] : decode(i));
      y.push_back(index_.items[i].label);
    }
    harness::Batch out;
    out.inputs = img.to(torch::kFloat32).div_(255.0).sub_(mean_).div_(std_).reshape({B, side_ * side_});
    out.targets = torch::tensor(y, torch::kInt64);
    out.examples = B;
    out.tokens = out.inputs.numel();
    return out;
  }

  std::string describe() const override {
    int64_t pos = 0;
    for (int64_t i : split_[0]) pos += index_.items[i].label;
    return fmt::format("Pathfinder {}: {}×{} grey images as {}-pixel sequences; {} train ({:.1f}% connected) / {} val / "
                       "{} test of {} listed{}{}",
                       index_.root.string(), side_, side_, side_ * side_, size(Split::train),
                       split_[0].empty() ? 0.0 : 100.0 * pos / split_[0].size(), size(Split::val), size(Split::test),
                       index_.items.size(),
                       index_.skipped_empty ? fmt::format(", {} empty images dropped", index_.skipped_empty) : "",
                       index_.skipped_missing ? fmt::format(", {} missing images skipped", index_.skipped_missing) : "");
  }

 private:
  torch::Tensor decode(int64_t i) const {
    return datasets::load_pathfinder_image(index_.root / index_.items[i].image, side_);
  }

  int64_t side_;
  datasets::PathfinderIndex index_;
  std::vector<int64_t> split_[3];
  torch::Tensor pixels_;  // N×side×side when preloaded (rows of unused images stay 0)
  double mean_ = 0.5, std_ = 0.5;
};

void lra_pathfinder_schema(harness::Schema& s) {
  s.add_string("task.root", "data/lra_release/pathfinder32/curv_contour_length_14",
               "difficulty folder with metadata/ and imgs/");
  s.add_int("task.image_size", 32, "image side: 32 (Pathfinder) or 128 (Path-X); other sizes are an error", harness::Range::at_least(1));
  s.add_float("task.mean", 0.5, "pixel normalisation: (p/255 − mean)/std (Mega: 0.5, 0.5)");
  s.add_float("task.std", 0.5, "pixel normalisation std", harness::Range::above(0));
  s.add_float("task.val_fraction", 0.1, "validation share of the random split (S4, Mega: 0.1)", harness::Range::dropout());
  s.add_float("task.test_fraction", 0.1, "test share of the random split", harness::Range::dropout());
  s.add_int("task.split_seed", 42, "seed of the random split (S4, Mega: 42)", harness::Range::at_least(0));
  s.add_bool("task.preload", true, "decode all images up front (false: decode per batch, for Path-X)");
  s.add_bool("task.skip_missing", false, "skip listed images that do not exist instead of stopping");
  add_split_limits(s, "use only the first N training examples of the split",
                   "use only the first N validation examples", "use only the first N test examples");
}

MGL_REGISTER_TASK("lra_pathfinder", "LRA Pathfinder / Path-X: connected-contour detection from pixels (2 classes)",
                  lra_pathfinder_schema, [](const Config& cfg) { return PathfinderTask::create(cfg); });

}  // namespace
}  // namespace mgl::tasks
