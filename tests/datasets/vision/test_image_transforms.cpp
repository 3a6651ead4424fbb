// ImageNet transforms (paper-benchmarks §2.6, the DeiT recipe). Oracles: values worked out by hand
// from the reference algorithms (torchvision RandomResizedCrop / Resize / CenterCrop, timm
// RandAugment / RandomErasing / Mixup, Pillow's ImageOps, ImageEnhance, Resample.c and Geometry.c
// arithmetic), torch's own ops for ToTensor + Normalize, and statistics of the random draws.
// LibTorch first: its glog CHECK would replace Catch's otherwise (see test_pathfinder.cpp).
#include "datasets/vision/image_transforms.h"
#undef CHECK
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <map>
#include <opencv2/core.hpp>
#include <set>
#include <string>
#include <tuple>

namespace img = mgl::datasets::img;
namespace ops = mgl::datasets::img::ops;
using img::Interp;
using img::Rgb;

namespace {

// An RGB image whose channel c at (x, y) is f(x, y, c).
cv::Mat make_image(int w, int h, const std::function<int(int, int, int)>& f) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) m.at<cv::Vec3b>(y, x)[c] = cv::saturate_cast<uint8_t>(f(x, y, c));
  return m;
}

cv::Mat solid(int w, int h, int r, int g, int b) { return cv::Mat(h, w, CV_8UC3, cv::Scalar(r, g, b)); }

bool same_bytes(const cv::Mat& a, const cv::Mat& b) {
  return a.size() == b.size() && a.type() == b.type() && cv::countNonZero(a.reshape(1) != b.reshape(1)) == 0;
}

int px(const cv::Mat& m, int x, int y, int c) { return m.at<cv::Vec3b>(y, x)[c]; }

// A colourful test picture: gradients plus a pseudo-random texture.
cv::Mat picture(int w, int h) {
  return make_image(w, h, [](int x, int y, int c) {
    return (x * 7 + y * 3 + c * 50 + ((x * 31 + y * 17) % 13) * 9) % 256;
  });
}

constexpr Rgb kFill = {1, 2, 3};

}  // namespace

// ---- crops, flips, resize, evaluation ------------------------------------------------------------

TEST_CASE("random_resized_crop_box stays inside with area and aspect ratio in range", "[image-transforms]") {
  const std::vector<std::pair<int, int>> sizes = {{375, 500}, {500, 375}, {224, 224}, {61, 97}};
  for (const auto& [h_img, w_img] : sizes) {
    for (uint64_t seed = 0; seed < 300; ++seed) {
      img::Rng rng(seed);
      const img::Box b = img::random_resized_crop_box(h_img, w_img, rng);
      INFO("image " << w_img << "x" << h_img << " seed " << seed << " box " << b.x << "," << b.y << " " << b.w
                    << "x" << b.h);
      REQUIRE(b.w > 0);
      REQUIRE(b.h > 0);
      REQUIRE(b.x >= 0);
      REQUIRE(b.y >= 0);
      REQUIRE(b.x + b.w <= w_img);
      REQUIRE(b.y + b.h <= h_img);
      // w and h are each rounded from the real solution, so allow half a pixel on each side.
      const double area = double(h_img) * w_img;
      CHECK((b.w + 0.5) * (b.h + 0.5) >= 0.08 * area);
      CHECK((b.w - 0.5) * (b.h - 0.5) <= area);
      CHECK((b.w + 0.5) / (b.h - 0.5) >= 3.0 / 4.0);
      CHECK((b.w - 0.5) / (b.h + 0.5) <= 4.0 / 3.0);
    }
  }
}

TEST_CASE("random_resized_crop_box falls back to a centred crop with the ratio clamped",
          "[image-transforms]") {
  img::Rng rng(1);
  // 1000×10: no try fits (h >= sqrt(0.08·10000·3/4) ≈ 24 > 10), so h = 10, w = round(10·4/3) = 13.
  img::Box b = img::random_resized_crop_box(10, 1000, rng);
  CHECK(b.x == 493);
  CHECK(b.y == 0);
  CHECK(b.w == 13);
  CHECK(b.h == 10);
  // 10×1000 (portrait): w = 10, h = round(10 / (3/4)) = 13, centred vertically.
  b = img::random_resized_crop_box(1000, 10, rng);
  CHECK(b.x == 0);
  CHECK(b.y == 493);
  CHECK(b.w == 10);
  CHECK(b.h == 13);
  // An impossible area (scale above 1) with an in-range image ratio: the whole image.
  b = img::random_resized_crop_box(100, 120, rng, 2.0, 3.0);
  CHECK(b.x == 0);
  CHECK(b.y == 0);
  CHECK(b.w == 120);
  CHECK(b.h == 100);
  CHECK_THROWS_AS(img::random_resized_crop_box(0, 10, rng), std::invalid_argument);
  CHECK_THROWS_AS(img::random_resized_crop_box(10, 10, rng, 0.5, 0.1), std::invalid_argument);
}

