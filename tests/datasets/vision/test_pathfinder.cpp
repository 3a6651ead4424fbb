// Pathfinder / Path-X: index reader and image decoder (oracle: folders and PNGs written by hand in
// the released layout, paper-benchmarks §3.6) and the snakes2 generator (oracles: LRA's parameter
// table §4.2, paddles rendered by the reference's steps under Pillow 9.4, the generator's own trace
// of where each target snake lies, and a re-read of its output).
// LibTorch here is built with glog, whose CHECK macro replaces Catch's when torch is included
// after catch.hpp (failures would abort instead of being reported). The CMake build's precompiled
// header puts torch first anyway; including it first here keeps a build without that header right.
#include "datasets/vision/pathfinder.h"
#undef CHECK
#include <catch2/catch.hpp>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "support/files.h"

using mgl::datasets::PathfinderGenOptions;
using mgl::test::TempDir;
using mgl::test::write_text;
namespace fs = std::filesystem;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_png(const fs::path& p, int side, int value) {
  fs::create_directories(p.parent_path());
  cv::Mat m(side, side, CV_8U, cv::Scalar(value));
  REQUIRE(cv::imwrite(p.string(), m));
}

// One metadata line with all 11 fields, as the generator writes them.
std::string meta_line(int b, int n, int label) {
  return "imgs/" + std::to_string(b) + " sample_" + std::to_string(n) + ".png " + std::to_string(n) + " " +
         std::to_string(label) + " 1.0 14 4 2 0.5 1 1\n";
}

// 8-connected component labels of `m > threshold` for an H×W float tensor.
cv::Mat components(const torch::Tensor& m, float threshold) {
  const int n = static_cast<int>(m.size(0));
  cv::Mat bin(n, n, CV_8U);
  auto a = m.accessor<float, 2>();
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) bin.at<uint8_t>(y, x) = a[y][x] > threshold ? 1 : 0;
  cv::Mat labels;
  cv::connectedComponents(bin, labels, 8, CV_32S);
  return labels;
}

int at(const cv::Mat& labels, std::array<int64_t, 2> p) { return labels.at<int>(int(p[0]), int(p[1])); }

}  // namespace

TEST_CASE("Pathfinder index: metadata files in numeric order, field 3 is the label, empty images skipped",
          "[pathfinder]") {
  TempDir d("pf-index");
  // Batches 0, 1, 2, 10: lexical order would put 10 before 2.
  const std::vector<std::pair<int, std::vector<int>>> batches = {
      {10, {1, 0}}, {2, {0, 1}}, {0, {1, 1}}, {1, {0, 0}}};
  for (const auto& [b, labels] : batches) {
    std::string text;
    for (size_t n = 0; n < labels.size(); ++n) {
      write_png(d / ("imgs/" + std::to_string(b) + "/sample_" + std::to_string(n) + ".png"), 4,
                10 * b + int(n));
      text += meta_line(b, int(n), labels[n]);
    }
    if (b == 2) text += "\n";  // a blank line is ignored
    write_text(d / ("metadata/" + std::to_string(b) + ".npy"), text);
  }
  // The known zero-length image: listed, present, empty.
  std::ofstream(d / "imgs/2/sample_1.png").close();
  write_text(d / "metadata/notes.txt", "not metadata\n");
  write_text(d / "metadata/3.npy.tmp", "a half-written file is not read\n");

  const auto index = mgl::datasets::read_pathfinder_index(d.path());
  CHECK(index.root == d.path());
  CHECK(index.skipped_empty == 1);
  CHECK(index.skipped_missing == 0);
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"imgs/0/sample_0.png", 1}, {"imgs/0/sample_1.png", 1}, {"imgs/1/sample_0.png", 0},
      {"imgs/1/sample_1.png", 0}, {"imgs/2/sample_0.png", 0}, {"imgs/10/sample_0.png", 1},
      {"imgs/10/sample_1.png", 0}};
  REQUIRE(index.items.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(index.items[i].image == expected[i].first);
    CHECK(index.items[i].label == expected[i].second);
  }
  // The image of an item decodes from root / item.image.
  CHECK(mgl::datasets::load_pathfinder_image(d / index.items[5].image, 4)[0][0].item<int>() == 100);
}

