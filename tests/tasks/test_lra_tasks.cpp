// The LRA task adapters end to end: every shipped experiment file validates, and every LRA
// experiment (the paper setups, their -chunk variants and the small CPU runs) trains a few steps on
// small files written here in the real formats. Oracles: the readers' own formats (tests/datasets),
// padding invariance of the encoder, and the split rules stated in the adapters.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "datasets/cifar10.h"
#include "datasets/lra/listops.h"
#include "harness/config/toml.h"
#include "harness/experiment.h"
#include "harness/sweep.h"
#include "harness/task.h"
#include "harness/train/trainer.h"
#include "harness/util/files.h"
#include "support/files.h"
#ifdef MEGALODON_HAS_VISION
#include "datasets/vision/pathfinder.h"
#endif

namespace fs = std::filesystem;
using mgl::harness::Config;
using mgl::harness::load_experiment;
using mgl::harness::Split;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

const fs::path kExperiments = fs::path(MEGALODON_SOURCE_DIR) / "experiments";

// Small data sets in the real on-disk layouts, written once per test binary run.
struct LraData {
  TempDir dir{"lra-data"};
  fs::path listops, imdb, aan, cifar, pathfinder32, pathfinder128;

  LraData() {
    listops = dir / "listops";
    mgl::datasets::ListOpsGenOptions lo;
    lo.min_length = 5;
    lo.max_length = 60;
    lo.num_train = 24;
    lo.num_val = 8;
    lo.num_test = 8;
    lo.seed = 3;
    mgl::datasets::generate_listops(lo, listops);

    imdb = dir / "aclImdb";
    for (const char* split : {"train", "test"})
      for (int label = 0; label < 2; ++label)
        for (int i = 0; i < 6; ++i)
          write_text(imdb / split / (label ? "pos" : "neg") / fmt::format("{}_{}.txt", i, label ? 9 : 2),
                     fmt::format("{} review {} of the {} set.<br /><br />It was {}.", label ? "A fine" : "A dull", i,
                                 split, label ? "wonderful, moving and funny" : "boring and far too long"));

    aan = dir / "aan";
    for (const char* split : {"train", "eval", "test"}) {
      std::string tsv;
      for (int i = 0; i < 10; ++i)
        tsv += fmt::format("{}\tid{}a\tid{}b\tpaper {} about parsing with {} grammars\tcites work on {} models\n",
                           i % 2 ? "1.0" : "0.0", i, i, i, i % 2 ? "dependency" : "categorial", i % 3 ? "neural" : "graph");
      write_text(aan / fmt::format("new_aan_pairs.{}.tsv", split), tsv);
    }

    cifar = dir / "cifar-10-batches-bin";
    fs::create_directories(cifar);
    torch::manual_seed(5);
    for (int b = 1; b <= 6; ++b) {
      auto images = torch::randint(0, 256, {4, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
      auto labels = torch::randint(0, 10, {4}, torch::kInt64);
      mgl::datasets::write_cifar10_bin(cifar / (b <= 5 ? fmt::format("data_batch_{}.bin", b) : "test_batch.bin"), images,
                                       labels);
    }
#ifdef MEGALODON_HAS_VISION
    pathfinder32 = dir / "pathfinder32/curv_contour_length_14";
    mgl::datasets::generate_pathfinder(mgl::datasets::PathfinderGenOptions::pathfinder32(14), pathfinder32, 30, 7, 10);
    pathfinder128 = dir / "pathfinder128/curv_contour_length_14";
    mgl::datasets::generate_pathfinder(mgl::datasets::PathfinderGenOptions::path_x(), pathfinder128, 10, 7, 5);
#endif
  }
};

LraData& data() {
  static LraData d;
  return d;
}

// Overrides that make any experiment a few-step smoke run on the small data.
std::vector<std::string> smoke(const fs::path& run_dir) {
  return {"run.dir=" + run_dir.string(), "trainer.steps=2", "trainer.batch_size=2", "trainer.accumulate=1",
          "trainer.eval_every=0", "trainer.eval_batch_size=4", "trainer.log_every=1", "trainer.workers=1",
          "trainer.checkpoint_every=0", "trainer.progress=off", "schedule.warmup=1", "run.device=cpu"};
}

// The data override for an LRA experiment, by the task it names; "" when this build cannot run it.
std::vector<std::string> data_overrides(const Config& cfg) {
  const std::string task = cfg.get_string("task.name");
  auto& d = data();
  if (task == "lra_listops") return {"task.root=" + d.listops.string(), "task.pad_to=batch"};
  if (task == "lra_text") return {"task.root=" + d.imdb.string(), "task.pad_to=batch"};
  if (task == "lra_retrieval") return {"task.root=" + d.aan.string(), "task.pad_to=batch"};
  if (task == "pixel_sequence" && cfg.get_string("task.format") == "cifar10")
    return {"task.root=" + d.cifar.string(), "task.val_size=5", "task.partial_batches=true"};
  if (task == "pixel_sequence")  // Fashion-MNIST from the Debian package
    return {"task.train_limit=16", "task.val_limit=4", "task.test_limit=4"};
#ifdef MEGALODON_HAS_VISION
  if (task == "lra_pathfinder" && cfg.get_int("task.image_size") == 32) return {"task.root=" + d.pathfinder32.string()};
  // Path-X at full attention over 16,384 pixels is a GPU job; the smoke run uses chunks of 1,024.
  if (task == "lra_pathfinder") return {"task.root=" + d.pathfinder128.string(), "model.chunk_size=1024"};
#endif
  return {};
}

std::vector<fs::path> experiment_files(const fs::path& under) {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(under))
    if (e.path().extension() == ".toml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("every shipped experiment file validates, with all its sweep runs", "[tasks][experiments]") {
  const auto files = experiment_files(kExperiments);
  REQUIRE(files.size() >= 20);
  for (const auto& f : files) {
    INFO(f.string());
    auto plan = mgl::harness::plan_sweep(f, {});
    CHECK(!plan.runs.empty());
  }
  // The LRA suite: six tasks × {Megalodon, Megalodon-chunk}, five seeds, each its own experiment,
  // placed in the model × task table.
  auto plan = mgl::harness::plan_sweep(kExperiments / "lra/table.toml", {});
  REQUIRE(plan.variants.size() == 12);
  REQUIRE(plan.runs.size() == 60);
  for (const auto& v : plan.variants) {
    CHECK(fs::exists(v.experiment_file));
    CHECK((v.row == "Megalodon (ours)" || v.row == "Megalodon-chunk (ours)"));
    // The -chunk runs use chunks of 128, except Path-X (4,096); the others attend to everything.
    Config cfg = load_experiment(v.experiment_file, {});
    const int64_t chunk = cfg.get_int("model.chunk_size");
    if (v.name == "pathx-chunk") CHECK(chunk == 4096);
    else if (v.name.find("-chunk") != std::string::npos) CHECK(chunk == 128);
    else CHECK(chunk >= 1024);
    CHECK(cfg.get_string("model.norm") == "sequence");
  }
}

TEST_CASE("task configs hold only what differs from the adapter's schema", "[tasks][experiments]") {
  using namespace mgl::harness;
  const fs::path dir = fs::path(MEGALODON_SOURCE_DIR) / "configs" / "task";
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".toml") continue;
    ++files;
    INFO(e.path().string());
    const toml::table t = ConfigLoader::parse_file(e.path());
    const auto name = t["name"].value<std::string>();
    REQUIRE(name);
    Schema s;
    task_registry().at(*name).schema(s);
    for (const auto& [k, node] : t) {
      const std::string key = "task." + std::string(k.str());
      if (key == "task.name") continue;
      INFO(key);
      const KeySpec* spec = s.find(key);
      REQUIRE(spec != nullptr);
      const auto v = toml_read::to_value(node);
      REQUIRE(v);
      if (!spec->default_value) continue;
      // Numbers compare as numbers (1 and 1.0 restate the same default).
      auto num = [](const Value& x) -> std::optional<double> {
        if (auto p = std::get_if<int64_t>(&x)) return double(*p);
        if (auto p = std::get_if<double>(&x)) return *p;
        return std::nullopt;
      };
      const bool same = num(*v) && num(*spec->default_value) ? *num(*v) == *num(*spec->default_value)
                                                              : *v == *spec->default_value;
      CHECK_FALSE(same);  // a value equal to the schema's default says nothing: leave it out
    }
  }
  CHECK(files >= 10);
}

