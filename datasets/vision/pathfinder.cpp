// Pathfinder / Path-X: index reader, image decoder and the snake/paddle generator
// (paper-benchmarks §3.6 for the files, §4.2 for the algorithm of Linsley et al.'s snakes2.py as LRA ran it).
//
// How this generator differs from the Python reference, and why:
//
//  1. Randomness. Our own splitmix64 stream with our own bounded-integer (rejection) and
//     uniform-real (53-bit) draws replaces numpy's global Mersenne Twister, so the output is the
//     same on every platform and standard library, but no image matches a reference image for any
//     seed. The draws are made from the same distributions; their order differs.
//  2. Line rasteriser. PIL's ImageDraw.line is reproduced rather than approximated with cv::line
//     (whose thick lines have round caps): width 1 is a Bresenham walk with PIL's tie rule (step the
//     minor axis when the error term is >= 0) plus the end point; wider lines are PIL's
//     quadrilateral around the segment (half-width (w−1)/2, offsets rounded as PIL rounds them),
//     filled by a scanline fill with PIL's crossing and rounding rules. Every paddle sprite (line and
//     mask, all integer-degree and circle-candidate angles, pathfinder32 and Path-X geometries) was
//     checked bit-identical to Pillow 9.4; older Pillow releases may differ on edge pixels of wide
//     lines (Path-X only; pathfinder32 draws width 1).
//  3. Lanczos resampling. scipy.misc.imresize(interp='lanczos') is PIL's antialiasing Lanczos-3
//     resize, whose kernel widens by the reduction factor. cv::resize(INTER_LANCZOS4) does not widen
//     it, so a 1-pixel line at aa = 2 would alias in and out with its phase, and INTER_AREA is a box
//     filter; so the PIL filter is implemented here (separable, horizontal pass then vertical pass,
//     8-bit result of each pass, coefficients in fixed point with 22 fractional bits, rounding half
//     up, clipped to 0..255). It matches Pillow 9.4 bit for bit on random 8-bit images; Pillow
//     releases before 4.0 computed in floating point (at most one grey level apart).
//  4. Dilation uses cv::dilate with the reference's kernels and centre anchor (grey-level max,
//     borders ignored), exactly like cv2.dilate. The occupancy dilation before the candidate
//     weighting is evaluated only at the candidate points (same values, less work).
//  5. Masks are kept as 8-bit levels k (the reference stores k/255 in float64): "occupied" is
//     k > 76 (k/255 > 0.3) and the overlap test max(mask + paddle mask) < 1.8 is k1 + k2 < 459
//     (the reference's float sum can round the other way at an exact tie of 459/255).
//  6. Sampling a candidate: the reference takes the first index whose cumulative probability
//     exceeds a uniform number, and index 0 if none does (floating-point shortfall); we take the
//     last candidate with positive weight in that case.
//  7. The two-target-snake stage restarts until it succeeds, as in snakes2.py (which ignores
//     max_target_contour_retrial); we give up with an error after 10,000 restarts, which valid
//     parameters never reach.
//  8. Python 2 integer division: the Path-X wrapper's distractor_length = 14 / 3 and
//     num_distractor_snakes = 35 / distractor_length are integers in Python 2 (the original runs
//     under Python 2: scipy.misc.imresize/imsave, .pyc files beside the sources; in Python 3 the
//     float 4.67 would break range(num_segments - 1)). So Path-X uses 4 and 8.
//  9. Metadata is written as plain text lines (what the released files are and what LRA, S4 and
//     Mega read, §3.6), not np.save's binary format that the script's save_metadata would produce.
//     PNGs are written by OpenCV (same 8-bit pixels as scipy's imsave after its min..max scaling).
// 10. Images are accumulated in float64 like the reference; the final byte scaling is
//     round(clip((v − min)·255/(max − min))) with halves rounded up, as scipy.misc.bytescale did.
// 11. Parameter checks the reference lacks: padding >= 1 (padding 0 would occupy the whole mask
//     through Python's [-0:] slice), paddle_length integral, paddle_thickness·aa integral,
//     contour_length >= 2.
//
// Reference quirks kept on purpose, because they shape the released data:
//  - Seed 2 is placed at seed_distance from seed 1 without looking at the occupancy mask.
//  - The seed structuring element is the paddle mask placed one pixel off the kernel centre (its
//    start at (L+m+1, L+m+1) in a (2(L+m)+1)² kernel) and keeps only the mask pixels at level 255.
//  - A paddle's mask joins the occupancy mask only when its snake gets its next paddle, and the two
//    target snakes grow in turns, so a target paddle is never checked against the other snake's
//    paddle of the same round or the one before: the two target snakes can touch (a label-0 marker
//    lies on the other target snake's paddle in about 1% of pathfinder32 images).
//  - After the target snakes are complete, only snake B's pending last paddle mask is merged into
//    the occupancy mask; snake A's last paddle stays unmerged, so distractors may touch it.
//  - Distractors are drawn at snake_contrast without the paddle_contrast factor.
//  - Markers are drawn around aa-resolution pixel (y·aa, x·aa), i.e. half a fine pixel off the
//    coarse pixel centre, before downsampling.
#include "datasets/vision/pathfinder.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <unordered_map>

namespace mgl::datasets {

namespace fs = std::filesystem;

// ------------------------------------------------------------------------------------------------
// Reading
// ------------------------------------------------------------------------------------------------

namespace {

// Batch id of a metadata file name "<b>.npy"; -1 when the stem is not a plain non-negative integer.
int64_t batch_id_of(const fs::path& file) {
  const std::string stem = file.stem().string();
  if (stem.empty() || stem.size() > 18) return -1;
  int64_t v = 0;
  for (char c : stem) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string f;
  while (in >> f) out.push_back(f);
  return out;
}

}  // namespace

PathfinderIndex read_pathfinder_index(const fs::path& root, bool skip_missing) {
  const fs::path meta = root / "metadata";
  std::error_code ec;
  if (!fs::is_directory(meta, ec))
    throw std::runtime_error(
        fmt::format("{}: no metadata/ folder (a Pathfinder difficulty folder holds "
                    "metadata/<b>.npy and imgs/<b>/sample_<n>.png)",
                    root.string()));
  std::vector<std::pair<int64_t, fs::path>> files;
  for (const auto& e : fs::directory_iterator(meta)) {
    if (!e.is_regular_file() || e.path().extension() != ".npy") continue;
    const int64_t id = batch_id_of(e.path());
    if (id < 0)
      throw std::runtime_error(
          fmt::format("{}: metadata file name is not <batch id>.npy with a numeric id", e.path().string()));
    files.emplace_back(id, e.path());
  }
  if (files.empty()) throw std::runtime_error(fmt::format("{}: no <b>.npy metadata files", meta.string()));
  // Numeric order of the batch id (0, 1, 2, 10), not the lexical order of the names.
  std::sort(files.begin(), files.end());

  PathfinderIndex index;
  index.root = root;
  for (const auto& [id, file] : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto f = split_fields(line);
      if (f.empty()) continue;
      const std::string where = fmt::format("{}:{}", file.string(), line_no);
      if (f.size() < 4)
        throw std::runtime_error(
            fmt::format("{}: expected at least 4 space-separated fields "
                        "(imgs/<b> sample_<n>.png <n> <label> ...), found {}",
                        where, f.size()));
      if (f[3] != "0" && f[3] != "1")
        throw std::runtime_error(fmt::format("{}: label (field 4) must be 0 or 1, found '{}'", where, f[3]));
      // The image is imgs/<b>/sample_<n>.png inside the difficulty folder: an absolute path or a ".."
      // would read files from elsewhere.
      const bool escapes = f[0].empty() || f[0][0] == '/' || f[1].find('/') != std::string::npos ||
                           f[1] == ".." || ("/" + f[0] + "/").find("/../") != std::string::npos;
      if (escapes)
        throw std::runtime_error(fmt::format("{}: image path '{}/{}' leaves the folder (expected imgs/<b> sample_<n>.png)",
                                             where, f[0], f[1]));
      PathfinderItem item;
      item.image = f[0] + "/" + f[1];
      item.label = f[3] == "1" ? 1 : 0;
      const fs::path image = root / item.image;
      const auto size = fs::file_size(image, ec);
      if (ec) {
        if (!fs::exists(image)) {
          if (skip_missing) {
            ++index.skipped_missing;
            continue;
          }
          throw std::runtime_error(fmt::format("{}: listed image {} does not exist", where, image.string()));
        }
        throw std::runtime_error(fmt::format("{}: cannot stat {}: {}", where, image.string(), ec.message()));
      }
      if (size == 0) {  // e.g. pathfinder32/curv_baseline/imgs/0/sample_172.png
        ++index.skipped_empty;
        continue;
      }
      index.items.push_back(std::move(item));
    }
    (void)id;
  }
  return index;
}

