// ImageNet-1K (paper-benchmarks §1.3, §2.6, §3.10): classification of RGB images cut into p×p
// patches (224² / 16² → 196 tokens), each patch flattened in (channel, row, column) order — the
// layout of a stride-p convolution's kernel, so the model's linear input projection is exactly ViT's
// patch embedding.
//
// Data: the real layout (train/<wnid>/*.JPEG; val/ flat + LOC_val_solution.csv +
// LOC_synset_mapping.txt, or val/<wnid>/), read by datasets/vision/imagenet.h; images are decoded
// with OpenCV in the loader threads (trainer.workers, trainer.prefetch), never on the training
// thread. Splits: train = the train folders (minus an optional per-class hold-out); val = the
// hold-out when task.holdout_per_class > 0, else the official validation set; test = the official
// validation set (ImageNet's test labels are not public; the paper's top-1 is on val).
//
// Training transform (DeiT / Mega recipe, each part configurable and off when its key is 0):
// RandomResizedCrop(scale [0.08, 1], ratio [3/4, 4/3], bicubic) → horizontal flip (p 0.5) →
// RandAugment rand-m9-mstd0.5-inc1 → normalise (ImageNet mean/std) → random erasing (p 0.25,
// per-pixel noise) → per batch Mixup 0.8 / CutMix 1.0 (switch 0.5) with label smoothing 0.1, giving
// soft targets. Evaluation: resize the shorter side to size/0.875, centre crop.
#include <fmt/format.h>
#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <set>

#include "datasets/vision/image_transforms.h"
#include "datasets/vision/imagenet.h"
#include "harness/task.h"
#include "tasks/classification.h"

namespace mgl::tasks {
namespace {

using harness::Config;
using harness::ConfigError;
using harness::Split;
namespace fs = std::filesystem;
namespace img = datasets::img;

struct Transforms {
  int64_t size = 224, patch = 16;
  double scale_min = 0.08, ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;
  double hflip = 0.5;
  img::RandAugmentOptions randaug;  // num_ops 0 = off
  double erasing = 0.25;
  img::MixupOptions mixup;
  double crop_pct = 0.875;
  img::Interp interp = img::Interp::bicubic;
  std::array<double, 3> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
};

class ImageNetTask final : public ClassificationTask {
 public:
  ImageNetTask(const Config& cfg, int64_t classes, const Transforms& t)
      : ClassificationTask(cfg, classes, 3 * t.patch * t.patch, -1, (t.size / t.patch) * (t.size / t.patch)),
        tf_(t),
        classes_(classes) {}

  static std::unique_ptr<harness::Task> create(const Config& cfg) {
    const fs::path root =
        task_root(cfg,
                  "the ImageNet-1K layout: train/<wnid>/*.JPEG and val/ with LOC_val_solution.csv, or make a "
                  "small one with `megalodon data imagenet-folder --out DIR`");
    Transforms t = read_transforms(cfg);
    // Parallelism comes from the loader threads (one batch each); OpenCV's own worker pool inside
    // every resize would only oversubscribe the cores.
    cv::setNumThreads(0);
    const std::string bad = cfg.get_string("task.bad_images");
    datasets::ImageNetIndex index = datasets::read_imagenet_index(
        root, bad == "skip" ? datasets::BadImages::skip : datasets::BadImages::error, cfg.get_bool("task.check_files"));
    const int64_t classes = static_cast<int64_t>(index.wnids.size());
    if (classes < 2)
      throw ConfigError(cfg.origin("task.root"), "task.root", fmt::format("{} has {} class(es); need >= 2", root.string(), classes));
    const int64_t want = cfg.get_int("task.num_classes");
    if (want > 0 && want != classes)
      throw ConfigError(cfg.origin("task.num_classes"), "task.num_classes",
                        fmt::format("is {} but {} has {} classes", want, root.string(), classes));
    auto task = std::make_unique<ImageNetTask>(cfg, classes, t);
    task->bad_mode_skip_ = bad == "skip";
    task->index_ = std::move(index);
    task->make_splits(cfg);
    return task;
  }

  int64_t size(Split s) const override { return static_cast<int64_t>(split_[int(s)].size()); }

