// Result tables and curve plots from a sweep directory (harness/report), on a hand-made sweep whose
// aggregates are known: 2 variants × 2 seeds, one failed run, one killed run's truncated log.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "harness/config/config.h"
#include "harness/report/paper_tables.h"
#include "harness/report/plot.h"
#include "harness/report/table.h"

#ifdef MEGALODON_HAS_VISION
#include <opencv2/imgcodecs.hpp>
#endif

using namespace mgl::harness;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / fmt::format("mgl_report_{}_{}", ::getpid(), counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignore;
    fs::remove_all(path, ignore);
  }
};

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file, std::ios::binary) << text;
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* kSweepJson = R"({
  "experiment": "quickstart", "experiment_file": "experiments/quickstart.toml",
  "variants": [{"name": "megalodon", "overrides": []}, {"name": "ema", "overrides": ["model.ema=ema"]}],
  "seeds": [1, 2],
  "runs": [
    {"variant": "megalodon", "seed": 1, "dir": "megalodon/seed1", "status": "finished", "error": "", "seconds": 81.0},
    {"variant": "megalodon", "seed": 2, "dir": "megalodon/seed2", "status": "finished", "error": "", "seconds": 99.0},
    {"variant": "ema", "seed": 1, "dir": "ema/seed1", "status": "finished", "error": "", "seconds": 60.0},
    {"variant": "ema", "seed": 2, "dir": "ema/seed2", "status": "failed", "error": "loss became NaN at step 20", "seconds": 5.0}],
  "table": {"title": "Quickstart: pixel sequences", "metrics": ["val/accuracy", "test/accuracy"],
            "labels": ["val acc %", "test acc %"], "scale": 100.0, "paper": "lra", "paper_columns": ["", "Image"],
            "curves": ["train/loss", "val/accuracy"], "notes": "500 steps of AdamW on 2 CPU threads."}
})";

void write_run(const fs::path& dir, int seed, double val, double test, double seconds, double loss_offset) {
  write(dir / "final.json",
        fmt::format(R"({{"status": "finished", "variant": "v", "seed": {}, "steps": 30, "best_step": 30,
                        "train_seconds": {}, "parameters": 51234, "task": "MNIST digits as 784-pixel sequences",
                        "metrics": {{"val/loss": 0.5, "val/accuracy": {}, "test/loss": 0.52, "test/accuracy": {}}}}})",
                    seed, seconds, val, test));
  write(dir / "run.json", fmt::format(R"j({{"seed": {}, "git_revision": "abc1234", "torch_version": "1.13.1",
                                         "cuda": "none", "device": "cpu (2 threads)", "hostname": "box", "command": "x"}})j",
                                      seed));
  std::string log;
  for (int step = 10; step <= 30; step += 10) {
    log += fmt::format(R"({{"step": {}, "split": "train", "loss": {}, "grad_norm": 1.2, "lr": 0.001, "ms": 120.5}})",
                       step, 3.0 - step / 10.0 + loss_offset) + "\n";
    if (step >= 20) log += fmt::format(R"({{"step": {}, "split": "val", "loss": 0.6, "accuracy": {}}})", step, val) + "\n";
  }
  write(dir / "metrics.jsonl", log);
}

// megalodon: val 0.80 / 0.84, test 0.78 / 0.80, 80 s / 100 s; ema: one finished seed, one failed.
fs::path make_sweep(const fs::path& root) {
  const fs::path sweep = root / "quickstart";
  write(sweep / "sweep.json", kSweepJson);
  write_run(sweep / "megalodon/seed1", 1, 0.80, 0.78, 80.0, 0.0);
  write_run(sweep / "megalodon/seed2", 2, 0.84, 0.80, 100.0, 0.2);
  write_run(sweep / "ema/seed1", 1, 0.70, 0.69, 60.0, 0.5);
  // The killed run: no final.json, a half-written last line.
  write(sweep / "ema/seed2/metrics.jsonl",
        "{\"step\": 10, \"split\": \"train\", \"loss\": 9.0}\n{\"step\": 20, \"split\": \"tr");
  // A truncated tail in a finished run too (the trainer was killed after writing final.json).
  std::ofstream(sweep / "megalodon/seed1/metrics.jsonl", std::ios::app) << "{\"step\": 40, \"split\": \"train\", \"lo";
  return sweep;
}