torch::Tensor load_pathfinder_image(const fs::path& file, int64_t expected_side) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw std::runtime_error(fmt::format("{}: no such image file", file.string()));
  cv::Mat m = cv::imread(file.string(), cv::IMREAD_GRAYSCALE);
  if (m.empty() || m.type() != CV_8UC1)
    throw std::runtime_error(
        fmt::format("{}: cannot decode as an 8-bit grayscale image (empty or corrupt PNG?)", file.string()));
  if (expected_side > 0 && (m.rows != expected_side || m.cols != expected_side))
    throw std::runtime_error(fmt::format("{}: image is {}×{} pixels, expected {}×{}", file.string(), m.rows,
                                         m.cols, expected_side, expected_side));
  torch::Tensor t = torch::empty({m.rows, m.cols}, torch::kUInt8);
  for (int r = 0; r < m.rows; ++r)
    std::memcpy(t.data_ptr<uint8_t>() + int64_t(r) * m.cols, m.ptr<uint8_t>(r), m.cols);
  return t;
}

// ------------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------------

PathfinderGenOptions PathfinderGenOptions::pathfinder32(int64_t contour_length) {
  // LRA's Pathfinder32 builder docstring (§4.2 table); the struct defaults are these values.
  PathfinderGenOptions o;
  o.contour_length = contour_length;
  o.distractor_length = contour_length / 3;
  o.num_distractor_snakes = o.distractor_length > 0 ? 20 / o.distractor_length : 0;
  return o;
}

PathfinderGenOptions PathfinderGenOptions::path_x() { return path_x(14); }

PathfinderGenOptions PathfinderGenOptions::path_x(int64_t contour_length) {
  // LRA's Pathfinder128 builder docstring; unlisted parameters keep snakes2_wrapper's Args defaults
  // (paddle_length 5, paddle_contrast [1.0], retries 4/4/2). antialias_scale is set to 4 and then
  // overridden to 2 in that list.
  PathfinderGenOptions o;
  o.window = 128;
  o.padding = 1;
  o.antialias_scale = 2;
  o.paddle_length = 5;
  o.paddle_thickness = 1.5;
  o.paddle_margin = {2, 3};
  o.marker_radius = 3;
  o.seed_distance = 20;
  o.continuity = 1.8;
  o.contour_length = contour_length;
  o.distractor_length = contour_length / 3;                                          // 14 / 3 = 4 (Python 2)
  o.num_distractor_snakes = o.distractor_length > 0 ? 35 / o.distractor_length : 0;  // 35 / 4 = 8
  o.snake_contrast = {0.9};
  o.paddle_contrast = {1.0};
  return o;
}

namespace {

bool integral(double v) { return std::isfinite(v) && v == std::floor(v); }

void validate(const PathfinderGenOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("pathfinder generator: " + what); };
  if (o.window < 8) bad(fmt::format("window {} is too small (>= 8)", o.window));
  if (o.padding < 1 || 2 * o.padding >= o.window)
    bad(fmt::format("padding {} must be in 1..window/2", o.padding));
  if (o.antialias_scale < 1) bad("antialias_scale must be >= 1");
  if (!(o.paddle_length >= 1) || !integral(o.paddle_length)) bad("paddle_length must be a positive integer");
  if (!(o.paddle_thickness > 0) || !integral(o.paddle_thickness * double(o.antialias_scale)))
    bad("paddle_thickness × antialias_scale must be a positive integer (the reference's 'thickness does not "
        "break even')");
  if (o.paddle_margin.empty()) bad("paddle_margin needs at least one value");
  for (auto m : o.paddle_margin)
    if (m < 1) bad("paddle_margin values must be >= 1");
  if (!(o.marker_radius > 0)) bad("marker_radius must be > 0");
  if (!(o.seed_distance > 0)) bad("seed_distance must be > 0");
  if (!(o.continuity > 0)) bad("continuity must be > 0");
  if (o.contour_length < 2) bad("contour_length must be >= 2");
  if (o.num_distractor_snakes < 0) bad("num_distractor_snakes must be >= 0");
  if (o.num_distractor_snakes > 0 && o.distractor_length < 1) bad("distractor_length must be >= 1");
  if (o.snake_contrast.empty() || o.paddle_contrast.empty())
    bad("snake_contrast and paddle_contrast need values");
  if (o.max_distractor_contour_retrial < 0 || o.max_paddle_retrial < 0) bad("retry counts must be >= 0");
}