  harness::Batch make_batch(Split s, const std::vector<int64_t>& indices, uint64_t seed) const override {
    const bool train = s == Split::train;
    const int64_t B = static_cast<int64_t>(indices.size()), S = tf_.size, p = tf_.patch, n = S / p;
    img::Rng rng(seed);
    torch::Tensor x = torch::empty({B, 3, S, S}, torch::kFloat32);
    torch::Tensor y = torch::empty({B}, torch::kInt64);
    for (int64_t b = 0; b < B; ++b) {
      const datasets::LabeledImage& item = *split_[int(s)].at(indices[b]);
      cv::Mat rgb = decode_or_substitute(item, split_[int(s)], indices[b]);
      cv::Mat out;
      if (train) {
        out = img::random_resized_crop(rgb, static_cast<int>(S), rng, tf_.scale_min, 1.0, tf_.ratio_min, tf_.ratio_max,
                                       tf_.interp);
        if (tf_.hflip > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < tf_.hflip) out = img::hflip(out);
        if (tf_.randaug.num_ops > 0) out = img::rand_augment(out, tf_.randaug, rng);
      } else {
        out = img::eval_transform(rgb, static_cast<int>(S), tf_.crop_pct, tf_.interp);
      }
      torch::Tensor chw = img::to_normalized_tensor(out, tf_.mean, tf_.std);
      if (train && tf_.erasing > 0) img::random_erasing_(chw, tf_.erasing, rng);
      x[b].copy_(chw);
      y[b] = item.label;
    }
    harness::Batch batch;
    if (train) {
      batch.targets = img::mixup_cutmix_(x, y, classes_, tf_.mixup, rng);
    } else {
      batch.targets = y;
    }
    // B×3×S×S → B×(n·n)×(3·p·p): patches in raster order, each flattened as (c, row, col).
    batch.inputs = x.view({B, 3, n, p, n, p}).permute({0, 2, 4, 1, 3, 5}).reshape({B, n * n, 3 * p * p});
    batch.examples = B;
    batch.tokens = B * n * n;
    return batch;
  }

  std::string describe() const override {
    const auto& m = tf_.mixup;
    std::string aug = fmt::format("RandomResizedCrop({:g}–1) flip {:g}", tf_.scale_min, tf_.hflip);
    if (tf_.randaug.num_ops > 0)
      aug += fmt::format(", RandAugment({}, m{:g}, std {:g})", tf_.randaug.num_ops, tf_.randaug.magnitude,
                         tf_.randaug.magnitude_std);
    if (tf_.erasing > 0) aug += fmt::format(", erasing {:g}", tf_.erasing);
    if (m.prob > 0 && (m.mixup_alpha > 0 || m.cutmix_alpha > 0))
      aug += fmt::format(", mixup {:g} / cutmix {:g}", m.mixup_alpha, m.cutmix_alpha);
    if (m.label_smoothing > 0) aug += fmt::format(", smoothing {:g}", m.label_smoothing);
    return fmt::format(
        "ImageNet layout {}: {} classes, {} train / {} val / {} test images (val: {}; test: the official validation "
        "set, labels from {}); {}² crops as {} patches of {}²; train aug: {}; eval: resize {:g}% + centre crop{}",
        index_.root.string(), classes_, size(Split::train), size(Split::val), size(Split::test),
        holdout_ > 0 ? fmt::format("{} per class held out of train", holdout_) : "the official validation set",
        index_.val_source, tf_.size, (tf_.size / tf_.patch) * (tf_.size / tf_.patch), tf_.patch, aug,
        100.0 / tf_.crop_pct,
        index_.skipped.empty() ? "" : fmt::format("; {} bad files skipped", index_.skipped.size()));
  }