TEST_CASE("the training chain is deterministic for a seed", "[image-transforms]") {
  const cv::Mat src = picture(96, 72);
  const cv::Mat before = src.clone();
  auto run = [&](uint64_t seed) {
    img::Rng rng(seed);
    cv::Mat a = img::random_resized_crop(src, 48, rng);
    if (std::uniform_int_distribution<int>(0, 1)(rng)) a = img::hflip(a);
    a = img::rand_augment(a, img::RandAugmentOptions{}, rng);
    torch::Tensor t = img::to_normalized_tensor(a, img::kImageNetMean, img::kImageNetStd);
    img::random_erasing_(t, 1.0, rng);
    return std::make_pair(a, t);
  };
  const auto [a1, t1] = run(7);
  const auto [a2, t2] = run(7);
  const auto [a3, t3] = run(8);
  CHECK(a1.cols == 48);
  CHECK(a1.rows == 48);
  CHECK(same_bytes(a1, a2));
  CHECK(torch::equal(t1, t2));
  CHECK_FALSE(same_bytes(a1, a3));
  CHECK_FALSE(torch::equal(t1, t3));
  CHECK(same_bytes(src, before));  // inputs are never modified
}

TEST_CASE("hflip mirrors columns exactly", "[image-transforms]") {
  const cv::Mat m = make_image(3, 2, [](int x, int y, int c) { return 100 * y + 10 * x + c; });
  const cv::Mat f = img::hflip(m);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) CHECK(px(f, x, y, c) == 100 * y + 10 * (2 - x) + c);
}

TEST_CASE("resize follows PIL: antialiased support and fixed-point rounding", "[image-transforms]") {
  // 6 → 3 columns, bilinear: the triangle is widened 2× when shrinking, so output 0 (centre 1.0)
  // weighs inputs 0, 1, 2 by 0.75, 0.75, 0.25 (/1.75): (3·0 + 3·70 + 140) / 7 = 50. Output 1
  // (centre 3.0): inputs 1..4 by 1/8, 3/8, 3/8, 1/8 = (70 + 420 + 630 + 142) / 8 = 157.75 → 158.
  // Output 2: inputs 3..5 by 1/7, 3/7, 3/7 = (210 + 426 + 216) / 7 = 121.7 → 122. (A plain
  // two-tap bilinear, e.g. cv::INTER_LINEAR, would give 35, 175, 107.)
  const int row[6] = {0, 70, 140, 210, 142, 72};
  const cv::Mat m = make_image(6, 1, [&](int x, int, int) { return row[x]; });
  const cv::Mat r = img::resize(m, 3, 1, Interp::bilinear);
  REQUIRE(r.cols == 3);
  REQUIRE(r.rows == 1);
  CHECK(px(r, 0, 0, 0) == 50);
  CHECK(px(r, 1, 0, 0) == 158);
  CHECK(px(r, 2, 0, 0) == 122);
  // Upscaling 2 → 4 (support not widened): centres 0.25, 0.75, 1.25, 1.75 -> 0, 25, 75, 100.
  const cv::Mat up =
      img::resize(make_image(2, 1, [](int x, int, int) { return 100 * x; }), 4, 1, Interp::bilinear);
  CHECK(px(up, 0, 0, 1) == 0);
  CHECK(px(up, 1, 0, 1) == 25);
  CHECK(px(up, 2, 0, 1) == 75);
  CHECK(px(up, 3, 0, 1) == 100);
  // The normalised fixed-point weights keep a constant image constant, in both directions.
  const cv::Mat c = img::resize(solid(50, 40, 9, 99, 199), 17, 23, Interp::bicubic);
  CHECK(same_bytes(c, solid(17, 23, 9, 99, 199)));
  // A view (ROI) resizes like its copy.
  const cv::Mat pic = picture(80, 60);
  const cv::Mat roi = pic(cv::Rect(7, 5, 50, 41));
  CHECK(same_bytes(img::resize(roi, 33, 29), img::resize(roi.clone(), 33, 29)));
}

TEST_CASE("eval_transform: shorter side to 256, centre 224 crop", "[image-transforms]") {
  // 500×375 (landscape): short side 375 -> 256, long side int(256·500/375) = 341; the crop starts at
  // left round((341 − 224)/2) = round(58.5) = 58 (half to even), top (256 − 224)/2 = 16.
  const cv::Mat land = picture(500, 375);
  const cv::Mat out = img::eval_transform(land, 224);
  REQUIRE(out.cols == 224);
  REQUIRE(out.rows == 224);
  CHECK(same_bytes(out, img::resize(land, 341, 256)(cv::Rect(58, 16, 224, 224))));
  const cv::Mat port = picture(375, 500);
  CHECK(same_bytes(img::eval_transform(port, 224), img::resize(port, 256, 341)(cv::Rect(16, 58, 224, 224))));
  // The image centre stays at the centre: a black|white split at x = 250 lands at 170.5 − 58 = 112.5.
  const cv::Mat split = make_image(500, 375, [](int x, int, int) { return x < 250 ? 0 : 255; });
  const cv::Mat s = img::eval_transform(split, 224);
  CHECK(px(s, 110, 100, 0) < 20);
  CHECK(px(s, 115, 100, 0) > 235);
  CHECK(img::eval_transform(land, 224, 1.0).cols == 224);
  CHECK_THROWS_AS(img::eval_transform(land, 224, 1.5), std::invalid_argument);
}

