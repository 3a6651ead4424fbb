// `megalodon bench augment`: throughput of the per-image ImageNet training transforms
// (paper-benchmarks §2.6, datasets/vision/image_transforms.h) on this machine's CPU, to size the
// data-loader threads a training run needs.
#ifdef MEGALODON_HAS_VISION

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/bench/bench.h"
#include "datasets/vision/image_transforms.h"

namespace mgl::cli {
namespace {

namespace img = datasets::img;

constexpr const char* kAugmentBenchUsage =
    "usage: megalodon bench augment [options]\n"
    "\n"
    "Times the DeiT training chain on one image: random_resized_crop(S, bicubic) + hflip (p 0.5) +\n"
    "rand_augment (rand-m9-mstd0.5-inc1) + to_normalized_tensor + random_erasing_ (p 0.25), and prints\n"
    "images/s per thread for each thread count (every thread runs N iterations with its own generator).\n"
    "Torch and OpenCV are held to one thread each, so the numbers are for one loader thread per core.\n"
    "\n"
    "options:\n"
    "  --image FILE        an image to decode (default: a generated 500x375 colour image)\n"
    "  --iterations N      images per thread (default 300)\n"
    "  --size S            output side (default 224)\n"
    "  --threads LIST      comma-separated thread counts (default 1,2)\n"
    "  --seed S            seed of the first thread; thread t uses S + t (default 0)\n";

std::vector<int> thread_counts(const std::string& list) {
  std::vector<int> out;
  std::stringstream s(list);
  std::string item;
  while (std::getline(s, item, ',')) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size() || v < 1)
      throw std::invalid_argument(fmt::format("--threads expects positive integers, got '{}'", list));
    out.push_back(v);
  }
  if (out.empty()) throw std::invalid_argument("--threads is empty");
  return out;
}

// A 500×375 photo stand-in: smooth colour gradients, a few shapes and fine texture, so every op
// (histogram ops included) has something to work on.
cv::Mat generated_image() {
  cv::Mat m(375, 500, CV_8UC3);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) {
      const int texture = ((x * 131 + y * 71) ^ (x * y)) % 23;
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(cv::saturate_cast<uint8_t>(x / 2 + texture),
                                        cv::saturate_cast<uint8_t>(y * 255 / 375 + texture),
                                        cv::saturate_cast<uint8_t>(128 + 100 * std::sin((x + y) * 0.03)));
    }
  cv::circle(m, cv::Point(320, 150), 70, cv::Scalar(240, 200, 40), cv::FILLED);
  cv::rectangle(m, cv::Rect(60, 220, 150, 100), cv::Scalar(30, 60, 200), cv::FILLED);
  return m;
}

struct Stages {
  double crop = 0, flip = 0, augment = 0, tensor = 0, erase = 0;
};

// One training sample; adds each stage's seconds to `t` when given.
torch::Tensor sample(const cv::Mat& rgb, int size, img::Rng& rng, Stages* t) {
  using clock = std::chrono::steady_clock;
  auto lap = [](clock::time_point& start) {
    const auto now = clock::now();
    const double s = std::chrono::duration<double>(now - start).count();
    start = now;
    return s;
  };
  auto start = clock::now();
  cv::Mat a = img::random_resized_crop(rgb, size, rng);
  const double crop = lap(start);
  if (std::uniform_real_distribution<double>(0.0, 1.0)(rng) < 0.5) a = img::hflip(a);
  const double flip = lap(start);
  a = img::rand_augment(a, img::RandAugmentOptions{}, rng);
  const double augment = lap(start);
  torch::Tensor x = img::to_normalized_tensor(a, img::kImageNetMean, img::kImageNetStd);
  const double tensor = lap(start);
  img::random_erasing_(x, 0.25, rng);
  const double erase = lap(start);
  if (t) {
    t->crop += crop;
    t->flip += flip;
    t->augment += augment;
    t->tensor += tensor;
    t->erase += erase;
  }
  return x;
}

int bench_augment_main(const std::vector<std::string>& args) {
  const auto p = parse_args(args, {"--image", "--iterations", "--size", "--threads", "--seed"}, {"--help"});
  if (p.flag("--help")) {
    std::fputs(kAugmentBenchUsage, stdout);
    return 0;
  }
  if (!p.positional.empty()) {
    std::fputs(kAugmentBenchUsage, stderr);
    return 2;
  }
  const int64_t iterations = p.int_option("--iterations", 300, 0);
  const int size = int(p.int_option("--size", 224, 0));
  const uint64_t seed = uint64_t(p.int_option("--seed", 0, 0));
  const std::vector<int> threads = thread_counts(p.option("--threads", "1,2"));
  if (iterations < 1 || size < 1) throw std::invalid_argument("--iterations and --size must be >= 1");

  cv::Mat rgb;
  std::string source = "a generated 500x375 image";
  if (!p.option("--image").empty()) {
    const cv::Mat bgr = cv::imread(p.option("--image"), cv::IMREAD_COLOR);
    if (bgr.empty())
      throw std::runtime_error(fmt::format("{}: cannot decode the image", p.option("--image")));
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    source = fmt::format("{} ({}x{})", p.option("--image"), rgb.cols, rgb.rows);
  } else {
    rgb = generated_image();
  }
  torch::set_num_threads(1);
  cv::setNumThreads(0);

  std::printf("megalodon bench augment: %s -> %dx%d, %lld images per thread, hardware threads %u\n", source.c_str(),
              size, size, (long long)iterations, std::thread::hardware_concurrency());
  {
    img::Rng rng(seed);
    for (int i = 0; i < 10; ++i) sample(rgb, size, rng, nullptr);  // warm-up
    Stages st;
    for (int64_t i = 0; i < iterations; ++i) sample(rgb, size, rng, &st);
    const double k = 1e3 / double(iterations);
    std::printf(
        "  ms per image, 1 thread: crop+resize %.3f | hflip %.3f | rand_augment %.3f | to_tensor %.3f | "
        "erasing %.3f | total %.3f\n",
        st.crop * k, st.flip * k, st.augment * k, st.tensor * k, st.erase * k,
        (st.crop + st.flip + st.augment + st.tensor + st.erase) * k);
  }
  for (const int n : threads) {
    std::vector<std::thread> pool;
    const auto start = std::chrono::steady_clock::now();
    for (int t = 0; t < n; ++t)
      pool.emplace_back([&, t] {
        img::Rng rng(seed + uint64_t(t));
        for (int64_t i = 0; i < iterations; ++i) sample(rgb, size, rng, nullptr);
      });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  threads %d: %.1f images/s per thread, %.1f images/s in all (%.2f s)\n", n,
                double(iterations) / s, double(iterations) * n / s, s);
  }
  return 0;
}

const BenchOp kAugment{"augment", "time the ImageNet training transforms (crop, flip, RandAugment, erasing)",
                       bench_augment_main};

}  // namespace
}  // namespace mgl::cli

#endif  // MEGALODON_HAS_VISION