 private:
  static Transforms read_transforms(const Config& cfg) {
    Transforms t;
    t.size = cfg.get_int("task.image_size");
    t.patch = cfg.get_int("task.patch_size");
    if (t.patch < 1 || t.size < t.patch || t.size % t.patch != 0)
      throw ConfigError(cfg.origin("task.patch_size"), "task.patch_size",
                        fmt::format("must divide task.image_size = {} (got {})", t.size, t.patch));
    t.scale_min = cfg.get_float("task.crop_scale_min");
    if (t.scale_min <= 0 || t.scale_min > 1)
      throw ConfigError(cfg.origin("task.crop_scale_min"), "task.crop_scale_min", "must be in (0, 1]");
    t.hflip = cfg.get_float("task.hflip");
    t.randaug.num_ops = static_cast<int>(cfg.get_int("task.randaug_ops"));
    t.randaug.magnitude = cfg.get_float("task.randaug_magnitude");
    t.randaug.magnitude_std = cfg.get_float("task.randaug_magnitude_std");
    if (t.randaug.num_ops < 0) throw ConfigError(cfg.origin("task.randaug_ops"), "task.randaug_ops", "must be >= 0");
    if (t.randaug.magnitude < 0 || t.randaug.magnitude > 10)
      throw ConfigError(cfg.origin("task.randaug_magnitude"), "task.randaug_magnitude", "must be in [0, 10]");
    t.erasing = cfg.get_float("task.random_erasing");
    t.mixup.mixup_alpha = cfg.get_float("task.mixup");
    t.mixup.cutmix_alpha = cfg.get_float("task.cutmix");
    t.mixup.prob = cfg.get_float("task.mixup_prob");
    t.mixup.switch_prob = cfg.get_float("task.mixup_switch_prob");
    t.mixup.label_smoothing = cfg.get_float("task.label_smoothing");
    for (const char* k : {"task.hflip", "task.random_erasing", "task.mixup_prob", "task.mixup_switch_prob"}) {
      const double v = cfg.get_float(k);
      if (v < 0 || v > 1) throw ConfigError(cfg.origin(k), k, fmt::format("must be a probability in [0, 1], got {}", v));
    }
    for (const char* k : {"task.mixup", "task.cutmix"})
      if (cfg.get_float(k) < 0) throw ConfigError(cfg.origin(k), k, "must be >= 0 (0 = off)");
    if (t.mixup.label_smoothing < 0 || t.mixup.label_smoothing >= 1)
      throw ConfigError(cfg.origin("task.label_smoothing"), "task.label_smoothing", "must be in [0, 1)");
    t.crop_pct = cfg.get_float("task.crop_pct");
    if (t.crop_pct <= 0 || t.crop_pct > 1) throw ConfigError(cfg.origin("task.crop_pct"), "task.crop_pct", "must be in (0, 1]");
    t.interp = cfg.get_string("task.interpolation") == "bilinear" ? img::Interp::bilinear : img::Interp::bicubic;
    const auto mean = cfg.get_floats("task.mean"), sd = cfg.get_floats("task.std");
    if (mean.size() != 3 || sd.size() != 3)
      throw ConfigError(cfg.origin("task.mean"), "task.mean", "task.mean and task.std need 3 values (R, G, B)");
    for (int c = 0; c < 3; ++c) {
      if (sd[c] <= 0) throw ConfigError(cfg.origin("task.std"), "task.std", "must be > 0");
      t.mean[c] = mean[c];
      t.std[c] = sd[c];
    }
    return t;
  }

  void make_splits(const Config& cfg) {
    holdout_ = cfg.get_int("task.holdout_per_class");
    if (holdout_ < 0) throw ConfigError(cfg.origin("task.holdout_per_class"), "task.holdout_per_class", "must be >= 0");
    std::vector<const datasets::LabeledImage*> train, held;
    if (holdout_ > 0) {
      // Per class, a seeded shuffle of its files; the first `holdout` go to validation.
      std::vector<std::vector<const datasets::LabeledImage*>> by_class(classes_);
      for (const auto& it : index_.train) by_class.at(it.label).push_back(&it);
      std::mt19937_64 rng(static_cast<uint64_t>(cfg.get_int("task.split_seed")));
      for (auto& files : by_class) {
        std::shuffle(files.begin(), files.end(), rng);
        if (static_cast<int64_t>(files.size()) <= holdout_)
          throw ConfigError(cfg.origin("task.holdout_per_class"), "task.holdout_per_class",
                            fmt::format("a class has only {} training images", files.size()));
        held.insert(held.end(), files.begin(), files.begin() + holdout_);
        train.insert(train.end(), files.begin() + holdout_, files.end());
      }
      auto by_path = [](auto* a, auto* b) { return a->path < b->path; };
      std::sort(train.begin(), train.end(), by_path);
      std::sort(held.begin(), held.end(), by_path);
    } else {
      for (const auto& it : index_.train) train.push_back(&it);
    }
    std::vector<const datasets::LabeledImage*> val;
    for (const auto& it : index_.val) val.push_back(&it);
    split_[0] = evenly_spaced(train, cfg.get_int("task.train_limit"));
    split_[1] = evenly_spaced(holdout_ > 0 ? held : val, cfg.get_int("task.val_limit"));
    split_[2] = evenly_spaced(val, cfg.get_int("task.test_limit"));
    if (split_[0].empty()) throw ConfigError(cfg.origin("task.root"), "task.root", "no training images");
  }