std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field), field.clear();
    } else if (c == '\n') {
      row.push_back(field), field.clear();
      rows.push_back(row), row.clear();
    } else {
      field += c;
    }
  }
  return rows;
}

}  // namespace

TEST_CASE("paper tables transcribe §1.1–§1.5", "[report]") {
  const auto lra = paper_table("lra");  // a copy: g++ 14 warns of a dangling reference otherwise
  REQUIRE(lra.columns.size() == 7);
  const int image = lra.column_index("Image"), avg = lra.column_index("Avg"), pathx = lra.column_index("Path-X");
  REQUIRE(lra.rows.back().model == "Megalodon");
  REQUIRE(*lra.rows.back().values[image] == Approx(89.42));
  REQUIRE(!lra.rows.front().values[pathx]);  // the Transformer's ✗ on Path-X
  for (const auto& row : lra.rows) {
    REQUIRE(row.values.size() == 7);
    // Avg is the mean of the six tasks; the ✗ rows average the five they finished.
    double sum = 0;
    int n = 0;
    for (int c = 0; c < 6; ++c)
      if (row.values[c]) sum += *row.values[c], ++n;
    INFO(row.model);
    REQUIRE(n >= 5);
    REQUIRE(std::abs(sum / n - *row.values[avg]) <= 0.01);
  }
  REQUIRE(*paper_table("speech").rows.back().values[1] == Approx(98.14));
  REQUIRE(*paper_table("speech").rows[0].values[0] == Approx(786e3));
  REQUIRE(!paper_table("speech").rows[0].values[1]);
  REQUIRE(*paper_table("imagenet").rows.back().values[2] == Approx(83.1));
  REQUIRE(*paper_table("wikitext103").rows.back().values[1] == Approx(17.23));
  const auto pg19 = paper_table("pg19");
  REQUIRE(*pg19.rows.back().values[pg19.column_index("Test")] == Approx(25.4));
  REQUIRE(!pg19.rows[2].values[pg19.column_index("Val")]);
  REQUIRE_THROWS_WITH(paper_table("lra2"), Contains("lra") && Contains("pg19") && Contains("wikitext103"));
}

TEST_CASE("sample statistics and the seed-mean curve", "[report]") {
  const Stat s = summarize({1, 2, 3, 4});
  REQUIRE(s.n == 4);
  REQUIRE(s.mean == Approx(2.5));
  REQUIRE(s.std == Approx(std::sqrt(5.0 / 3.0)));
  REQUIRE(std::isnan(summarize({7}).std));
  REQUIRE(summarize({}).n == 0);

  const Curve a{{10, 1.0}, {20, 2.0}, {30, 3.0}, {20, 4.0}};  // step 20 again after a resume
  const Curve b{{20, 6.0}, {30, 5.0}, {40, 1.0}};
  const Curve m = mean_curve({&a, &b});
  REQUIRE(m == Curve{{20, 5.0}, {30, 4.0}});
}

TEST_CASE("metrics.jsonl: a cut-off last line is ignored, a bad line elsewhere names file:line", "[report]") {
  TempDir tmp;
  write(tmp.path / "ok.jsonl", "{\"step\": 1, \"split\": \"train\", \"loss\": 2.0, \"lr\": null}\n\n"
                               "{\"step\": 2, \"split\": \"val\", \"accuracy\": 0.5}\n{\"step\": 3, \"spl");
  const MetricsLog log = read_metrics_log(tmp.path / "ok.jsonl");
  REQUIRE(log.truncated_tail);
  REQUIRE(log.curves.at("train/loss") == Curve{{1, 2.0}});
  REQUIRE(log.curves.at("val/accuracy") == Curve{{2, 0.5}});
  REQUIRE(!log.curves.count("train/lr"));

  write(tmp.path / "bad.jsonl", "{\"step\": 1, \"split\": \"train\", \"loss\": 2.0}\n{\"step\": 2, \"split\" \"train\"}\n"
                                "{\"step\": 3, \"split\": \"train\", \"loss\": 1.0}\n");
  REQUIRE_THROWS_WITH(read_metrics_log(tmp.path / "bad.jsonl"), Contains("bad.jsonl:2"));
  write(tmp.path / "nostep.jsonl", "{\"split\": \"train\"}\n{\"step\": 3, \"split\": \"train\", \"loss\": 1.0}\n");
  REQUIRE_THROWS_WITH(read_metrics_log(tmp.path / "nostep.jsonl"), Contains("nostep.jsonl:1") && Contains("step"));

  // Through load_sweep too, so a broken run log stops the report with its location.
  const fs::path sweep = make_sweep(tmp.path);
  write(sweep / "ema/seed1/metrics.jsonl", "{\"step\": 1, \"split\": \"train\", \"loss\": 2.0}\nnot json\n{}\n");
  REQUIRE_THROWS_WITH(load_sweep(sweep), Contains("metrics.jsonl:2"));
}