// ---- tensors -------------------------------------------------------------------------------------

TEST_CASE("to_normalized_tensor equals ToTensor + Normalize in float32", "[image-transforms]") {
  const cv::Mat m = make_image(16, 16, [](int x, int y, int c) { return (16 * y + x + 85 * c) % 256; });
  const torch::Tensor t = img::to_normalized_tensor(m, img::kImageNetMean, img::kImageNetStd);
  REQUIRE(t.sizes() == torch::IntArrayRef({3, 16, 16}));
  REQUIRE(t.scalar_type() == torch::kFloat32);
  // The oracle: torch's own ops doing torchvision's steps (HWC uint8 -> CHW float / 255, − mean, / std).
  const torch::Tensor hwc = torch::from_blob(m.data, {16, 16, 3}, torch::kUInt8);
  const torch::Tensor mean = torch::tensor({0.485, 0.456, 0.406}, torch::kFloat32).view({3, 1, 1});
  const torch::Tensor stdv = torch::tensor({0.229, 0.224, 0.225}, torch::kFloat32).view({3, 1, 1});
  const torch::Tensor ref = hwc.permute({2, 0, 1}).to(torch::kFloat32).div(255).sub(mean).div(stdv);
  CHECK(torch::equal(t, ref));
  // Hand values: R = 0 at (0, 0) -> −0.485 / 0.229; B = 255 where 16y + x + 170 = 255 (x = y = 5).
  CHECK(t[0][0][0].item<float>() == Approx(-0.485 / 0.229).epsilon(1e-6));
  CHECK(t[2][5][5].item<float>() == Approx((1.0 - 0.406) / 0.225).epsilon(1e-6));
}

TEST_CASE("random_erasing_: prob 0 is a no-op, boxes respect the area and ratio bounds",
          "[image-transforms]") {
  torch::Tensor base = torch::full({3, 40, 56}, 5.0f);
  {
    torch::Tensor t = base.clone();
    img::Rng rng(3);
    img::Box box{9, 9, 9, 9};
    img::random_erasing_(t, 0.0, rng, 0.02, 1.0 / 3.0, 0.3, &box);
    CHECK(torch::equal(t, base));
    CHECK(box.w == 0);
  }
  int erased = 0;
  std::vector<float> noise;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    torch::Tensor t = base.clone();
    img::Rng rng(seed);
    img::Box b{};
    img::random_erasing_(t, 1.0, rng, 0.02, 1.0 / 3.0, 0.3, &b);
    if (b.w == 0) continue;  // all 10 tries failed (rare)
    ++erased;
    INFO("seed " << seed << " box " << b.x << "," << b.y << " " << b.w << "x" << b.h);
    REQUIRE(b.x >= 0);
    REQUIRE(b.y >= 0);
    REQUIRE(b.x + b.w <= 56);
    REQUIRE(b.y + b.h <= 40);
    const double area = 40.0 * 56.0;
    CHECK((b.w + 0.5) * (b.h + 0.5) >= 0.02 * area);
    CHECK((b.w - 0.5) * (b.h - 0.5) <= area / 3.0);
    CHECK((b.h + 0.5) / (b.w - 0.5) >= 0.3);
    CHECK((b.h - 0.5) / (b.w + 0.5) <= 1.0 / 0.3);
    using torch::indexing::Slice;
    const torch::Tensor inside = t.index({Slice(), Slice(b.y, b.y + b.h), Slice(b.x, b.x + b.w)});
    CHECK(inside.ne(5.0f).all().item<bool>());                                // N(0,1) noise, never exactly 5
    CHECK(t.eq(5.0f).sum().item<int64_t>() == 3 * 40 * 56 - inside.numel());  // outside untouched
    const torch::Tensor flat = inside.contiguous().view(-1);
    noise.insert(noise.end(), flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
  }
  CHECK(erased >= 290);
  const torch::Tensor all = torch::from_blob(noise.data(), {int64_t(noise.size())}, torch::kFloat32);
  CHECK(all.mean().item<double>() == Approx(0.0).margin(0.02));
  CHECK(all.std().item<double>() == Approx(1.0).margin(0.02));
  // About prob of the images are erased.
  int hits = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    torch::Tensor t = torch::zeros({3, 8, 8});
    img::Rng rng(seed);
    img::Box b{};
    img::random_erasing_(t, 0.25, rng, 0.02, 1.0 / 3.0, 0.3, &b);
    hits += b.w > 0;
  }
  CHECK(hits / 2000.0 == Approx(0.25).margin(0.04));
}