// ------------------------------------------------------------------------------------------------
// Random numbers: splitmix64 (Steele, Lea & Flood 2014) with our own bounded and real draws.
// ------------------------------------------------------------------------------------------------

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  // Uniform in [0, n), n >= 1, without modulo bias.
  int64_t below(int64_t n) {
    const uint64_t un = static_cast<uint64_t>(n);
    const uint64_t limit = (0 - un) % un;  // 2^64 mod n: values below it would be over-represented
    uint64_t x;
    do x = next();
    while (x < limit);
    return static_cast<int64_t>(x % un);
  }
  // Uniform integer in [lo, hi).
  int64_t range(int64_t lo, int64_t hi) { return lo + below(hi - lo); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// ------------------------------------------------------------------------------------------------
// Raster primitives
// ------------------------------------------------------------------------------------------------

constexpr uint8_t kFull = 255;
constexpr int kOccupied = 76;     // a mask level k > 76 means k/255 > 0.3: occupied
constexpr int kOverlapSum = 459;  // k1 + k2 >= 459 means k1/255 + k2/255 >= 1.8: overlap

struct Point {
  int64_t y = 0, x = 0;
};

// Moves `p` by `dist` along `theta` (y grows with sin, x with cos) and rounds each coordinate up.
Point translate(Point p, double theta, double dist) {
  return {static_cast<int64_t>(std::ceil(double(p.y) + dist * std::sin(theta))),
          static_cast<int64_t>(std::ceil(double(p.x) + dist * std::cos(theta)))};
}

double flip_by_pi(double theta) { return theta < 0 ? theta + M_PI : theta - M_PI; }
double degrees(int64_t d) { return double(d) * M_PI / 180.0; }

void put(cv::Mat& c, int x, int y) {
  if (x >= 0 && y >= 0 && x < c.cols && y < c.rows) c.at<uint8_t>(y, x) = kFull;
}

// A 1-pixel line from (x0, y0) to (x1, y1), both ends included (PIL's width-1 line).
void thin_line(cv::Mat& c, int x0, int y0, int x1, int y1) {
  const int dx = std::abs(x1 - x0), dy = std::abs(y1 - y0);
  const int sx = x1 >= x0 ? 1 : -1, sy = y1 >= y0 ? 1 : -1;
  int x = x0, y = y0;
  if (dx > dy) {
    int err = 2 * dy - dx;
    for (int i = 0; i < dx; ++i) {
      put(c, x, y);
      if (err >= 0) {
        y += sy;
        err -= 2 * dx;
      }
      err += 2 * dy;
      x += sx;
    }
  } else {
    int err = 2 * dx - dy;
    for (int i = 0; i < dy; ++i) {
      put(c, x, y);
      if (err >= 0) {
        x += sx;
        err -= 2 * dy;
      }
      err += 2 * dx;
      y += sy;
    }
  }
  put(c, x1, y1);
}

// PIL rounds the wide line's offsets half away from zero (up) or half towards zero (down).
int round_half_away(double f) { return f >= 0 ? int(std::floor(f + 0.5)) : -int(std::floor(-f + 0.5)); }
int round_half_toward(double f) { return f >= 0 ? int(std::ceil(f - 0.5)) : -int(std::ceil(-f - 0.5)); }

// Scanline fill of a polygon as PIL fills it: on each integer row, the crossings of the
// non-horizontal edges (an edge counts on the rows from its upper to its lower end, inclusive; a
// row at an edge's lower end, other than the polygon's last row, counts that crossing twice), sorted
// and filled pairwise from the left crossing rounded half up to the right crossing rounded half
// down. Crossings are computed in single precision as PIL does.
void fill_polygon(cv::Mat& c, const cv::Point* v, int n) {
  struct Edge {
    int y0, y1;    // upper and lower row
    float x0, dx;  // x at y0, and x step per row
  };
  std::vector<Edge> edges;
  int top = c.rows - 1, bottom = 0;
  for (int i = 0; i < n; ++i) {
    cv::Point a = v[i], b = v[(i + 1) % n];
    if (a.y == b.y) continue;
    if (a.y > b.y) std::swap(a, b);
    edges.push_back({a.y, b.y, float(a.x), float(b.x - a.x) / float(b.y - a.y)});
    top = std::min(top, a.y);
    bottom = std::max(bottom, b.y);
  }
  top = std::max(top, 0);
  bottom = std::min(bottom, c.rows);
  auto round_up = [](float f) {
    return f >= 0 ? int(std::floor(f + 0.5f)) : -int(std::floor(std::fabs(f) + 0.5f));
  };
  auto round_down = [](float f) {
    return f >= 0 ? int(std::ceil(f - 0.5f)) : -int(std::ceil(std::fabs(f) - 0.5f));
  };
  std::vector<float> xs;
  for (int y = top; y <= bottom; ++y) {
    xs.clear();
    for (const Edge& e : edges) {
      if (y >= e.y0 && y <= e.y1) xs.push_back(float(y - e.y0) * e.dx + e.x0);
      if (y == e.y1 && y < bottom && !xs.empty()) xs.push_back(xs.back());
    }
    std::sort(xs.begin(), xs.end());
    for (size_t i = 1; i < xs.size(); i += 2)
      for (int x = std::max(0, round_up(xs[i - 1])); x <= std::min(c.cols - 1, round_down(xs[i])); ++x)
        if (y < c.rows) c.at<uint8_t>(y, x) = kFull;
  }
}

// A line of integer width > 1: the quadrilateral around the segment that PIL fills.
void wide_line(cv::Mat& c, int x0, int y0, int x1, int y1, int width) {
  const int dx = x1 - x0, dy = y1 - y0;
  if (dx == 0 && dy == 0) {
    put(c, x0, y0);
    return;
  }
  const double len = std::hypot(double(dx), double(dy));
  const double half = (width - 1) / 2.0;
  const double r_max = round_half_away(half) / len, r_min = round_half_toward(half) / len;
  const int ox_min = round_half_toward(r_min * dy), ox_max = round_half_toward(r_max * dy);
  const int oy_min = round_half_toward(r_min * dx), oy_max = round_half_toward(r_max * dx);
  const cv::Point quad[4] = {{x0 - ox_min, y0 + oy_max},
                             {x1 - ox_min, y1 + oy_max},
                             {x1 + ox_max, y1 - oy_min},
                             {x0 + ox_max, y0 - oy_min}};
  fill_polygon(c, quad, 4);
}

// The reference's dilation structure: a (2r+1)² disk, x² + y² <= r².
cv::Mat disk_kernel(int r) {
  cv::Mat k = cv::Mat::zeros(2 * r + 1, 2 * r + 1, CV_8U);
  for (int y = -r; y <= r; ++y)
    for (int x = -r; x <= r; ++x)
      if (x * x + y * y <= r * r) k.at<uint8_t>(y + r, x + r) = 1;
  return k;
}

// Antialiasing Lanczos-3 resampling of 8-bit images, PIL's LANCZOS filter (see note 3 on top).
class Lanczos {
 public:
  static constexpr int kBits = 22;  // fractional bits of the fixed-point coefficients

  struct Taps {
    int first = 0;
    std::vector<int32_t> w;
  };

  // Taps mapping `in` samples onto `out` samples.
  static std::vector<Taps> taps(int in, int out) {
    const double scale = double(in) / out;
    const double filter_scale = std::max(scale, 1.0);
    const double support = 3.0 * filter_scale;
    std::vector<Taps> result(out);
    std::vector<double> w;
    for (int i = 0; i < out; ++i) {
      const double centre = (i + 0.5) * scale;
      const int lo = std::max(0, int(centre - support + 0.5));
      const int hi = std::min(in, int(centre + support + 0.5));
      w.assign(std::max(0, hi - lo), 0.0);
      double sum = 0;
      for (int j = lo; j < hi; ++j) {
        w[j - lo] = kernel((j - centre + 0.5) / filter_scale);
        sum += w[j - lo];
      }
      Taps& t = result[i];
      t.first = lo;
      t.w.resize(w.size());
      for (size_t j = 0; j < w.size(); ++j) {
        const double v = (sum != 0 ? w[j] / sum : 0.0) * double(1 << kBits);
        t.w[j] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
      }
    }
    return result;
  }

  // Resizes an 8-bit single-channel image: horizontal pass, then vertical pass, each to 8 bits.
  static cv::Mat resize(const cv::Mat& src, int rows, int cols) {
    const auto tx = taps(src.cols, cols);
    const auto ty = taps(src.rows, rows);
    cv::Mat tmp(src.rows, cols, CV_8U), dst(rows, cols, CV_8U);
    for (int r = 0; r < src.rows; ++r) {
      const uint8_t* in = src.ptr<uint8_t>(r);
      uint8_t* out = tmp.ptr<uint8_t>(r);
      for (int c = 0; c < cols; ++c) {
        int64_t acc = int64_t(1) << (kBits - 1);
        const Taps& t = tx[c];
        for (size_t j = 0; j < t.w.size(); ++j) acc += int64_t(in[t.first + j]) * t.w[j];
        out[c] = clip8(acc);
      }
    }
    for (int r = 0; r < rows; ++r) {
      const Taps& t = ty[r];
      uint8_t* out = dst.ptr<uint8_t>(r);
      for (int c = 0; c < cols; ++c) {
        int64_t acc = int64_t(1) << (kBits - 1);
        for (size_t j = 0; j < t.w.size(); ++j) acc += int64_t(tmp.at<uint8_t>(t.first + int(j), c)) * t.w[j];
        out[c] = clip8(acc);
      }
    }
    return dst;
  }

 private:
  static double sinc(double x) {
    if (x == 0) return 1.0;
    x *= M_PI;
    return std::sin(x) / x;
  }
  static double kernel(double x) { return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0; }
  static uint8_t clip8(int64_t acc) {
    if (acc <= 0) return 0;
    const int64_t v = acc >> kBits;
    return static_cast<uint8_t>(std::min<int64_t>(v, 255));
  }
};

// ------------------------------------------------------------------------------------------------
// Paddles
// ------------------------------------------------------------------------------------------------

// Fixed geometry of one image's paddles (margin m is drawn per image).
struct Geometry {
  int length = 0;      // L
  int margin = 0;      // m
  int aa = 1;          // antialias_scale
  int line_width = 1;  // thickness·aa
  int half = 0;        // K = L + ceil(thickness) + m: a paddle sprite is (2K+1)²
  double thickness = 0;
};

Geometry geometry_of(const PathfinderGenOptions& o, int margin) {
  Geometry g;
  g.length = int(o.paddle_length);
  g.margin = margin;
  g.aa = int(o.antialias_scale);
  g.thickness = o.paddle_thickness;
  g.line_width = int(std::lround(o.paddle_thickness * double(o.antialias_scale)));
  g.half = g.length + int(std::ceil(o.paddle_thickness)) + g.margin;
  return g;
}

// A paddle rendered at window resolution: its line (intensity levels before the contrast) and its
// mask (the line dilated by a disk of radius m·aa before downsampling), both (2K+1)², the paddle's
// start point at the centre.
struct Sprite {
  cv::Mat line, mask;  // CV_8U levels 0..255
};

Sprite render_paddle(const Geometry& g, double theta) {
  const int side = 2 * g.half * g.aa + 1, centre = g.half * g.aa;
  cv::Mat fine = cv::Mat::zeros(side, side, CV_8U);
  const Point head = translate({centre, centre}, theta, double(g.length) * g.aa);
  if (g.line_width <= 1)
    thin_line(fine, centre, centre, int(head.x), int(head.y));
  else
    wide_line(fine, centre, centre, int(head.x), int(head.y), g.line_width);
  cv::Mat fine_mask;
  cv::dilate(fine, fine_mask, disk_kernel(g.margin * g.aa));
  const int out = 2 * g.half + 1;
  return {Lanczos::resize(fine, out, out), Lanczos::resize(fine_mask, out, out)};
}

// Sprites depend only on the geometry and the angle; the angles repeat a lot (integer degrees for
// seeds, a few dozen circle points for extensions), so each thread keeps them.
class SpriteCache {
 public:
  const Sprite& paddle(const Geometry& g, double theta) { return get(g, theta, 0); }
  // The seeding structuring element for angle theta (see the quirks on top).
  const cv::Mat& seed_struct(const Geometry& g, double theta) { return get(g, theta, 1).mask; }
  void limit(size_t n) {
    if (map_.size() + tails_.size() > n) {
      map_.clear();
      tails_.clear();
    }
  }

  // Free tails of the first target seed per angle (see ImageSampler::first_seed_tails).
  struct TailsKey {
    int length, margin, aa, line_width, window, padding, band, degrees;
    bool operator<(const TailsKey& o) const {
      return std::tie(length, margin, aa, line_width, window, padding, band, degrees) <
             std::tie(o.length, o.margin, o.aa, o.line_width, o.window, o.padding, o.band, o.degrees);
    }
  };
  const std::vector<Point>* tails(const TailsKey& k) const {
    auto it = tails_.find(k);
    return it == tails_.end() ? nullptr : &it->second;
  }
  const std::vector<Point>& set_tails(const TailsKey& k, std::vector<Point> v) {
    return tails_.emplace(k, std::move(v)).first->second;
  }

 private:
  struct Key {
    int length, margin, aa, line_width, kind;
    uint64_t theta_bits;
    bool operator==(const Key& o) const {
      return length == o.length && margin == o.margin && aa == o.aa && line_width == o.line_width &&
             kind == o.kind && theta_bits == o.theta_bits;
    }
  };
  struct Hash {
    size_t operator()(const Key& k) const {
      uint64_t h = k.theta_bits;
      for (int v : {k.length, k.margin, k.aa, k.line_width, k.kind}) h = mix64(h ^ uint64_t(v));
      return size_t(h);
    }
  };

  const Sprite& get(const Geometry& g, double theta, int kind) {
    uint64_t bits;
    std::memcpy(&bits, &theta, sizeof bits);
    const Key key{g.length, g.margin, g.aa, g.line_width, kind, bits};
    auto it = map_.find(key);
    if (it != map_.end()) return it->second;
    Sprite s = render_paddle(g, theta);
    if (kind == 1) {
      // The paddle mask placed with its start at (L+m+1, L+m+1) in a (2(L+m)+1)² canvas, clipped,
      // then cast to 0/1 the way numpy's astype(uint8) truncates k/255: only level 255 survives.
      const int n = 2 * (g.length + g.margin) + 1, at = g.length + g.margin + 1;
      cv::Mat k = cv::Mat::zeros(n, n, CV_8U);
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) {
          const int sy = y - at + g.half, sx = x - at + g.half;
          if (sy >= 0 && sx >= 0 && sy < s.mask.rows && sx < s.mask.cols &&
              s.mask.at<uint8_t>(sy, sx) == kFull)
            k.at<uint8_t>(y, x) = 1;
        }
      if (cv::countNonZero(k) == 0)
        k.at<uint8_t>(n / 2, n / 2) = 1;  // never empty (cv::dilate needs a point)
      s.mask = k;
      s.line.release();
    }
    return map_.emplace(key, std::move(s)).first->second;
  }

  std::unordered_map<Key, Sprite, Hash> map_;
  std::map<TailsKey, std::vector<Point>> tails_;
};