TEST_CASE("aggregation over seeds counts failed runs without averaging them", "[report]") {
  TempDir tmp;
  const SweepResults s = load_sweep(make_sweep(tmp.path));
  REQUIRE(s.variants == std::vector<std::string>{"megalodon", "ema"});
  REQUIRE(s.runs.size() == 4);
  REQUIRE(s.runs[0].log.truncated_tail);
  REQUIRE(s.runs[3].log.truncated_tail);
  REQUIRE(!s.runs[3].finished);
  const auto v = aggregate(s);
  REQUIRE(v.size() == 2);
  REQUIRE(v[0].runs == 2);
  REQUIRE(v[0].finished == 2);
  REQUIRE(v[0].metrics[0].n == 2);
  REQUIRE(v[0].metrics[0].mean == Approx(0.82));
  REQUIRE(v[0].metrics[0].std == Approx(0.04 / std::sqrt(2.0)));
  REQUIRE(v[0].metrics[1].mean == Approx(0.79));
  REQUIRE(v[0].metrics[1].std == Approx(0.02 / std::sqrt(2.0)));
  REQUIRE(v[0].train_seconds.mean == Approx(90.0));
  REQUIRE(*v[0].parameters_min == 51234);
  REQUIRE(v[1].runs == 2);
  REQUIRE(v[1].finished == 1);
  REQUIRE(v[1].metrics[0].n == 1);
  REQUIRE(v[1].metrics[0].mean == Approx(0.70));
}

