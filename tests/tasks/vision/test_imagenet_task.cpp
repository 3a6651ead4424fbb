// The ImageNet adapter end to end on a tiny tree written here in the real layout (train/<wnid>/ JPEGs,
// a flat val/ labelled by LOC_val_solution.csv + LOC_synset_mapping.txt): split sizes and labels,
// the patch layout of a known image, the evaluation transform, seeded training batches with soft
// targets, the per-class hold-out, bad files at indexing and at decoding time, and every ImageNet
// experiment training a step.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "harness/config/config.h"
#include "harness/experiment.h"
#include "harness/task.h"
#include "harness/train/trainer.h"
#include "harness/util/files.h"
#include "support/files.h"

namespace fs = std::filesystem;
using mgl::harness::Config;
using mgl::harness::load_experiment;
using mgl::harness::Split;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

const fs::path kExperiments = fs::path(MEGALODON_SOURCE_DIR) / "experiments";

// Image k of class c: 48×40, left half one colour, right half another (both depend on c and k).
cv::Mat picture(int c, int k) {
  cv::Mat m(40, 48, CV_8UC3);
  m(cv::Rect(0, 0, 24, 40)).setTo(cv::Scalar(40 * k % 256, 80 * c, 255));  // B, G, R
  m(cv::Rect(24, 0, 24, 40)).setTo(cv::Scalar(255, 30 * c, 20 * k % 256));
  return m;
}

struct ImageData {
  TempDir dir{"imagenet-task"};
  fs::path root;
  ImageData() {
    root = dir / "imagenet";
    std::string mapping, solution = "ImageId,PredictionString\n";
    int v = 1;
    for (int c = 0; c < 3; ++c) {
      const std::string w = fmt::format("n0000000{}", c + 1);
      mapping += w + " class number " + std::to_string(c) + "\n";
      fs::create_directories(root / "train" / w);
      for (int k = 0; k < 8; ++k) cv::imwrite((root / "train" / w / fmt::format("{}_{}.JPEG", w, k)).string(), picture(c, k));
      fs::create_directories(root / "val");
      for (int k = 0; k < 2; ++k, ++v) {
        const std::string id = fmt::format("ILSVRC2012_val_{:08d}", v);
        cv::imwrite((root / "val" / (id + ".JPEG")).string(), picture(c, 10 + k));
        solution += fmt::format("{},{} 1 2 30 40\n", id, w);
      }
    }
    write_text(root / "LOC_synset_mapping.txt", mapping);
    write_text(root / "LOC_val_solution.csv", solution);
  }
};

ImageData& data() {
  static ImageData d;
  return d;
}

std::vector<std::string> base(const fs::path& run_dir, const fs::path& root = data().root) {
  return {"run.dir=" + run_dir.string(), "task.root=" + root.string(), "run.device=cpu", "trainer.progress=off",
          "task.num_classes=3"};
}

std::unique_ptr<mgl::harness::Task> make_task(std::vector<std::string> o) {
  o.push_back("task.image_size=16");
  o.push_back("task.patch_size=4");
  Config cfg = load_experiment(kExperiments / "imagenet/small/fmnist_folder.toml", o);
  return mgl::harness::task_registry().at("imagenet", "task.name", "").create(cfg);
}

std::vector<int64_t> all(const mgl::harness::Task& t, Split s) {
  std::vector<int64_t> idx(t.size(s));
  std::iota(idx.begin(), idx.end(), 0);
  return idx;
}

}  // namespace