TEST_CASE("every LRA experiment trains a few steps on small files in the real formats", "[tasks][experiments][lra]") {
  auto& d = data();
  (void)d;
  TempDir runs("lra-runs");
  for (const auto& f : experiment_files(kExperiments / "lra")) {
    Config probe = mgl::harness::ConfigLoader::compose(f, {});
    if (!probe.has("task.name")) continue;  // a suite sweep file
    probe = load_experiment(f, {});
    auto extra = data_overrides(probe);
    if (extra.empty()) {
      WARN("skipped (this build has no OpenCV): " << f.string());
      continue;
    }
    const std::string name = fs::relative(f, kExperiments).replace_extension().string();
    DYNAMIC_SECTION(name) {
      auto o = smoke(runs / mgl::harness::slug(name));
      o.insert(o.end(), extra.begin(), extra.end());
      Config cfg = load_experiment(f, o);
      auto r = mgl::harness::train(cfg, {});
      CHECK(r.steps == 2);
      CHECK(r.metrics.count("test/accuracy") == 1);
      CHECK(std::isfinite(r.metrics.at("val/loss")));
    }
  }
}

TEST_CASE("token tasks: padding to the batch and to max_length give the same logits", "[tasks][lra]") {
  auto& d = data();
  TempDir runs("lra-pad");
  for (const char* exp : {"lra/listops_chunk", "lra/retrieval"}) {
    DYNAMIC_SECTION(exp) {
      std::vector<std::string> o = smoke(runs / "r");
      o.push_back(std::string("task.root=") + (std::string(exp) == "lra/listops_chunk" ? d.listops : d.aan).string());
      o.push_back("task.max_length=300");
      o.push_back("model.chunk_size=64");
      auto batch_cfg = o, max_cfg = o;
      batch_cfg.push_back("task.pad_to=batch");
      max_cfg.push_back("task.pad_to=max_length");
      auto entry = [&](const std::vector<std::string>& ov) {
        Config cfg = load_experiment(kExperiments / (std::string(exp) + ".toml"), ov);
        return mgl::harness::task_registry().at(cfg.get_string("task.name"), "task.name", "").create(cfg);
      };
      auto a = entry(batch_cfg), b = entry(max_cfg);
      torch::manual_seed(1);
      a->build_model();
      torch::manual_seed(1);
      b->build_model();
      a->model()->eval();
      b->model()->eval();
      std::vector<int64_t> idx{0, 1, 2, 3};
      auto ba = a->make_batch(Split::val, idx, 0), bb = b->make_batch(Split::val, idx, 0);
      CHECK(bb.inputs.size(1) == 300);
      CHECK(ba.inputs.size(1) < 300);
      torch::NoGradGuard g;
      auto la = a->step(ba, false), lb = b->step(bb, false);
      CHECK(std::abs(la.loss.item<double>() - lb.loss.item<double>()) < 1e-5);
      if (std::string(exp) == "lra/retrieval") CHECK(ba.extra.size() == 2);
    }
  }
}

