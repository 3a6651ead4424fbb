// ImageNet transforms with PIL's integer semantics (see image_transforms.h). The arithmetic below
// follows Pillow's C code step by step where rounding depends on it (fixed-point resampling, float
// blends, truncating samplers), so equal inputs and arguments give equal bytes.
#include "datasets/vision/image_transforms.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace mgl::datasets::img {
namespace {

// ---- small helpers -----------------------------------------------------------------------------

void check_rgb(const cv::Mat& m, const char* fn) {
  if (m.empty() || m.type() != CV_8UC3)
    throw std::invalid_argument(fmt::format("{}: expected a non-empty CV_8UC3 RGB image, got type {} ({}x{})",
                                            fn, m.type(), m.cols, m.rows));
}

double uniform(Rng& rng, double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
double uniform01(Rng& rng) { return uniform(rng, 0.0, 1.0); }
int randint_inclusive(Rng& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// Python's round() on a float: half to even.
int round_half_even(double v) {
  const double f = std::floor(v);
  const double d = v - f;
  if (d > 0.5) return int(f) + 1;
  if (d < 0.5) return int(f);
  return (std::fmod(f, 2.0) == 0.0) ? int(f) : int(f) + 1;
}

// Python's round(v, 15): correctly rounded to 15 decimals (glibc printf and strtod both round exactly).
double round15(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15f", v);
  return std::strtod(buf, nullptr);
}

uint8_t clip_u8(int v) { return uint8_t(std::clamp(v, 0, 255)); }

// Applies one 256-entry table per channel.
cv::Mat apply_luts(const cv::Mat& rgb, const std::array<std::array<uint8_t, 256>, 3>& lut) {
  cv::Mat table(1, 256, CV_8UC3);
  for (int i = 0; i < 256; ++i) table.at<cv::Vec3b>(0, i) = cv::Vec3b(lut[0][i], lut[1][i], lut[2][i]);
  cv::Mat out;
  cv::LUT(rgb, table, out);
  return out;
}

cv::Mat apply_lut(const cv::Mat& rgb, const std::array<uint8_t, 256>& lut) {
  return apply_luts(rgb, {lut, lut, lut});
}

std::array<std::array<int64_t, 256>, 3> histograms(const cv::Mat& rgb) {
  std::array<std::array<int64_t, 256>, 3> h{};
  for (int y = 0; y < rgb.rows; ++y) {
    const uint8_t* p = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x, p += 3) {
      ++h[0][p[0]];
      ++h[1][p[1]];
      ++h[2][p[2]];
    }
  }
  return h;
}

// ---- PIL resize (Resample.c) -------------------------------------------------------------------

constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_kernel(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Keys' cubic with a = −0.5 (PIL's resize; its affine sampler uses a = −1, see cubic_pil_transform).
double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Per output index: the first input index, how many inputs, and 22-bit fixed-point weights.
struct ResampleTaps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weight;  // out_size × ksize
};

ResampleTaps resample_taps(int in_size, int out_size, Interp interp) {
  const double base_support = interp == Interp::bilinear ? 1.0 : 2.0;
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);  // widen the kernel when shrinking (antialias)
  const double support = base_support * filterscale;
  const double inv_filterscale = 1.0 / filterscale;
  ResampleTaps t;
  t.ksize = int(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weight.assign(size_t(out_size) * t.ksize, 0);
  std::vector<double> w(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const int lo = std::max(0, int(center - support + 0.5));
    const int hi = std::min(in_size, int(center + support + 0.5));
    const int n = hi - lo;
    double total = 0.0;
    for (int i = 0; i < n; ++i) {
      const double arg = (i + lo - center + 0.5) * inv_filterscale;
      w[i] = interp == Interp::bilinear ? bilinear_kernel(arg) : bicubic_kernel(arg);
      total += w[i];
    }
    for (int i = 0; i < n; ++i) {
      const double v = total != 0.0 ? w[i] / total : w[i];
      const double fixed = v * double(1 << kPrecisionBits);
      t.weight[size_t(xx) * t.ksize + i] = v < 0 ? int32_t(-0.5 + fixed) : int32_t(0.5 + fixed);
    }
    t.first[xx] = lo;
    t.count[xx] = n;
  }
  return t;
}

uint8_t fixed_to_u8(int32_t acc) { return clip_u8(acc >> kPrecisionBits); }

}  // namespace