  // A file that fails to decode stops the run (task.bad_images = "error") or is reported once and
  // replaced by the next decodable image of the split (deterministically), so a sweep goes on.
  cv::Mat decode_or_substitute(const datasets::LabeledImage& item, const std::vector<const datasets::LabeledImage*>& split,
                               int64_t pos) const {
    try {
      return datasets::decode_image_rgb(item.path);
    } catch (const datasets::ImageError& e) {
      if (!bad_mode_skip_) throw;
      report_bad(e.what());
    }
    const int64_t n = static_cast<int64_t>(split.size());
    for (int64_t k = 1; k < std::min<int64_t>(n, 64); ++k) {
      const auto& other = *split[static_cast<size_t>((pos + k) % n)];
      try {
        return datasets::decode_image_rgb(other.path);
      } catch (const datasets::ImageError& e) {
        report_bad(e.what());
      }
    }
    throw std::runtime_error("imagenet: 64 consecutive images failed to decode (last: " + item.path.string() + ")");
  }
  void report_bad(const std::string& what) const {
    std::lock_guard<std::mutex> g(bad_mu_);
    if (bad_seen_.insert(what).second) std::fprintf(stderr, "imagenet: skipping an unreadable image: %s\n", what.c_str());
  }

  Transforms tf_;
  int64_t classes_;
  bool bad_mode_skip_ = false;
  int64_t holdout_ = 0;
  datasets::ImageNetIndex index_;
  std::vector<const datasets::LabeledImage*> split_[3];
  mutable std::mutex bad_mu_;
  mutable std::set<std::string> bad_seen_;
};

void imagenet_schema(harness::Schema& s) {
  s.add_string("task.root", "data/imagenet", "ImageNet-1K root with train/ and val/ (+ LOC_val_solution.csv)");
  s.add_int("task.num_classes", -1, "expected number of classes (1000 for ImageNet-1K); -1 = as found", harness::Range::at_least(1).or_value(-1));
  s.add_string("task.bad_images", "skip",
               "a missing, truncated or undecodable image: error (stop naming the file) or skip (report it and use "
               "another image)",
               {"error", "skip"});
  s.add_bool("task.check_files", true, "cheap per-file checks while indexing (magic bytes, JPEG end marker)");
  s.add_int("task.holdout_per_class", 0, "training images per class held out as the validation split; 0 = validate on val", harness::Range::at_least(0));
  s.add_int("task.split_seed", 0, "seed of the hold-out shuffle", harness::Range::at_least(0));
  s.add_int("task.image_size", 224, "crop side in pixels", harness::Range::at_least(1));
  s.add_int("task.patch_size", 16, "patch side; (image_size/patch_size)² tokens of 3·patch² values", harness::Range::at_least(1));
  s.add_float("task.crop_scale_min", 0.08, "RandomResizedCrop minimum area fraction (maximum 1)", harness::Range{0, 1, true, false, std::nullopt});
  s.add_float("task.hflip", 0.5, "horizontal-flip probability", harness::Range::fraction());
  s.add_int("task.randaug_ops", 2, "RandAugment operations per image; 0 = off", harness::Range::at_least(0));
  s.add_float("task.randaug_magnitude", 9, "RandAugment magnitude (0–10)", harness::Range::at_least(0));
  s.add_float("task.randaug_magnitude_std", 0.5, "RandAugment magnitude noise std (timm mstd)", harness::Range::at_least(0));
  s.add_float("task.random_erasing", 0.25, "random-erasing probability (per-pixel noise); 0 = off", harness::Range::fraction());
  s.add_float("task.mixup", 0.8, "Mixup Beta(α, α) parameter; 0 = off", harness::Range::at_least(0));
  s.add_float("task.cutmix", 1.0, "CutMix Beta(α, α) parameter; 0 = off", harness::Range::at_least(0));
  s.add_float("task.mixup_prob", 1.0, "probability of mixing a batch", harness::Range::fraction());
  s.add_float("task.mixup_switch_prob", 0.5, "probability of CutMix rather than Mixup when both are on", harness::Range::fraction());
  s.add_float("task.label_smoothing", 0.1, "label smoothing of the training targets", harness::Range::dropout());
  s.add_float("task.crop_pct", 0.875, "evaluation: resize the shorter side to image_size / crop_pct, centre crop", harness::Range{0, 1, true, false, std::nullopt});
  s.add_string("task.interpolation", "bicubic", "resize interpolation", {"bicubic", "bilinear"});
  s.add_floats("task.mean", {0.485, 0.456, 0.406}, "per-channel normalisation mean (R, G, B)");
  s.add_floats("task.std", {0.229, 0.224, 0.225}, "per-channel normalisation std (R, G, B)", harness::Range::above(0));
  add_split_limits(s, "use N evenly spaced training images", "use N evenly spaced validation images",
                   "use N evenly spaced test images");
}

MGL_REGISTER_TASK("imagenet", "ImageNet-1K image classification from 16×16 patches (image-folder layout)", imagenet_schema,
                  [](const Config& cfg) { return ImageNetTask::create(cfg); });

}  // namespace
}  // namespace mgl::tasks