TEST_CASE("LRA Text: the test set is the validation set unless a hold-out is asked for", "[tasks][lra]") {
  auto& d = data();
  TempDir runs("lra-text");
  auto make = [&](std::vector<std::string> extra) {
    auto o = smoke(runs / "r");
    o.push_back("task.root=" + d.imdb.string());
    o.insert(o.end(), extra.begin(), extra.end());
    Config cfg = load_experiment(kExperiments / "lra/text.toml", o);
    return mgl::harness::task_registry().at("lra_text", "task.name", "").create(cfg);
  };
  auto t = make({});
  CHECK(t->size(Split::train) == 12);
  CHECK(t->size(Split::val) == 12);
  CHECK(t->size(Split::test) == 12);
  CHECK(t->describe().find("= the test set") != std::string::npos);
  auto vb = t->make_batch(Split::val, {0, 5, 11}, 0), tb = t->make_batch(Split::test, {0, 5, 11}, 0);
  CHECK(torch::equal(vb.inputs, tb.inputs));
  auto h = make({"task.val_from=train", "task.val_size=4"});
  CHECK(h->size(Split::train) == 8);
  CHECK(h->size(Split::val) == 4);
  // Bytes + 1: "A" (65) is id 66.
  auto b = h->make_batch(Split::test, {0}, 0);
  CHECK(b.inputs[0][0].item<int64_t>() == 'A' + 1);
  CHECK_THROWS_WITH(make({"task.root=" + (d.dir / "nope").string()}), Catch::Contains("task.root"));
}