TEST_CASE("smooth_one_hot: off = s/C, on = 1 − s + s/C, rows sum to 1", "[image-transforms]") {
  const torch::Tensor y = torch::tensor({0, 3, 9}, torch::kLong);
  const torch::Tensor t = img::smooth_one_hot(y, 10, 0.1);
  REQUIRE(t.sizes() == torch::IntArrayRef({3, 10}));
  for (int i = 0; i < 3; ++i) {
    for (int c = 0; c < 10; ++c) {
      const float expected = c == y[i].item<int64_t>() ? float(1.0 - 0.1 + 0.01) : float(0.01);
      CHECK(t[i][c].item<float>() == expected);
    }
    CHECK(t[i].sum().item<double>() == Approx(1.0).epsilon(1e-6));
  }
  CHECK(torch::equal(img::smooth_one_hot(y, 10, 0.0), torch::one_hot(y, 10).to(torch::kFloat32)));
  CHECK_THROWS_AS(img::smooth_one_hot(torch::tensor({10}, torch::kLong), 10, 0.1), std::invalid_argument);
}

TEST_CASE("mixup_cutmix_: Mixup blends with the flipped batch and mixes the targets", "[image-transforms]") {
  torch::manual_seed(0);
  const torch::Tensor x0 = torch::randn({4, 3, 8, 8});
  const torch::Tensor y = torch::tensor({1, 0, 4, 2}, torch::kLong);
  img::MixupOptions opt;
  opt.cutmix_alpha = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    torch::Tensor x = x0.clone();
    img::Rng rng(seed);
    double lam = -1;
    img::Box box{5, 5, 5, 5};
    const torch::Tensor t = img::mixup_cutmix_(x, y, 5, opt, rng, &lam, &box);
    REQUIRE(lam > 0.0);
    REQUIRE(lam < 1.0);
    CHECK(box.w == 0);
    CHECK(torch::allclose(x, x0 * lam + x0.flip(0) * (1 - lam), 1e-5, 1e-6));
    const torch::Tensor expected =
        img::smooth_one_hot(y, 5, 0.1) * lam + img::smooth_one_hot(y.flip(0), 5, 0.1) * (1 - lam);
    CHECK(torch::allclose(t, expected, 1e-6, 1e-7));
    CHECK(torch::allclose(t.sum(1), torch::ones({4}), 1e-6, 1e-6));
  }
}

TEST_CASE("mixup_cutmix_: CutMix pastes the flipped batch's box and corrects lam", "[image-transforms]") {
  torch::manual_seed(1);
  const torch::Tensor x0 = torch::randn({4, 3, 16, 12});
  const torch::Tensor y = torch::tensor({3, 1, 2, 0}, torch::kLong);
  img::MixupOptions opt;
  opt.mixup_alpha = 0;
  int boxes = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    torch::Tensor x = x0.clone();
    img::Rng rng(seed);
    double lam = -1;
    img::Box b{};
    const torch::Tensor t = img::mixup_cutmix_(x, y, 4, opt, rng, &lam, &b);
    INFO("seed " << seed << " lam " << lam << " box " << b.x << "," << b.y << " " << b.w << "x" << b.h);
    REQUIRE(b.x >= 0);
    REQUIRE(b.y >= 0);
    REQUIRE(b.x + b.w <= 12);
    REQUIRE(b.y + b.h <= 16);
    CHECK(lam == 1.0 - double(b.w) * b.h / (16.0 * 12.0));
    boxes += b.w * b.h > 0;
    torch::Tensor inside = torch::zeros({16, 12}, torch::kBool);
    using torch::indexing::Slice;
    inside.index_put_({Slice(b.y, b.y + b.h), Slice(b.x, b.x + b.w)}, true);
    const torch::Tensor expected_x = torch::where(inside, x0.flip(0), x0);
    CHECK(torch::equal(x, expected_x));
    const torch::Tensor expected_t =
        img::smooth_one_hot(y, 4, 0.1) * lam + img::smooth_one_hot(y.flip(0), 4, 0.1) * (1 - lam);
    CHECK(torch::allclose(t, expected_t, 1e-6, 1e-7));
    CHECK(torch::allclose(t.sum(1), torch::ones({4}), 1e-6, 1e-6));
  }
  CHECK(boxes > 30);
}

