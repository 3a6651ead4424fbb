// `megalodon data pathfinder`: writes a Pathfinder / Path-X difficulty folder with the snakes2
// generator (paper-benchmarks §4.2), in the released layout (§3.6) that read_pathfinder_index reads.
#ifdef MEGALODON_HAS_VISION

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/data/data.h"
#include "datasets/vision/pathfinder.h"

namespace mgl::cli {
namespace {

constexpr const char* kPathfinderUsage =
    "usage: megalodon data pathfinder --out DIR [options]\n"
    "\n"
    "Generates Pathfinder images with the snakes2 algorithm and LRA's parameters, written as\n"
    "DIR/imgs/<b>/sample_<n>.png and DIR/metadata/<b>.npy (text lines; field 3 is the label).\n"
    "DIR plays the role of a difficulty folder, e.g. data/pathfinder32/curv_contour_length_14.\n"
    "\n"
    "options:\n"
    "  --out DIR              output folder (required)\n"
    "  --images N             number of images (default 200000, the size of an LRA folder)\n"
    "  --preset 32|128        32: pathfinder32; 128: pathfinder128 = Path-X (default 32)\n"
    "  --contour-length L     paddles per target snake: 6 (curv_baseline), 9, 14 (default 14);\n"
    "                         distractor length L/3 and the distractor count follow LRA's formulas\n"
    "  --seed S               64-bit seed; image i uses a hash of (S, i) (default 0)\n"
    "  --threads T            worker threads; the output does not depend on T (default: all cores)\n"
    "  --per-batch K          images per imgs/<b> folder and metadata file (default 1000)\n"
    "  --sheet FILE.png       also write a contact sheet of the first images, framed green\n"
    "                         (label 1, connected) or red (label 0), for eyeballing\n";

// Tiles the first images of the folder, scaled up, each framed by its label's colour.
void write_sheet(const std::filesystem::path& root, const std::string& file, int64_t side) {
  const auto index = datasets::read_pathfinder_index(root);
  const int64_t count = std::min<int64_t>(48, int64_t(index.items.size()));
  const int up = side <= 32 ? 6 : 2, cell = int(side) * up + 6, cols = 8;
  const int rows = int((count + cols - 1) / cols);
  cv::Mat sheet(rows * cell, cols * cell, CV_8UC3, cv::Scalar(40, 40, 40));
  for (int64_t i = 0; i < count; ++i) {
    const auto& item = index.items[size_t(i)];
    torch::Tensor t = datasets::load_pathfinder_image(root / item.image, side);
    const int n = static_cast<int>(side);
    cv::Mat gray(n, n, CV_8U, t.data_ptr<uint8_t>()), big, colour;
    cv::resize(gray, big, cv::Size(n * up, n * up), 0, 0, cv::INTER_NEAREST);
    cv::cvtColor(big, colour, cv::COLOR_GRAY2BGR);
    const cv::Scalar frame = item.label == 1 ? cv::Scalar(0, 200, 0) : cv::Scalar(0, 0, 220);
    const int x = int(i % cols) * cell, y = int(i / cols) * cell;
    cv::rectangle(sheet, cv::Rect(x, y, cell, cell), frame, 3);
    colour.copyTo(sheet(cv::Rect(x + 3, y + 3, colour.cols, colour.rows)));
    cv::putText(sheet, std::to_string(item.label), cv::Point(x + 6, y + 18), cv::FONT_HERSHEY_SIMPLEX, 0.5,
                frame, 1);
  }
  if (!cv::imwrite(file, sheet))
    throw std::runtime_error(fmt::format("{}: cannot write the contact sheet", file));
  std::printf("contact sheet of %lld images: %s\n", (long long)count, file.c_str());
}

int pathfinder_main(const std::vector<std::string>& args) {
  const auto p = parse_args(
      args,
      {"--out", "--images", "--preset", "--contour-length", "--seed", "--threads", "--per-batch", "--sheet"},
      {"--help"});
  if (p.flag("--help")) {
    std::fputs(kPathfinderUsage, stdout);
    return 0;
  }
  if (p.option("--out").empty() || !p.positional.empty()) {
    std::fputs(kPathfinderUsage, stderr);
    return 2;
  }
  const std::string preset = p.option("--preset", "32");
  if (preset != "32" && preset != "128")
    throw std::invalid_argument(fmt::format("--preset must be 32 or 128, got '{}'", preset));
  const int64_t contour_length = p.int_option("--contour-length", 14);
  const auto options = preset == "32" ? datasets::PathfinderGenOptions::pathfinder32(contour_length)
                                      : datasets::PathfinderGenOptions::path_x(contour_length);
  const int64_t images = p.int_option("--images", 200000);
  const int64_t per_batch = p.int_option("--per-batch", 1000);
  const int64_t threads = p.int_option("--threads", std::max(1u, std::thread::hardware_concurrency()));
  const uint64_t seed = p.seed_option();
  if (images < 1 || per_batch < 1 || threads < 1)
    throw std::invalid_argument("--images, --per-batch and --threads must be >= 1");
  const std::filesystem::path out = p.option("--out");

  std::printf(
      "pathfinder%s: %lld images into %s (contour length %lld, %lld distractors of %lld paddles, seed %llu, "
      "%lld threads)\n",
      preset.c_str(), (long long)images, out.string().c_str(), (long long)options.contour_length,
      (long long)options.num_distractor_snakes, (long long)options.distractor_length,
      (unsigned long long)seed, (long long)threads);
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  double last_line = -1e9;
  const auto stats = datasets::generate_pathfinder(
      options, out, images, seed, per_batch, threads, [&](int64_t done, int64_t total) {
        const double s = seconds();
        if (done < total && s - last_line < 5.0) return;
        last_line = s;
        std::printf("  %lld/%lld images, %.1f s, %.1f images/s\n", (long long)done, (long long)total, s,
                    s > 0 ? double(done) / s : 0.0);
        std::fflush(stdout);
      });
  const double s = seconds();
  std::printf(
      "done: %lld images in %.1f s (%.1f images/s); positives %.1f%%; two-snake restarts %lld "
      "(%.1f per image)\n",
      (long long)stats.images, s, double(stats.images) / std::max(s, 1e-9),
      100.0 * double(stats.positives) / double(stats.images), (long long)stats.restarts,
      double(stats.restarts) / double(stats.images));
  if (!p.option("--sheet").empty()) write_sheet(out, p.option("--sheet"), options.window);
  return 0;
}

const DataTool kPathfinder{
    "pathfinder", "generate Pathfinder / Path-X images (snakes2 algorithm, LRA parameters)", pathfinder_main};

}  // namespace
}  // namespace mgl::cli

#endif  // MEGALODON_HAS_VISION