cv::Mat resize(const cv::Mat& rgb, int width, int height, Interp interp) {
  check_rgb(rgb, "resize");
  if (width <= 0 || height <= 0)
    throw std::invalid_argument(fmt::format("resize: output size {}x{} must be positive", width, height));
  const int in_w = rgb.cols, in_h = rgb.rows;
  if (width == in_w && height == in_h) return rgb.clone();
  const ResampleTaps vert = resample_taps(in_h, height, interp);

  // Horizontal pass over the rows the vertical pass reads.
  cv::Mat rows;
  int row0 = 0;
  if (width != in_w) {
    row0 = vert.first.front();
    const int row1 = vert.first.back() + vert.count.back();
    const ResampleTaps hor = resample_taps(in_w, width, interp);
    rows.create(row1 - row0, width, CV_8UC3);
    for (int y = row0; y < row1; ++y) {
      const uint8_t* in = rgb.ptr<uint8_t>(y);
      uint8_t* out = rows.ptr<uint8_t>(y - row0);
      for (int xx = 0; xx < width; ++xx) {
        const int32_t* k = &hor.weight[size_t(xx) * hor.ksize];
        const uint8_t* src = in + 3 * hor.first[xx];
        int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int i = 0; i < hor.count[xx]; ++i, src += 3) {
          s0 += src[0] * k[i];
          s1 += src[1] * k[i];
          s2 += src[2] * k[i];
        }
        out[3 * xx + 0] = fixed_to_u8(s0);
        out[3 * xx + 1] = fixed_to_u8(s1);
        out[3 * xx + 2] = fixed_to_u8(s2);
      }
    }
  } else {
    rows = rgb;
  }
  if (height == in_h) return rows;  // width changed, so `rows` is a fresh image

  cv::Mat out(height, width, CV_8UC3);
  const int n = width * 3;
  std::vector<int32_t> acc(n);
  for (int yy = 0; yy < height; ++yy) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* k = &vert.weight[size_t(yy) * vert.ksize];
    for (int i = 0; i < vert.count[yy]; ++i) {
      const uint8_t* src = rows.ptr<uint8_t>(vert.first[yy] + i - row0);
      const int32_t w = k[i];
      for (int j = 0; j < n; ++j) acc[j] += src[j] * w;
    }
    uint8_t* dst = out.ptr<uint8_t>(yy);
    for (int j = 0; j < n; ++j) dst[j] = fixed_to_u8(acc[j]);
  }
  return out;
}

// ---- geometry --------------------------------------------------------------------------------

Box random_resized_crop_box(int height, int width, Rng& rng, double scale_min, double scale_max,
                            double ratio_min, double ratio_max) {
  if (height <= 0 || width <= 0)
    throw std::invalid_argument(fmt::format("random_resized_crop_box: empty image {}x{}", width, height));
  if (!(scale_min <= scale_max) || !(ratio_min <= ratio_max) || ratio_min <= 0)
    throw std::invalid_argument(fmt::format(
        "random_resized_crop_box: need scale_min <= scale_max and 0 < ratio_min <= ratio_max, got scale "
        "({}, {}) ratio ({}, {})",
        scale_min, scale_max, ratio_min, ratio_max));
  const double area = double(height) * width;
  const double log_lo = std::log(ratio_min), log_hi = std::log(ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * uniform(rng, scale_min, scale_max);
    const double aspect = std::exp(uniform(rng, log_lo, log_hi));
    const int w = round_half_even(std::sqrt(target_area * aspect));
    const int h = round_half_even(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int y = randint_inclusive(rng, 0, height - h);
      const int x = randint_inclusive(rng, 0, width - w);
      return {x, y, w, h};
    }
  }
  // Fallback: the whole image, narrowed to the nearest allowed aspect ratio, centred.
  const double in_ratio = double(width) / height;
  int w = width, h = height;
  if (in_ratio < ratio_min) {
    h = round_half_even(w / ratio_min);
  } else if (in_ratio > ratio_max) {
    w = round_half_even(h * ratio_max);
  }
  return {(width - w) / 2, (height - h) / 2, w, h};
}

cv::Mat random_resized_crop(const cv::Mat& rgb, int size, Rng& rng, double scale_min, double scale_max,
                            double ratio_min, double ratio_max, Interp interp) {
  check_rgb(rgb, "random_resized_crop");
  const Box b = random_resized_crop_box(rgb.rows, rgb.cols, rng, scale_min, scale_max, ratio_min, ratio_max);
  return resize(rgb(cv::Rect(b.x, b.y, b.w, b.h)), size, size, interp);
}

cv::Mat hflip(const cv::Mat& rgb) {
  check_rgb(rgb, "hflip");
  cv::Mat out;
  cv::flip(rgb, out, 1);
  return out;
}

