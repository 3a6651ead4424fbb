#include "harness/sweep.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>

#include "harness/experiment.h"
#include "harness/util/files.h"

namespace mgl::harness {

namespace {

using json = nlohmann::json;

// Splits a list value of the grid into one override value per element.
std::vector<std::string> grid_values(const std::string& key, const Value& v) {
  std::vector<std::string> out;
  if (auto p = std::get_if<std::vector<int64_t>>(&v))
    for (auto x : *p) out.push_back(std::to_string(x));
  else if (auto p = std::get_if<std::vector<double>>(&v))
    for (auto x : *p) out.push_back(format_value(Value{x}));
  else if (auto p = std::get_if<std::vector<std::string>>(&v))
    for (auto& x : *p) out.push_back(x);
  else
    throw ConfigError("", "sweep.grid." + key, "expected a list of values to sweep over");
  if (out.empty()) throw ConfigError("", "sweep.grid." + key, "the list of values is empty");
  return out;
}

// A variant's `experiment = "lra/listops"`: relative to the `experiments/` folder that holds the
// sweep file (or to the sweep file's folder), with or without `.toml`.
fs::path resolve_experiment(const fs::path& sweep_file, const std::string& name) {
  fs::path rel = name;
  if (rel.extension() != ".toml") rel += ".toml";
  if (rel.is_absolute()) return rel;
  const fs::path abs = fs::absolute(sweep_file).lexically_normal();
  for (fs::path d = abs.parent_path(); d.has_relative_path(); d = d.parent_path())
    if (d.filename() == "experiments") return d / rel;
  return abs.parent_path() / rel;
}

}  // namespace

SweepPlan plan_sweep(const fs::path& experiment_file, const std::vector<std::string>& overrides) {
  // A suite sweep file has no task of its own: every variant names its experiment. It is then
  // checked against the base schema (sweep, table, run sections and overrides for all runs).
  LoadOptions lo;
  lo.overrides = overrides;
  const bool suite = !ConfigLoader::compose(experiment_file, lo).has("task.name");
  Config base = suite ? ConfigLoader::load(experiment_file, lo, [](const Config&) { return base_schema(); })
                      : load_experiment(experiment_file, overrides);
  SweepPlan plan;
  plan.experiment = base.experiment_name;
  plan.experiment_file = experiment_file;
  plan.sweep_dir = fs::path(base.get_string("run.root")) / base.experiment_name;
  plan.seeds = base.get_ints("sweep.seeds");
  if (plan.seeds.empty()) throw ConfigError(base.origin("sweep.seeds"), "sweep.seeds", "needs at least one seed");
  plan.jobs = base.get_int("sweep.jobs");
  plan.stop_on_failure = base.get_string("sweep.on_failure") == "stop";

  // Named variants (or one, "default"), each expanded by the grid's cartesian product.
  std::vector<SweepVariant> named;
  for (const auto& v : base.table_list("sweep.variant")) {
    auto it = v.find("name");
    if (it == v.end() || !std::holds_alternative<std::string>(it->second))
      throw ConfigError(base.origin("sweep.variant"), "sweep.variant", "every [[sweep.variant]] needs name = \"...\"");
    SweepVariant sv;
    sv.name = std::get<std::string>(it->second);
    for (const auto& [k, val] : v) {
      if (k == "name") continue;
      if (k == "set") {
        if (auto s = std::get_if<std::vector<std::string>>(&val)) sv.overrides = *s;
        else throw ConfigError(base.origin("sweep.variant"), "sweep.variant.set", "expected a list of \"key=value\" strings");
        continue;
      }
      const auto* text = std::get_if<std::string>(&val);
      if (k != "experiment" && k != "row" && k != "column")
        throw ConfigError(base.origin("sweep.variant"), "sweep.variant." + k,
                          "unknown key (expected name, set, experiment, row, column)");
      if (!text) throw ConfigError(base.origin("sweep.variant"), "sweep.variant." + k, "expected a string");
      if (k == "experiment") {
        sv.experiment_file = resolve_experiment(experiment_file, *text);
        if (!fs::exists(sv.experiment_file))
          throw ConfigError(base.origin("sweep.variant"), "sweep.variant.experiment",
                            fmt::format("variant '{}': no experiment file {}", sv.name, sv.experiment_file.string()));
      } else {
        (k == "row" ? sv.row : sv.column) = *text;
      }
    }
    if (suite && sv.experiment_file.empty())
      throw ConfigError(base.origin("sweep.variant"), "sweep.variant.experiment",
                        fmt::format("variant '{}': this sweep file names no task, so every variant needs experiment = \"...\"",
                                    sv.name));
    if (sv.row.empty() != sv.column.empty())
      throw ConfigError(base.origin("sweep.variant"), "sweep.variant", fmt::format("variant '{}': give both row and column, or neither", sv.name));
    named.push_back(std::move(sv));
  }
  if (named.empty()) {
    if (suite)
      throw ConfigError(experiment_file.string(), "sweep.variant", "a sweep file without a task needs [[sweep.variant]] entries naming experiments");
    named.push_back({"default", {}, {}, {}, {}});
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> combos = {{"", {}}};
  for (const auto& [key, v] : base.table_entries("sweep.grid")) {
    std::vector<std::pair<std::string, std::vector<std::string>>> next;
    const std::string leaf = key.substr(key.rfind('.') + 1);
    for (const auto& c : combos)
      for (const auto& val : grid_values(key, v)) {
        auto o = c.second;
        o.push_back(key + "=" + val);
        next.emplace_back(c.first + (c.first.empty() ? "" : ",") + leaf + "=" + val, o);
      }
    combos = std::move(next);
  }
  for (const auto& v : named)
    for (const auto& [suffix, grid] : combos) {
      SweepVariant sv = v;
      sv.overrides.insert(sv.overrides.end(), grid.begin(), grid.end());
      const std::string& name = v.name;
      sv.name = suffix.empty() ? name : (named.size() == 1 && name == "default" ? suffix : name + "," + suffix);
      if (!suffix.empty() && !sv.row.empty()) sv.row += " (" + suffix + ")";
      for (const auto& existing : plan.variants)
        if (slug(existing.name) == slug(sv.name))
          throw ConfigError(experiment_file.string(), "sweep.variant",
                            "variant names '" + existing.name + "' and '" + sv.name + "' are the same directory name");
      plan.variants.push_back(std::move(sv));
    }

  for (const auto& v : plan.variants)
    for (int64_t seed : plan.seeds) {
      const std::string& name = v.name;
      const auto& set = v.overrides;
      SweepRun r;
      r.variant = name;
      r.experiment_file = v.experiment_file.empty() ? experiment_file : v.experiment_file;
      r.seed = seed;
      r.dir = plan.sweep_dir / slug(name) / fmt::format("seed{}", seed);
      r.overrides = overrides;
      r.overrides.insert(r.overrides.end(), set.begin(), set.end());
      r.overrides.push_back("run.variant=" + name);
      r.overrides.push_back(fmt::format("seed={}", seed));
      r.overrides.push_back("run.dir=" + r.dir.string());
      // Validate now: a typo in one variant must not surface hours into the sweep.
      try {
        load_experiment(r.experiment_file, r.overrides);
      } catch (const std::exception& e) {
        throw ConfigError("", "", fmt::format("variant '{}' (seed {}): {}", name, seed, e.what()));
      }
      plan.runs.push_back(std::move(r));
    }

  json t;
  t["title"] = base.get_string("table.title");
  t["metrics"] = base.get_strings("table.metrics");
  t["labels"] = base.get_strings("table.labels");
  t["scale"] = base.get_float("table.scale");
  t["scales"] = base.get_floats("table.scales");
  t["paper"] = base.get_string("table.paper");
  t["paper_columns"] = base.get_strings("table.paper_columns");
  t["curves"] = base.get_strings("table.curves");
  t["notes"] = base.get_string("table.notes");
  plan.table = t;
  return plan;
}

SweepSummary run_sweep(const SweepPlan& plan, const SweepOptions& options) {
  SweepSummary summary;
  const int64_t jobs = std::max<int64_t>(1, options.jobs > 0 ? options.jobs : plan.jobs);
  if (!options.dry_run) fs::create_directories(plan.sweep_dir);
  const fs::path sweep_file = plan.sweep_dir / "sweep.json";

  json doc;
  doc["experiment"] = plan.experiment;
  doc["experiment_file"] = plan.experiment_file.string();
  doc["variants"] = json::array();
  for (const auto& v : plan.variants) {
    json e = {{"name", v.name}, {"overrides", v.overrides}};
    if (!v.experiment_file.empty()) e["experiment_file"] = v.experiment_file.string();
    if (!v.row.empty()) {
      e["row"] = v.row;
      e["column"] = v.column;
    }
    doc["variants"].push_back(e);
  }
  doc["seeds"] = plan.seeds;
  doc["table"] = plan.table;
  doc["runs"] = json::array();
  for (const auto& r : plan.runs) {
    json e = {{"variant", r.variant}, {"seed", r.seed}, {"dir", fs::relative(r.dir, plan.sweep_dir).string()},
              {"status", "pending"}, {"error", ""}, {"seconds", 0.0}};
    if (fs::exists(r.dir / "final.json")) e["status"] = "finished";
    doc["runs"].push_back(e);
  }
  auto save = [&] { write_json_atomic(sweep_file, doc); };
  if (!options.dry_run) save();

  if (options.dry_run) {
    for (size_t i = 0; i < plan.runs.size(); ++i) {
      std::string cmd = fmt::format("{} train {}", options.executable.string(), plan.runs[i].experiment_file.string());
      for (const auto& o : plan.runs[i].overrides) cmd += " '" + o + "'";
      std::printf("[%s] %s\n", doc["runs"][i]["status"].get<std::string>().c_str(), cmd.c_str());
    }
    return summary;
  }

  struct Child {
    size_t index;
    std::chrono::steady_clock::time_point start;
  };
  std::map<pid_t, Child> running;
  size_t next = 0;
  bool stopping = false;
  const size_t total = plan.runs.size();
  auto launch = [&](size_t i) {
    const SweepRun& r = plan.runs[i];
    fs::create_directories(r.dir);
    const bool resume = fs::exists(r.dir / "checkpoints") || fs::exists(r.dir / "config.toml");
    std::vector<std::string> args = {options.executable.string(), "train", r.experiment_file.string()};
    args.insert(args.end(), r.overrides.begin(), r.overrides.end());
    if (resume) args.push_back("--resume");
    args.push_back("trainer.progress=lines");
    const fs::path log = r.dir / "log.txt";
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("sweep: fork failed");
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    running[pid] = {i, std::chrono::steady_clock::now()};
    doc["runs"][i]["status"] = "running";
    save();
    std::printf("[%zu/%zu] %s seed %lld: %s (log: %s)\n", i + 1, total, r.variant.c_str(), (long long)r.seed,
                resume ? "resuming" : "started", log.c_str());
    std::fflush(stdout);
  };
  auto last_error = [](const fs::path& log) {
    std::ifstream in(log);
    std::string line, err;
    while (std::getline(in, line))
      if (line.find("error") != std::string::npos) err = line;
    return err.empty() ? std::string("exited abnormally (see log.txt)") : err;
  };

  for (;;) {
    while (!stopping && running.size() < static_cast<size_t>(jobs) && next < total) {
      const size_t i = next++;
      if (fs::exists(plan.runs[i].dir / "final.json")) {
        ++summary.skipped;
        doc["runs"][i]["status"] = "finished";
        std::printf("[%zu/%zu] %s seed %lld: already finished, skipped\n", i + 1, total, plan.runs[i].variant.c_str(),
                    (long long)plan.runs[i].seed);
        continue;
      }
      launch(i);
    }
    if (running.empty()) break;
    int status = 0;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const size_t i = it->second.index;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.start).count();
    running.erase(it);
    const SweepRun& r = plan.runs[i];
    doc["runs"][i]["seconds"] = secs;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && fs::exists(r.dir / "final.json")) {
      ++summary.finished;
      doc["runs"][i]["status"] = "finished";
      doc["runs"][i]["error"] = "";
      std::string metrics;
      try {
        const json fin = read_json(r.dir / "final.json");
        for (const auto& [k, v] : fin.at("metrics").items()) metrics += fmt::format(" {} {:.4f}", k, v.get<double>());
      } catch (const std::exception&) {
      }
      std::printf("[%zu/%zu] %s seed %lld: finished in %.0f s |%s\n", i + 1, total, r.variant.c_str(), (long long)r.seed,
                  secs, metrics.c_str());
    } else {
      ++summary.failed;
      const std::string err = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                                  : last_error(r.dir / "log.txt");
      doc["runs"][i]["status"] = "failed";
      doc["runs"][i]["error"] = err;
      std::printf("[%zu/%zu] %s seed %lld: FAILED after %.0f s: %s\n", i + 1, total, r.variant.c_str(),
                  (long long)r.seed, secs, err.c_str());
      if (plan.stop_on_failure) stopping = true;
    }
    std::fflush(stdout);
    save();
  }
  save();
  return summary;
}

}  // namespace mgl::harness