// Clipped overlap of a (2K+1)² sprite centred at p with an H×W image: image rows/cols [y0, y1),
// sprite offset (sy, sx).
struct Window {
  int y0, y1, x0, x1, sy, sx;
};
Window window_of(const cv::Mat& image, int half, Point p) {
  Window w;
  w.y0 = std::max<int>(0, int(p.y) - half);
  w.y1 = std::min<int>(image.rows, int(p.y) + half + 1);
  w.x0 = std::max<int>(0, int(p.x) - half);
  w.x1 = std::min<int>(image.cols, int(p.x) + half + 1);
  w.sy = w.y0 - (int(p.y) - half);
  w.sx = w.x0 - (int(p.x) - half);
  return w;
}

// A paddle placed at a point: the image gets max(image, level/255·contrast), masks max(mask, level).
struct Placed {
  const Sprite* sprite = nullptr;
  Point at;
};

void paint(cv::Mat& image, const Placed& p, int half, double contrast) {
  const Window w = window_of(image, half, p.at);
  for (int y = w.y0; y < w.y1; ++y) {
    double* row = image.ptr<double>(y);
    const uint8_t* s = p.sprite->line.ptr<uint8_t>(y - w.y0 + w.sy) + w.sx;
    for (int x = w.x0; x < w.x1; ++x) row[x] = std::max(row[x], double(s[x - w.x0]) / 255.0 * contrast);
  }
}