cv::Mat eval_transform(const cv::Mat& rgb, int size, double crop_pct, Interp interp) {
  check_rgb(rgb, "eval_transform");
  if (size <= 0 || !(crop_pct > 0.0 && crop_pct <= 1.0))
    throw std::invalid_argument(fmt::format(
        "eval_transform: need size > 0 and 0 < crop_pct <= 1, got size {} crop_pct {}", size, crop_pct));
  const int scale = int(std::floor(size / crop_pct));
  const int w = rgb.cols, h = rgb.rows;
  // torchvision Resize(int): int(short_target * long / short), in double after an exact integer product.
  int new_w = scale, new_h = scale;
  if (w <= h)
    new_h = int(double(int64_t(scale) * h) / w);
  else
    new_w = int(double(int64_t(scale) * w) / h);
  const cv::Mat resized = resize(rgb, new_w, new_h, interp);
  const int top = round_half_even((new_h - size) / 2.0);
  const int left = round_half_even((new_w - size) / 2.0);
  return resized(cv::Rect(left, top, size, size)).clone();
}

// ---- tensors ---------------------------------------------------------------------------------

torch::Tensor to_normalized_tensor(const cv::Mat& rgb, const std::array<double, 3>& mean,
                                   const std::array<double, 3>& stddev) {
  check_rgb(rgb, "to_normalized_tensor");
  const int h = rgb.rows, w = rgb.cols;
  torch::Tensor t = torch::empty({3, h, w}, torch::kFloat32);
  float* dst[3] = {t.data_ptr<float>(), t.data_ptr<float>() + int64_t(h) * w,
                   t.data_ptr<float>() + 2 * int64_t(h) * w};
  const float m[3] = {float(mean[0]), float(mean[1]), float(mean[2])};
  const float s[3] = {float(stddev[0]), float(stddev[1]), float(stddev[2])};
  for (int y = 0; y < h; ++y) {
    const uint8_t* p = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < w; ++x, p += 3) {
      // ToTensor divides by 255 in float32, Normalize subtracts and divides in float32.
      for (int c = 0; c < 3; ++c) *dst[c]++ = (float(p[c]) / 255.0f - m[c]) / s[c];
    }
  }
  return t;
}

void random_erasing_(torch::Tensor chw, double prob, Rng& rng, double area_min, double area_max,
                     double ratio_min, Box* box_out) {
  if (box_out) *box_out = {0, 0, 0, 0};
  if (chw.dim() != 3 || !chw.is_floating_point())
    throw std::invalid_argument(
        fmt::format("random_erasing_: expected a floating C×H×W tensor, got {} dims", chw.dim()));
  if (!(ratio_min > 0)) throw std::invalid_argument("random_erasing_: ratio_min must be > 0");
  if (uniform01(rng) > prob) return;
  const int64_t c = chw.size(0), h_img = chw.size(1), w_img = chw.size(2);
  const double area = double(h_img) * w_img;
  const double log_lo = std::log(ratio_min), log_hi = std::log(1.0 / ratio_min);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = uniform(rng, area_min, area_max) * area;
    const double aspect = std::exp(uniform(rng, log_lo, log_hi));
    const int h = round_half_even(std::sqrt(target_area * aspect));
    const int w = round_half_even(std::sqrt(target_area / aspect));
    if (w < w_img && h < h_img) {
      const int top = randint_inclusive(rng, 0, int(h_img) - h);
      const int left = randint_inclusive(rng, 0, int(w_img) - w);
      torch::Tensor noise = torch::empty({c, h, w}, torch::kFloat32);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      float* p = noise.data_ptr<float>();
      for (int64_t i = 0; i < noise.numel(); ++i) p[i] = normal(rng);
      using torch::indexing::Slice;
      chw.index_put_({Slice(), Slice(top, top + h), Slice(left, left + w)},
                     noise.to(chw.device(), chw.scalar_type()));
      if (box_out) *box_out = {left, top, w, h};
      return;
    }
  }
}

torch::Tensor smooth_one_hot(const torch::Tensor& labels, int64_t num_classes, double smoothing) {
  if (num_classes <= 0) throw std::invalid_argument("smooth_one_hot: num_classes must be positive");
  const torch::Tensor idx = labels.to(torch::kLong).reshape({-1, 1});
  if (idx.numel() > 0) {
    const int64_t lo = idx.min().item<int64_t>(), hi = idx.max().item<int64_t>();
    if (lo < 0 || hi >= num_classes)
      throw std::invalid_argument(
          fmt::format("smooth_one_hot: labels must lie in [0, {}), got range [{}, {}]", num_classes, lo, hi));
  }
  const double off = smoothing / double(num_classes);
  const double on = 1.0 - smoothing + off;
  return torch::full({idx.size(0), num_classes}, off, labels.options().dtype(torch::kFloat32))
      .scatter_(1, idx, on);
}

namespace {

double sample_beta(Rng& rng, double alpha) {
  std::gamma_distribution<double> gamma(alpha, 1.0);
  for (;;) {
    const double a = gamma(rng), b = gamma(rng);
    if (a + b > 0) return a / (a + b);  // both zero only for tiny alpha; draw again
  }
}

}  // namespace