TEST_CASE("the sweep report: Markdown, CSV and curve plots", "[report]") {
  TempDir tmp;
  const fs::path sweep = make_sweep(tmp.path), out = tmp.path / "report";
  const ReportFiles r = write_sweep_report(sweep, out);
  REQUIRE(fs::exists(out / "table.md"));
  REQUIRE(fs::exists(out / "table.csv"));
  REQUIRE(!fs::exists(out / "table.md.tmp"));

  REQUIRE(std::count_if(r.notes.begin(), r.notes.end(), [](const std::string& n) { return n.find("cut off") != std::string::npos; }) == 2);
  const std::string md = slurp(out / "table.md");
  REQUIRE(md == r.markdown);
  CHECK_THAT(md, Contains("# Quickstart: pixel sequences"));
  CHECK_THAT(md, Contains("500 steps of AdamW"));
  CHECK_THAT(md, Contains("MNIST digits as 784-pixel sequences"));
  CHECK_THAT(md, Contains("Seeds: 1, 2"));
  CHECK_THAT(md, Contains("cpu (2 threads)"));
  CHECK_THAT(md, Contains("abc1234"));
  CHECK_THAT(md, Contains("| variant | val acc % | Δ val acc % (95% CI) | test acc % | Δ test acc % (95% CI) | finished/runs |"));
  CHECK_THAT(md, Contains("| megalodon | 82.00 ± 2.83 | (reference) | 79.00 ± 1.41 | (reference) | 2/2 | 90 s | 51.2K |"));
  // One finished seed of ema: the difference, but no interval and no marker, and the notes say why.
  CHECK_THAT(md, Contains("| ema | 70.00 | -12.00 | 69.00 | -10.00 | 1/2 | 60 s | 51.2K |"));
  CHECK_THAT(md, Contains("No interval (every row): an interval needs at least 2 seeds on each side (have 1 and 2)."));
  CHECK_THAT(md, Contains("paper (reference)"));
  CHECK_THAT(md, Contains("| Megalodon |  |  | 89.42 |  |"));
  CHECK_THAT(md, Contains("| Mega |  |  | 90.44 |  |"));
  CHECK_THAT(md, Contains("Table 6"));
  CHECK_THAT(md, Contains("ema seed 2 (loss became NaN at step 20)"));
  // Sweep order: megalodon before ema, ours before the paper's.
  REQUIRE(md.find("| megalodon |") < md.find("| ema |"));
  REQUIRE(md.find("| ema |") < md.find("paper (reference)"));

  const auto csv = parse_csv(slurp(out / "table.csv"));
  REQUIRE(csv.size() == 1 + 2 + paper_table("lra").rows.size());
  const std::vector<std::string> per_metric{" mean", " std", " diff", " ci95 low", " ci95 high", " marked", " interval", " df"};
  std::vector<std::string> header{"variant", "source", "n", "reference"};
  for (const char* m : {"val/accuracy", "test/accuracy"})
    for (const auto& c : per_metric) header.push_back(m + c);
  REQUIRE(csv[0] == header);
  for (const auto& row : csv) REQUIRE(row.size() == header.size());
  REQUIRE(csv[1][0] == "megalodon");
  REQUIRE(csv[1][1] == "ours");
  REQUIRE(csv[1][2] == "2");
  REQUIRE(csv[1][3].empty());  // the reference has none
  REQUIRE(std::stod(csv[1][4]) == Approx(82.0));
  REQUIRE(std::stod(csv[1][5]) == Approx(4.0 / std::sqrt(2.0)));
  REQUIRE(csv[1][6].empty());
  REQUIRE(std::stod(csv[1][12]) == Approx(79.0));
  REQUIRE(std::stod(csv[1][13]) == Approx(2.0 / std::sqrt(2.0)));
  REQUIRE(csv[2][0] == "ema");
  REQUIRE(csv[2][2] == "1");
  REQUIRE(csv[2][3] == "megalodon");
  REQUIRE(std::stod(csv[2][4]) == Approx(70.0));
  REQUIRE(csv[2][5].empty());  // no std from one seed
  REQUIRE(std::stod(csv[2][6]) == Approx(-12.0));
  REQUIRE(csv[2][7].empty());  // no interval, no marker
  REQUIRE(csv[2][9].empty());
  REQUIRE(csv[2][10] == "none");
  REQUIRE(csv[3][0] == "Transformer (Mega's rerun)");
  REQUIRE(csv[3][1] == "paper");
  REQUIRE(csv[3][4].empty());  // val accuracy maps to no paper column
  REQUIRE(std::stod(csv[3][12]) == Approx(42.94));
  REQUIRE(csv.back()[0] == "Megalodon");
  REQUIRE(std::stod(csv.back()[12]) == Approx(89.42));

#ifdef MEGALODON_HAS_VISION
  REQUIRE(plots_available());
  REQUIRE(r.files.size() == 4);
  for (const char* name : {"curves_train_loss.png", "curves_val_accuracy.png"}) {
    INFO(name);
    REQUIRE(fs::exists(out / name));
    const cv::Mat img = cv::imread((out / name).string(), cv::IMREAD_COLOR);
    REQUIRE(!img.empty());
    REQUIRE(img.cols == LinePlot{}.width);
    REQUIRE(img.rows == LinePlot{}.height);
    for (size_t series = 0; series < 2; ++series) {
      const auto rgb = plot_colour(series);
      int count = 0;
      for (int y = 0; y < img.rows; ++y)
        for (int x = 0; x < img.cols; ++x) {
          const auto& p = img.at<cv::Vec3b>(y, x);
          if (std::abs(p[2] - rgb[0]) <= 12 && std::abs(p[1] - rgb[1]) <= 12 && std::abs(p[0] - rgb[2]) <= 12) ++count;
        }
      INFO("series " << series << ": " << count << " pixels");
      // Far more than the legend swatch alone (about 100 pixels): the line itself is drawn.
      REQUIRE(count > 400);
    }
  }
#else
  REQUIRE(!plots_available());
  REQUIRE(r.files.size() == 2);
  REQUIRE_THAT(r.notes.back(), Contains("OpenCV"));
#endif
}

TEST_CASE("sweep.json errors name the file and key", "[report]") {
  TempDir tmp;
  const fs::path sweep = make_sweep(tmp.path);
  std::string text = kSweepJson;
  text.replace(text.find("\"Image\""), 7, "\"Imagenet\"");
  write(sweep / "sweep.json", text);
  REQUIRE_THROWS_WITH(load_sweep(sweep), Contains("sweep.json") && Contains("table.paper_columns") && Contains("Image"));
  text = kSweepJson;
  text.replace(text.find("\"seed\": 2, \"dir\": \"ema"), 9, "\"seed\": \"two\"");
  write(sweep / "sweep.json", text);
  REQUIRE_THROWS_WITH(load_sweep(sweep), Contains("runs[3].seed"));
}