void merge_mask(cv::Mat& mask, const Placed& p, int half) {
  if (!p.sprite) return;
  const Window w = window_of(mask, half, p.at);
  for (int y = w.y0; y < w.y1; ++y) {
    uint8_t* row = mask.ptr<uint8_t>(y);
    const uint8_t* s = p.sprite->mask.ptr<uint8_t>(y - w.y0 + w.sy) + w.sx;
    for (int x = w.x0; x < w.x1; ++x) row[x] = std::max(row[x], s[x - w.x0]);
  }
}

// max(mask + paddle mask) >= 1.8
bool overlaps(const cv::Mat& mask, const Placed& p, int half) {
  const Window w = window_of(mask, half, p.at);
  for (int y = w.y0; y < w.y1; ++y) {
    const uint8_t* row = mask.ptr<uint8_t>(y);
    const uint8_t* s = p.sprite->mask.ptr<uint8_t>(y - w.y0 + w.sy) + w.sx;
    for (int x = w.x0; x < w.x1; ++x)
      if (int(row[x]) + int(s[x - w.x0]) >= kOverlapSum) return true;
  }
  return false;
}

// ------------------------------------------------------------------------------------------------
// One image
// ------------------------------------------------------------------------------------------------

// A snake being grown.
struct Snake {
  Point pivot;         // m behind the current paddle's far end, along the walk
  double orientation;  // direction of the walk
  Placed pending;      // the last paddle: its mask joins the occupancy mask one paddle later
  Point origin, tip;   // the seed's tail and the last head
};

struct Drawn {
  cv::Mat pixels;  // window² uint8
  int64_t label = 0, restarts = 0, margin = 0;
  Point marker_a, marker_b;
};

class ImageSampler {
 public:
  ImageSampler(const PathfinderGenOptions& o, uint64_t seed, SpriteCache& cache)
      : o_(o), rng_(seed), cache_(cache), n_(int(o.window)) {}

  Drawn run(PathfinderTrace* trace) {
    Drawn out;
    out.label = rng_.below(2);
    margin_ = int(o_.paddle_margin[size_t(rng_.below(int64_t(o_.paddle_margin.size())))]);
    out.margin = margin_;
    g_ = geometry_of(o_, margin_);
    disk_span_.assign(size_t(2 * g_.margin + 1), 0);  // half-width of each row of the disk of radius m
    for (int dy = -g_.margin; dy <= g_.margin; ++dy)
      while ((disk_span_[size_t(dy + g_.margin)] + 1) * (disk_span_[size_t(dy + g_.margin)] + 1) + dy * dy <=
             g_.margin * g_.margin)
        ++disk_span_[size_t(dy + g_.margin)];
    // The extension circle depends only on its radius L + m: its sample offsets and the direction of
    // every integer displacement are tabulated once per image (same expressions, same values).
    radius_ = g_.length + g_.margin;
    const double step_deg = 360.0 / (2.0 * radius_ * M_PI);
    const int64_t samples = static_cast<int64_t>(std::ceil(360.0 / step_deg));
    circle_dy_.resize(size_t(samples));
    circle_dx_.resize(size_t(samples));
    for (int64_t k = 0; k < samples; ++k) {
      const double rad = (double(k) * step_deg) * M_PI / 180.0;
      circle_dy_[size_t(k)] = radius_ * std::sin(rad);
      circle_dx_[size_t(k)] = radius_ * std::cos(rad);
    }
    reach_ = int(radius_) + 1;
    const int span = 2 * reach_ + 1;
    direction_.resize(size_t(span * span));
    for (int dy = -reach_; dy <= reach_; ++dy)
      for (int dx = -reach_; dx <= reach_; ++dx)
        direction_[size_t((dy + reach_) * span + dx + reach_)] = std::atan2(double(dy), double(dx));

    // Two target snakes, restarted until both reach contour_length paddles.
    std::array<Snake, 2> snakes;
    std::array<cv::Mat, 2> layers, unions;
    cv::Mat mask;
    while (!two_snakes(snakes, layers, unions, mask)) {
      if (++out.restarts > 10000)
        throw std::runtime_error(
            "pathfinder generator: the two target snakes failed 10,000 times in a row "
            "(the parameters leave no room for them)");
    }
    cv::Mat image = cv::max(layers[0], layers[1]);

    // Distractor snakes, then (optionally) single paddles; both may stop early.
    int64_t distractors = 0, singles = 0;
    for (int64_t i = 0; i < o_.num_distractor_snakes; ++i)
      for (int64_t attempt = 0; attempt <= o_.max_distractor_contour_retrial; ++attempt)
        if (make_snake(image, mask, o_.distractor_length)) {
          ++distractors;
          break;
        }
    if (o_.use_single_paddles) {
      const double factor = 1.0 / ((7.5 + 13.0 * margin_ + 4.0 * margin_ * margin_) / 123.5);
      const int64_t total = static_cast<int64_t>(150 * factor);
      const int64_t n = total - 2 * o_.contour_length - o_.num_distractor_snakes * o_.distractor_length;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t attempt = 0; attempt <= o_.max_paddle_retrial; ++attempt)
          if (make_snake(image, mask, 1)) {
            ++singles;
            break;
          }
    }

    // Markers: origin tip of snake i, and the terminal tip of the same snake (label 1) or the other.
    const int i = int(rng_.below(2));
    const int j = out.label == 1 ? i : 1 - i;
    out.marker_a = snakes[i].origin;
    out.marker_b = snakes[j].tip;
    cv::Mat markers = cv::max(marker_disk(out.marker_a), marker_disk(out.marker_b));
    for (int y = 0; y < n_; ++y) {
      double* row = image.ptr<double>(y);
      const uint8_t* m = markers.ptr<uint8_t>(y);
      for (int x = 0; x < n_; ++x) row[x] = std::max(row[x], double(m[x]) / 255.0);
    }
    out.pixels = byte_scale(image);