torch::Tensor mixup_cutmix_(torch::Tensor x, const torch::Tensor& labels, int64_t num_classes,
                            const MixupOptions& opt, Rng& rng, double* lam_out, Box* box_out) {
  if (x.dim() != 4 || !x.is_floating_point())
    throw std::invalid_argument(
        fmt::format("mixup_cutmix_: expected a floating B×C×H×W batch, got {} dims", x.dim()));
  if (labels.numel() != x.size(0))
    throw std::invalid_argument(
        fmt::format("mixup_cutmix_: {} labels for a batch of {}", labels.numel(), x.size(0)));
  double lam = 1.0;
  bool use_cutmix = false;
  const bool mixup_on = opt.mixup_alpha > 0, cutmix_on = opt.cutmix_alpha > 0;
  if ((mixup_on || cutmix_on) && opt.prob > 0 && uniform01(rng) < opt.prob) {
    if (mixup_on && cutmix_on) {
      use_cutmix = uniform01(rng) < opt.switch_prob;
      lam = sample_beta(rng, use_cutmix ? opt.cutmix_alpha : opt.mixup_alpha);
    } else if (mixup_on) {
      lam = sample_beta(rng, opt.mixup_alpha);
    } else {
      use_cutmix = true;
      lam = sample_beta(rng, opt.cutmix_alpha);
    }
  }
  Box box{0, 0, 0, 0};
  if (lam != 1.0) {
    if (use_cutmix) {
      // timm rand_bbox: a box of (1 − lam) of the area around a uniform centre, clipped to the image.
      const int img_h = int(x.size(2)), img_w = int(x.size(3));
      const double ratio = std::sqrt(1.0 - lam);
      const int cut_h = int(img_h * ratio), cut_w = int(img_w * ratio);
      const int cy = randint_inclusive(rng, 0, img_h - 1);
      const int cx = randint_inclusive(rng, 0, img_w - 1);
      const int yl = std::clamp(cy - cut_h / 2, 0, img_h), yh = std::clamp(cy + cut_h / 2, 0, img_h);
      const int xl = std::clamp(cx - cut_w / 2, 0, img_w), xh = std::clamp(cx + cut_w / 2, 0, img_w);
      box = {xl, yl, xh - xl, yh - yl};
      if (opt.correct_lam) lam = 1.0 - double(box.w) * box.h / (double(img_h) * img_w);
      if (box.w > 0 && box.h > 0) {
        using torch::indexing::Slice;
        const auto region =
            std::vector<torch::indexing::TensorIndex>{Slice(), Slice(), Slice(yl, yh), Slice(xl, xh)};
        x.index_put_(region, x.flip(0).index(region));
      }
    } else {
      torch::Tensor flipped = x.flip(0).mul_(1.0 - lam);
      x.mul_(lam).add_(flipped);
    }
  }
  if (lam_out) *lam_out = lam;
  if (box_out) *box_out = box;
  const torch::Tensor y1 = smooth_one_hot(labels, num_classes, opt.label_smoothing);
  if (lam == 1.0) return y1;
  const torch::Tensor y2 = smooth_one_hot(labels.reshape({-1}).flip(0), num_classes, opt.label_smoothing);
  return y1 * lam + y2 * (1.0 - lam);
}

// ---- RandAugment ops ---------------------------------------------------------------------------

namespace ops {

cv::Mat invert(const cv::Mat& rgb) {
  check_rgb(rgb, "invert");
  cv::Mat out;
  cv::bitwise_not(rgb, out);
  return out;
}

cv::Mat posterize(const cv::Mat& rgb, int bits) {
  check_rgb(rgb, "posterize");
  if (bits >= 8) return rgb.clone();
  bits = std::max(bits, 0);  // fewer than 0 bits keeps nothing, as PIL's mask does
  const int mask = ~((1 << (8 - bits)) - 1) & 0xff;
  std::array<uint8_t, 256> lut{};
  for (int i = 0; i < 256; ++i) lut[i] = uint8_t(i & mask);
  return apply_lut(rgb, lut);
}

cv::Mat solarize(const cv::Mat& rgb, int threshold) {
  check_rgb(rgb, "solarize");
  std::array<uint8_t, 256> lut{};
  for (int i = 0; i < 256; ++i) lut[i] = uint8_t(i < threshold ? i : 255 - i);
  return apply_lut(rgb, lut);
}

cv::Mat solarize_add(const cv::Mat& rgb, int add, int threshold) {
  check_rgb(rgb, "solarize_add");
  std::array<uint8_t, 256> lut{};
  for (int i = 0; i < 256; ++i) lut[i] = i < threshold ? clip_u8(i + add) : uint8_t(i);
  return apply_lut(rgb, lut);
}

cv::Mat auto_contrast(const cv::Mat& rgb) {
  check_rgb(rgb, "auto_contrast");
  const auto hist = histograms(rgb);
  std::array<std::array<uint8_t, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c) {
    int lo = 0, hi = 255;
    while (lo < 255 && hist[c][lo] == 0) ++lo;
    while (hi > 0 && hist[c][hi] == 0) --hi;
    if (hi <= lo) {
      for (int i = 0; i < 256; ++i) lut[c][i] = uint8_t(i);
      continue;
    }
    // PIL: int(i * scale + offset) in double, truncated, then clipped.
    const double scale = 255.0 / (hi - lo);
    const double offset = -lo * scale;
    for (int i = 0; i < 256; ++i) lut[c][i] = clip_u8(int(i * scale + offset));
  }
  return apply_luts(rgb, lut);
}