TEST_CASE("Pathfinder index: errors name the file and line, or the folder", "[pathfinder]") {
  TempDir d("pf-index-err");
  write_png(d / "imgs/0/sample_0.png", 4, 0);

  std::string e = error_of([&] { mgl::datasets::read_pathfinder_index(d.path()); });
  CHECK_THAT(e, Catch::Contains(d.path().string()) && Catch::Contains("metadata"));

  fs::create_directories(d / "metadata");
  e = error_of([&] { mgl::datasets::read_pathfinder_index(d.path()); });
  CHECK_THAT(e, Catch::Contains("metadata") && Catch::Contains("no <b>.npy"));

  write_text(d / "metadata/0.npy", meta_line(0, 0, 1) + "imgs/0 sample_1.png 1\n");
  e = error_of([&] { mgl::datasets::read_pathfinder_index(d.path()); });
  CHECK_THAT(e, Catch::Contains((d / "metadata" / "0.npy").string() + ":2") && Catch::Contains("4"));

  write_text(d / "metadata/0.npy", "imgs/0 sample_0.png 0 2 1.0 14 4 2 0.5 1 1\n");
  e = error_of([&] { mgl::datasets::read_pathfinder_index(d.path()); });
  CHECK_THAT(e, Catch::Contains("0.npy:1") && Catch::Contains("label"));

  write_text(d / "metadata/x1.npy", meta_line(0, 0, 1));
  e = error_of([&] { mgl::datasets::read_pathfinder_index(d.path()); });
  CHECK_THAT(e, Catch::Contains("x1.npy"));
  fs::remove(d / "metadata/x1.npy");

  // A listed image that does not exist: an error naming it, or counted with skip_missing.
  write_text(d / "metadata/0.npy", meta_line(0, 0, 1) + meta_line(0, 7, 0));
  e = error_of([&] { mgl::datasets::read_pathfinder_index(d.path()); });
  CHECK_THAT(e, Catch::Contains("0.npy:2") && Catch::Contains("sample_7.png"));
  const auto index = mgl::datasets::read_pathfinder_index(d.path(), /*skip_missing=*/true);
  CHECK(index.items.size() == 1);
  CHECK(index.skipped_missing == 1);
}

TEST_CASE("Pathfinder images decode as H×W uint8, bad files give errors naming them", "[pathfinder]") {
  TempDir d("pf-png");
  cv::Mat img(32, 32, CV_8U);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) img.at<uint8_t>(y, x) = uint8_t((y * 32 + x) % 251);
  REQUIRE(cv::imwrite((d / "a.png").string(), img));
  torch::Tensor t = mgl::datasets::load_pathfinder_image(d / "a.png", 32);
  REQUIRE(t.sizes() == torch::IntArrayRef({32, 32}));
  CHECK(t.scalar_type() == torch::kUInt8);
  CHECK(t[3][5].item<int>() == (3 * 32 + 5) % 251);
  CHECK(t[31][31].item<int>() == (31 * 32 + 31) % 251);

  std::string e = error_of([&] { mgl::datasets::load_pathfinder_image(d / "a.png", 128); });
  CHECK_THAT(e, Catch::Contains("a.png") && Catch::Contains("128"));

  // Bytes that no decoder accepts (a truncated PNG fails the same way, but libpng prints to stderr).
  write_text(d / "corrupt.png", "this is not a PNG file");
  e = error_of([&] { mgl::datasets::load_pathfinder_image(d / "corrupt.png"); });
  CHECK_THAT(e, Catch::Contains("corrupt.png") && Catch::Contains("decode"));

  e = error_of([&] { mgl::datasets::load_pathfinder_image(d / "missing.png"); });
  CHECK_THAT(e, Catch::Contains("missing.png"));
}

