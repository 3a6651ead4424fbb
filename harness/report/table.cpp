#include "harness/report/table.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <type_traits>

#include "harness/config/config.h"
#include "harness/report/paper_tables.h"
#include "harness/report/plot.h"
#include "harness/util/files.h"

namespace mgl::harness {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- reading ---------------------------------------------------------------------------------

namespace {


// Typed field access whose errors say which file and key, rather than nlohmann's bare type_error.
// `path` is the key as a user would look for it ("runs[2].seed").
template <class T>
std::optional<T> opt_field(const json& obj, const std::string& key, const fs::path& file, const std::string& path) {
  if (!obj.is_object()) throw ConfigError(file.string(), path, "expected a JSON object around this key");
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  // nlohmann converts between numbers, booleans and strings more freely than a reader should.
  bool ok = true;
  if constexpr (std::is_same_v<T, std::string>) ok = it->is_string();
  else if constexpr (std::is_arithmetic_v<T>) ok = it->is_number();
  else ok = it->is_array();
  if (ok) {
    try {
      return it->get<T>();
    } catch (const json::exception&) {
      ok = false;
    }
  }
  throw ConfigError(file.string(), path, fmt::format("has the wrong type ({})", it->type_name()));
}
template <class T>
T field(const json& obj, const std::string& key, const fs::path& file, const std::string& path, T fallback) {
  auto v = opt_field<T>(obj, key, file, path);
  return v ? *v : fallback;
}
template <class T>
T required(const json& obj, const std::string& key, const fs::path& file, const std::string& path) {
  auto v = opt_field<T>(obj, key, file, path);
  if (!v) throw ConfigError(file.string(), path, "missing");
  return *v;
}

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

std::pair<std::string, std::string> split_curve(const std::string& curve) {
  auto slash = curve.find('/');
  if (slash == std::string::npos) return {"", curve};
  return {curve.substr(0, slash), curve.substr(slash + 1)};
}

}  // namespace

MetricsLog read_metrics_log(const fs::path& file) {
  const std::string text = read_file(file);
  std::vector<std::string> lines;
  {
    std::istringstream ss(text);
    for (std::string line; std::getline(ss, line);) lines.push_back(line);
  }
  size_t last = lines.size();  // index of the last non-blank line
  while (last > 0 && blank(lines[last - 1])) --last;

  MetricsLog log;
  for (size_t i = 0; i < last; ++i) {
    if (blank(lines[i])) continue;
    const std::string where = fmt::format("{}:{}", file.string(), i + 1);
    std::string problem;
    json j;
    try {
      j = json::parse(lines[i]);
      if (!j.is_object()) problem = "not a JSON object";
      else if (!j.contains("step") || !j["step"].is_number()) problem = "no numeric \"step\"";
      else if (!j.contains("split") || !j["split"].is_string()) problem = "no string \"split\"";
    } catch (const json::parse_error& e) {
      problem = fmt::format("malformed JSON ({})", e.what());
    }
    if (!problem.empty()) {
      // Only a killed writer explains a bad line, and it can only have cut off the last one.
      if (i + 1 == last) {
        log.truncated_tail = true;
        break;
      }
      throw ConfigError(where, "", problem);
    }
    const auto step = j["step"].get<int64_t>();
    const auto split = j["split"].get<std::string>();
    for (const auto& [key, value] : j.items()) {
      if (key == "step" || key == "split" || !value.is_number()) continue;
      log.curves[split + "/" + key].emplace_back(step, value.get<double>());
    }
  }
  return log;
}

std::string TableSpec::label(size_t metric) const {
  return metric < labels.size() && !labels[metric].empty() ? labels[metric] : metrics.at(metric);
}

SweepResults load_sweep(const fs::path& sweep_dir) {
  const fs::path file = sweep_dir / "sweep.json";
  if (!fs::exists(file)) throw ConfigError(file.string(), "", "no sweep.json here: is this a sweep directory?");
  const json j = read_json(file);
  SweepResults s;
  s.dir = sweep_dir;
  s.experiment = field<std::string>(j, "experiment", file, "experiment", sweep_dir.filename().string());
  s.experiment_file = field<std::string>(j, "experiment_file", file, "experiment_file", "");
  s.seeds = field<std::vector<int64_t>>(j, "seeds", file, "seeds", {});

  if (!j.contains("variants") || !j["variants"].is_array()) throw ConfigError(file.string(), "variants", "missing or not a list");
  for (size_t i = 0; i < j["variants"].size(); ++i) {
    const json& v = j["variants"][i];
    const std::string name = required<std::string>(v, "name", file, fmt::format("variants[{}].name", i));
    s.variants.push_back(name);
    const std::string row = field<std::string>(v, "row", file, fmt::format("variants[{}].row", i), "");
    const std::string col = field<std::string>(v, "column", file, fmt::format("variants[{}].column", i), "");
    if (row.empty() != col.empty())
      throw ConfigError(file.string(), fmt::format("variants[{}]", i), "has a row without a column or the reverse");
    if (!row.empty()) s.cells[name] = {row, col};
  }

  // The presentation block; every key optional so that a bare sweep still gets a table.
  const json spec = j.contains("table") ? j["table"] : json::object();
  TableSpec& t = s.table;
  t.title = field<std::string>(spec, "title", file, "table.title", "");
  t.metrics = field<std::vector<std::string>>(spec, "metrics", file, "table.metrics", {});
  t.labels = field<std::vector<std::string>>(spec, "labels", file, "table.labels", {});
  t.scale = field<double>(spec, "scale", file, "table.scale", 1.0);
  t.scales = field<std::vector<double>>(spec, "scales", file, "table.scales", {});
  t.paper = field<std::string>(spec, "paper", file, "table.paper", "");
  t.paper_columns = field<std::vector<std::string>>(spec, "paper_columns", file, "table.paper_columns", {});
  t.curves = field<std::vector<std::string>>(spec, "curves", file, "table.curves", {});
  t.notes = field<std::string>(spec, "notes", file, "table.notes", "");
  t.reference = field<std::string>(spec, "reference", file, "table.reference", "");
  t.interval = field<std::string>(spec, "interval", file, "table.interval", "auto");
  if (t.interval != "auto" && t.interval != "paired" && t.interval != "welch")
    throw ConfigError(file.string(), "table.interval", fmt::format("'{}' is not one of auto, paired, welch", t.interval));
  if (!t.scales.empty() && t.scales.size() != t.metrics.size())
    throw ConfigError(file.string(), "table.scales",
                      fmt::format("has {} entries for {} metrics (empty means: table.scale for all)", t.scales.size(),
                                  t.metrics.size()));
  if (!t.labels.empty() && t.labels.size() != t.metrics.size())
    throw ConfigError(file.string(), "table.labels",
                      fmt::format("has {} entries for {} metrics (empty means: use the metric names)", t.labels.size(),
                                  t.metrics.size()));
  if (!t.paper_columns.empty() && t.paper_columns.size() != t.metrics.size())
    throw ConfigError(file.string(), "table.paper_columns",
                      fmt::format("has {} entries for {} metrics", t.paper_columns.size(), t.metrics.size()));
  if (!t.paper.empty()) {
    const PaperTable* paper = nullptr;
    try {
      paper = &paper_table(t.paper);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(file.string(), "table.paper", e.what());
    }
    for (const auto& c : t.paper_columns)
      if (!c.empty() && paper->column_index(c) < 0)
        throw ConfigError(file.string(), "table.paper_columns",
                          fmt::format("'{}' is not a column of paper table '{}' (columns: {})", c, t.paper,
                                      fmt::join(paper->columns, ", ")));
  } else if (std::any_of(t.paper_columns.begin(), t.paper_columns.end(), [](const auto& c) { return !c.empty(); })) {
    throw ConfigError(file.string(), "table.paper_columns", "names paper columns but table.paper is empty");
  }

  if (!j.contains("runs") || !j["runs"].is_array()) throw ConfigError(file.string(), "runs", "missing or not a list");
  static const std::set<std::string> kStatuses{"finished", "failed", "pending", "running"};
  for (size_t i = 0; i < j["runs"].size(); ++i) {
    const json& r = j["runs"][i];
    const std::string at = fmt::format("runs[{}]", i);
    RunResult run;
    run.variant = required<std::string>(r, "variant", file, at + ".variant");
    run.seed = required<int64_t>(r, "seed", file, at + ".seed");
    run.dir = required<std::string>(r, "dir", file, at + ".dir");
    run.status = required<std::string>(r, "status", file, at + ".status");
    run.error = field<std::string>(r, "error", file, at + ".error", "");
    run.seconds = field<double>(r, "seconds", file, at + ".seconds", 0.0);
    if (!kStatuses.count(run.status))
      throw ConfigError(file.string(), at + ".status",
                        fmt::format("'{}' is not one of finished, failed, pending, running", run.status));
    if (std::find(s.variants.begin(), s.variants.end(), run.variant) == s.variants.end()) s.variants.push_back(run.variant);

    const fs::path run_dir = sweep_dir / run.dir;
    const fs::path final_file = run_dir / "final.json";
    if (fs::exists(final_file)) {
      const json f = read_json(final_file);
      const std::string final_status = field<std::string>(f, "status", final_file, "status", "finished");
      run.steps = field<int64_t>(f, "steps", final_file, "steps", 0);
      run.best_step = field<int64_t>(f, "best_step", final_file, "best_step", 0);
      run.train_seconds = opt_field<double>(f, "train_seconds", final_file, "train_seconds");
      run.parameters = opt_field<int64_t>(f, "parameters", final_file, "parameters");
      run.task = field<std::string>(f, "task", final_file, "task", "");
      if (f.contains("metrics")) {
        if (!f["metrics"].is_object()) throw ConfigError(final_file.string(), "metrics", "expected an object");
        for (const auto& [k, v] : f["metrics"].items())
          if (v.is_number()) run.metrics[k] = v.get<double>();
      }
      run.finished = run.status == "finished" && final_status == "finished";
    } else if (run.status == "finished") {
      run.error = "final.json missing";
    }
    if (fs::exists(run_dir / "run.json")) run.run_info = read_json(run_dir / "run.json");
    if (fs::exists(run_dir / "metrics.jsonl")) run.log = read_metrics_log(run_dir / "metrics.jsonl");
    s.runs.push_back(std::move(run));
  }
  if (!t.reference.empty()) {
    const bool variant = std::find(s.variants.begin(), s.variants.end(), t.reference) != s.variants.end();
    const bool row = std::any_of(s.cells.begin(), s.cells.end(), [&](const auto& c) { return c.second.first == t.reference; });
    if (s.cells.empty() ? !variant : !row)
      throw ConfigError(file.string(), "table.reference",
                        fmt::format("'{}' is not {} of this sweep", t.reference, s.cells.empty() ? "a variant" : "a row"));
  }
  return s;
}

// ---- aggregation -----------------------------------------------------------------------------

Stat summarize(const std::vector<double>& xs) {
  Stat s;
  s.n = static_cast<int>(xs.size());
  if (xs.empty()) return s;
  double sum = 0;
  for (double x : xs) sum += x;
  s.mean = sum / s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double x : xs) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

std::vector<VariantSummary> aggregate(const SweepResults& sweep) {
  std::vector<VariantSummary> out;
  for (const auto& name : sweep.variants) {
    VariantSummary v;
    v.name = name;
    std::vector<std::vector<double>> values(sweep.table.metrics.size());
    v.values.resize(values.size());
    std::vector<double> seconds;
    for (const auto& r : sweep.runs) {
      if (r.variant != name) continue;
      ++v.runs;
      if (!r.finished) continue;
      ++v.finished;
      for (size_t m = 0; m < values.size(); ++m) {
        auto it = r.metrics.find(sweep.table.metrics[m]);
        if (it != r.metrics.end() && std::isfinite(it->second)) {
          values[m].push_back(it->second);
          v.values[m][r.seed] = it->second;
        }
      }
      seconds.push_back(r.train_seconds.value_or(r.seconds));
      if (r.parameters) {
        v.parameters_min = std::min(v.parameters_min.value_or(*r.parameters), *r.parameters);
        v.parameters_max = std::max(v.parameters_max.value_or(*r.parameters), *r.parameters);
      }
    }
    for (const auto& xs : values) v.metrics.push_back(summarize(xs));
    v.train_seconds = summarize(seconds);
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<CurvePoint> curve_stats(const std::vector<const Curve*>& runs) {
  if (runs.empty()) return {};
  std::vector<std::map<int64_t, double>> by_step;
  for (const Curve* c : runs) {
    std::map<int64_t, double> m;
    for (const auto& [step, value] : *c) m[step] = value;  // later entries win (resumed runs)
    by_step.push_back(std::move(m));
  }
  std::vector<CurvePoint> out;
  for (const auto& [step, first] : by_step[0]) {
    std::vector<double> xs{first};
    for (size_t i = 1; i < by_step.size(); ++i) {
      auto it = by_step[i].find(step);
      if (it == by_step[i].end()) break;
      xs.push_back(it->second);
    }
    if (xs.size() != by_step.size()) continue;
    const Stat st = summarize(xs);
    out.push_back({step, st.mean, st.std});
  }
  return out;
}

Curve mean_curve(const std::vector<const Curve*>& runs) {
  Curve out;
  for (const auto& p : curve_stats(runs)) out.emplace_back(p.step, p.mean);
  return out;
}

std::vector<Comparison> compare_to_reference(const SweepResults& sweep, const std::vector<VariantSummary>& summary) {
  const TableSpec& t = sweep.table;
  std::vector<Comparison> out(summary.size());
  if (summary.empty()) return out;
  auto index_of = [&](const std::string& name) -> int {
    for (size_t i = 0; i < summary.size(); ++i)
      if (summary[i].name == name) return static_cast<int>(i);
    return -1;
  };
  // Plain sweeps: one reference variant for every row. Suite sweeps: within each column, the
  // variant in the reference row (default: the first row in order of appearance).
  std::string reference_row = t.reference;
  if (!sweep.cells.empty() && reference_row.empty())
    for (const auto& name : sweep.variants)
      if (auto it = sweep.cells.find(name); it != sweep.cells.end()) {
        reference_row = it->second.first;
        break;
      }
  for (size_t i = 0; i < summary.size(); ++i) {
    int ref = -1;
    if (sweep.cells.empty()) {
      ref = t.reference.empty() ? 0 : index_of(t.reference);
    } else if (auto it = sweep.cells.find(summary[i].name); it != sweep.cells.end()) {
      for (const auto& [name, cell] : sweep.cells)
        if (cell.first == reference_row && cell.second == it->second.second) ref = index_of(name);
    }
    if (ref < 0 || ref == static_cast<int>(i)) continue;
    Comparison& c = out[i];
    c.reference = ref;
    const VariantSummary &a = summary[i], &b = summary[static_cast<size_t>(ref)];
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      std::vector<double> va, vb, pa, pb;  // all values; values of the seeds both rows have
      for (const auto& [seed, x] : a.values[m]) {
        va.push_back(x);
        if (auto it = b.values[m].find(seed); it != b.values[m].end()) pa.push_back(x), pb.push_back(it->second);
      }
      for (const auto& kv : b.values[m]) vb.push_back(kv.second);
      const bool same_seeds = pa.size() == va.size() && pb.size() == vb.size();
      stats::Interval iv;
      if (t.interval == "paired" || (t.interval == "auto" && same_seeds && va.size() >= 2)) {
        iv = stats::paired_interval(pa, pb);
        // The difference shown is always the difference of the row means, as in the table.
        if (iv.kind == stats::IntervalKind::none && !va.empty() && !vb.empty())
          iv.diff = iv.low = iv.high = summary[i].metrics[m].mean - b.metrics[m].mean;
      } else {
        iv = stats::welch_interval(va, vb);
      }
      c.metrics.push_back(iv);
    }
  }
  return out;
}

// ---- rendering -------------------------------------------------------------------------------

namespace {

// Decimals that give about four significant digits to the smallest magnitude in a column, so
// that all entries of the column line up and none is rounded to nothing.
int column_decimals(const std::vector<double>& values) {
  double smallest = 0;
  for (double v : values)
    if (std::isfinite(v) && v != 0 && (smallest == 0 || std::abs(v) < smallest)) smallest = std::abs(v);
  if (smallest == 0) return 2;
  const int d = 3 - static_cast<int>(std::floor(std::log10(smallest)));
  return std::clamp(d, 0, 6);
}

std::string format_stat(const Stat& s, double scale, int decimals, int finished) {
  if (s.n == 0) return "–";
  std::string out = fmt::format("{:.{}f}", s.mean * scale, decimals);
  if (s.n > 1) out += fmt::format(" ± {:.{}f}", s.std * std::abs(scale), decimals);
  // A metric some finished runs did not report would otherwise look like a full average.
  if (s.n < finished) out += fmt::format(" (n={})", s.n);
  return out;
}

std::string format_seconds(double s) {
  if (!std::isfinite(s)) return "–";
  if (s < 10) return fmt::format("{:.1f} s", s);
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.1f} h", s / 3600);
}

// 51234 → "51.2K", 1.3e9 → "1.3B": three significant digits, as the papers write model sizes.
std::string format_count(double n) {
  if (!std::isfinite(n)) return "–";
  const double rounded = std::stod(fmt::format("{:.3g}", n));
  static const std::pair<double, const char*> kUnits[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
  for (const auto& [unit, suffix] : kUnits)
    if (std::abs(rounded) >= unit) return fmt::format("{:.3g}{}", rounded / unit, suffix);
  return fmt::format("{:.3g}", rounded);
}

std::string format_parameters(const VariantSummary& v) {
  if (!v.parameters_min) return "–";
  if (*v.parameters_min == *v.parameters_max) return format_count(static_cast<double>(*v.parameters_min));
  return format_count(static_cast<double>(*v.parameters_min)) + "–" + format_count(static_cast<double>(*v.parameters_max));
}

std::string md_cell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

std::string md_row(const std::vector<std::string>& cells) {
  std::string out = "|";
  for (const auto& c : cells) out += " " + md_cell(c) + " |";
  return out + "\n";
}

// The paper table and, per metric, the paper column it maps to (-1: none); null when the sweep
// names no paper or maps no column.
struct PaperMapping {
  const PaperTable* table = nullptr;
  std::vector<int> column;
  int params_column = -1;
};
PaperMapping paper_mapping(const TableSpec& t) {
  PaperMapping m;
  if (t.paper.empty()) return m;
  const PaperTable& p = paper_table(t.paper);
  bool any = false;
  for (size_t i = 0; i < t.metrics.size(); ++i) {
    const int c = i < t.paper_columns.size() && !t.paper_columns[i].empty() ? p.column_index(t.paper_columns[i]) : -1;
    m.column.push_back(c);
    any = any || c >= 0;
  }
  if (!any) return m;
  m.table = &p;
  m.params_column = p.column_index("#Params");
  return m;
}

// The decimals the paper prints in a column (85.80 beside 63.14, not 85.8): the most any of its
// values needs.
int paper_decimals(const PaperTable& p, int column) {
  int d = 0;
  for (const auto& r : p.rows) {
    if (!r.values[column]) continue;
    const std::string text = fmt::format("{}", *r.values[column]);
    const auto dot = text.find('.');
    if (dot != std::string::npos && text.find('e') == std::string::npos) d = std::max(d, static_cast<int>(text.size() - dot - 1));
  }
  return std::min(d, 6);
}

// Distinct non-empty values of a run.json string field, in run order.
std::vector<std::string> distinct_run_info(const SweepResults& s, const char* key) {
  std::vector<std::string> out;
  for (const auto& r : s.runs) {
    if (!r.run_info.is_object() || !r.run_info.contains(key)) continue;
    const json& v = r.run_info[key];
    const std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    if (!text.empty() && std::find(out.begin(), out.end(), text) == out.end()) out.push_back(text);
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Shortest text that reads back as the same double; empty for no value.
std::string csv_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : ""; }

// The marker of a difference whose interval excludes zero (a lone '*' stays literal in Markdown).
constexpr const char* kMarker = "*";

// An interval in display units (a negative scale flips the bounds).
struct Scaled {
  double diff, low, high;
};
Scaled scaled(const stats::Interval& iv, double scale) {
  const double a = iv.low * scale, b = iv.high * scale;
  return {iv.diff * scale, std::min(a, b), std::max(a, b)};
}

// "-0.65 [-1.90, 0.60]", with the marker when the interval excludes 0; the bare difference when no
// interval could be formed.
std::string format_delta(const stats::Interval& iv, double scale, int decimals) {
  if (!std::isfinite(iv.diff)) return "–";
  const Scaled v = scaled(iv, scale);
  if (iv.kind == stats::IntervalKind::none) return fmt::format("{:+.{}f}", v.diff, decimals);
  std::string out = fmt::format("{:+.{}f} [{:+.{}f}, {:+.{}f}]", v.diff, decimals, v.low, decimals, v.high, decimals);
  if (iv.excludes_zero()) out += std::string(" ") + kMarker;
  return out;
}

bool any_comparison(const std::vector<Comparison>& cmp) {
  return std::any_of(cmp.begin(), cmp.end(), [](const Comparison& c) { return c.reference >= 0; });
}

// What the Δ columns mean and which intervals were used: one paragraph under the table, so a
// reader never has to guess whether a marker came from paired seeds, Welch or nothing at all.
std::string comparison_notes(const SweepResults& s, const std::vector<VariantSummary>& summary,
                             const std::vector<Comparison>& cmp) {
  std::map<std::string, std::vector<std::string>> by_kind;  // kind → "row (metric)" or "row"
  std::set<std::string> reasons;
  int formed = 0, marked = 0, total = 0;
  std::string reference_desc;
  std::set<std::string> references;
  for (size_t i = 0; i < cmp.size(); ++i) {
    if (cmp[i].reference < 0) continue;
    references.insert(summary[static_cast<size_t>(cmp[i].reference)].name);
    std::set<std::string> kinds;
    for (const auto& iv : cmp[i].metrics) {
      ++total;
      kinds.insert(stats::to_string(iv.kind));
      if (iv.kind != stats::IntervalKind::none) ++formed;
      if (iv.excludes_zero()) ++marked;
      if (iv.kind == stats::IntervalKind::none) reasons.insert(iv.why_none);
    }
    for (const auto& k : kinds) by_kind[k].push_back(summary[i].name);
  }
  const TableSpec& t = s.table;
  std::string md;
  if (s.cells.empty()) {
    md += fmt::format("Δ: the row minus the reference row `{}`", *references.begin());
  } else {
    std::string row = t.reference;
    if (row.empty() && !references.empty()) row = s.cells.at(*references.begin()).first;
    md += fmt::format("Δ: the row minus the reference row `{}` of the same column", row);
  }
  if (formed > 0)
    md += fmt::format(", in the units of its column; in brackets its 95 % confidence interval; {} marks an interval that "
                      "excludes 0. ",
                      kMarker);
  else
    md += ", in the units of its column. ";
  auto list = [&](const std::string& kind) {
    const auto& rows = by_kind[kind];
    if (rows.size() == static_cast<size_t>(std::count_if(cmp.begin(), cmp.end(), [](const Comparison& c) { return c.reference >= 0; })))
      return std::string("every row");
    std::string out;
    for (size_t i = 0; i < rows.size(); ++i) out += (i ? ", " : "") + fmt::format("`{}`", rows[i]);
    return out;
  };
  if (by_kind.count("paired"))
    md += fmt::format("Paired t interval ({}): over the seeds the row shares with the reference — the same seed gives "
                      "both runs the same data order, so each per-seed difference cancels what the seed contributes. ",
                      list("paired"));
  if (by_kind.count("welch"))
    md += fmt::format("Welch's t interval ({}): the rows do not share all their seeds{}, so they are treated as "
                      "independent samples with unequal variances. ",
                      list("welch"), t.interval == "welch" ? " or table.interval = \"welch\"" : "");
  if (by_kind.count("none")) {
    std::string why;
    for (const auto& r : reasons) why += (why.empty() ? "" : "; ") + r;
    if (formed == 0 && std::all_of(summary.begin(), summary.end(), [](const VariantSummary& v) { return v.finished <= 1; }))
      md += "**One seed per row: no interval and no marker.** One run per row measures nothing about how much the "
            "same configuration varies from seed to seed, so the Δ shown is between single runs and cannot say which "
            "differences are real; run the sweep with several seeds (`sweep.seeds`) to find out. ";
    else
      md += fmt::format("No interval ({}): {}. ", list("none"), why);
  }
  if (formed > 0)
    md += fmt::format("{} of {} differences are marked. The intervals are per comparison, not corrected for the {} "
                      "comparisons in this table: with no real difference anywhere, about one in twenty would still be "
                      "marked.",
                      marked, total, total);
  while (!md.empty() && md.back() == ' ') md.pop_back();
  return md + "\n";
}

}  // namespace

std::string render_markdown(const SweepResults& s, const std::vector<VariantSummary>& summary) {
  const TableSpec& t = s.table;
  std::string md = fmt::format("# {}\n\n", t.title.empty() ? s.experiment : t.title);
  if (!t.notes.empty()) md += t.notes + "\n\n";

  std::string task;
  for (const auto& r : s.runs)
    if (!r.task.empty()) {
      task = r.task;
      break;
    }
  md += fmt::format("- Experiment: `{}`{}\n", s.experiment,
                    s.experiment_file.empty() ? "" : fmt::format(" (`{}`)", s.experiment_file));
  if (!task.empty()) md += fmt::format("- Task: {}\n", task);
  md += fmt::format("- Seeds: {}\n", s.seeds.empty() ? std::string("–") : fmt::format("{}", fmt::join(s.seeds, ", ")));
  const auto devices = distinct_run_info(s, "device"), revisions = distinct_run_info(s, "git_revision"),
             torch = distinct_run_info(s, "torch_version");
  md += fmt::format("- Device: {}\n", devices.empty() ? std::string("unknown") : fmt::format("{}", fmt::join(devices, "; ")));
  md += fmt::format("- Git revision: {}\n",
                    revisions.empty() ? std::string("unknown") : fmt::format("{}", fmt::join(revisions, ", ")));
  if (!torch.empty()) md += fmt::format("- LibTorch: {}\n", fmt::join(torch, ", "));
  if (!t.scales.empty())
    md += fmt::format("- Metric values are multiplied by {} (per column); ± is the sample standard deviation over seeds.\n",
                      fmt::join(t.scales, ", "));
  else if (t.scale != 1.0) md += fmt::format("- Metric values are multiplied by {}; ± is the sample standard deviation over seeds.\n", t.scale);
  else md += "- ± is the sample standard deviation over seeds.\n";
  md += "\n";

  const std::vector<Comparison> cmp = compare_to_reference(s, summary);
  const bool deltas = any_comparison(cmp);
  std::vector<std::string> header{"variant"};
  for (size_t m = 0; m < t.metrics.size(); ++m) {
    header.push_back(t.label(m));
    if (deltas) header.push_back(fmt::format("Δ {} (95% CI)", t.label(m)));
  }
  header.insert(header.end(), {"finished/runs", "train time / run", "parameters"});
  md += md_row(header);
  md += "|---|";
  for (size_t i = 1; i < header.size(); ++i) md += "---:|";
  md += "\n";

  std::vector<int> decimals;
  for (size_t m = 0; m < t.metrics.size(); ++m) {
    std::vector<double> column;
    for (const auto& v : summary) column.push_back(v.metrics[m].mean * t.scale_of(m));
    decimals.push_back(column_decimals(column));
  }
  for (size_t i = 0; i < summary.size(); ++i) {
    const auto& v = summary[i];
    std::vector<std::string> row{v.name};
    for (size_t m = 0; m < t.metrics.size(); ++m) {
      row.push_back(format_stat(v.metrics[m], t.scale_of(m), decimals[m], v.finished));
      if (!deltas) continue;
      const bool is_reference = std::any_of(cmp.begin(), cmp.end(), [&](const Comparison& c) { return c.reference == int(i); });
      row.push_back(cmp[i].reference >= 0 ? format_delta(cmp[i].metrics[m], t.scale_of(m), decimals[m])
                                          : is_reference ? "(reference)" : "");
    }
    row.push_back(fmt::format("{}/{}", v.finished, v.runs));
    row.push_back(v.finished ? format_seconds(v.train_seconds.mean) : "–");
    row.push_back(format_parameters(v));
    md += md_row(row);
  }

  const PaperMapping paper = paper_mapping(t);
  if (paper.table) {
    std::vector<std::string> sep{"*paper (reference)*"};
    sep.resize(header.size());
    md += md_row(sep);
    for (const auto& pr : paper.table->rows) {
      std::vector<std::string> row{pr.model};
      for (size_t m = 0; m < t.metrics.size(); ++m) {
        const int c = paper.column[m];
        if (c < 0) row.push_back("");
        else row.push_back(pr.values[c] ? fmt::format("{:.{}f}", *pr.values[c], paper_decimals(*paper.table, c)) : "✗");
        if (deltas) row.push_back("");
      }
      row.insert(row.end(), {"", ""});
      row.push_back(paper.params_column >= 0 && pr.values[paper.params_column] ? format_count(*pr.values[paper.params_column])
                                                                                : "");
      md += md_row(row);
    }
    md += fmt::format("\nPaper rows: {} — {} (✗: failed or out of memory in the paper).\n", paper.table->title,
                      paper.table->source);
  }
  if (deltas) md += "\n" + comparison_notes(s, summary, cmp);

  md += render_pivot_markdown(s, summary);

  std::vector<std::string> failed, unfinished;
  for (const auto& r : s.runs) {
    const std::string id = fmt::format("{} seed {}", r.variant, r.seed);
    if (r.status == "failed" || (r.status == "finished" && !r.finished))
      failed.push_back(fmt::format("{} ({})", id, r.error.empty() ? std::string("no error recorded") : r.error));
    else if (r.status == "pending" || r.status == "running")
      unfinished.push_back(fmt::format("{} ({})", id, r.status));
  }
  md += "\n";
  md += fmt::format("Failed runs: {}.\n", failed.empty() ? std::string("none") : fmt::format("{}", fmt::join(failed, "; ")));
  if (!unfinished.empty()) md += fmt::format("Unfinished runs: {}.\n", fmt::join(unfinished, "; "));
  return md;
}

std::string render_pivot_markdown(const SweepResults& s, const std::vector<VariantSummary>& summary) {
  const TableSpec& t = s.table;
  if (s.cells.empty() || t.metrics.empty()) return "";
  std::vector<std::string> rows, cols;
  auto add = [](std::vector<std::string>& v, const std::string& x) {
    if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
  };
  for (const auto& name : s.variants) {
    auto it = s.cells.find(name);
    if (it == s.cells.end()) continue;
    add(rows, it->second.first);
    add(cols, it->second.second);
  }
  const PaperTable* paper = nullptr;
  if (!t.paper.empty()) paper = &paper_table(t.paper);
  // The paper's Avg averages all its tasks: shown (and ours computed) only when this sweep has a
  // column for every one of them, otherwise the two averages would not be over the same tasks.
  int paper_avg = paper ? paper->column_index("Avg") : -1;
  size_t paper_tasks = 0;
  if (paper_avg >= 0)
    for (const auto& c : paper->columns)
      if (c != "Avg") {
        ++paper_tasks;
        if (std::find(cols.begin(), cols.end(), c) == cols.end()) paper_avg = -1;
      }
  const double scale = t.scale_of(0);

  std::vector<std::string> header{"model"};
  header.insert(header.end(), cols.begin(), cols.end());
  if (paper_avg >= 0) header.push_back("Avg");
  std::string md = fmt::format("\n## {} by {}\n\n", t.label(0), "model and task");
  md += md_row(header);
  md += "|---|";
  for (size_t i = 1; i < header.size(); ++i) md += "---:|";
  md += "\n";
  std::vector<double> all_means;
  for (const auto& v : summary) all_means.push_back(v.metrics[0].mean * scale);
  const int dec = std::min(2, column_decimals(all_means));
  const std::vector<Comparison> cmp = compare_to_reference(s, summary);
  bool any_marked = false;
  for (const auto& r : rows) {
    std::vector<std::string> line{r};
    double sum = 0;
    size_t have = 0;
    for (const auto& c : cols) {
      const VariantSummary* hit = nullptr;
      for (const auto& v : summary) {
        auto it = s.cells.find(v.name);
        if (it != s.cells.end() && it->second == std::make_pair(r, c)) hit = &v;
      }
      if (!hit || hit->metrics[0].n == 0) {
        line.push_back(hit ? "–" : "");
        continue;
      }
      std::string cell = format_stat(hit->metrics[0], scale, dec, hit->finished);
      const Comparison& cc = cmp[static_cast<size_t>(hit - summary.data())];
      if (cc.reference >= 0 && cc.metrics[0].excludes_zero()) {
        cell += std::string(" ") + kMarker;
        any_marked = true;
      }
      line.push_back(cell);
      sum += hit->metrics[0].mean * scale;
      ++have;
    }
    if (paper_avg >= 0) line.push_back(have == cols.size() ? fmt::format("{:.{}f}", sum / have, dec) : "–");
    md += md_row(line);
  }
  if (paper) {
    std::vector<std::string> sep{"*paper (reference)*"};
    sep.resize(header.size());
    md += md_row(sep);
    for (const auto& pr : paper->rows) {
      std::vector<std::string> line{pr.model};
      for (const auto& c : cols) {
        const int pc = paper->column_index(c);
        line.push_back(pc < 0 ? "" : pr.values[pc] ? fmt::format("{:.{}f}", *pr.values[pc], paper_decimals(*paper, pc)) : "✗");
      }
      if (paper_avg >= 0)
        line.push_back(pr.values[paper_avg] ? fmt::format("{:.{}f}", *pr.values[paper_avg], paper_decimals(*paper, paper_avg)) : "✗");
      md += md_row(line);
    }
    md += fmt::format("\nPaper rows: {} — {}.", paper->title, paper->source);
    if (paper_avg >= 0) md += " Our Avg is the mean over the tasks, given only when every cell has a result.";
    else if (paper->column_index("Avg") >= 0)
      md += fmt::format(" The paper's Avg (over {} tasks) is left out: this table has {} of them.", paper_tasks,
                        std::count_if(cols.begin(), cols.end(), [&](const std::string& c) { return paper->column_index(c) >= 0; }));
    md += "\n";
  }
  if (any_marked)
    md += fmt::format("\n{} differs from the reference row of its column: the 95 % interval of the difference excludes 0 "
                      "(the Δ columns above give the intervals).\n",
                      kMarker);
  return md;
}

std::string render_csv(const SweepResults& s, const std::vector<VariantSummary>& summary) {
  const TableSpec& t = s.table;
  const std::vector<Comparison> cmp = compare_to_reference(s, summary);
  const bool deltas = any_comparison(cmp);
  std::vector<std::string> header{"variant", "source", "n"};
  if (deltas) header.push_back("reference");
  for (const auto& m : t.metrics) {
    header.push_back(m + " mean");
    header.push_back(m + " std");
    if (!deltas) continue;
    for (const char* col : {" diff", " ci95 low", " ci95 high", " marked", " interval", " df"}) header.push_back(m + col);
  }
  std::string csv;
  auto emit = [&csv](const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) csv += (i ? "," : "") + csv_field(fields[i]);
    csv += "\n";
  };
  emit(header);
  for (size_t i = 0; i < summary.size(); ++i) {
    const auto& v = summary[i];
    const Comparison& c = cmp[i];
    std::vector<std::string> row{v.name, "ours", std::to_string(v.finished)};
    if (deltas) row.push_back(c.reference >= 0 ? summary[static_cast<size_t>(c.reference)].name : "");
    for (size_t m = 0; m < v.metrics.size(); ++m) {
      row.push_back(csv_number(v.metrics[m].mean * t.scale_of(m)));
      row.push_back(csv_number(v.metrics[m].std * std::abs(t.scale_of(m))));
      if (!deltas) continue;
      if (c.reference < 0) {
        row.insert(row.end(), 6, "");
        continue;
      }
      const stats::Interval& iv = c.metrics[m];
      const Scaled sv = scaled(iv, t.scale_of(m));
      const bool formed = iv.kind != stats::IntervalKind::none;
      row.push_back(csv_number(sv.diff));
      row.push_back(formed ? csv_number(sv.low) : "");
      row.push_back(formed ? csv_number(sv.high) : "");
      row.push_back(formed ? (iv.excludes_zero() ? "true" : "false") : "");
      row.push_back(stats::to_string(iv.kind));
      row.push_back(formed ? csv_number(iv.df) : "");
    }
    emit(row);
  }
  const PaperMapping paper = paper_mapping(t);
  if (paper.table) {
    for (const auto& pr : paper.table->rows) {
      std::vector<std::string> row{pr.model, "paper", ""};
      if (deltas) row.push_back("");
      for (size_t m = 0; m < t.metrics.size(); ++m) {
        const int c = paper.column[m];
        row.push_back(c >= 0 && pr.values[c] ? csv_number(*pr.values[c]) : "");
        row.push_back("");
        if (deltas) row.insert(row.end(), 6, "");
      }
      emit(row);
    }
  }
  return csv;
}

std::string curve_file_name(const std::string& curve) {
  auto [split, key] = split_curve(curve);
  std::string name = "curves_" + (split.empty() ? key : split + "_" + key);
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') c = '_';
  return name + ".png";
}

ReportFiles write_sweep_report(const fs::path& sweep_dir, const fs::path& out_dir) {
  const SweepResults sweep = load_sweep(sweep_dir);
  const auto summary = aggregate(sweep);
  ReportFiles out;
  for (const auto& r : sweep.runs)
    if (r.log.truncated_tail)
      out.notes.push_back(fmt::format("{}/metrics.jsonl: the last line was cut off (a killed run?) and is ignored", r.dir));
  fs::create_directories(out_dir);
  out.markdown = render_markdown(sweep, summary);
  write_file_atomic(out_dir / "table.md", out.markdown);
  out.files.push_back(out_dir / "table.md");
  write_file_atomic(out_dir / "table.csv", render_csv(sweep, summary));
  out.files.push_back(out_dir / "table.csv");

  if (!sweep.table.curves.empty() && !plots_available()) {
    out.notes.push_back("curve plots skipped: this build has no OpenCV (MEGALODON_WITH_VISION=OFF)");
    return out;
  }
  for (const auto& curve : sweep.table.curves) {
    const auto [split, key] = split_curve(curve);
    LinePlot plot;
    plot.title = fmt::format("{}: {}", sweep.table.title.empty() ? sweep.experiment : sweep.table.title, curve);
    plot.x_label = "step";
    plot.y_label = curve;
    bool any = false;
    for (const auto& variant : sweep.variants) {
      // Finished runs, as in the table; a variant with none still shows whatever its runs logged,
      // since the curve of a failed run is how one finds out why it failed.
      std::vector<const Curve*> finished, logged;
      for (const auto& r : sweep.runs) {
        if (r.variant != variant) continue;
        auto it = r.log.curves.find(curve);
        if (it == r.log.curves.end() || it->second.empty()) continue;
        logged.push_back(&it->second);
        if (r.finished) finished.push_back(&it->second);
      }
      const bool use_finished = !finished.empty();
      const auto& runs = use_finished ? finished : logged;
      PlotSeries series;
      series.label = runs.empty() ? variant + " (no data)"
                                  : fmt::format("{} ({} {}{})", variant, runs.size(),
                                                runs.size() == 1 ? "seed" : "seeds, mean ± std",
                                                use_finished ? "" : ", unfinished");
      // Several seeds: a shaded band of ± one sample standard deviation around the mean.
      for (const auto& p : curve_stats(runs)) {
        series.points.emplace_back(static_cast<double>(p.step), p.mean);
        if (runs.size() > 1) series.band.emplace_back(p.mean - p.std, p.mean + p.std);
      }
      any = any || !series.points.empty();
      plot.series.push_back(std::move(series));
    }
    if (!any) {
      out.notes.push_back(fmt::format("curve {}: no run logged split '{}' key '{}'; no plot", curve, split, key));
      continue;
    }
    const fs::path png = out_dir / curve_file_name(curve);
    write_line_plot(plot, png);
    out.files.push_back(png);
  }
  return out;
}

}  // namespace mgl::harness