TEST_CASE("mixup_cutmix_: disabled leaves the batch alone, lam averages the Beta mean",
          "[image-transforms]") {
  const torch::Tensor x0 = torch::randn({2, 3, 4, 4});
  const torch::Tensor y = torch::tensor({0, 1}, torch::kLong);
  for (const auto& [prob, mix, cut] :
       std::vector<std::tuple<double, double, double>>{{0.0, 0.8, 1.0}, {1.0, 0.0, 0.0}}) {
    img::MixupOptions opt;
    opt.prob = prob;
    opt.mixup_alpha = mix;
    opt.cutmix_alpha = cut;
    torch::Tensor x = x0.clone();
    img::Rng rng(0);
    double lam = -1;
    const torch::Tensor t = img::mixup_cutmix_(x, y, 3, opt, rng, &lam);
    CHECK(lam == 1.0);
    CHECK(torch::equal(x, x0));
    CHECK(torch::equal(t, img::smooth_one_hot(y, 3, 0.1)));
  }
  // Mixup lam ~ Beta(0.8, 0.8) and uncorrected CutMix lam ~ Beta(1, 1): both have mean 0.5
  // (standard deviations 0.31 and 0.29; 3000 draws -> standard error under 0.006).
  for (const bool cutmix : {false, true}) {
    img::MixupOptions opt;
    opt.mixup_alpha = cutmix ? 0.0 : 0.8;
    opt.cutmix_alpha = cutmix ? 1.0 : 0.0;
    opt.correct_lam = false;
    img::Rng rng(11);
    double sum = 0, sum2 = 0;
    const int n = 3000;
    for (int i = 0; i < n; ++i) {
      torch::Tensor x = x0.clone();
      double lam = 0;
      img::mixup_cutmix_(x, y, 3, opt, rng, &lam);
      sum += lam;
      sum2 += lam * lam;
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    CHECK(mean == Approx(0.5).margin(0.03));
    const double a = cutmix ? 1.0 : 0.8;
    CHECK(var == Approx(a * a / ((2 * a) * (2 * a) * (2 * a + 1))).margin(0.01));
  }
  // Both enabled: CutMix about switch_prob of the time (on 64×64 images its box is never empty:
  // that needs int(64·sqrt(1 − lam)) < 2).
  const torch::Tensor x64 = torch::randn({2, 3, 64, 64});
  img::Rng rng(5);
  int cut = 0;
  for (int i = 0; i < 1000; ++i) {
    torch::Tensor x = x64.clone();
    img::Box b{};
    img::mixup_cutmix_(x, y, 3, img::MixupOptions{}, rng, nullptr, &b);
    cut += b.w > 0 || b.h > 0;
  }
  CHECK(cut / 1000.0 == Approx(0.5).margin(0.06));
}

// ---- RandAugment's single ops: PIL semantics ------------------------------------------------------

TEST_CASE("point ops: invert, posterize, solarize, solarize_add", "[image-transforms]") {
  // Every byte value 0..255 appears in channel 0, shifted in the others.
  const cv::Mat m = make_image(16, 16, [](int x, int y, int c) { return (16 * y + x + 37 * c) % 256; });
  const cv::Mat inv = ops::invert(m);
  const cv::Mat p2 = ops::posterize(m, 2), p0 = ops::posterize(m, 0), p8 = ops::posterize(m, 8);
  const cv::Mat s128 = ops::solarize(m, 128), s256 = ops::solarize(m, 256), s0 = ops::solarize(m, 0);
  const cv::Mat sa = ops::solarize_add(m, 100);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 16; ++x)
      for (int c = 0; c < 3; ++c) {
        const int v = px(m, x, y, c);
        CHECK(px(inv, x, y, c) == 255 - v);
        CHECK(px(p2, x, y, c) == (v & 0xC0));
        CHECK(px(p0, x, y, c) == 0);
        CHECK(px(p8, x, y, c) == v);
        CHECK(px(s128, x, y, c) == (v < 128 ? v : 255 - v));
        CHECK(px(s256, x, y, c) == v);
        CHECK(px(s0, x, y, c) == 255 - v);
        CHECK(px(sa, x, y, c) == (v < 128 ? std::min(255, v + 100) : v));
      }
  CHECK(px(ops::solarize_add(m, 200), 3, 7, 0) == 255);  // 115 + 200 clipped
}

TEST_CASE("equalize: PIL's cumulative table on a known histogram", "[image-transforms]") {
  // 32×32 = 1024 pixels. R takes 0, 50, 100, 200 on 256 pixels each: PIL's step = (1024 − 256) // 255
  // = 3 and table[i] = (step // 2 + pixels below i) // step, clipped to 255: 0 -> 1 // 3 = 0,
  // 50 -> 257 // 3 = 85, 100 -> 513 // 3 = 171, 200 -> 769 // 3 = 256 -> 255.
  // G takes 40, 80, 120 on 300, 465, 259 pixels: step = 765 // 255 = 3: 40 -> 0, 80 -> 301 // 3 = 100,
  // 120 -> 766 // 3 = 255. B is constant (a single level): unchanged.
  const int levels[4] = {0, 50, 100, 200};
  const cv::Mat m = make_image(32, 32, [&](int x, int y, int c) {
    const int i = y * 32 + x;
    if (c == 0) return levels[i / 256];
    if (c == 1) return i < 300 ? 40 : i < 765 ? 80 : 120;
    return 77;
  });
  const cv::Mat e = ops::equalize(m);
  const int expected[4] = {0, 85, 171, 255};
  for (int k = 0; k < 4; ++k) CHECK(px(e, 0, 8 * k, 0) == expected[k]);
  CHECK(px(e, 0, 0, 1) == 0);
  CHECK(px(e, 12, 9, 1) == 100);  // pixel 300
  CHECK(px(e, 31, 31, 1) == 255);
  CHECK(px(e, 5, 5, 2) == 77);
  // Too few pixels for a step (16 − 4 < 255): PIL leaves the image unchanged.
  const cv::Mat small = make_image(4, 4, [&](int x, int y, int) { return levels[(y * 4 + x) / 4]; });
  CHECK(same_bytes(ops::equalize(small), small));
}