// One process only: starting the executable (loading LibTorch) alone takes most of a second.
TEST_CASE("megalodon table writes the report", "[report]") {
  TempDir tmp;
  const fs::path sweep = make_sweep(tmp.path), out = tmp.path / "out", log = tmp.path / "stdout.txt";
  const std::string cmd = fmt::format("'{}' table '{}' --out '{}' > '{}' 2>&1", MEGALODON_CLI_PATH, sweep.string(),
                                      out.string(), log.string());
  REQUIRE(std::system(cmd.c_str()) == 0);
  const std::string printed = slurp(log);
  INFO(printed);
  CHECK_THAT(printed, Contains("| megalodon | 82.00 ± 2.83 |"));
  CHECK_THAT(printed, Contains((out / "table.csv").string()));
  REQUIRE(fs::exists(out / "table.md"));
  REQUIRE(fs::exists(out / "table.csv"));
#ifdef MEGALODON_HAS_VISION
  REQUIRE(fs::exists(out / "curves_train_loss.png"));
#endif
}

TEST_CASE("suite sweeps: a model × task table beside the paper's rows", "[report]") {
  TempDir d;
  write(d.path / "sweep.json", R"j({
  "experiment": "lra/table", "experiment_file": "experiments/lra/table.toml",
  "variants": [{"name": "listops", "overrides": [], "row": "Megalodon (ours)", "column": "ListOps"},
               {"name": "text", "overrides": [], "row": "Megalodon (ours)", "column": "Text"},
               {"name": "listops-chunk", "overrides": [], "row": "Megalodon-chunk (ours)", "column": "ListOps"}],
  "seeds": [1, 2],
  "runs": [
    {"variant": "listops", "seed": 1, "dir": "listops/seed1", "status": "finished", "error": "", "seconds": 1.0},
    {"variant": "listops", "seed": 2, "dir": "listops/seed2", "status": "finished", "error": "", "seconds": 1.0},
    {"variant": "text", "seed": 1, "dir": "text/seed1", "status": "finished", "error": "", "seconds": 1.0},
    {"variant": "text", "seed": 2, "dir": "text/seed2", "status": "finished", "error": "", "seconds": 1.0},
    {"variant": "listops-chunk", "seed": 1, "dir": "listops-chunk/seed1", "status": "failed", "error": "boom", "seconds": 1.0},
    {"variant": "listops-chunk", "seed": 2, "dir": "listops-chunk/seed2", "status": "failed", "error": "boom", "seconds": 1.0}],
  "table": {"title": "LRA", "metrics": ["test/accuracy"], "scale": 100.0, "paper": "lra"}
})j");
  write_run(d.path / "listops/seed1", 1, 0.60, 0.60, 10, 0);
  write_run(d.path / "listops/seed2", 2, 0.62, 0.64, 10, 0);
  write_run(d.path / "text/seed1", 1, 0.88, 0.90, 10, 0);
  write_run(d.path / "text/seed2", 2, 0.88, 0.90, 10, 0);
  const auto sweep = load_sweep(d.path);
  REQUIRE(sweep.cells.size() == 3);
  const std::string md = render_pivot_markdown(sweep, aggregate(sweep));
  INFO(md);
  // Header: the columns in order of appearance; no Avg, since the paper's averages six tasks.
  CHECK_THAT(md, Contains("| model | ListOps | Text |\n"));
  CHECK_THAT(md, Contains("The paper's Avg (over 6 tasks) is left out: this table has 2 of them."));
  // Mean ± sample std over the two seeds.
  CHECK_THAT(md, Contains("| Megalodon (ours) | 62.00 ± 2.83 | 90.00 ± 0.00 |\n"));
  CHECK_THAT(md, Contains("| Megalodon-chunk (ours) | – |  |\n"));
  // The paper's rows on the matching columns, ✗ kept.
  CHECK_THAT(md, Contains("| Megalodon | 63.79 | 90.48 |\n"));
  CHECK_THAT(md, Contains("| Transformer (Mega's rerun) | 37.11 | 65.21 |\n"));
  // The whole report includes it.
  CHECK_THAT(render_markdown(sweep, aggregate(sweep)), Contains("| model | ListOps | Text |\n"));

  // With all six tasks the Avg column appears: ours is the mean over the six, only when all are in.
  {
    TempDir full;
    const std::vector<std::string> tasks{"ListOps", "Text", "Retrieval", "Image", "Pathfinder", "Path-X"};
    std::string variants, runs;
    for (size_t i = 0; i < tasks.size(); ++i) {
      variants += fmt::format("{}{{\"name\": \"t{}\", \"overrides\": [], \"row\": \"ours\", \"column\": \"{}\"}}",
                              i ? ", " : "", i, tasks[i]);
      runs += fmt::format("{}{{\"variant\": \"t{}\", \"seed\": 1, \"dir\": \"t{}/seed1\", \"status\": \"finished\", "
                          "\"error\": \"\", \"seconds\": 1.0}}",
                          i ? ", " : "", i, i);
      write_run(full.path / fmt::format("t{}/seed1", i), 1, 0.5 + 0.1 * i, 0.5 + 0.1 * i, 10, 0);
    }
    write(full.path / "sweep.json",
          fmt::format(R"j({{"experiment": "lra/table", "variants": [{}], "seeds": [1], "runs": [{}],
  "table": {{"title": "LRA", "metrics": ["test/accuracy"], "scale": 100.0, "paper": "lra"}}}})j",
                      variants, runs));
    const auto sw = load_sweep(full.path);
    const std::string fm = render_pivot_markdown(sw, aggregate(sw));
    INFO(fm);
    CHECK_THAT(fm, Contains("| model | ListOps | Text | Retrieval | Image | Pathfinder | Path-X | Avg |"));
    CHECK_THAT(fm, Contains("| ours | 50.00 | 60.00 | 70.00 | 80.00 | 90.00 | 100.00 | 75.00 |"));
    CHECK_THAT(fm, Contains("| Megalodon | 63.79 | 90.48 | 91.76 | 89.42 | 98.13 | 98.17 | 88.63 |"));
  }
  // Half a cell is an error naming the file.
  write(d.path / "sweep.json", R"({"experiment": "x", "variants": [{"name": "a", "row": "r"}], "runs": []})");
  CHECK_THROWS_WITH(load_sweep(d.path), Contains("sweep.json") && Contains("variants[0]"));
}