TEST_CASE("Pathfinder presets carry LRA's parameters (§4.2 table)", "[pathfinder]") {
  const auto p = PathfinderGenOptions::pathfinder32();
  CHECK(p.window == 32);
  CHECK(p.padding == 1);
  CHECK(p.antialias_scale == 2);
  CHECK(p.paddle_length == 2);
  CHECK(p.paddle_thickness == 0.5);
  CHECK(p.paddle_margin == std::vector<int64_t>{1});
  CHECK(p.marker_radius == 1.5);
  CHECK(p.seed_distance == 7);
  CHECK(p.continuity == 1.0);
  CHECK(p.contour_length == 14);
  CHECK(p.distractor_length == 4);      // 14 // 3
  CHECK(p.num_distractor_snakes == 5);  // 20 // 4
  CHECK(p.snake_contrast == std::vector<double>{2.0});
  CHECK(p.paddle_contrast == std::vector<double>{0.75});
  CHECK_FALSE(p.use_single_paddles);
  CHECK(PathfinderGenOptions::pathfinder32(9).distractor_length == 3);
  CHECK(PathfinderGenOptions::pathfinder32(9).num_distractor_snakes == 6);
  CHECK(PathfinderGenOptions::pathfinder32(6).num_distractor_snakes == 10);

  const auto x = PathfinderGenOptions::path_x();
  CHECK(x.window == 128);
  CHECK(x.padding == 1);
  CHECK(x.antialias_scale == 2);
  CHECK(x.paddle_length == 5);
  CHECK(x.paddle_thickness == 1.5);
  CHECK(x.paddle_margin == std::vector<int64_t>{2, 3});
  CHECK(x.marker_radius == 3);
  CHECK(x.seed_distance == 20);
  CHECK(x.continuity == 1.8);
  CHECK(x.contour_length == 14);
  CHECK(x.distractor_length == 4);      // 14 / 3 in Python 2
  CHECK(x.num_distractor_snakes == 8);  // 35 / 4 in Python 2
  CHECK(x.snake_contrast == std::vector<double>{0.9});
  CHECK(x.paddle_contrast == std::vector<double>{1.0});
}