TEST_CASE("ImageNet task: splits, labels from the CSV, the patch layout and the evaluation transform",
          "[tasks][imagenet-task]") {
  TempDir runs("imagenet-runs");
  auto t = make_task(base(runs / "r"));
  REQUIRE(t->size(Split::train) == 24);
  REQUIRE(t->size(Split::val) == 6);
  REQUIRE(t->size(Split::test) == 6);
  CHECK_THAT(t->describe(), Catch::Contains("LOC_val_solution.csv") && Catch::Contains("16² crops as 16 patches of 4²"));
  auto b = t->make_batch(Split::test, all(*t, Split::test), 0);
  REQUIRE(b.inputs.sizes() == torch::IntArrayRef({6, 16, 48}));
  REQUIRE(b.targets.dim() == 1);
  CHECK(b.targets.equal(torch::tensor({0, 0, 1, 1, 2, 2}, torch::kInt64)));
  // Val image 1 is picture(0, 10): left half RGB (255, 0, 400 % 256 = 144), right half (20·10 % 256, 0, 255).
  // The eval transform resizes 48×40 to about 22×18 (shorter side round(16/0.875) = 18) and crops
  // the centre 16×16: patch columns 0–1 lie in the left half, 2–3 in the right.
  const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
  const double left[3] = {255, 0, 144}, right[3] = {200, 0, 255};
  auto patch = [&](int64_t p) { return b.inputs[0][p]; };  // 48 values: R 4×4, G 4×4, B 4×4
  for (int c = 0; c < 3; ++c) {
    const double l = (left[c] / 255.0 - mean[c]) / sd[c], r = (right[c] / 255.0 - mean[c]) / sd[c];
    // JPEG chroma subsampling blurs colours a little: compare the mean of each channel block.
    CHECK(patch(0).narrow(0, 16 * c, 16).mean().item<double>() == Approx(l).margin(0.15));
    CHECK(patch(3).narrow(0, 16 * c, 16).mean().item<double>() == Approx(r).margin(0.15));
    CHECK(patch(12).narrow(0, 16 * c, 16).mean().item<double>() == Approx(l).margin(0.15));  // row 3, column 0
    CHECK(patch(15).narrow(0, 16 * c, 16).mean().item<double>() == Approx(r).margin(0.15));
  }
  // Evaluation is deterministic (no seed dependence).
  CHECK(torch::equal(b.inputs, t->make_batch(Split::test, all(*t, Split::test), 99).inputs));
}

TEST_CASE("ImageNet task: seeded training batches with soft targets", "[tasks][imagenet-task]") {
  TempDir runs("imagenet-runs");
  auto o = base(runs / "r");
  o.push_back("task.mixup_prob=1.0");
  o.push_back("task.label_smoothing=0.1");
  auto t = make_task(o);
  const std::vector<int64_t> idx{0, 5, 9, 17};
  auto a = t->make_batch(Split::train, idx, 7), a2 = t->make_batch(Split::train, idx, 7), c = t->make_batch(Split::train, idx, 8);
  CHECK(torch::equal(a.inputs, a2.inputs));
  CHECK(torch::equal(a.targets, a2.targets));
  CHECK_FALSE(torch::equal(a.inputs, c.inputs));
  REQUIRE(a.targets.sizes() == torch::IntArrayRef({4, 3}));
  CHECK((a.targets.sum(1) - 1).abs().max().item<double>() < 1e-6);
  CHECK(a.targets.min().item<double>() >= 0.1 / 3 - 1e-6);
  CHECK(std::isfinite(a.inputs.abs().max().item<double>()));
  // Without mixing or smoothing the targets are the one-hot labels.
  auto o2 = base(runs / "r2");
  for (const char* s : {"task.mixup_prob=0", "task.label_smoothing=0"}) o2.push_back(s);
  auto plain = make_task(o2);
  auto p = plain->make_batch(Split::train, idx, 7);
  CHECK(p.targets.argmax(1).equal(torch::tensor({0, 0, 1, 2}, torch::kInt64)));
  CHECK(std::get<0>(p.targets.max(1)).eq(1).all().item<bool>());
}

TEST_CASE("ImageNet task: a per-class hold-out validates on training images", "[tasks][imagenet-task]") {
  TempDir runs("imagenet-runs");
  auto o = base(runs / "r");
  o.push_back("task.holdout_per_class=2");
  auto t = make_task(o);
  CHECK(t->size(Split::train) == 18);
  CHECK(t->size(Split::val) == 6);
  CHECK(t->size(Split::test) == 6);
  auto v = t->make_batch(Split::val, all(*t, Split::val), 0).targets;
  CHECK(v.bincount().equal(torch::tensor({2, 2, 2}, torch::kInt64)));
  o.back() = "task.holdout_per_class=8";
  CHECK_THROWS_WITH(make_task(o), Catch::Contains("task.holdout_per_class"));
}

