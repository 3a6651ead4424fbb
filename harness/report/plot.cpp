#include "harness/report/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <stdexcept>

#include "harness/util/files.h"

#ifdef MEGALODON_HAS_VISION
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace mgl::harness {

std::array<uint8_t, 3> plot_colour(size_t i) {
  static const std::array<uint8_t, 3> kPalette[] = {
      {31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},   {148, 103, 189},
      {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  return kPalette[i % std::size(kPalette)];
}

#ifndef MEGALODON_HAS_VISION

bool plots_available() { return false; }

void write_line_plot(const LinePlot&, const std::filesystem::path& png) {
  throw std::runtime_error(fmt::format("{}: cannot draw plots, this build has no OpenCV (MEGALODON_WITH_VISION=OFF)",
                                       png.string()));
}

#else

namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
const cv::Scalar kInk(40, 40, 40), kGrid(228, 228, 228), kWhite(255, 255, 255);

cv::Scalar bgr(size_t i) {
  const auto c = plot_colour(i);
  return cv::Scalar(c[2], c[1], c[0]);
}

// Hershey fonts cover printable ASCII only: the symbols our variant names use are spelled out,
// anything else becomes one '?' per UTF-8 sequence.
std::string ascii(const std::string& in) {
  static const std::pair<const char*, const char*> kSpell[] = {
      {"\u2192", "->"}, {"\u00d7", "x"}, {"\u2261", "=="}, {"\u03b8", "theta"}, {"\u03b3", "gamma"},
      {"\u03b7", "eta"}, {"\u00b1", "+/-"}, {"\u2013", "-"}, {"\u2014", "-"}, {"\u00b2", "^2"}};
  std::string s = in;
  for (const auto& [from, to] : kSpell)
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + std::strlen(to)))
      s.replace(pos, std::strlen(from), to);
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else if (c >= 0xc0 || c < 0x80) out += '?';
  }
  return out;
}

cv::Size text_size(const std::string& s, double scale, int thickness = 1) {
  int baseline = 0;
  return cv::getTextSize(s, kFont, scale, thickness, &baseline);
}

// `baseline_left` is the bottom-left corner of the text, as cv::putText takes it.
void text(cv::Mat& img, const std::string& s, cv::Point baseline_left, double scale, const cv::Scalar& colour,
          int thickness = 1) {
  cv::putText(img, s, baseline_left, kFont, scale, colour, thickness, cv::LINE_AA);
}

// Round-number ticks (1, 2 or 5 × 10^k apart) covering [lo, hi], about `target` of them.
std::vector<double> nice_ticks(double lo, double hi, int target, double* step_out) {
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double f : {1.0, 2.0, 5.0, 10.0})
    if (f * mag >= raw) {
      step = f * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  *step_out = step;
  return ticks;
}

std::string tick_label(double v, double step) {
  if (std::abs(v) >= 1e6 || (v != 0 && std::abs(v) < 1e-4)) return fmt::format("{:.3g}", v);
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return fmt::format("{:.{}f}", v, decimals);
}

// Marker shapes, cycled with a different period from the colours.
void marker(cv::Mat& img, cv::Point p, size_t series, const cv::Scalar& colour) {
  const int r = 4;
  switch ((series + series / 10) % 5) {
    case 0: cv::circle(img, p, r, colour, cv::FILLED, cv::LINE_AA); break;
    case 1: cv::rectangle(img, p - cv::Point(r, r), p + cv::Point(r, r), colour, cv::FILLED); break;
    case 2: {
      std::vector<cv::Point> tri{{p.x, p.y - r - 1}, {p.x - r - 1, p.y + r}, {p.x + r + 1, p.y + r}};
      cv::fillConvexPoly(img, tri, colour, cv::LINE_AA);
      break;
    }
    case 3: {
      std::vector<cv::Point> dia{{p.x, p.y - r - 1}, {p.x + r + 1, p.y}, {p.x, p.y + r + 1}, {p.x - r - 1, p.y}};
      cv::fillConvexPoly(img, dia, colour, cv::LINE_AA);
      break;
    }
    default: {
      std::vector<cv::Point> tri{{p.x, p.y + r + 1}, {p.x - r - 1, p.y - r}, {p.x + r + 1, p.y - r}};
      cv::fillConvexPoly(img, tri, colour, cv::LINE_AA);
      break;
    }
  }
}

}  // namespace