TEST_CASE("LRA Image: CIFAR-10 in grey with Mega's split and normalisation", "[tasks][lra]") {
  auto& d = data();
  TempDir runs("lra-image");
  auto o = smoke(runs / "r");
  o.push_back("task.root=" + d.cifar.string());
  o.push_back("task.val_size=5");
  o.push_back("task.partial_batches=true");
  Config cfg = load_experiment(kExperiments / "lra/image.toml", o);
  auto t = mgl::harness::task_registry().at("pixel_sequence", "task.name", "").create(cfg);
  CHECK(t->size(Split::train) == 15);
  CHECK(t->size(Split::val) == 5);
  CHECK(t->size(Split::test) == 4);
  // Validation = the last 5 of randperm(20) seeded 42 (random_split's draw), test = test_batch.bin.
  auto train = mgl::datasets::read_cifar10_bin(mgl::datasets::cifar10_files(d.cifar, true));
  auto gray = mgl::datasets::cifar10_to_gray(train.images, mgl::datasets::GrayRule::pil);
  auto perm = torch::randperm(20, at::make_generator<at::CPUGeneratorImpl>(42), torch::kInt64);
  auto b = t->make_batch(Split::val, {0, 4}, 0);
  for (int k = 0; k < 2; ++k) {
    const int64_t i = perm[15 + (k ? 4 : 0)].item<int64_t>();
    auto expect = (gray[i].to(torch::kFloat32).reshape({-1}) / 255.0 - 0.48) / 0.24;
    CHECK(torch::allclose(b.inputs[k], expect, 1e-5, 1e-5));
    CHECK(b.targets[k].item<int64_t>() == train.labels[i].item<int64_t>());
  }
  CHECK(b.inputs.size(1) == 1024);
}

#ifdef MEGALODON_HAS_VISION
TEST_CASE("LRA Pathfinder: the S4/Mega 80/10/10 split and the metadata labels", "[tasks][lra]") {
  auto& d = data();
  TempDir runs("lra-pf");
  auto o = smoke(runs / "r");
  o.push_back("task.root=" + d.pathfinder32.string());
  Config cfg = load_experiment(kExperiments / "lra/pathfinder.toml", o);
  auto t = mgl::harness::task_registry().at("lra_pathfinder", "task.name", "").create(cfg);
  CHECK(t->size(Split::val) == 3);   // ⌊0.1 · 30⌋
  CHECK(t->size(Split::test) == 3);
  CHECK(t->size(Split::train) == 24);
  auto index = mgl::datasets::read_pathfinder_index(d.pathfinder32);
  auto perm = torch::randperm(30, at::make_generator<at::CPUGeneratorImpl>(42), torch::kInt64);
  auto b = t->make_batch(Split::test, {0, 1, 2}, 0);
  for (int k = 0; k < 3; ++k) {
    const int64_t i = perm[27 + k].item<int64_t>();
    CHECK(b.targets[k].item<int64_t>() == index.items[i].label);
    auto img = mgl::datasets::load_pathfinder_image(index.root / index.items[i].image, 32);
    CHECK(torch::allclose(b.inputs[k], (img.to(torch::kFloat32).reshape({-1}) / 255.0 - 0.5) / 0.5));
  }
  // Decoding per batch (Path-X's mode) gives the same batch.
  o.push_back("task.preload=false");
  auto lazy = mgl::harness::task_registry().at("lra_pathfinder", "task.name", "").create(load_experiment(kExperiments / "lra/pathfinder.toml", o));
  CHECK(torch::equal(lazy->make_batch(Split::test, {0, 1, 2}, 0).inputs, b.inputs));
  // A wrong image size is an error naming the file: when the batch is decoded (lazy) ...
  o.push_back("task.image_size=128");
  auto wrong = mgl::harness::task_registry().at("lra_pathfinder", "task.name", "").create(load_experiment(kExperiments / "lra/pathfinder.toml", o));
  CHECK_THROWS_WITH(wrong->make_batch(Split::test, {0}, 0), Catch::Contains("sample_"));
  // ... or up front (preload).
  o.push_back("task.preload=true");
  CHECK_THROWS_WITH(mgl::harness::task_registry().at("lra_pathfinder", "task.name", "").create(load_experiment(kExperiments / "lra/pathfinder.toml", o)),
                    Catch::Contains("sample_"));
}
#endif