    if (trace) {
      trace->snake_images = torch::empty({2, n_, n_}, torch::kFloat32);
      trace->snake_masks = torch::empty({2, n_, n_}, torch::kFloat32);
      auto si = trace->snake_images.accessor<float, 3>();
      auto sm = trace->snake_masks.accessor<float, 3>();
      for (int s = 0; s < 2; ++s)
        for (int y = 0; y < n_; ++y)
          for (int x = 0; x < n_; ++x) {
            si[s][y][x] = float(layers[s].at<double>(y, x));
            sm[s][y][x] = float(unions[s].at<uint8_t>(y, x)) / 255.0f;
          }
      trace->marked_snake = i;
      for (int s = 0; s < 2; ++s) {
        trace->origin_tips[s] = {snakes[s].origin.y, snakes[s].origin.x};
        trace->terminal_tips[s] = {snakes[s].tip.y, snakes[s].tip.x};
      }
      trace->margin = margin_;
      trace->distractor_snakes = distractors;
      trace->single_paddles = singles;
    }
    return out;
  }

 private:
  double draw_angle() { return degrees(rng_.range(-180, 180)); }
  bool inside(Point p) const { return p.y >= 0 && p.x >= 0 && p.y < n_ && p.x < n_; }
  double pick(const std::vector<double>& v) { return v[size_t(rng_.below(int64_t(v.size())))]; }

  // Tail, head and pivot of a seed paddle of angle theta whose tail is `tail`; false when the head
  // or the pivot (m behind the tail) falls off the image.
  bool seed_geometry(Point tail, double theta, Snake& s) const {
    const Point head = translate(tail, theta, g_.length);
    const Point pivot = translate(head, flip_by_pi(theta), g_.length + g_.margin);
    if (!inside(head) || !inside(pivot)) return false;
    s.pivot = pivot;
    s.orientation = theta;
    s.origin = tail;
    s.tip = tail;
    return true;
  }

  // Picks a tail uniformly among the pixels where a paddle of angle theta fits: `blocked` (the
  // occupancy with a border band) dilated by the seed structure must stay at or below 0.3.
  bool free_tail(const cv::Mat& blocked, double theta, Point& tail) {
    cv::Mat dilated;
    cv::dilate(blocked, dilated, cache_.seed_struct(g_, theta));
    const int64_t free = int64_t(dilated.total()) - cv::countNonZero(dilated > kOccupied);
    if (free == 0) return false;
    int64_t k = rng_.below(free);
    for (int y = 0; y < dilated.rows; ++y) {
      const uint8_t* row = dilated.ptr<uint8_t>(y);
      for (int x = 0; x < dilated.cols; ++x)
        if (row[x] <= kOccupied && k-- == 0) {
          tail = {y, x};
          return true;
        }
    }
    return false;
  }

  // Free tails for the first seed at integer angle `deg`, given the initial (padding-only) mask.
  const std::vector<Point>& first_seed_tails(int64_t deg, const cv::Mat& mask) {
    const int band = int(2 * o_.seed_distance);
    const SpriteCache::TailsKey key{g_.length, g_.margin,       g_.aa, g_.line_width,
                                    n_,        int(o_.padding), band,  int(deg)};
    if (const auto* hit = cache_.tails(key)) return *hit;
    cv::Mat dilated;
    cv::dilate(with_band(mask, band), dilated, cache_.seed_struct(g_, degrees(deg)));
    std::vector<Point> tails;
    for (int y = 0; y < n_; ++y) {
      const uint8_t* row = dilated.ptr<uint8_t>(y);
      for (int x = 0; x < n_; ++x)
        if (row[x] <= kOccupied) tails.push_back({y, x});
    }
    return cache_.set_tails(key, std::move(tails));
  }

  cv::Mat with_band(const cv::Mat& mask, int band) const {
    cv::Mat m = mask.clone();
    band = std::min(band, n_);
    m.rowRange(0, band).setTo(kFull);
    m.rowRange(n_ - band, n_).setTo(kFull);
    m.colRange(0, band).setTo(kFull);
    m.colRange(n_ - band, n_).setTo(kFull);
    return m;
  }

  // Seeds and grows both target snakes on fresh layers; false if any step fails.
  bool two_snakes(std::array<Snake, 2>& s, std::array<cv::Mat, 2>& layers, std::array<cv::Mat, 2>& unions,
                  cv::Mat& mask) {
    mask = with_band(cv::Mat::zeros(n_, n_, CV_8U), int(o_.padding));
    // The paddles of each snake with their intensities, drawn once the stage has succeeded.
    std::array<std::vector<std::pair<Placed, double>>, 2> drawn;
    // Each snake's intensity centre: two draws without replacement from snake_contrast × 2.
    std::vector<double> mu = o_.snake_contrast;
    mu.insert(mu.end(), o_.snake_contrast.begin(), o_.snake_contrast.end());
    for (size_t k = mu.size() - 1; k > 0; --k) std::swap(mu[k], mu[size_t(rng_.below(int64_t(k) + 1))]);

    // Seed 1: anywhere its paddle fits, at least 2·seed_distance from every border. The mask is
    // the same at every restart, so the free tails of each angle are kept.
    bool ok = false;
    for (int64_t t = 0; t <= o_.max_paddle_retrial && !ok; ++t) {
      const int64_t deg = rng_.range(-180, 180);
      const double theta = degrees(deg);
      const std::vector<Point>& tails = first_seed_tails(deg, mask);
      if (tails.empty()) return false;
      ok = seed_geometry(tails[size_t(rng_.below(int64_t(tails.size())))], theta, s[0]);
    }
    if (!ok) return false;
    // Seed 2: seed_distance away from seed 1's tail in a random direction, its own angle.
    ok = false;
    for (int64_t t = 0; t <= o_.max_paddle_retrial && !ok; ++t) {
      const double theta = draw_angle();
      const double phi = degrees(rng_.range(0, 360));
      const Point tail{
          static_cast<int64_t>(std::nearbyint(double(s[0].origin.y) + o_.seed_distance * std::sin(phi))),
          static_cast<int64_t>(std::nearbyint(double(s[0].origin.x) + o_.seed_distance * std::cos(phi)))};
      ok = seed_geometry(tail, theta, s[1]);
    }
    if (!ok) return false;
    for (int k = 0; k < 2; ++k) {
      const double contrast = pick(o_.paddle_contrast) * mu[size_t(k)];
      s[k].pending = {&cache_.paddle(g_, s[k].orientation), s[k].origin};
      drawn[size_t(k)].emplace_back(s[k].pending, contrast);
    }
    // Grow them in turns, one paddle each, sharing the paddle contrast of each step.
    for (int64_t step = 1; step < o_.contour_length; ++step) {
      const double contrast = pick(o_.paddle_contrast);
      for (int k = 0; k < 2; ++k) {
        if (!extend(s[k], mask)) return false;
        drawn[size_t(k)].emplace_back(s[k].pending, contrast * mu[size_t(k)]);
      }
    }
    merge_mask(mask, s[1].pending, g_.half);  // only the second snake's last paddle (reference quirk)
    for (int k = 0; k < 2; ++k) {
      layers[k] = cv::Mat::zeros(n_, n_, CV_64F);
      unions[k] = cv::Mat::zeros(n_, n_, CV_8U);
      for (const auto& [paddle, contrast] : drawn[size_t(k)]) {
        paint(layers[k], paddle, g_.half, contrast);
        merge_mask(unions[k], paddle, g_.half);
      }
    }
    return true;
  }

  // One more paddle at the end of snake `s` (§4.2 step 3), which becomes s.pending; the previous
  // pending paddle's mask joins `mask`. The caller draws the new paddle.
  bool extend(Snake& s, cv::Mat& mask) {
    const Point pivot = translate(s.pivot, s.orientation, g_.length + 2 * g_.margin);
    // Integer points of the circle of radius L + m around the pivot, one pixel of arc apart, deduplicated.
    candidates_.clear();
    for (size_t i = 0; i < circle_dy_.size(); ++i) {
      const double fy = double(pivot.y) + circle_dy_[i], fx = double(pivot.x) + circle_dx_[i];
      if (fy >= n_ || fy < 0 || fx >= n_ || fx < 0) continue;
      candidates_.push_back({static_cast<int64_t>(fy), static_cast<int64_t>(fx)});
    }
    if (candidates_.empty()) return false;
    std::sort(candidates_.begin(), candidates_.end(),
              [](Point a, Point b) { return a.y != b.y ? a.y < b.y : a.x < b.x; });
    candidates_.erase(std::unique(candidates_.begin(), candidates_.end(),
                                  [](Point a, Point b) { return a.y == b.y && a.x == b.x; }),
                      candidates_.end());
    // Weight: free space (occupancy dilated by a disk of radius m) × continuity preference.
    const size_t n = candidates_.size();
    orient_.resize(n);
    weight_.resize(n);
    double total = 0;
    for (size_t c = 0; c < n; ++c) {
      const Point p = candidates_[c];
      orient_[c] = direction(p.y - pivot.y, p.x - pivot.x);
      const double diff = std::abs(orient_[c] - s.orientation);
      const double delta = std::min(std::min(diff, 2 * M_PI - diff) * o_.continuity, 0.5 * M_PI);
      const double cw = std::max(std::cos(delta), 0.0);
      weight_[c] = (1.0 - double(dilated_at(mask, p)) / 255.0) * cw * cw;
      total += weight_[c];
    }
    if (total < 1e-4) return false;
    double cum = 0;
    for (size_t c = 0; c < n; ++c) weight_[c] = (cum += weight_[c] / total);  // now the CMF

    for (int64_t t = 0; t <= o_.max_paddle_retrial; ++t) {
      const double r = rng_.uniform();
      size_t idx = n;
      for (size_t c = 0; c < n; ++c)
        if (weight_[c] - r > 0) {
          idx = c;
          break;
        }
      if (idx == n) {  // rounding left the CMF short of r: take the last candidate with weight
        idx = n - 1;
        while (idx > 0 && weight_[idx] == weight_[idx - 1]) --idx;
      }
      const Placed paddle{&cache_.paddle(g_, flip_by_pi(orient_[idx])), candidates_[idx]};
      if (overlaps(mask, paddle, g_.half)) continue;
      merge_mask(mask, s.pending, g_.half);
      s.pending = paddle;
      s.pivot = pivot;
      s.orientation = orient_[idx];
      s.tip = candidates_[idx];
      return true;
    }
    return false;
  }

  double direction(int64_t dy, int64_t dx) const {
    if (std::abs(dy) > reach_ || std::abs(dx) > reach_) return std::atan2(double(dy), double(dx));
    return direction_[size_t((dy + reach_) * (2 * reach_ + 1) + dx + reach_)];
  }

  // Occupancy dilated by the disk of radius m, at one point.
  int dilated_at(const cv::Mat& mask, Point p) const {
    const int m = g_.margin;
    uint8_t best = 0;
    for (int dy = -m; dy <= m; ++dy) {
      const int y = int(p.y) + dy;
      if (y < 0 || y >= mask.rows) continue;
      const uint8_t* row = mask.ptr<uint8_t>(y);
      const int w = disk_span_[size_t(dy + m)];
      const int x0 = std::max(0, int(p.x) - w), x1 = std::min(mask.cols - 1, int(p.x) + w);
      for (int x = x0; x <= x1; ++x) best = std::max(best, row[x]);
    }
    return best;
  }

  // A distractor snake of `paddles` paddles drawn into image/mask; on failure both stay unchanged.
  bool make_snake(cv::Mat& image, cv::Mat& mask, int64_t paddles) {
    // Stop seeding once less than 1% of the (undilated) mask is free.
    const int64_t raw_free = int64_t(mask.total()) - cv::countNonZero(mask > kOccupied);
    const double contrast0 = pick(o_.snake_contrast);
    Snake s;
    bool ok = false;
    for (int64_t t = 0; t <= o_.max_paddle_retrial && !ok; ++t) {
      const double theta = draw_angle();
      if (double(raw_free) / double(mask.total()) < 0.01) return false;
      Point tail;
      if (!free_tail(with_band(mask, 1), theta, tail)) return false;
      ok = seed_geometry(tail, theta, s);
    }
    if (!ok) return false;
    cv::Mat img = image.clone(), msk = mask.clone();
    s.pending = {&cache_.paddle(g_, s.orientation), s.origin};
    paint(img, s.pending, g_.half, contrast0);
    for (int64_t step = 1; step < paddles; ++step) {
      const double contrast = pick(o_.snake_contrast);
      if (!extend(s, msk)) return false;
      paint(img, s.pending, g_.half, contrast);
    }
    merge_mask(msk, s.pending, g_.half);
    image = img;
    mask = msk;
    return true;
  }

  // A filled disk of radius marker_radius drawn at aa resolution around (y·aa, x·aa), downsampled.
  cv::Mat marker_disk(Point c) const {
    const int aa = g_.aa, side = n_ * aa;
    const double r = o_.marker_radius * aa, r2 = r * r;
    cv::Mat fine = cv::Mat::zeros(side, side, CV_8U);
    const int64_t cy = c.y * aa, cx = c.x * aa, ri = int64_t(std::ceil(r));
    for (int64_t y = std::max<int64_t>(0, cy - ri); y <= std::min<int64_t>(side - 1, cy + ri); ++y)
      for (int64_t x = std::max<int64_t>(0, cx - ri); x <= std::min<int64_t>(side - 1, cx + ri); ++x)
        if (double((x - cx) * (x - cx) + (y - cy) * (y - cy)) <= r2) fine.at<uint8_t>(int(y), int(x)) = kFull;
    return Lanczos::resize(fine, n_, n_);
  }

  // scipy's imsave: min..max → 0..255, halves rounded up.
  static cv::Mat byte_scale(const cv::Mat& image) {
    double lo = 0, hi = 0;
    cv::minMaxLoc(image, &lo, &hi);
    const double scale = hi > lo ? 255.0 / (hi - lo) : 0.0;
    cv::Mat out(image.rows, image.cols, CV_8U);
    for (int y = 0; y < image.rows; ++y) {
      const double* in = image.ptr<double>(y);
      uint8_t* o = out.ptr<uint8_t>(y);
      for (int x = 0; x < image.cols; ++x) o[x] = uint8_t(std::clamp((in[x] - lo) * scale, 0.0, 255.0) + 0.5);
    }
    return out;
  }

  const PathfinderGenOptions& o_;
  Rng rng_;
  SpriteCache& cache_;
  const int n_;
  int margin_ = 1;
  Geometry g_;
  std::vector<int> disk_span_;
  double radius_ = 0;
  int reach_ = 0;
  std::vector<double> circle_dy_, circle_dx_, direction_;
  std::vector<Point> candidates_;
  std::vector<double> orient_, weight_;
};