bool plots_available() { return true; }

void write_line_plot(const LinePlot& plot, const std::filesystem::path& png) {
  const int W = plot.width, H = plot.height;
  if (W < 200 || H < 150) throw std::runtime_error(fmt::format("{}: plot size {}x{} is too small", png.string(), W, H));
  cv::Mat img(H, W, CV_8UC3, kWhite);

  // Data range over every finite point.
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& s : plot.series) {
    if (!s.band.empty() && s.band.size() != s.points.size())
      throw std::runtime_error(fmt::format("{}: series '{}' has {} band entries for {} points", png.string(), s.label,
                                           s.band.size(), s.points.size()));
    for (size_t k = 0; k < s.points.size(); ++k) {
      const auto [x, y] = s.points[k];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      if (s.band.empty()) continue;
      for (double b : {s.band[k].first, s.band[k].second})
        if (std::isfinite(b)) y0 = std::min(y0, b), y1 = std::max(y1, b);
    }
  }
  const bool empty = !(x0 <= x1);
  if (empty) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x0 -= 1, x1 += 1;
  if (y1 == y0) {
    const double pad = y0 == 0 ? 1 : std::abs(y0) * 0.05;
    y0 -= pad, y1 += pad;
  }
  const double ypad = (y1 - y0) * 0.05;
  y0 -= ypad, y1 += ypad;

  // Layout: the legend sits in its own right-hand column so that it never hides a line.
  // Long labels shrink the legend font rather than being cut off at the image edge.
  double legend_scale = 0.45;
  int legend_w = 0;
  for (const auto& s : plot.series) legend_w = std::max(legend_w, text_size(ascii(s.label), legend_scale).width);
  const int max_legend = static_cast<int>(W * 0.42) - 48;
  if (legend_w > max_legend) {
    legend_scale *= double(max_legend) / legend_w;
    legend_w = max_legend;
  }
  legend_w += 48;
  const int left = 84, top = 48, bottom = 56, right = legend_w + 16;
  const cv::Rect area(left, top, W - left - right, H - top - bottom);
  auto px = [&](double x) { return area.x + static_cast<int>(std::lround((x - x0) / (x1 - x0) * area.width)); };
  auto py = [&](double y) { return area.y + area.height - static_cast<int>(std::lround((y - y0) / (y1 - y0) * area.height)); };

  // Grid and tick labels.
  double xstep = 1, ystep = 1;
  for (double t : nice_ticks(x0, x1, 8, &xstep)) {
    const int x = px(t);
    cv::line(img, {x, area.y}, {x, area.y + area.height}, kGrid, 1);
    cv::line(img, {x, area.y + area.height}, {x, area.y + area.height + 5}, kInk, 1);
    const std::string l = tick_label(t, xstep);
    text(img, l, {x - text_size(l, 0.42).width / 2, area.y + area.height + 20}, 0.42, kInk);
  }
  for (double t : nice_ticks(y0, y1, 6, &ystep)) {
    const int y = py(t);
    cv::line(img, {area.x, y}, {area.x + area.width, y}, kGrid, 1);
    cv::line(img, {area.x - 5, y}, {area.x, y}, kInk, 1);
    const std::string l = tick_label(t, ystep);
    const cv::Size sz = text_size(l, 0.42);
    text(img, l, {area.x - 8 - sz.width, y + sz.height / 2}, 0.42, kInk);
  }
  cv::rectangle(img, area, kInk, 1);

  // Title, axis labels (the y label drawn horizontally on its own canvas, then rotated).
  // A long title shrinks to the image width rather than running off its edge.
  const std::string title = ascii(plot.title);
  double title_scale = 0.65;
  if (const int tw = text_size(title, title_scale, 2).width; tw > W - 8) title_scale *= double(W - 8) / tw;
  text(img, title, {std::max(4, (W - text_size(title, title_scale, 2).width) / 2), 30}, title_scale, kInk, 2);
  const std::string xl = ascii(plot.x_label);
  text(img, xl, {area.x + (area.width - text_size(xl, 0.5).width) / 2, H - 12}, 0.5, kInk);
  const std::string yl = ascii(plot.y_label);
  if (!yl.empty()) {
    const cv::Size sz = text_size(yl, 0.5);
    cv::Mat canvas(sz.height + 8, std::min(sz.width + 4, area.height), CV_8UC3, kWhite);
    text(canvas, yl, {2, sz.height + 2}, 0.5, kInk);
    cv::Mat rotated;
    cv::rotate(canvas, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int y = area.y + (area.height - rotated.rows) / 2;
    rotated.copyTo(img(cv::Rect(6, y, rotated.cols, rotated.rows)));
  }
  if (empty) text(img, "no data", {area.x + area.width / 2 - 30, area.y + area.height / 2}, 0.6, kInk);

  // The bands first, each blended into the picture at 20 % so that lines and other bands stay
  // visible through it; a band is broken where a value is missing, as the line is.
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const PlotSeries& s = plot.series[i];
    if (s.band.empty()) continue;
    cv::Mat overlay = img.clone();
    std::vector<cv::Point> upper, lower;
    auto flush = [&] {
      if (upper.size() > 1) {
        std::vector<cv::Point> poly(upper);
        poly.insert(poly.end(), lower.rbegin(), lower.rend());
        cv::fillPoly(overlay, std::vector<std::vector<cv::Point>>{poly}, bgr(i), cv::LINE_AA);
      }
      upper.clear();
      lower.clear();
    };
    for (size_t k = 0; k < s.points.size(); ++k) {
      const double x = s.points[k].first, lo = s.band[k].first, hi = s.band[k].second;
      if (!std::isfinite(x) || !std::isfinite(lo) || !std::isfinite(hi)) {
        flush();
        continue;
      }
      upper.emplace_back(px(x), py(hi));
      lower.emplace_back(px(x), py(lo));
    }
    flush();
    cv::addWeighted(overlay, 0.2, img, 0.8, 0.0, img);
  }

  // The series.
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const cv::Scalar colour = bgr(i);
    // Every point of a sparse series gets its marker; a dense one about 20 evenly spaced markers,
    // enough to tell the shapes apart without turning the line into a band.
    const size_t stride = std::max<size_t>(1, (plot.series[i].points.size() + 19) / 20);
    std::vector<cv::Point> pts;
    auto flush = [&] {
      if (pts.size() > 1) cv::polylines(img, pts, false, colour, 2, cv::LINE_AA);
      for (size_t k = 0; k < pts.size(); k += stride) marker(img, pts[k], i, colour);
      pts.clear();
    };
    for (const auto& [x, y] : plot.series[i].points) {
      if (!std::isfinite(x) || !std::isfinite(y)) {
        flush();  // a gap where the value was lost (NaN), not a line across it
        continue;
      }
      pts.emplace_back(px(x), py(y));
    }
    flush();
  }

  // Legend.
  const int lx = area.x + area.width + 14;
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const int y = area.y + 10 + static_cast<int>(i) * 22;
    if (y > H - 10) break;
    const cv::Scalar colour = bgr(i);
    cv::line(img, {lx, y}, {lx + 24, y}, colour, 2, cv::LINE_AA);
    marker(img, {lx + 12, y}, i, colour);
    text(img, ascii(plot.series[i].label), {lx + 32, y + 5}, legend_scale, kInk);
  }

  std::vector<uchar> bytes;
  if (!cv::imencode(".png", img, bytes)) throw std::runtime_error(fmt::format("{}: PNG encoding failed", png.string()));
  write_file_atomic(png, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

#endif  // MEGALODON_HAS_VISION

}  // namespace mgl::harness