namespace {

// A plain sweep of `variants` × seeds 1..n; values[v][s] is both the val and the test accuracy of
// variant v's seed s+1, and the train loss curve is offset by 0.3·s per seed and 2·v per variant
// (the curves and their ± std bands do not overlap).
fs::path make_seed_sweep(const fs::path& root, const std::vector<std::string>& variants,
                         const std::vector<std::vector<double>>& values, const std::string& table_extra = "") {
  std::string vs, runs, seeds;
  const size_t n = values[0].size();
  for (size_t s = 0; s < n; ++s) seeds += fmt::format("{}{}", s ? ", " : "", s + 1);
  for (size_t v = 0; v < variants.size(); ++v) {
    vs += fmt::format("{}{{\"name\": \"{}\", \"overrides\": []}}", v ? ", " : "", variants[v]);
    for (size_t s = 0; s < n; ++s) {
      runs += fmt::format("{}{{\"variant\": \"{}\", \"seed\": {}, \"dir\": \"{}/seed{}\", \"status\": \"finished\", "
                          "\"error\": \"\", \"seconds\": 1.0}}",
                          runs.empty() ? "" : ", ", variants[v], s + 1, variants[v], s + 1);
      write_run(root / variants[v] / fmt::format("seed{}", s + 1), static_cast<int>(s + 1), values[v][s], values[v][s],
                10.0, 0.3 * static_cast<double>(s) + 2.0 * static_cast<double>(v));
    }
  }
  write(root / "sweep.json",
        fmt::format(R"j({{"experiment": "seeds", "variants": [{}], "seeds": [{}], "runs": [{}],
  "table": {{"title": "Seeds", "metrics": ["val/accuracy", "test/accuracy"], "labels": ["val %", "test %"],
             "scale": 100.0, "curves": ["train/loss"]{}}}}})j",
                    vs, seeds, runs, table_extra));
  return root;
}

}  // namespace