cv::Mat equalize(const cv::Mat& rgb) {
  check_rgb(rgb, "equalize");
  const auto hist = histograms(rgb);
  std::array<std::array<uint8_t, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c) {
    int64_t total = 0, last = 0, nonzero = 0;
    for (int i = 0; i < 256; ++i)
      if (hist[c][i]) {
        total += hist[c][i];
        last = hist[c][i];
        ++nonzero;
      }
    const int64_t step = nonzero <= 1 ? 0 : (total - last) / 255;
    if (step == 0) {
      for (int i = 0; i < 256; ++i) lut[c][i] = uint8_t(i);
      continue;
    }
    // Cumulative counts up to (not including) each level, offset by half a step; PIL clips the
    // table to 255 when it maps it.
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[c][i] = uint8_t(std::min<int64_t>(255, n / step));
      n += hist[c][i];
    }
  }
  return apply_luts(rgb, lut);
}

cv::Mat luma(const cv::Mat& rgb) {
  check_rgb(rgb, "luma");
  cv::Mat out(rgb.rows, rgb.cols, CV_8UC1);
  for (int y = 0; y < rgb.rows; ++y) {
    const uint8_t* p = rgb.ptr<uint8_t>(y);
    uint8_t* q = out.ptr<uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x, p += 3)
      q[x] = uint8_t((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
  }
  return out;
}

cv::Mat blend(const cv::Mat& degenerate, const cv::Mat& rgb, double factor) {
  check_rgb(degenerate, "blend");
  check_rgb(rgb, "blend");
  if (degenerate.size() != rgb.size())
    throw std::invalid_argument(fmt::format("blend: sizes differ ({}x{} vs {}x{})", degenerate.cols,
                                            degenerate.rows, rgb.cols, rgb.rows));
  const float alpha = float(factor);  // PIL passes the factor to C as a float
  if (alpha == 0.0f) return degenerate.clone();
  if (alpha == 1.0f) return rgb.clone();
  cv::Mat out(rgb.rows, rgb.cols, CV_8UC3);
  const bool interpolate = alpha >= 0.0f && alpha <= 1.0f;
  for (int y = 0; y < rgb.rows; ++y) {
    const uint8_t* a = degenerate.ptr<uint8_t>(y);
    const uint8_t* b = rgb.ptr<uint8_t>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int i = 0; i < rgb.cols * 3; ++i) {
      const float v = int(a[i]) + alpha * (int(b[i]) - int(a[i]));
      if (interpolate)
        o[i] = uint8_t(v);
      else
        o[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : uint8_t(v);
    }
  }
  return out;
}

cv::Mat smooth(const cv::Mat& rgb) {
  check_rgb(rgb, "smooth");
  const int w = rgb.cols, h = rgb.rows;
  cv::Mat out = rgb.clone();  // PIL keeps the border rows and columns (and images under 3×3)
  if (w < 3 || h < 3) return out;
  const float side = 1.0f / 13.0f, centre = 5.0f / 13.0f;
  for (int y = 1; y < h - 1; ++y) {
    const uint8_t* above = rgb.ptr<uint8_t>(y - 1);
    const uint8_t* row = rgb.ptr<uint8_t>(y);
    const uint8_t* below = rgb.ptr<uint8_t>(y + 1);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int x = 1; x < w - 1; ++x) {
      for (int c = 0; c < 3; ++c) {
        const int l = 3 * (x - 1) + c, m = 3 * x + c, r = 3 * (x + 1) + c;
        // Pillow's Filter.c order: +0.5 rounding bias, then the rows below, centre, above, in float.
        float s = 0.5f;
        s += float(below[l]) * side + float(below[m]) * side + float(below[r]) * side;
        s += float(row[l]) * side + float(row[m]) * centre + float(row[r]) * side;
        s += float(above[l]) * side + float(above[m]) * side + float(above[r]) * side;
        s = s < 0.0f ? 0.0f : s;
        s = s > 255.0f ? 255.0f : s;
        o[m] = uint8_t(s);
      }
    }
  }
  return out;
}

