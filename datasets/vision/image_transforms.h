// ImageNet training and evaluation transforms: the DeiT recipe that Mega and Megalodon use
// (paper-benchmarks §2.6): RandomResizedCrop(224, bicubic) + horizontal flip + RandAugment
// "rand-m9-mstd0.5-inc1" + ToTensor/Normalize + RandomErasing(0.25, 'pixel') per image, then
// Mixup 0.8 / CutMix 1.0 with label smoothing 0.1 per batch; evaluation resizes the shorter side to
// 256 (bicubic) and centre-crops 224.
//
// The reference pipeline runs on PIL images (timm + torchvision). These functions reproduce PIL's
// integer semantics on CV_8UC3 RGB cv::Mat: the antialiased separable resize (Resample.c), the
// affine transform with its own bilinear/bicubic samplers (Geometry.c), ImageEnhance's blend with
// a degenerate image, ImageOps' point operations. Randomness comes only from the caller's Rng, so a
// seed fixes every output; the draws follow the reference's order, but the generator is not
// Python's, so outputs match the reference in distribution, not sample by sample.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <opencv2/core.hpp>
#include <optional>
#include <random>
#include <vector>

namespace mgl::datasets::img {

using Rng = std::mt19937_64;
using Rgb = std::array<uint8_t, 3>;

struct Box {
  int x, y, w, h;  // top-left corner and size, in pixels
};

enum class Interp { bilinear, bicubic };

// ImageNet statistics (timm IMAGENET_DEFAULT_MEAN / _STD) and the RandAugment fill colour DeiT
// passes: round(255 * mean) = (124, 116, 104).
inline constexpr std::array<double, 3> kImageNetMean = {0.485, 0.456, 0.406};
inline constexpr std::array<double, 3> kImageNetStd = {0.229, 0.224, 0.225};
inline constexpr Rgb kImageNetFill = {124, 116, 104};

// ---- geometry --------------------------------------------------------------------------------

// torchvision RandomResizedCrop.get_params: up to 10 tries of area fraction U(scale_min, scale_max)
// and aspect ratio w/h log-uniform in [ratio_min, ratio_max], w = round(sqrt(area·ratio)),
// h = round(sqrt(area/ratio)) (round half to even, as Python), accepted when 0 < w <= width and
// 0 < h <= height, at a uniform position; otherwise the centre crop with the image's ratio clamped to
// the range. Throws std::invalid_argument for an empty image or reversed ranges.
Box random_resized_crop_box(int height, int width, Rng& rng, double scale_min = 0.08, double scale_max = 1.0,
                            double ratio_min = 3.0 / 4.0, double ratio_max = 4.0 / 3.0);

// PIL Image.resize(size, BILINEAR|BICUBIC): separable convolution whose support widens with the
// downscale factor (antialiasing), cubic a = -0.5, 8-bit fixed-point coefficients (22 bits),
// horizontal pass first. Output width × height, CV_8UC3.
cv::Mat resize(const cv::Mat& rgb, int width, int height, Interp interp = Interp::bicubic);

// Crop then resize to size×size (input/output: CV_8UC3 RGB), as timm's
// RandomResizedCropAndInterpolation (torchvision resized_crop on a PIL image).
cv::Mat random_resized_crop(const cv::Mat& rgb, int size, Rng& rng, double scale_min = 0.08,
                            double scale_max = 1.0, double ratio_min = 3.0 / 4.0,
                            double ratio_max = 4.0 / 3.0, Interp interp = Interp::bicubic);

// Mirror left-right (the caller draws the p = 0.5 coin).
cv::Mat hflip(const cv::Mat& rgb);

// Evaluation: resize the shorter side to floor(size / crop_pct) (timm transforms_imagenet_eval and
// DeiT: int(224 / 0.875) = 256), the longer side to int(scale · long / short) as torchvision Resize,
// then the centre size×size crop with torchvision's offsets round((H - size) / 2) (half to even).
// Throws std::invalid_argument unless 0 < crop_pct <= 1.
cv::Mat eval_transform(const cv::Mat& rgb, int size, double crop_pct = 0.875,
                       Interp interp = Interp::bicubic);

// ---- tensors -----------------------------------------------------------------------------------

// uint8 RGB H×W×3 -> float32 3×H×W, (x/255 − mean[c]) / std[c] in float32, as torchvision ToTensor
// followed by Normalize.
torch::Tensor to_normalized_tensor(const cv::Mat& rgb, const std::array<double, 3>& mean = kImageNetMean,
                                   const std::array<double, 3>& std = kImageNetStd);

// timm RandomErasing(prob, mode='pixel', max_count=1) on a normalised float 3×H×W tensor, in place:
// with probability prob, up to 10 attempts of area U(area_min, area_max)·H·W and aspect ratio h/w
// log-uniform in (ratio_min, 1/ratio_min); the first box with h < H and w < W is filled with N(0,1)
// noise per pixel and channel. box_out (optional) receives the erased box, or {0,0,0,0} for none.
void random_erasing_(torch::Tensor chw, double prob, Rng& rng, double area_min = 0.02,
                     double area_max = 1.0 / 3.0, double ratio_min = 0.3, Box* box_out = nullptr);

// Label smoothing as timm's one_hot/mixup_target: off = s / C, on = 1 − s + s / C; labels are int64
// class indices (any shape, flattened); returns float32 N×C. Throws for a label outside [0, C).
torch::Tensor smooth_one_hot(const torch::Tensor& labels, int64_t num_classes, double smoothing);

struct MixupOptions {
  double mixup_alpha = 0.8;
  double cutmix_alpha = 1.0;
  double prob = 1.0;         // probability of mixing a batch at all
  double switch_prob = 0.5;  // probability of CutMix instead of Mixup when both are enabled
  double label_smoothing = 0.1;
  bool correct_lam = true;  // CutMix: lam = 1 − (clipped box area) / (image area)
};

// timm Mixup in 'batch' mode (one lam per batch). x: B×C×H×W float, modified in place; returns the
// B×num_classes soft targets lam·smooth(y) + (1−lam)·smooth(y.flip(0)). With probability prob: CutMix
// (lam ~ Beta(cutmix_alpha)) with probability switch_prob when both alphas are > 0, else Mixup
// (lam ~ Beta(mixup_alpha)). CutMix pastes timm's rand_bbox box of x.flip(0) into x; Mixup blends
// x·lam + x.flip(0)·(1−lam). Disabled (prob 0 or both alphas 0) or not drawn: lam = 1, targets =
// smooth(y). lam_out receives lam; box_out the CutMix box ({0,0,0,0} for Mixup or no mixing).
// Beta draws are X/(X+Y) with X, Y ~ Gamma(alpha, 1). An odd batch is accepted (the middle image pairs
// with itself), although timm asserts an even one.
torch::Tensor mixup_cutmix_(torch::Tensor x, const torch::Tensor& labels, int64_t num_classes,
                            const MixupOptions& opt, Rng& rng, double* lam_out = nullptr,
                            Box* box_out = nullptr);

// ---- RandAugment -------------------------------------------------------------------------------

// The single operations, with PIL's semantics (Pillow ImageOps / ImageEnhance / Image.transform).
// All take and return CV_8UC3 RGB; the input is never modified.
namespace ops {

cv::Mat auto_contrast(const cv::Mat& rgb);            // ImageOps.autocontrast, cutoff 0, per channel
cv::Mat equalize(const cv::Mat& rgb);                 // ImageOps.equalize, per channel
cv::Mat invert(const cv::Mat& rgb);                   // 255 − x
cv::Mat posterize(const cv::Mat& rgb, int bits);      // keep the top `bits` bits (>= 8: copy)
cv::Mat solarize(const cv::Mat& rgb, int threshold);  // x >= threshold -> 255 − x
cv::Mat solarize_add(const cv::Mat& rgb, int add, int threshold = 128);  // x < threshold -> min(255, x + add)

// ImageEnhance: Image.blend(degenerate, image, factor) with the blend's float arithmetic, truncation
// and clipping when extrapolating. Degenerate images: grey (Color), the mean-grey constant
// (Contrast), black (Brightness), smooth() (Sharpness).
cv::Mat color(const cv::Mat& rgb, double factor);
cv::Mat contrast(const cv::Mat& rgb, double factor);
cv::Mat brightness(const cv::Mat& rgb, double factor);
cv::Mat sharpness(const cv::Mat& rgb, double factor);

// Helpers behind them, exposed for tests.
cv::Mat luma(const cv::Mat& rgb);  // PIL convert("L"): (19595 R + 38470 G + 7471 B + 2^15) >> 16, CV_8UC1
cv::Mat blend(const cv::Mat& degenerate, const cv::Mat& rgb, double factor);
cv::Mat smooth(const cv::Mat& rgb);  // ImageFilter.SMOOTH: 3×3 [1 1 1; 1 5 1; 1 1 1]/13, border kept

// PIL Image.transform(size, AFFINE, a, resample, fillcolor): output pixel (x, y) samples the input at
// (a0·(x+½) + a1·(y+½) + a2, a3·(x+½) + a4·(y+½) + a5); a sample point outside [0,W)×[0,H) gives
// `fill`, otherwise PIL's bilinear or bicubic (a = −1) sampler with edge clamping, truncated to uint8.
cv::Mat affine(const cv::Mat& rgb, const std::array<double, 6>& a, Interp interp, const Rgb& fill);
// PIL Image.rotate(degrees) about the centre, counter-clockwise, same size (0 / 180 / square 90 and
// 270 are exact copies, as PIL's fast paths).
cv::Mat rotate(const cv::Mat& rgb, double degrees, Interp interp, const Rgb& fill);
cv::Mat shear_x(const cv::Mat& rgb, double factor, Interp interp, const Rgb& fill);      // (1, f, 0, 0, 1, 0)
cv::Mat shear_y(const cv::Mat& rgb, double factor, Interp interp, const Rgb& fill);      // (1, 0, 0, f, 1, 0)
cv::Mat translate_x(const cv::Mat& rgb, double pixels, Interp interp, const Rgb& fill);  // (1, 0, p, 0, 1, 0)
cv::Mat translate_y(const cv::Mat& rgb, double pixels, Interp interp, const Rgb& fill);  // (1, 0, 0, 0, 1, p)

}  // namespace ops

// timm's op set for RandAugment, in timm's list order (_RAND_TRANSFORMS / _RAND_INCREASING_TRANSFORMS:
// with `increasing` the posterize/solarize/enhance ops are the *Increasing variants).
enum class RandAugmentOp {
  auto_contrast,
  equalize,
  invert,
  rotate,
  posterize,
  solarize,
  solarize_add,
  color,
  contrast,
  brightness,
  sharpness,
  shear_x,
  shear_y,
  translate_x_rel,
  translate_y_rel,
};
inline constexpr int kRandAugmentOpCount = 15;
const char* rand_augment_op_name(RandAugmentOp op,
                                 bool increasing = true);  // timm's name, e.g. "PosterizeIncreasing"

struct RandAugmentOptions {
  int num_ops = 2;             // 'n': ops per image, chosen uniformly with replacement
  double magnitude = 9;        // 'm'
  double magnitude_std = 0.5;  // 'mstd': magnitude ~ N(m, mstd) per op; +inf: U(0, m); 0: fixed
  double magnitude_max = 10;   // clip bound for the drawn magnitude (timm: magnitude_max or 10)
  double prob = 0.5;           // each chosen op is applied with this probability
  bool increasing = true;      // 'inc1'
  // Extra knobs (timm hparams). DeiT passes its train interpolation ('bicubic') and the ImageNet mean
  // as fill, so those are the defaults; nullopt picks bilinear or bicubic at random per geometric op
  // (timm's default when no interpolation is given).
  std::optional<Interp> interpolation = Interp::bicubic;
  Rgb fill = kImageNetFill;
  double translate_pct = 0.45;  // TranslateXRel/YRel at magnitude 10
};

// What one chosen op did (for tests and debugging).
struct RandAugmentStep {
  RandAugmentOp op;
  bool applied = false;             // false when the prob gate skipped it
  double magnitude = 0;             // after noise and clipping
  double arg = 0;                   // the op's argument: degrees, bits, threshold, add, factor, shear, pixels
  Interp interp = Interp::bicubic;  // geometric ops only
};

// The op's argument at a magnitude, as timm's LEVEL_TO_ARG (draws the random sign for signed ops).
// `size` is the image width (TranslateXRel) or height (TranslateYRel); 0 for other ops.
double rand_augment_level_to_arg(RandAugmentOp op, double magnitude, const RandAugmentOptions& opt, Rng& rng,
                                 int size = 0);
// Applies one op with an argument from rand_augment_level_to_arg.
cv::Mat apply_rand_augment_op(const cv::Mat& rgb, RandAugmentOp op, double arg, Interp interp,
                              const RandAugmentOptions& opt);

// timm RandAugment: num_ops ops drawn uniformly with replacement; each applied when U(0,1) <= prob,
// with magnitude N(m, mstd) clipped to [0, magnitude_max], mapped to its argument as timm does.
// `trace` (optional) receives one step per chosen op.
cv::Mat rand_augment(const cv::Mat& rgb, const RandAugmentOptions& opt, Rng& rng,
                     std::vector<RandAugmentStep>* trace = nullptr);

}  // namespace mgl::datasets::img