TEST_CASE("ImageNet task: a corrupt image stops the run or is skipped, at indexing and at decoding",
          "[tasks][imagenet-task]") {
  TempDir copy("imagenet-bad");
  const fs::path root = copy / "imagenet";
  fs::copy(data().root, root, fs::copy_options::recursive);
  // Random bytes with a JPEG start marker but no end marker: caught by the index checks.
  write_text(root / "train/n00000002/n00000002_99.JPEG", std::string("\xFF\xD8\xFF\xE0", 4) + "garbage, not an image");
  TempDir runs("imagenet-bad-runs");
  auto o = base(runs / "r", root);
  o.push_back("task.bad_images=error");
  CHECK_THROWS_WITH(make_task(o), Catch::Contains("n00000002_99.JPEG"));
  o.back() = "task.bad_images=skip";
  auto t = make_task(o);
  CHECK_THAT(t->describe(), Catch::Contains("1 bad files skipped"));
  CHECK(t->size(Split::train) == 24);
  // Without the index checks the file is listed; decoding it fails in the loader: an error naming
  // it, or (skip) another image takes its place.
  auto o2 = base(runs / "r2", root);
  for (const char* s : {"task.check_files=false", "task.bad_images=error"}) o2.push_back(s);
  auto t2 = make_task(o2);
  REQUIRE(t2->size(Split::train) == 25);
  std::vector<int64_t> idx(25);
  std::iota(idx.begin(), idx.end(), 0);
  CHECK_NOTHROW(t2->make_batch(Split::val, {0}, 0));  // the validation images are fine
  CHECK_THROWS_WITH(t2->make_batch(Split::train, idx, 0), Catch::Contains("n00000002_99.JPEG"));
  o2.back() = "task.bad_images=skip";
  auto t3 = make_task(o2);
  auto b = t3->make_batch(Split::train, idx, 0);
  CHECK(b.examples == 25);
}

TEST_CASE("every ImageNet experiment trains a step on a tiny tree", "[tasks][experiments][imagenet-task]") {
  TempDir runs("imagenet-exp");
  struct Case {
    const char* experiment;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases = {
      {"imagenet/small/fmnist_folder", {"task.image_size=16", "task.patch_size=4"}},
      {"imagenet/small/fmnist_folder", {"task.image_size=16", "task.patch_size=4", "model=deit_small_cpu"}},
      // The paper-size configurations at one block (full width, 224² crops, 196 patches of 16²).
      {"imagenet/megalodon_90m", {"model.num_layers=1", "trainer.precision=fp32", "trainer.accumulate=1"}},
      {"imagenet/deit_b", {"model.num_layers=1", "trainer.precision=fp32", "trainer.accumulate=1"}},
  };
  int i = 0;
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.experiment << " " << i++) {
      auto o = base(runs / fmt::format("r{}", i));
      for (const char* s : {"trainer.steps=1", "trainer.batch_size=2", "trainer.eval_every=0", "trainer.eval_batch_size=3",
                            "trainer.log_every=1", "trainer.workers=1", "trainer.checkpoint_every=0", "schedule.warmup=1",
                            "task.val_limit=3", "task.test_limit=3"})
        o.push_back(s);
      o.insert(o.end(), c.extra.begin(), c.extra.end());
      Config cfg = load_experiment(kExperiments / (std::string(c.experiment) + ".toml"), o);
      auto r = mgl::harness::train(cfg, {});
      CHECK(r.steps == 1);
      CHECK(std::isfinite(r.metrics.at("val/loss")));
      CHECK(r.metrics.count("test/accuracy") == 1);
    }
  }
}