cv::Mat color(const cv::Mat& rgb, double factor) {
  const cv::Mat l = luma(rgb);
  cv::Mat grey;
  cv::merge(std::vector<cv::Mat>{l, l, l}, grey);
  return blend(grey, rgb, factor);
}

cv::Mat contrast(const cv::Mat& rgb, double factor) {
  const cv::Mat l = luma(rgb);
  int64_t sum = 0;
  for (int y = 0; y < l.rows; ++y) {
    const uint8_t* p = l.ptr<uint8_t>(y);
    for (int x = 0; x < l.cols; ++x) sum += p[x];
  }
  const double mean = double(sum) / (double(l.rows) * l.cols);
  const int grey = int(mean + 0.5);
  return blend(cv::Mat(rgb.size(), CV_8UC3, cv::Scalar(grey, grey, grey)), rgb, factor);
}

cv::Mat brightness(const cv::Mat& rgb, double factor) {
  check_rgb(rgb, "brightness");
  return blend(cv::Mat::zeros(rgb.size(), CV_8UC3), rgb, factor);
}

cv::Mat sharpness(const cv::Mat& rgb, double factor) { return blend(smooth(rgb), rgb, factor); }

namespace {

// PIL's transform sampler cubic (Geometry.c), a = −1, in Horner form over the four samples.
inline double cubic_pil_transform(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2;
  const double p2 = -v1 + v3;
  const double p3 = 2 * (v1 - v2) + v3 - v4;
  const double p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

}  // namespace

cv::Mat affine(const cv::Mat& rgb, const std::array<double, 6>& a, Interp interp, const Rgb& fill) {
  check_rgb(rgb, "affine");
  const int w = rgb.cols, h = rgb.rows;
  cv::Mat out(h, w, CV_8UC3);
  auto cx = [w](int v) { return v < 0 ? 0 : v < w ? v : w - 1; };
  auto cy = [h](int v) { return v < 0 ? 0 : v < h ? v : h - 1; };
  for (int y = 0; y < h; ++y) {
    uint8_t* o = out.ptr<uint8_t>(y);
    const double yc = y + 0.5;
    for (int x = 0; x < w; ++x, o += 3) {
      const double xc = x + 0.5;
      double xin = a[0] * xc + a[1] * yc + a[2];
      double yin = a[3] * xc + a[4] * yc + a[5];
      if (!(xin >= 0.0 && xin < w && yin >= 0.0 && yin < h)) {
        o[0] = fill[0];
        o[1] = fill[1];
        o[2] = fill[2];
        continue;
      }
      xin -= 0.5;
      yin -= 0.5;
      const int ix = int(std::floor(xin)), iy = int(std::floor(yin));
      const double dx = xin - ix, dy = yin - iy;
      if (interp == Interp::bilinear) {
        const int x0 = 3 * cx(ix), x1 = 3 * cx(ix + 1);
        const uint8_t* r0 = rgb.ptr<uint8_t>(cy(iy));
        const uint8_t* r1 = rgb.ptr<uint8_t>(cy(iy + 1));
        for (int c = 0; c < 3; ++c) {
          const double v1 = r0[x0 + c] + (int(r0[x1 + c]) - int(r0[x0 + c])) * dx;
          const double v2 = r1[x0 + c] + (int(r1[x1 + c]) - int(r1[x0 + c])) * dx;
          o[c] = uint8_t(v1 + (v2 - v1) * dy);
        }
      } else {
        int xs[4];
        const uint8_t* rows[4];
        for (int k = 0; k < 4; ++k) {
          xs[k] = 3 * cx(ix - 1 + k);
          rows[k] = rgb.ptr<uint8_t>(cy(iy - 1 + k));
        }
        for (int c = 0; c < 3; ++c) {
          double v[4];
          for (int k = 0; k < 4; ++k) {
            const uint8_t* r = rows[k];
            v[k] = cubic_pil_transform(r[xs[0] + c], r[xs[1] + c], r[xs[2] + c], r[xs[3] + c], dx);
          }
          const double s = cubic_pil_transform(v[0], v[1], v[2], v[3], dy);
          o[c] = s <= 0.0 ? 0 : s >= 255.0 ? 255 : uint8_t(s);
        }
      }
    }
  }
  return out;
}

cv::Mat rotate(const cv::Mat& rgb, double degrees, Interp interp, const Rgb& fill) {
  check_rgb(rgb, "rotate");
  // Python's `degrees % 360.0`, then PIL's exact fast paths.
  double angle = std::fmod(degrees, 360.0);
  if (angle < 0) angle += 360.0;
  if (angle == 0.0) return rgb.clone();
  cv::Mat out;
  if (angle == 180.0) {
    cv::rotate(rgb, out, cv::ROTATE_180);
    return out;
  }
  if ((angle == 90.0 || angle == 270.0) && rgb.cols == rgb.rows) {
    cv::rotate(rgb, out, angle == 90.0 ? cv::ROTATE_90_COUNTERCLOCKWISE : cv::ROTATE_90_CLOCKWISE);
    return out;
  }
  // PIL Image.rotate: the inverse map about the centre, entries rounded to 15 decimals.
  const double rad = -(angle * (M_PI / 180.0));
  const double c = round15(std::cos(rad)), s = round15(std::sin(rad)), ns = round15(-std::sin(rad));
  const double cx = rgb.cols / 2.0, cy = rgb.rows / 2.0;
  std::array<double, 6> m = {c, s, 0.0, ns, c, 0.0};
  m[2] = m[0] * -cx + m[1] * -cy + 0.0 + cx;
  m[5] = m[3] * -cx + m[4] * -cy + 0.0 + cy;
  return affine(rgb, m, interp, fill);
}

cv::Mat shear_x(const cv::Mat& rgb, double factor, Interp interp, const Rgb& fill) {
  return affine(rgb, {1, factor, 0, 0, 1, 0}, interp, fill);
}
cv::Mat shear_y(const cv::Mat& rgb, double factor, Interp interp, const Rgb& fill) {
  return affine(rgb, {1, 0, 0, factor, 1, 0}, interp, fill);
}
cv::Mat translate_x(const cv::Mat& rgb, double pixels, Interp interp, const Rgb& fill) {
  return affine(rgb, {1, 0, pixels, 0, 1, 0}, interp, fill);
}
cv::Mat translate_y(const cv::Mat& rgb, double pixels, Interp interp, const Rgb& fill) {
  return affine(rgb, {1, 0, 0, 0, 1, pixels}, interp, fill);
}

}  // namespace ops

