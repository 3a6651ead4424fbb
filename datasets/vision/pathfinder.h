// Pathfinder / Path-X (Linsley et al. 2018, as released in LRA; paper-benchmarks §3.6, §4.2):
// the index of a difficulty folder (metadata text files + PNG images), image decoding through
// OpenCV, and the snake/paddle generator writing the same layout.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mgl::datasets {

struct PathfinderItem {
  std::string image;   // path relative to the difficulty folder: "imgs/<b>/sample_<n>.png"
  int64_t label = 0;   // metadata field 3: 1 = the markers are connected
};

struct PathfinderIndex {
  std::filesystem::path root;        // the difficulty folder, e.g. pathfinder32/curv_contour_length_14
  std::vector<PathfinderItem> items; // in reference order (see read_pathfinder_index)
  int64_t skipped_empty = 0;         // zero-length images left out (LRA/S4 drop them)
  int64_t skipped_missing = 0;       // listed images that do not exist (only when skip_missing)
};

// Reads `<root>/metadata/<b>.npy` — plain text despite the extension — for every <b>, in numeric
// order of <b>; each non-empty line is split on spaces, field 0 = "imgs/<b>", field 1 =
// "sample_<n>.png", field 3 = label (0 or 1), lines kept in file order. Zero-length image files are
// skipped and counted (the known empty pathfinder32/curv_baseline/imgs/0/sample_172.png). Throws
// std::runtime_error naming file:line for a line with fewer than 4 fields or a bad label, and naming
// the folder when metadata/ is missing or empty. A listed image that does not exist is an error
// naming it, unless skip_missing (then counted).
PathfinderIndex read_pathfinder_index(const std::filesystem::path& root, bool skip_missing = false);

// Decodes one image as 8-bit grayscale (H×W uint8). Throws std::runtime_error naming the file if it
// cannot be decoded, or if expected_side > 0 and the image is not expected_side × expected_side.
torch::Tensor load_pathfinder_image(const std::filesystem::path& file, int64_t expected_side = -1);

// The generator's parameters (§4.2). Defaults are LRA's pathfinder32; path_x() gives pathfinder128.
struct PathfinderGenOptions {
  int64_t window = 32;
  int64_t padding = 1;
  int64_t antialias_scale = 2;
  double paddle_length = 2;
  double paddle_thickness = 0.5;
  std::vector<int64_t> paddle_margin = {1};
  double marker_radius = 1.5;
  double seed_distance = 7;
  double continuity = 1.0;
  int64_t contour_length = 14;
  int64_t distractor_length = 4;
  int64_t num_distractor_snakes = 5;
  std::vector<double> snake_contrast = {2.0};
  std::vector<double> paddle_contrast = {0.75};
  int64_t max_target_contour_retrial = 4;
  int64_t max_distractor_contour_retrial = 4;
  int64_t max_paddle_retrial = 2;
  bool use_single_paddles = false;
  static PathfinderGenOptions pathfinder32(int64_t contour_length = 14);
  static PathfinderGenOptions path_x();
  // Path-X parameters with another contour length (distractor_length = cl / 3 and
  // num_distractor_snakes = 35 / distractor_length, both integer divisions as in the Python 2 original).
  static PathfinderGenOptions path_x(int64_t contour_length);
};

struct PathfinderImage {
  torch::Tensor pixels;  // window×window uint8
  int64_t label = 0;
  // Marker positions (y, x) at the origin and terminal tips used, for checks.
  std::array<int64_t, 2> marker_a{}, marker_b{};
  int64_t restarts = 0;  // times the two-target-snake stage was restarted for this image
};

// Draws one image from a seeded RNG (deterministic for a seed).
PathfinderImage generate_pathfinder_image(const PathfinderGenOptions& options, uint64_t seed);

// The generator's internal state after one image, for checks and debugging.
struct PathfinderTrace {
  torch::Tensor snake_images;  // 2×H×W float32: each target snake's own paddles (intensity, before scaling)
  torch::Tensor snake_masks;   // 2×H×W float32 in [0,1]: union of each target snake's paddle masks
  int64_t marked_snake = 0;    // i: marker_a sits on the origin tip of target snake i
  std::array<std::array<int64_t, 2>, 2> origin_tips{}, terminal_tips{};  // (y, x) per target snake
  int64_t margin = 0;               // paddle margin m drawn for this image
  int64_t distractor_snakes = 0;    // distractor snakes actually drawn (failures are allowed)
  int64_t single_paddles = 0;       // single-paddle distractors drawn (use_single_paddles)
};
PathfinderImage generate_pathfinder_image(const PathfinderGenOptions& options, uint64_t seed, PathfinderTrace* trace);

// The seed of image `index` in generate_pathfinder (a 64-bit hash of both).
uint64_t pathfinder_image_seed(uint64_t seed, int64_t index);

// One paddle as the generator renders it, for checks against PIL: {line, mask}, uint8 levels,
// each (2K+1)² with K = paddle_length + ceil(paddle_thickness) + margin, the paddle starting at the
// centre and pointing along theta (radians; y grows with sin θ, x with cos θ).
std::array<torch::Tensor, 2> render_pathfinder_paddle(const PathfinderGenOptions& options, int64_t margin,
                                                      double theta);

struct PathfinderGenStats {
  int64_t images = 0, positives = 0;
  int64_t restarts = 0;  // target-snake stages restarted
};

// Writes `num_images` images as `<out_dir>/imgs/<b>/sample_<n>.png` (batches of `images_per_batch`)
// and `<out_dir>/metadata/<b>.npy` text lines in the real layout (§3.6). Image i uses seed
// hash(seed, i), so the output does not depend on `threads`. A metadata file is written (atomically)
// once all images of its batch are; a folder whose metadata/ already holds .npy files is refused.
// `progress(done, total)` is called from the calling thread about twice a second and at the end.
PathfinderGenStats generate_pathfinder(const PathfinderGenOptions& options, const std::filesystem::path& out_dir,
                                       int64_t num_images, uint64_t seed, int64_t images_per_batch = 1000,
                                       int64_t threads = 1,
                                       const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace mgl::datasets