TEST_CASE("Pathfinder paddles match the reference's PIL rendering", "[pathfinder]") {
  // Oracle: the reference's draw_line_n_mask steps run with Pillow 9.4 (ImageDraw.line on an 'F'
  // canvas, resize with LANCZOS) and a disk dilation with cv2.dilate's semantics.
  const int64_t line30[81] = {0, 0, 0, 0, 0, 0, 0, 0,  0,   0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0,
                              0, 1, 3, 0, 0, 0, 0, 0,  0,   0,   0, 0, 1, 0, 0, 0, 0, 1, 0, 93, 66,
                              0, 1, 0, 0, 0, 1, 1, 24, 105, 121, 1, 0, 0, 0, 0, 0, 0, 0, 6, 0,  0,
                              0, 0, 0, 0, 1, 3, 0, 0,  0,   0,   0, 0, 0, 0, 0, 0, 0, 0};
  const int64_t mask30[81] = {0,   0,   0, 0, 0, 0,   0,   0,   0,   0,   0,  0, 1, 3,  3,   0,   0,
                              0,   0,   0, 0, 0, 0,   0,   3,   1,   0,   0,  1, 0, 19, 143, 57,  0,
                              0,   0,   0, 3, 0, 154, 255, 250, 175, 20,  0,  0, 1, 2,  20,  189, 255,
                              255, 182, 3, 0, 0, 1,   0,   13,  118, 206, 38, 0, 0, 0,  0,   1,   0,
                              0,   0,   0, 0, 0, 0,   0,   0,   1,   3,   1,  2, 0};
  const auto pf32 =
      mgl::datasets::render_pathfinder_paddle(PathfinderGenOptions::pathfinder32(), 1, 30 * M_PI / 180);
  REQUIRE(pf32[0].sizes() == torch::IntArrayRef({9, 9}));
  CHECK(torch::equal(pf32[0].to(torch::kInt64).flatten(), torch::tensor(at::ArrayRef<int64_t>(line30, 81))));
  CHECK(torch::equal(pf32[1].to(torch::kInt64).flatten(), torch::tensor(at::ArrayRef<int64_t>(mask30, 81))));

  // Path-X paddles are 3 fine pixels wide: PIL fills a quadrilateral around the segment.
  // Checksums: sum and sum of squares of the line and of the mask levels.
  auto sums = [](const torch::Tensor& t) {
    const auto v = t.to(torch::kInt64);
    return std::array<int64_t, 2>{v.sum().item<int64_t>(), (v * v).sum().item<int64_t>()};
  };
  const auto a = mgl::datasets::render_pathfinder_paddle(PathfinderGenOptions::path_x(), 2, -60 * M_PI / 180);
  REQUIRE(a[0].sizes() == torch::IntArrayRef({19, 19}));
  CHECK(sums(a[0]) == std::array<int64_t, 2>{2489, 464419});
  CHECK(sums(a[1]) == std::array<int64_t, 2>{11615, 2640439});
  const auto b =
      mgl::datasets::render_pathfinder_paddle(PathfinderGenOptions::path_x(), 3, std::atan2(3.0, -7.0));
  REQUIRE(b[0].sizes() == torch::IntArrayRef({21, 21}));
  CHECK(sums(b[0]) == std::array<int64_t, 2>{1772, 289242});
  CHECK(sums(b[1]) == std::array<int64_t, 2>{18343, 4283615});
  const int64_t row12[21] = {0, 0, 0, 4, 0, 104, 233, 110, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(torch::equal(b[0][12].to(torch::kInt64), torch::tensor(at::ArrayRef<int64_t>(row12, 21))));
}

TEST_CASE("Pathfinder generator is deterministic for a seed", "[pathfinder]") {
  const auto o = PathfinderGenOptions::pathfinder32();
  const auto a = mgl::datasets::generate_pathfinder_image(o, 12345);
  const auto b = mgl::datasets::generate_pathfinder_image(o, 12345);
  REQUIRE(a.pixels.sizes() == torch::IntArrayRef({32, 32}));
  CHECK(a.pixels.scalar_type() == torch::kUInt8);
  CHECK(torch::equal(a.pixels, b.pixels));
  CHECK(a.label == b.label);
  CHECK(a.marker_a == b.marker_a);
  CHECK(a.marker_b == b.marker_b);
  const auto c = mgl::datasets::generate_pathfinder_image(o, 12346);
  CHECK_FALSE(torch::equal(a.pixels, c.pixels));
  // scipy's imsave scaling: the darkest pixel is 0, the brightest 255.
  CHECK(a.pixels.min().item<int>() == 0);
  CHECK(a.pixels.max().item<int>() == 255);

  PathfinderGenOptions bad = o;
  bad.paddle_thickness = 0.75;  // × aa 2 is not an integer
  CHECK_THROWS_WITH(mgl::datasets::generate_pathfinder_image(bad, 1), Catch::Contains("paddle_thickness"));
}

namespace {

// The markers sit on the tips of target snakes; for label 1 both on the same snake and joined
// through that snake's paddles, for label 0 on different snakes. The oracle is the trace: each
// target snake's own paddle masks, which overlap where consecutive paddles meet.
void check_markers_and_connectivity(const PathfinderGenOptions& o, int64_t images, uint64_t seed) {
  int64_t positives = 0, negatives = 0, separated = 0, distractors = 0;
  const int side = static_cast<int>(o.window);
  for (int64_t k = 0; k < images; ++k) {
    mgl::datasets::PathfinderTrace tr;
    const auto img =
        mgl::datasets::generate_pathfinder_image(o, mgl::datasets::pathfinder_image_seed(seed, k), &tr);
    INFO("image " << k << " label " << img.label);
    REQUIRE(tr.snake_masks.sizes() == torch::IntArrayRef({2, side, side}));
    const int i = static_cast<int>(tr.marked_snake);
    const int j = img.label == 1 ? i : 1 - i;
    CHECK(img.marker_a == tr.origin_tips[i]);
    CHECK(img.marker_b == tr.terminal_tips[j]);
    distractors += tr.distractor_snakes;

    // Both markers are bright disks: a bright centre and a bright 3×3 neighbourhood.
    for (const auto& m : {img.marker_a, img.marker_b}) {
      int sum = 0, count = 0;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int64_t y = m[0] + dy, x = m[1] + dx;
          if (y < 0 || x < 0 || y >= side || x >= side) continue;
          sum += img.pixels[y][x].item<int>();
          ++count;
        }
      CHECK(img.pixels[m[0]][m[1]].item<int>() >= 180);
      CHECK(sum / count >= 100);
    }

    // Snake i's paddle masks join both of its tips (8-connected, any mask level).
    const cv::Mat own = components(tr.snake_masks[i], 0.0f);
    REQUIRE(at(own, img.marker_a) != 0);
    if (img.label == 1) {
      ++positives;
      CHECK(at(own, img.marker_b) == at(own, img.marker_a));
    } else {
      ++negatives;
      // marker_b ends the other snake's chain, which starts at that snake's origin ...
      const cv::Mat other = components(tr.snake_masks[1 - i], 0.0f);
      CHECK(at(other, img.marker_b) != 0);
      CHECK(at(other, img.marker_b) == at(other, tr.origin_tips[1 - i]));
      // ... and lies off snake i's paddles, except where the reference lets paddles placed in the
      // same round of the two walks touch (they are not checked against each other).
      if (tr.snake_masks[i][img.marker_b[0]][img.marker_b[1]].item<float>() < 0.5f) ++separated;
    }
  }
  CHECK(positives + negatives == images);
  CHECK(separated >= negatives * 9 / 10);
  CHECK(double(distractors) / double(images) >= 0.5 * double(o.num_distractor_snakes));
}

}  // namespace