TEST_CASE("auto_contrast: per-channel stretch of [lo, hi] to [0, 255]", "[image-transforms]") {
  // R in {10, 50, 95}: scale 255/85 = 3, table 3i − 30 -> 0, 120, 255. G in {0, 1, 2}: scale 127.5,
  // truncated: 0, 127, 255. B constant: unchanged.
  const int r[4] = {10, 50, 95, 95}, g[4] = {0, 1, 2, 2};
  const cv::Mat m = make_image(4, 1, [&](int x, int, int c) { return c == 0 ? r[x] : c == 1 ? g[x] : 77; });
  const cv::Mat a = ops::auto_contrast(m);
  const int er[4] = {0, 120, 255, 255}, eg[4] = {0, 127, 255, 255};
  for (int x = 0; x < 4; ++x) {
    CHECK(px(a, x, 0, 0) == er[x]);
    CHECK(px(a, x, 0, 1) == eg[x]);
    CHECK(px(a, x, 0, 2) == 77);
  }
}

TEST_CASE("enhance ops: Color, Brightness, Contrast, Sharpness blend with PIL's degenerate images",
          "[image-transforms]") {
  // Luma (ITU-R 601-2, PIL's integer form): red 76, green 150, blue 29, (200, 100, 0) -> 118.
  const cv::Mat rgb = make_image(4, 1, [](int x, int, int c) {
    const int table[4][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {200, 100, 0}};
    return table[x][c];
  });
  const cv::Mat grey = ops::color(rgb, 0.0);
  const int luma[4] = {76, 150, 29, 118};
  for (int x = 0; x < 4; ++x)
    for (int c = 0; c < 3; ++c) CHECK(px(grey, x, 0, c) == luma[x]);
  CHECK(same_bytes(ops::color(rgb, 1.0), rgb));
  // Factor 0.5: 118 + 0.5·(200 − 118) = 159, 118 − 9 = 109, 118 − 59 = 59. Factor 2 extrapolates and
  // clips: 282 -> 255, 82, −118 -> 0.
  const cv::Mat half = ops::color(rgb, 0.5), twice = ops::color(rgb, 2.0);
  CHECK(px(half, 3, 0, 0) == 159);
  CHECK(px(half, 3, 0, 1) == 109);
  CHECK(px(half, 3, 0, 2) == 59);
  CHECK(px(twice, 3, 0, 0) == 255);
  CHECK(px(twice, 3, 0, 1) == 82);
  CHECK(px(twice, 3, 0, 2) == 0);

  // Brightness: black at 0; 0.5·201 = 100.5 truncates to 100; 1.5 clips.
  const cv::Mat b = make_image(2, 1, [](int x, int, int) { return x == 0 ? 201 : 100; });
  CHECK(same_bytes(ops::brightness(b, 0.0), solid(2, 1, 0, 0, 0)));
  CHECK(px(ops::brightness(b, 0.5), 0, 0, 0) == 100);
  CHECK(px(ops::brightness(b, 1.5), 0, 0, 1) == 255);
  CHECK(px(ops::brightness(b, 1.5), 1, 0, 2) == 150);

  // Contrast: the degenerate is the rounded mean luma, (10 + 20 + 30 + 41)/4 = 25.25 -> 25.
  const cv::Mat g = make_image(4, 1, [](int x, int, int) { return x == 3 ? 41 : 10 * (x + 1); });
  CHECK(same_bytes(ops::contrast(g, 0.0), solid(4, 1, 25, 25, 25)));
  CHECK(px(ops::contrast(g, 2.0), 3, 0, 0) == 57);  // 25 + 2·16
  CHECK(px(ops::contrast(g, 2.0), 0, 0, 0) == 0);   // 25 − 30 clipped

  // Sharpness: the degenerate is SMOOTH, (1 1 1; 1 5 1; 1 1 1)/13 + 0.5, truncated, border kept.
  // A 130 dot at (2, 2): centre 0.5 + 650/13 = 50.5 -> 50, neighbours 10.5 -> 10; a 200 corner dot
  // stays (border) and adds 200/13 to (1, 1): 0.5 + 10 + 15.38 -> 25.
  cv::Mat dot = solid(5, 5, 0, 0, 0);
  dot.at<cv::Vec3b>(2, 2) = cv::Vec3b(130, 130, 130);
  dot.at<cv::Vec3b>(0, 0) = cv::Vec3b(200, 200, 200);
  const cv::Mat sm = ops::sharpness(dot, 0.0);
  CHECK(same_bytes(sm, ops::smooth(dot)));
  CHECK(px(sm, 2, 2, 0) == 50);
  CHECK(px(sm, 3, 2, 1) == 10);
  CHECK(px(sm, 3, 3, 2) == 10);
  CHECK(px(sm, 1, 1, 0) == 25);
  CHECK(px(sm, 0, 0, 0) == 200);
  CHECK(px(sm, 4, 2, 0) == 0);  // border column kept as it was
  // Factor 2 extrapolates away from the blur: 50 + 2·(130 − 50) = 210.
  CHECK(px(ops::sharpness(dot, 2.0), 2, 2, 0) == 210);
}