TEST_CASE("significance: paired intervals against the reference row, markers, notes and CSV", "[report]") {
  TempDir tmp;
  // d(worse − base) = {−5, −4, −4} points: mean −4.33, se = 1/3, ν = 2 → [−5.77, −2.90], marked.
  // d(same − base) = {+1, −1, +1}: mean +0.33, se = 2/3 → [−2.54, +3.20], not marked.
  const fs::path sweep = make_seed_sweep(tmp.path, {"base", "worse", "same"},
                                         {{0.80, 0.82, 0.84}, {0.75, 0.78, 0.80}, {0.81, 0.81, 0.85}});
  const ReportFiles r = write_sweep_report(sweep, tmp.path / "out");
  const std::string& md = r.markdown;
  INFO(md);
  CHECK_THAT(md, Contains("| variant | val % | Δ val % (95% CI) | test % | Δ test % (95% CI) |"));
  CHECK_THAT(md, Contains("| base | 82.00 ± 2.00 | (reference) | 82.00 ± 2.00 | (reference) |"));
  CHECK_THAT(md, Contains("| worse | 77.67 ± 2.52 | -4.33 [-5.77, -2.90] * | 77.67 ± 2.52 | -4.33 [-5.77, -2.90] * |"));
  CHECK_THAT(md, Contains("| same | 82.33 ± 2.31 | +0.33 [-2.54, +3.20] | 82.33 ± 2.31 | +0.33 [-2.54, +3.20] |"));
  CHECK_THAT(md, Contains("Δ: the row minus the reference row `base`"));
  CHECK_THAT(md, Contains("Paired t interval (every row)"));
  CHECK_THAT(md, Contains("2 of 4 differences are marked"));
  CHECK_THAT(md, Contains("not corrected for the 4 comparisons"));

  const auto csv = parse_csv(slurp(tmp.path / "out" / "table.csv"));
  REQUIRE(csv[2][0] == "worse");
  REQUIRE(csv[2][3] == "base");
  REQUIRE(std::stod(csv[2][6]) == Approx(-13.0 / 3.0));
  REQUIRE(std::stod(csv[2][7]) == Approx(-13.0 / 3.0 - 4.3026527297494639 / 3.0));
  REQUIRE(std::stod(csv[2][8]) == Approx(-13.0 / 3.0 + 4.3026527297494639 / 3.0));
  REQUIRE(csv[2][9] == "true");
  REQUIRE(csv[2][10] == "paired");
  REQUIRE(std::stod(csv[2][11]) == 2.0);
  REQUIRE(csv[3][9] == "false");

#ifdef MEGALODON_HAS_VISION
  // The ± std band: pixels of series 0's colour blended at 20 % into the white background.
  const cv::Mat img = cv::imread((tmp.path / "out" / "curves_train_loss.png").string(), cv::IMREAD_COLOR);
  REQUIRE(!img.empty());
  const auto rgb = plot_colour(0);
  int band = 0;
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) {
      const auto& p = img.at<cv::Vec3b>(y, x);
      bool near = true;
      for (int c = 0; c < 3; ++c) near = near && std::abs(p[2 - c] - (0.2 * rgb[c] + 0.8 * 255)) <= 6;
      band += near;
    }
  INFO("band pixels: " << band);
  REQUIRE(band > 2000);
#endif
}