// ---- RandAugment -------------------------------------------------------------------------------

const char* rand_augment_op_name(RandAugmentOp op, bool increasing) {
  switch (op) {
    case RandAugmentOp::auto_contrast:
      return "AutoContrast";
    case RandAugmentOp::equalize:
      return "Equalize";
    case RandAugmentOp::invert:
      return "Invert";
    case RandAugmentOp::rotate:
      return "Rotate";
    case RandAugmentOp::posterize:
      return increasing ? "PosterizeIncreasing" : "Posterize";
    case RandAugmentOp::solarize:
      return increasing ? "SolarizeIncreasing" : "Solarize";
    case RandAugmentOp::solarize_add:
      return "SolarizeAdd";
    case RandAugmentOp::color:
      return increasing ? "ColorIncreasing" : "Color";
    case RandAugmentOp::contrast:
      return increasing ? "ContrastIncreasing" : "Contrast";
    case RandAugmentOp::brightness:
      return increasing ? "BrightnessIncreasing" : "Brightness";
    case RandAugmentOp::sharpness:
      return increasing ? "SharpnessIncreasing" : "Sharpness";
    case RandAugmentOp::shear_x:
      return "ShearX";
    case RandAugmentOp::shear_y:
      return "ShearY";
    case RandAugmentOp::translate_x_rel:
      return "TranslateXRel";
    case RandAugmentOp::translate_y_rel:
      return "TranslateYRel";
  }
  return "?";
}

namespace {

constexpr double kLevelDenominator = 10.0;  // timm _LEVEL_DENOM: magnitude 10 = the op's full range

// timm _randomly_negate: negative when U(0,1) > 0.5.
double randomly_negate(double v, Rng& rng) { return uniform01(rng) > 0.5 ? -v : v; }

bool is_geometric(RandAugmentOp op) {
  return op == RandAugmentOp::rotate || op == RandAugmentOp::shear_x || op == RandAugmentOp::shear_y ||
         op == RandAugmentOp::translate_x_rel || op == RandAugmentOp::translate_y_rel;
}

}  // namespace