TEST_CASE("geometric ops: PIL's affine map, samplers and fill", "[image-transforms]") {
  const cv::Mat m = make_image(8, 6, [](int x, int y, int c) { return 1 + 30 * y + 3 * x + c; });
  for (const Interp interp : {Interp::bilinear, Interp::bicubic}) {
    INFO("interp " << int(interp));
    CHECK(same_bytes(ops::rotate(m, 0.0, interp, kFill), m));
    CHECK(same_bytes(ops::rotate(m, 360.0, interp, kFill), m));
    CHECK(same_bytes(ops::shear_x(m, 0.0, interp, kFill), m));
    CHECK(same_bytes(ops::translate_y(m, 0.0, interp, kFill), m));
    // ShearX 2: output (x, y) samples (x + 2y + 1, y), whole pixels, so both samplers copy exactly.
    const cv::Mat sx = ops::shear_x(m, 2.0, interp, kFill);
    // ShearY 2: output (x, y) samples (x, y + 2x + 1).
    const cv::Mat sy = ops::shear_y(m, 2.0, interp, kFill);
    // TranslateX 2 moves content left: output x samples x + 2. TranslateY −1 moves it down.
    const cv::Mat tx = ops::translate_x(m, 2.0, interp, kFill);
    const cv::Mat ty = ops::translate_y(m, -1.0, interp, kFill);
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 8; ++x)
        for (int c = 0; c < 3; ++c) {
          const int xs = x + 2 * y + 1;
          CHECK(px(sx, x, y, c) == (xs < 8 ? px(m, xs, y, c) : kFill[c]));
          const int ys = y + 2 * x + 1;
          CHECK(px(sy, x, y, c) == (ys < 6 ? px(m, x, ys, c) : kFill[c]));
          CHECK(px(tx, x, y, c) == (x + 2 < 8 ? px(m, x + 2, y, c) : kFill[c]));
          CHECK(px(ty, x, y, c) == (y >= 1 ? px(m, x, y - 1, c) : kFill[c]));
        }
    // Rotate 90 (counter-clockwise) on a 6×4 image takes the general path: the inverse map is
    // x_in = 4.5 − y, y_in = x − 0.5, i.e. pixel (4 − y, x − 1), filled where that is outside.
    const cv::Mat r6 = make_image(6, 4, [](int x, int y, int c) { return 10 + 40 * y + 5 * x + c; });
    const cv::Mat r = ops::rotate(r6, 90.0, interp, kFill);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 6; ++x)
        for (int c = 0; c < 3; ++c) {
          const bool inside = x >= 1 && x <= 4;
          CHECK(px(r, x, y, c) == (inside ? px(r6, 4 - y, x - 1, c) : kFill[c]));
        }
    // Square 90: PIL's exact transpose, again counter-clockwise (the top-right pixel goes top-left).
    const cv::Mat sq = make_image(4, 4, [](int x, int y, int c) { return 10 * y + x + c; });
    const cv::Mat rq = ops::rotate(sq, 90.0, interp, kFill);
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) CHECK(px(rq, x, y, 0) == px(sq, 3 - y, x, 0));
    CHECK(same_bytes(ops::rotate(sq, -90.0, interp, kFill), ops::rotate(sq, 270.0, interp, kFill)));
    // 30°: the corners leave the image and take the fill colour; the centre pixel stays close.
    const cv::Mat big = solid(32, 32, 200, 100, 50);
    const cv::Mat r30 = ops::rotate(big, 30.0, interp, kFill);
    CHECK(px(r30, 0, 0, 0) == kFill[0]);
    CHECK(px(r30, 31, 31, 2) == kFill[2]);
    CHECK(px(r30, 16, 16, 0) == 200);
  }
  // Half-pixel translation on a row 0 100 100 0 10 21 21 21. Bilinear averages neighbours and
  // truncates: 50, 100, 50, 5, 15 (15.5), 21, 21, fill. PIL's transform cubic uses a = −1: from
  // samples (0, 100, 100, 0) at d = ½: 100 + ½(100 + ½(−100)) = 125 (a = −0.5 would give 112).
  const int row[8] = {0, 100, 100, 0, 10, 21, 21, 21};
  const cv::Mat line = make_image(8, 2, [&](int x, int, int) { return row[x]; });
  const cv::Mat bl = ops::translate_x(line, 0.5, Interp::bilinear, kFill);
  const int expected_bl[8] = {50, 100, 50, 5, 15, 21, 21, kFill[0]};
  for (int x = 0; x < 8; ++x) CHECK(px(bl, x, 1, 0) == expected_bl[x]);
  const cv::Mat bc = ops::translate_x(line, 0.5, Interp::bicubic, kFill);
  CHECK(px(bc, 0, 0, 0) == 50);  // samples (0, 0, 100, 100), edge clamped
  CHECK(px(bc, 1, 0, 0) == 125);
  CHECK(px(bc, 2, 0, 0) == 48);  // (100, 100, 0, 10): 100 + ½(−100 + ½(−10 + ½·10)) = 48.75
}

