// Result tables from finished sweeps: reads `<sweep>/sweep.json` and each run's final.json,
// metrics.jsonl and run.json (the formats the trainer and the sweep runner write), aggregates every
// variant over its seeds and writes table.md, table.csv and one curve plot per `table.curves` entry.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "harness/report/stats.h"

namespace mgl::harness {

// (step, value) points of one "split/key" series, in file order.
using Curve = std::vector<std::pair<int64_t, double>>;

struct MetricsLog {
  std::map<std::string, Curve> curves;  // "train/loss", "val/accuracy", ...
  bool truncated_tail = false;          // the last line did not parse (a killed run) and was ignored
};
// Parses a metrics.jsonl. Every numeric field other than `step` becomes a point of curve
// "<split>/<field>"; null (a NaN the writer could not encode) and non-numeric fields are skipped.
// A malformed line throws ConfigError naming file:line, except the last line, which a killed run
// may have left half-written.
MetricsLog read_metrics_log(const std::filesystem::path& file);

// sweep.json "table": how the sweep's results are presented.
struct TableSpec {
  std::string title;
  std::vector<std::string> metrics;        // final.json metric names, e.g. "test/accuracy"
  std::vector<std::string> labels;         // column headers; empty = the metric names
  double scale = 1.0;                      // applied to every metric value shown (100 for %)
  std::vector<double> scales;              // per metric, overriding `scale` when not empty
  double scale_of(size_t metric) const { return scales.empty() ? scale : scales.at(metric); }
  std::string paper;                       // paper_table id, or ""
  std::vector<std::string> paper_columns;  // per metric: the paper column it compares to, "" none
  std::vector<std::string> curves;         // "split/key" series to plot
  std::string notes;
  // The row every other row is compared with: a variant name or, in a suite sweep (variants with a
  // row and column), a row name, compared within each column. Empty: the first variant (row).
  std::string reference;
  // How the difference from the reference is given an interval: "auto" (paired when both rows have
  // the same ≥ 2 seeds, else Welch when both have ≥ 2), "paired" or "welch".
  std::string interval = "auto";

  std::string label(size_t metric) const;
};

struct RunResult {
  std::string variant;
  int64_t seed = 0;
  std::string dir;     // relative to the sweep directory
  std::string status;  // sweep.json: finished, failed, pending, running
  std::string error;   // sweep.json's error; also set when a "finished" run has no final.json
  double seconds = 0;  // sweep.json's wall time of the run
  // Finished means sweep.json says so and final.json exists and agrees: only these are averaged.
  bool finished = false;
  std::map<std::string, double> metrics;  // final.json "metrics"
  int64_t steps = 0, best_step = 0;
  std::optional<double> train_seconds;
  std::optional<int64_t> parameters;
  std::string task;
  nlohmann::json run_info;  // run.json, null when absent
  MetricsLog log;
};

struct SweepResults {
  std::filesystem::path dir;
  std::string experiment, experiment_file;
  std::vector<std::string> variants;  // sweep order (plus any variant that only appears in runs)
  std::vector<int64_t> seeds;
  std::vector<RunResult> runs;
  TableSpec table;
  // variant → (row, column) for the two-way table of suite sweeps (e.g. model × LRA task); empty
  // when no variant names a row and column.
  std::map<std::string, std::pair<std::string, std::string>> cells;
};
// Reads and validates everything; errors are ConfigError naming the file and key (or file:line).
SweepResults load_sweep(const std::filesystem::path& sweep_dir);

struct Stat {
  int n = 0;
  double mean = std::numeric_limits<double>::quiet_NaN();
  double std = std::numeric_limits<double>::quiet_NaN();  // sample (n − 1); NaN when n < 2
};
Stat summarize(const std::vector<double>& xs);

struct VariantSummary {
  std::string name;
  int runs = 0, finished = 0;
  std::vector<Stat> metrics;  // one per TableSpec::metrics, unscaled, over finished runs
  std::vector<std::map<int64_t, double>> values;  // per metric: seed → value of the finished runs
  Stat train_seconds;         // final.json train_seconds (sweep.json seconds when absent)
  std::optional<int64_t> parameters_min, parameters_max;
};
std::vector<VariantSummary> aggregate(const SweepResults& sweep);

// The difference of every row from its reference row, per metric, with a 95 % interval.
struct Comparison {
  int reference = -1;                    // index into the summary; -1: this row is a reference or has none
  std::vector<stats::Interval> metrics;  // one per TableSpec::metrics, unscaled (empty when reference < 0)
};
// Pairs each variant with its reference (TableSpec::reference; in suite sweeps the reference row's
// variant in the same column) and forms the interval TableSpec::interval asks for: paired over the
// seeds both rows finished, or Welch's. Throws ConfigError when table.reference names nothing.
std::vector<Comparison> compare_to_reference(const SweepResults& sweep, const std::vector<VariantSummary>& summary);

// Mean over runs at the steps all of them logged (a step logged twice in one run, as after a
// resume, keeps its last value). Sorted by step.
Curve mean_curve(const std::vector<const Curve*>& runs);
// Mean and sample standard deviation (NaN for one run) over runs at the steps all of them logged.
struct CurvePoint {
  int64_t step = 0;
  double mean = 0, std = 0;
};
std::vector<CurvePoint> curve_stats(const std::vector<const Curve*>& runs);

std::string render_markdown(const SweepResults& sweep, const std::vector<VariantSummary>& summary);
// The two-way table of the first metric (rows × columns from the variants' row/column, in order of
// appearance), with an "Avg" column when the paper table has one, and the paper's rows on the
// columns whose names match the paper's; "" when the sweep has no cells.
std::string render_pivot_markdown(const SweepResults& sweep, const std::vector<VariantSummary>& summary);
std::string render_csv(const SweepResults& sweep, const std::vector<VariantSummary>& summary);

// "curves_<split>_<metric>.png" for a "split/metric" curve name.
std::string curve_file_name(const std::string& curve);

struct ReportFiles {
  std::vector<std::filesystem::path> files;  // everything written, in order
  std::vector<std::string> notes;            // what was skipped and why (no OpenCV, no data)
  std::string markdown;                      // the content of table.md
};
// Writes table.md, table.csv and the curve PNGs into out_dir (created if needed).
ReportFiles write_sweep_report(const std::filesystem::path& sweep_dir, const std::filesystem::path& out_dir);

}  // namespace mgl::harness