TEST_CASE("Pathfinder32 images: balanced labels, markers on the snake tips, label-1 tips connected",
          "[pathfinder]") {
  const auto o = PathfinderGenOptions::pathfinder32();
  int64_t positives = 0;
  for (int64_t k = 0; k < 200; ++k)
    positives += mgl::datasets::generate_pathfinder_image(o, 1000 + uint64_t(k)).label;
  CHECK(positives >= 70);  // binomial(200, 1/2): ±30 is beyond 4 standard deviations
  CHECK(positives <= 130);
  check_markers_and_connectivity(o, 150, 7);
}

TEST_CASE("Path-X images: 128×128, markers on the snake tips, label-1 tips connected", "[pathfinder]") {
  check_markers_and_connectivity(PathfinderGenOptions::path_x(), 8, 3);
}

TEST_CASE("generate_pathfinder writes the released layout, independent of the thread count", "[pathfinder]") {
  TempDir d("pf-gen");
  const auto o = PathfinderGenOptions::pathfinder32();
  const uint64_t seed = 99;
  int64_t last_done = -1, calls = 0;
  const auto stats =
      mgl::datasets::generate_pathfinder(o, d / "t1", 40, seed, 16, 1, [&](int64_t done, int64_t total) {
        CHECK(total == 40);
        CHECK(done >= last_done);
        last_done = done;
        ++calls;
      });
  CHECK(calls >= 1);
  CHECK(last_done == 40);
  CHECK(stats.images == 40);
  mgl::datasets::generate_pathfinder(o, d / "t3", 40, seed, 16, 3);
  CHECK_THAT(error_of([&] { mgl::datasets::generate_pathfinder(o, d / "t3", 4, seed); }),
             Catch::Contains("already holds metadata"));

  // Batches of 16: metadata/0,1,2.npy and imgs/0..2; byte-identical whatever the thread count.
  for (int b = 0; b < 3; ++b) {
    const std::string meta = "metadata/" + std::to_string(b) + ".npy";
    CHECK(read_all(d / "t1" / meta) == read_all(d / "t3" / meta));
    CHECK_FALSE(fs::exists(d / "t1" / (meta + ".tmp")));
  }
  for (int n = 0; n < 8; ++n) {
    const std::string png = "imgs/2/sample_" + std::to_string(n) + ".png";
    CHECK(read_all(d / "t1" / png) == read_all(d / "t3" / png));
  }
  CHECK_FALSE(fs::exists(d / "t1/imgs/2/sample_8.png"));

  // Read back: the order, labels and pixels of generate_pathfinder_image with the per-image seed.
  const auto index = mgl::datasets::read_pathfinder_index(d / "t3");
  REQUIRE(index.items.size() == 40);
  int64_t positives = 0;
  for (int64_t i = 0; i < 40; ++i) {
    const auto& item = index.items[size_t(i)];
    CHECK(item.image == "imgs/" + std::to_string(i / 16) + "/sample_" + std::to_string(i % 16) + ".png");
    const auto ref =
        mgl::datasets::generate_pathfinder_image(o, mgl::datasets::pathfinder_image_seed(seed, i));
    CHECK(item.label == ref.label);
    CHECK(torch::equal(mgl::datasets::load_pathfinder_image(d / "t3" / item.image, 32), ref.pixels));
    positives += item.label;
  }
  CHECK(positives == stats.positives);

  // The 11 fields of §3.6.
  std::ifstream meta(d / "t3/metadata/1.npy");
  std::string line;
  REQUIRE(std::getline(meta, line));
  CHECK(line == "imgs/1 sample_0.png 0 " + std::to_string(index.items[16].label) + " 1.0 14 4 2 0.5 1 1");

  // Path-X lines: continuity 1.8, paddle length 5, thickness 1.5, the margin drawn per image.
  mgl::datasets::generate_pathfinder(PathfinderGenOptions::path_x(), d / "px", 2, seed, 1000, 2);
  std::ifstream px(d / "px/metadata/0.npy");
  REQUIRE(std::getline(px, line));
  CHECK_THAT(line, Catch::StartsWith("imgs/0 sample_0.png 0 ") &&
                       (Catch::EndsWith(" 1.8 14 4 5 1.5 2 1") || Catch::EndsWith(" 1.8 14 4 5 1.5 3 1")));
  CHECK(mgl::datasets::load_pathfinder_image(d / "px/imgs/0/sample_1.png", 128).size(0) == 128);
}

TEST_CASE("Pathfinder index: an image path that leaves the folder is refused, even when the file exists",
          "[pathfinder]") {
  TempDir d("pf-index-escape");
  write_png(d / "inner/imgs/0/sample_0.png", 4, 0);
  write_png(d / "outside.png", 4, 0);  // exists, but outside the difficulty folder
  const fs::path root = d / "inner";
  for (const char* line : {"imgs/0 ../../../outside.png 0 1\n", "imgs/0/../../.. outside.png 0 1\n",
                           "/tmp sample_0.png 0 1\n", "imgs/0 sub/../sample_0.png 0 1\n"}) {
    INFO(line);
    write_text(root / "metadata/0.npy", meta_line(0, 0, 1) + line);
    const std::string e = error_of([&] { mgl::datasets::read_pathfinder_index(root); });
    CHECK_THAT(e, Catch::Contains("0.npy:2") && Catch::Contains("leaves the folder"));
  }
}