// ---- RandAugment as a whole ------------------------------------------------------------------------

TEST_CASE("rand_augment level mapping follows timm's increasing set", "[image-transforms]") {
  img::RandAugmentOptions opt;
  img::Rng rng(0);
  using Op = img::RandAugmentOp;
  auto arg = [&](Op op, double m, int size = 0) {
    return img::rand_augment_level_to_arg(op, m, opt, rng, size);
  };
  CHECK(std::fabs(arg(Op::rotate, 9)) == Approx(27.0));
  CHECK(arg(Op::posterize, 9) == 1);  // 4 − int(3.6)
  CHECK(arg(Op::posterize, 10) == 0);
  CHECK(arg(Op::posterize, 0) == 4);
  CHECK(arg(Op::solarize, 9) == 26);  // 256 − int(230.4)
  CHECK(arg(Op::solarize, 0) == 256);
  CHECK(arg(Op::solarize_add, 9) == 99);
  CHECK(arg(Op::solarize_add, 10) == 110);
  CHECK(std::fabs(arg(Op::shear_x, 9)) == Approx(0.27));
  CHECK(std::fabs(arg(Op::translate_x_rel, 9, 224)) == Approx(0.405 * 224));
  std::set<double> factors;
  for (int i = 0; i < 50; ++i) factors.insert(std::round(arg(Op::color, 9) * 1000) / 1000);
  CHECK(factors == std::set<double>{0.19, 1.81});
  CHECK(arg(Op::brightness, 0) == 1.0);
  // Signs: both appear, about half each.
  int negative = 0;
  for (int i = 0; i < 1000; ++i) negative += arg(Op::rotate, 5) < 0;
  CHECK(negative / 1000.0 == Approx(0.5).margin(0.06));
  // The original (non-increasing) set.
  opt.increasing = false;
  CHECK(arg(Op::posterize, 9) == 3);
  CHECK(arg(Op::solarize, 9) == 230);
  CHECK(arg(Op::contrast, 9) == Approx(1.72));
  CHECK(std::string(img::rand_augment_op_name(Op::posterize, true)) == "PosterizeIncreasing");
}

TEST_CASE("rand_augment: uniform op choice, prob gate, magnitude noise", "[image-transforms]") {
  const cv::Mat m = picture(8, 8);
  img::RandAugmentOptions opt;
  opt.num_ops = 3000;
  img::Rng rng(42);
  std::vector<img::RandAugmentStep> trace;
  img::rand_augment(m, opt, rng, &trace);
  REQUIRE(trace.size() == 3000);
  std::map<int, int> count;
  int applied = 0;
  double msum = 0;
  for (const auto& s : trace) {
    ++count[int(s.op)];
    if (!s.applied) continue;
    ++applied;
    msum += s.magnitude;
    CHECK(s.magnitude >= 0.0);
    CHECK(s.magnitude <= 10.0);
    if (s.op == img::RandAugmentOp::rotate) CHECK(s.interp == Interp::bicubic);  // DeiT's train interpolation
  }
  CHECK(count.size() == 15);
  for (const auto& [op, n] : count) CHECK(n == Approx(200).margin(70));
  CHECK(applied / 3000.0 == Approx(0.5).margin(0.04));
  // N(9, 0.5) clipped to [0, 10]: mean just under 9.
  CHECK(msum / applied == Approx(9.0).margin(0.06));

  // No ops, or prob 0: a copy of the input.
  opt.num_ops = 0;
  CHECK(same_bytes(img::rand_augment(m, opt, rng), m));
  opt.num_ops = 4;
  opt.prob = 0.0;
  CHECK(same_bytes(img::rand_augment(m, opt, rng), m));

  // Without a fixed interpolation (timm's default), geometric ops pick bilinear or bicubic at random.
  opt = img::RandAugmentOptions{};
  opt.interpolation = std::nullopt;
  opt.num_ops = 400;
  opt.prob = 1.0;
  img::rand_augment(m, opt, rng, &trace);
  std::set<int> seen;
  for (const auto& s : trace)
    if (s.op == img::RandAugmentOp::shear_x || s.op == img::RandAugmentOp::rotate) seen.insert(int(s.interp));
  CHECK(seen.size() == 2);
}
