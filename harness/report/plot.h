// Line charts as PNG (OpenCV drawing, no plotting library): what `megalodon table` draws for the
// training and validation curves of a sweep. Without OpenCV the harness still builds; then
// plots_available() is false and write_line_plot throws.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace mgl::harness {

struct PlotSeries {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite points are skipped
  // Optional (low, high) per point (same length as points): drawn as a translucent band in the
  // series' colour behind the line, e.g. ± one standard deviation over seeds. Empty: no band.
  std::vector<std::pair<double, double>> band;
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;  // series i is drawn in plot_colour(i)
  int width = 960, height = 540;
};

// Whether this build can draw (it was built with OpenCV).
bool plots_available();

// The RGB colour of series i: ten well-separated hues (the "tab10" set), then the cycle repeats with
// a different marker shape, so that up to ten lines stay distinguishable.
std::array<uint8_t, 3> plot_colour(size_t i);

// Draws the chart and writes it atomically as PNG; throws std::runtime_error without OpenCV or on
// an encoding/I-O failure.
void write_line_plot(const LinePlot& plot, const std::filesystem::path& png);

}  // namespace mgl::harness