TEST_CASE("significance: table.reference, Welch on request, one seed, suite columns", "[report]") {
  const std::vector<std::vector<double>> values{{0.80, 0.82, 0.84}, {0.75, 0.78, 0.80}};
  SECTION("another reference row") {
    TempDir tmp;
    const auto s = load_sweep(make_seed_sweep(tmp.path, {"base", "worse"}, values, R"(, "reference": "worse")"));
    const std::string md = render_markdown(s, aggregate(s));
    INFO(md);
    CHECK_THAT(md, Contains("| base | 82.00 ± 2.00 | +4.33 [+2.90, +5.77] * |"));
    CHECK_THAT(md, Contains("| worse | 77.67 ± 2.52 | (reference) |"));
  }
  SECTION("Welch's interval when asked: the same data no longer resolve the difference") {
    TempDir tmp;
    // a = {75, 78, 80}: s² = 19/3; b = {80, 82, 84}: s² = 4; se² = 19/9 + 4/3 = 31/9;
    // ν = (31/9)² / ((19/9)²/2 + (4/3)²/2) = (961/81) / (505/162) = 1922/505.
    const auto s = load_sweep(make_seed_sweep(tmp.path, {"base", "worse"}, values, R"(, "interval": "welch")"));
    const auto cmp = compare_to_reference(s, aggregate(s));
    REQUIRE(cmp[1].reference == 0);
    REQUIRE(cmp[1].metrics[0].kind == stats::IntervalKind::welch);
    REQUIRE(cmp[1].metrics[0].df == Approx(1922.0 / 505.0));
    REQUIRE(cmp[1].metrics[0].se == Approx(std::sqrt(31.0 / 9.0) / 100.0));
    REQUIRE(!cmp[1].metrics[0].excludes_zero());
    const std::string md = render_markdown(s, aggregate(s));
    CHECK_THAT(md, Contains("Welch's t interval (every row)"));
    CHECK_THAT(md, Contains("0 of 2 differences are marked"));
  }
  SECTION("one seed per row: differences without intervals, and the table says why") {
    TempDir tmp;
    const auto s = load_sweep(make_seed_sweep(tmp.path, {"base", "worse"}, {{0.80}, {0.75}}));
    const std::string md = render_markdown(s, aggregate(s));
    INFO(md);
    CHECK_THAT(md, Contains("| worse | 75.00 | -5.00 | 75.00 | -5.00 |"));
    CHECK_THAT(md, Contains("One seed per row: no interval and no marker."));
    CHECK_THAT(md, !Contains(" * |"));
  }
  SECTION("bad table.reference and table.interval name the key") {
    TempDir tmp;
    make_seed_sweep(tmp.path, {"base", "worse"}, values, R"(, "reference": "nope")");
    REQUIRE_THROWS_WITH(load_sweep(tmp.path), Contains("table.reference") && Contains("nope") && Contains("variant"));
    make_seed_sweep(tmp.path, {"base", "worse"}, values, R"(, "interval": "bootstrap")");
    REQUIRE_THROWS_WITH(load_sweep(tmp.path), Contains("table.interval") && Contains("auto, paired, welch"));
  }
  SECTION("suite sweeps compare within each column, against the reference row") {
    TempDir d;
    write(d.path / "sweep.json", R"j({
  "experiment": "lra/table",
  "variants": [{"name": "listops", "row": "full", "column": "ListOps"},
               {"name": "text", "row": "full", "column": "Text"},
               {"name": "listops-chunk", "row": "chunk", "column": "ListOps"},
               {"name": "text-chunk", "row": "chunk", "column": "Text"}],
  "seeds": [1, 2, 3],
  "runs": [)j" + [] {
      std::string runs;
      for (const char* v : {"listops", "text", "listops-chunk", "text-chunk"})
        for (int s = 1; s <= 3; ++s)
          runs += fmt::format("{}{{\"variant\": \"{}\", \"seed\": {}, \"dir\": \"{}/seed{}\", \"status\": \"finished\"}}",
                              runs.empty() ? "" : ", ", v, s, v, s);
      return runs;
    }() + R"j(],
  "table": {"title": "LRA", "metrics": ["test/accuracy"], "scale": 100.0}
})j");
    const double listops[] = {0.60, 0.62, 0.64}, chunk[] = {0.50, 0.53, 0.54}, text[] = {0.80, 0.81, 0.85};
    for (int s = 0; s < 3; ++s) {
      write_run(d.path / fmt::format("listops/seed{}", s + 1), s + 1, listops[s], listops[s], 10, 0);
      write_run(d.path / fmt::format("listops-chunk/seed{}", s + 1), s + 1, chunk[s], chunk[s], 10, 0);
      write_run(d.path / fmt::format("text/seed{}", s + 1), s + 1, text[s], text[s], 10, 0);
      write_run(d.path / fmt::format("text-chunk/seed{}", s + 1), s + 1, text[2 - s], text[2 - s], 10, 0);
    }
    const auto s = load_sweep(d.path);
    const auto summary = aggregate(s);
    const auto cmp = compare_to_reference(s, summary);
    REQUIRE(cmp[0].reference == -1);
    REQUIRE(cmp[1].reference == -1);
    REQUIRE(cmp[2].reference == 0);  // listops-chunk against listops
    REQUIRE(cmp[3].reference == 1);  // text-chunk against text
    // listops: d = {−10, −9, −10}: marked; text: the same values in another seed order: d = {5, 0, −5}.
    REQUIRE(cmp[2].metrics[0].excludes_zero());
    REQUIRE(!cmp[3].metrics[0].excludes_zero());
    const std::string pivot = render_pivot_markdown(s, summary);
    INFO(pivot);
    CHECK_THAT(pivot, Contains("| chunk | 52.33 ± 2.08 * | 82.00 ± 2.65 |"));
    CHECK_THAT(pivot, Contains("differs from the reference row of its column"));
    CHECK_THAT(render_markdown(s, summary), Contains("the reference row `full` of the same column"));
  }
}