double rand_augment_level_to_arg(RandAugmentOp op, double magnitude, const RandAugmentOptions& opt, Rng& rng,
                                 int size) {
  const double level = magnitude / kLevelDenominator;
  switch (op) {
    case RandAugmentOp::auto_contrast:
    case RandAugmentOp::equalize:
    case RandAugmentOp::invert:
      return 0.0;
    case RandAugmentOp::rotate:
      return randomly_negate(level * 30.0, rng);
    case RandAugmentOp::posterize: {
      const int bits = int(level * 4);  // keep 0..4 bits; 'increasing' keeps 4 − that
      return opt.increasing ? 4 - bits : bits;
    }
    case RandAugmentOp::solarize: {
      const int threshold = std::min(256, int(level * 256));
      return opt.increasing ? 256 - threshold : threshold;
    }
    case RandAugmentOp::solarize_add:
      return std::min(128, int(level * 110));
    case RandAugmentOp::color:
    case RandAugmentOp::contrast:
    case RandAugmentOp::brightness:
    case RandAugmentOp::sharpness:
      if (opt.increasing) return std::max(0.1, 1.0 + randomly_negate(level * 0.9, rng));
      return level * 1.8 + 0.1;
    case RandAugmentOp::shear_x:
    case RandAugmentOp::shear_y:
      return randomly_negate(level * 0.3, rng);
    case RandAugmentOp::translate_x_rel:
    case RandAugmentOp::translate_y_rel:
      return randomly_negate(level * opt.translate_pct, rng) * size;
  }
  return 0.0;
}

cv::Mat apply_rand_augment_op(const cv::Mat& rgb, RandAugmentOp op, double arg, Interp interp,
                              const RandAugmentOptions& opt) {
  switch (op) {
    case RandAugmentOp::auto_contrast:
      return ops::auto_contrast(rgb);
    case RandAugmentOp::equalize:
      return ops::equalize(rgb);
    case RandAugmentOp::invert:
      return ops::invert(rgb);
    case RandAugmentOp::rotate:
      return ops::rotate(rgb, arg, interp, opt.fill);
    case RandAugmentOp::posterize:
      return ops::posterize(rgb, int(arg));
    case RandAugmentOp::solarize:
      return ops::solarize(rgb, int(arg));
    case RandAugmentOp::solarize_add:
      return ops::solarize_add(rgb, int(arg));
    case RandAugmentOp::color:
      return ops::color(rgb, arg);
    case RandAugmentOp::contrast:
      return ops::contrast(rgb, arg);
    case RandAugmentOp::brightness:
      return ops::brightness(rgb, arg);
    case RandAugmentOp::sharpness:
      return ops::sharpness(rgb, arg);
    case RandAugmentOp::shear_x:
      return ops::shear_x(rgb, arg, interp, opt.fill);
    case RandAugmentOp::shear_y:
      return ops::shear_y(rgb, arg, interp, opt.fill);
    case RandAugmentOp::translate_x_rel:
      return ops::translate_x(rgb, arg, interp, opt.fill);
    case RandAugmentOp::translate_y_rel:
      return ops::translate_y(rgb, arg, interp, opt.fill);
  }
  throw std::invalid_argument("apply_rand_augment_op: unknown op");
}

cv::Mat rand_augment(const cv::Mat& rgb, const RandAugmentOptions& opt, Rng& rng,
                     std::vector<RandAugmentStep>* trace) {
  check_rgb(rgb, "rand_augment");
  if (trace) trace->clear();
  // timm draws all op choices first (np.random.choice with replacement), then runs each op.
  std::vector<RandAugmentOp> chosen(std::max(0, opt.num_ops));
  for (auto& op : chosen) op = RandAugmentOp(randint_inclusive(rng, 0, kRandAugmentOpCount - 1));
  cv::Mat img = rgb.clone();
  const double upper = opt.magnitude_max > 0 ? opt.magnitude_max : kLevelDenominator;
  for (const RandAugmentOp op : chosen) {
    RandAugmentStep step;
    step.op = op;
    if (opt.prob < 1.0 && uniform01(rng) > opt.prob) {
      if (trace) trace->push_back(step);
      continue;
    }
    double magnitude = opt.magnitude;
    if (opt.magnitude_std > 0) {
      if (std::isinf(opt.magnitude_std))
        magnitude = uniform(rng, 0.0, magnitude);
      else
        magnitude = std::normal_distribution<double>(magnitude, opt.magnitude_std)(rng);
    }
    magnitude = std::max(0.0, std::min(magnitude, upper));
    const int size = op == RandAugmentOp::translate_x_rel   ? img.cols
                     : op == RandAugmentOp::translate_y_rel ? img.rows
                                                            : 0;
    const double arg = rand_augment_level_to_arg(op, magnitude, opt, rng, size);
    Interp interp = Interp::bicubic;
    if (is_geometric(op))
      interp = opt.interpolation ? *opt.interpolation
                                 : (randint_inclusive(rng, 0, 1) == 0 ? Interp::bilinear : Interp::bicubic);
    img = apply_rand_augment_op(img, op, arg, interp, opt);
    step.applied = true;
    step.magnitude = magnitude;
    step.arg = arg;
    step.interp = interp;
    if (trace) trace->push_back(step);
  }
  return img;
}

}  // namespace mgl::datasets::img