Drawn draw_image(const PathfinderGenOptions& o, uint64_t seed, SpriteCache& cache, PathfinderTrace* trace) {
  cache.limit(50000);
  return ImageSampler(o, seed, cache).run(trace);
}

SpriteCache& thread_cache() {
  thread_local SpriteCache cache;
  return cache;
}

}  // namespace

uint64_t pathfinder_image_seed(uint64_t seed, int64_t index) {
  return mix64(seed ^ mix64(uint64_t(index) + 0x632be59bd9b4e019ULL));
}

PathfinderImage generate_pathfinder_image(const PathfinderGenOptions& options, uint64_t seed,
                                          PathfinderTrace* trace) {
  validate(options);
  Drawn d = draw_image(options, seed, thread_cache(), trace);
  PathfinderImage img;
  img.pixels = torch::empty({d.pixels.rows, d.pixels.cols}, torch::kUInt8);
  std::memcpy(img.pixels.data_ptr<uint8_t>(), d.pixels.data, d.pixels.total());
  img.label = d.label;
  img.marker_a = {d.marker_a.y, d.marker_a.x};
  img.marker_b = {d.marker_b.y, d.marker_b.x};
  img.restarts = d.restarts;
  return img;
}

PathfinderImage generate_pathfinder_image(const PathfinderGenOptions& options, uint64_t seed) {
  return generate_pathfinder_image(options, seed, nullptr);
}