TEST_CASE("LRA ListOps: an unknown token is an error naming file and line, or a counted skip", "[tasks][lra]") {
  TempDir d("listops-unknown");
  const fs::path root = d / "listops";
  fs::copy(data().listops, root);
  // Line 3 of the training file gets tokens outside the vocabulary; the rest stays valid.
  std::ifstream in(root / "basic_train.tsv");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t third = text.find('\n', text.find('\n', text.find('\n') + 1) + 1);
  text.insert(third + 1, "( ( [FOO hello ) 42 ) ]\t3\n");
  write_text(root / "basic_train.tsv", text);
  TempDir runs("listops-unknown-runs");
  auto o = smoke(runs / "r");
  o.push_back("task.root=" + root.string());
  Config cfg = load_experiment(kExperiments / "lra/listops.toml", o);
  auto make = [&](const Config& c) { return mgl::harness::task_registry().at("lra_listops", "task.name", "").create(c); };
  CHECK_THROWS_WITH(make(cfg), Catch::Contains("basic_train.tsv:4:") && Catch::Contains("unknown token '[FOO'") &&
                                   Catch::Contains("3 unknown"));
  o.push_back("task.bad_lines=skip");
  auto t = make(load_experiment(kExperiments / "lra/listops.toml", o));
  CHECK(t->size(Split::train) == 24);  // the generated lines, without the bad one
  CHECK_THAT(t->describe(), Catch::Contains("1 lines with 3 unknown tokens skipped"));
}

TEST_CASE("LRA Image: a CIFAR-10 batch of the wrong size is an error unless partial data is allowed", "[tasks][lra]") {
  TempDir d("cifar-cut");
  const fs::path root = d / "cifar-10-batches-bin";
  fs::create_directories(root);
  for (int b = 1; b <= 6; ++b)
    mgl::datasets::write_cifar10_bin(root / (b <= 5 ? fmt::format("data_batch_{}.bin", b) : "test_batch.bin"),
                                     torch::zeros({b == 3 ? 2 : 3, 3, 32, 32}, torch::kUInt8),
                                     torch::zeros({b == 3 ? 2 : 3}, torch::kInt64));
  TempDir runs("cifar-cut-runs");
  auto o = smoke(runs / "r");
  o.push_back("task.root=" + root.string());
  o.push_back("task.val_size=2");
  auto make = [&](const std::vector<std::string>& ov) {
    return mgl::harness::task_registry().at("pixel_sequence", "task.name", "").create(
        load_experiment(kExperiments / "lra/image.toml", ov));
  };
  CHECK_THROWS_WITH(make(o), Catch::Contains("data_batch_1.bin: 3 records, expected 10000") &&
                                 Catch::Contains("task.partial_batches"));
  o.push_back("task.partial_batches=true");
  CHECK(make(o)->size(Split::train) == 14 - 2);
}