std::array<torch::Tensor, 2> render_pathfinder_paddle(const PathfinderGenOptions& options, int64_t margin,
                                                      double theta) {
  validate(options);
  if (margin < 1) throw std::invalid_argument("render_pathfinder_paddle: margin must be >= 1");
  const Sprite s = render_paddle(geometry_of(options, int(margin)), theta);
  std::array<torch::Tensor, 2> out;
  int k = 0;
  for (const cv::Mat* m : {&s.line, &s.mask}) {
    out[size_t(k)] = torch::empty({m->rows, m->cols}, torch::kUInt8);
    std::memcpy(out[size_t(k++)].data_ptr<uint8_t>(), m->data, m->total());
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Writing a folder
// ------------------------------------------------------------------------------------------------

namespace {

// Python's str() of a float: "1.0", "1.8".
std::string py_float(double v) { return integral(v) ? fmt::format("{:.1f}", v) : fmt::format("{}", v); }
// A value the reference configs set as an int when whole (paddle_length 2, thickness 0.5).
std::string py_number(double v) { return integral(v) ? fmt::format("{}", int64_t(v)) : fmt::format("{}", v); }

void write_atomically(const fs::path& file, const std::string& text) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot create", tmp.string()));
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(fmt::format("{}: write failed", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec)
    throw std::runtime_error(fmt::format("{}: cannot rename into place: {}", file.string(), ec.message()));
}

}  // namespace

PathfinderGenStats generate_pathfinder(const PathfinderGenOptions& options, const fs::path& out_dir,
                                       int64_t num_images, uint64_t seed, int64_t images_per_batch,
                                       int64_t threads,
                                       const std::function<void(int64_t, int64_t)>& progress) {
  validate(options);
  if (num_images < 1) throw std::invalid_argument("generate_pathfinder: num_images must be >= 1");
  if (images_per_batch < 1) throw std::invalid_argument("generate_pathfinder: images_per_batch must be >= 1");
  if (threads < 1) threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t batches = (num_images + images_per_batch - 1) / images_per_batch;
  threads = std::min(threads, num_images);

  std::error_code ec;
  // Like the reference, never mix with an earlier run: its metadata would be read with ours.
  if (fs::is_directory(out_dir / "metadata", ec))
    for (const auto& e : fs::directory_iterator(out_dir / "metadata"))
      if (e.path().extension() == ".npy")
        throw std::runtime_error(fmt::format("{}: already holds metadata ({}); write into a new folder",
                                             out_dir.string(), e.path().filename().string()));
  fs::create_directories(out_dir / "metadata", ec);
  if (ec)
    throw std::runtime_error(fmt::format("{}: cannot create metadata/: {}", out_dir.string(), ec.message()));
  for (int64_t b = 0; b < batches; ++b) {
    fs::create_directories(out_dir / "imgs" / std::to_string(b), ec);
    if (ec)
      throw std::runtime_error(
          fmt::format("{}: cannot create imgs/{}: {}", out_dir.string(), b, ec.message()));
  }

  // The constant tail of every metadata line (fields 4..10, §3.6).
  auto tail = [&](int64_t margin) {
    return fmt::format("{} {} {} {} {} {} {}", py_float(options.continuity), options.contour_length,
                       options.distractor_length, py_number(options.paddle_length),
                       py_number(options.paddle_thickness), margin, options.paddle_contrast.size());
  };

  std::vector<int8_t> labels(size_t(num_images), 0);
  std::vector<int16_t> margins(size_t(num_images), 0);
  std::vector<int64_t> restarts(size_t(num_images), 0);
  std::vector<std::atomic<int64_t>> batch_left(static_cast<size_t>(batches));
  for (int64_t b = 0; b < batches; ++b)
    batch_left[size_t(b)] = std::min(images_per_batch, num_images - b * images_per_batch);

  std::atomic<int64_t> next{0}, done{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  std::condition_variable cv_done;

  auto write_metadata = [&](int64_t b) {
    std::string text;
    const int64_t first = b * images_per_batch, last = std::min(num_images, first + images_per_batch);
    for (int64_t i = first; i < last; ++i) {
      const int64_t n = i - first;
      text += fmt::format("imgs/{} sample_{}.png {} {} {}\n", b, n, n, int(labels[size_t(i)]),
                          tail(margins[size_t(i)]));
    }
    write_atomically(out_dir / "metadata" / (std::to_string(b) + ".npy"), text);
  };

  auto worker = [&] {
    SpriteCache cache;
    try {
      for (int64_t i; !failed && (i = next.fetch_add(1)) < num_images;) {
        const Drawn d = draw_image(options, pathfinder_image_seed(seed, i), cache, nullptr);
        const int64_t b = i / images_per_batch, n = i - b * images_per_batch;
        const fs::path png = out_dir / "imgs" / std::to_string(b) / fmt::format("sample_{}.png", n);
        if (!cv::imwrite(png.string(), d.pixels))
          throw std::runtime_error(fmt::format("{}: write failed", png.string()));
        labels[size_t(i)] = int8_t(d.label);
        margins[size_t(i)] = int16_t(d.margin);
        restarts[size_t(i)] = d.restarts;
        if (batch_left[size_t(b)].fetch_sub(1) == 1) write_metadata(b);  // the batch's last image
        done.fetch_add(1);
        cv_done.notify_one();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
    cv_done.notify_one();
  };

  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t) pool.emplace_back(worker);
  int64_t reported = -1;
  auto last_report = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  while (true) {
    std::unique_lock<std::mutex> lock(mu);
    cv_done.wait_for(lock, std::chrono::milliseconds(500));
    const int64_t d = done.load();
    const bool finished = d >= num_images || failed;
    lock.unlock();
    const auto now = std::chrono::steady_clock::now();
    if (progress && d != reported && !failed &&
        (finished || now - last_report >= std::chrono::milliseconds(500))) {
      progress(d, num_images);
      reported = d;
      last_report = now;
    }
    if (finished) break;
  }
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);

  PathfinderGenStats stats;
  stats.images = num_images;
  for (int64_t i = 0; i < num_images; ++i) {
    stats.positives += labels[size_t(i)];
    stats.restarts += restarts[size_t(i)];
  }
  return stats;
}

}  // namespace mgl::datasets
