// `megalodon bench <op>` (cli/bench/): the sub-registry lists every benchmark op, and the previous
// release's spellings (cli/bench/aliases.cpp) run the same op after one line on stderr naming the
// new spelling. Oracle: the new spelling's own output, run through the real executable.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/files.h"

namespace {

struct Run {
  int status = -1;
  std::string out, err;
};

Run megalodon(const std::string& args) {
  static mgl::test::TempDir dir("bench-cli");
  const auto out = dir / "out.txt", err = dir / "err.txt";
  const std::string cmd = fmt::format("'{}' {} > '{}' 2> '{}'", MEGALODON_CLI_PATH, args, out.string(), err.string());
  const int status = std::system(cmd.c_str());
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("megalodon bench: --help lists one op per benchmark, an unknown op is refused", "[cli][bench]") {
  const Run help = megalodon("bench --help");
  REQUIRE(help.status == 0);
  CHECK(help.err.empty());
  std::vector<std::string> ops{"model", "cema", "timestep-norm", "dist", "data", "lm-loss"};
#ifdef MEGALODON_HAS_VISION
  ops.push_back("augment");
#endif
  for (const auto& op : ops) {
    INFO(op);
    CHECK(contains(help.out, "\n  " + op + " "));
  }
  const Run bad = megalodon("bench no-such-op");
  CHECK(bad.status == 2);
  CHECK(contains(bad.err, "unknown op 'no-such-op'"));
}

TEST_CASE("megalodon bench lm-loss: reference and fused rows side by side, equal gradients, JSON", "[cli][bench]") {
  const std::string json = (std::filesystem::temp_directory_path() / "mgl_bench_lm_loss.json").string();
  const Run r = megalodon("bench lm-loss --tokens 40,67 --dim 8 --vocab 37 --rows-per-slice 16 --repeats 1 "
                          "--warmup 0 --threads 1 --json " + json);
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, "| 40 | "));
  CHECK(contains(r.out, "| 67 | "));
  std::ifstream in(json);
  REQUIRE(in.good());
  const auto j = nlohmann::json::parse(in);
  REQUIRE(j["rows"].size() == 2);
  for (const auto& row : j["rows"]) {
    CHECK(row["reference_ms"].get<double>() > 0);
    CHECK(row["max_rel_diff_dh"].get<double>() < 1e-5);  // the two paths' dh agree
  }
  std::filesystem::remove(json);
  const Run bad = megalodon("bench lm-loss --tokens 0");
  CHECK(bad.status != 0);
  CHECK(contains(bad.err, "--tokens expects positive integers"));
}

TEST_CASE("megalodon bench timestep-norm on the CPU: the reference path, and the module's loops against its expressions",
          "[cli][bench]") {
  const Run r = megalodon("bench timestep-norm --device cpu --lengths 64,96 --dim 16 --groups 4 --error-lengths 0 "
                          "--repeats 1 --warmup 0");
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, "| 64 | "));
  CHECK(contains(r.out, "LibTorch expressions | loops | speed-up"));
  CHECK(contains(r.out, "| 96 | "));
}

TEST_CASE("megalodon bench: the old spellings run the new op after a one-line notice", "[cli][bench]") {
  struct Alias {
    std::string old_args, new_args, spelling;
  };
  std::vector<Alias> aliases{{"bench-cema --help", "bench cema --help", "megalodon bench cema"},
                             {"bench-tsn --help", "bench timestep-norm --help", "megalodon bench timestep-norm"},
                             {"bench-dist --help", "bench dist --help", "megalodon bench dist"},
                             {"bench-data --help", "bench data --help", "megalodon bench data"},
                             // `bench` with the model benchmark's options: the option reaches the op,
                             // whose error about it is the same under both spellings.
                             {"bench --models no-such-model", "bench model --models no-such-model",
                              "megalodon bench model"}};
#ifdef MEGALODON_HAS_VISION
  aliases.push_back({"data augment-bench --help", "bench augment --help", "megalodon bench augment"});
#endif
  for (const auto& a : aliases) {
    INFO(a.old_args);
    const Run now = megalodon(a.new_args), old = megalodon(a.old_args);
    CHECK(old.status == now.status);
    CHECK(old.out == now.out);
    if (now.status == 0) {
      CHECK(now.err.empty());
      CHECK(contains(now.out, "usage: " + a.spelling + " "));
    } else {
      CHECK(contains(now.err, "unknown model 'no-such-model'"));
    }
    // The old spelling's stderr: the notice naming the new spelling, one line, then the op's own.
    REQUIRE(old.err.size() > now.err.size());
    const std::string notice = old.err.substr(0, old.err.size() - now.err.size());
    CHECK(old.err.substr(notice.size()) == now.err);
    CHECK(contains(notice, "`" + a.spelling + "`"));
    CHECK(std::count(notice.begin(), notice.end(), '\n') == 1);
    CHECK(notice.back() == '\n');
  }
}

TEST_CASE("megalodon bench model --breakdown on the CPU: the sub-modules, the operator rows, and the rows by caller",
          "[cli][bench]") {
  const std::string args =
      "bench model --threads 1 --lengths 128 --dim 32 --layers 1 --vocab 64 --chunk 32 --models megalodon "
      "--repeats 1 --warmup 0 --breakdown --gemm-gflops 10";
  const Run plain = megalodon(args);
  REQUIRE(plain.status == 0);
  for (const char* row : {"| timestep norm |", "| CEMA |", "| RoPE + chunked attention |", "| MEGA layer (all) |",
                          "| NFFN |", "| block (all) |", "| aten::mm |"})
    CHECK(contains(plain.out, row));
  CHECK_FALSE(contains(plain.out, " < aten::"));
  // Split by caller: the matmuls of the backward appear under their autograd node.
  setenv("MEGALODON_OP_PROFILE_CALLERS", "1", 1);
  const Run split = megalodon(args);
  unsetenv("MEGALODON_OP_PROFILE_CALLERS");
  REQUIRE(split.status == 0);
  CHECK(contains(split.out, "aten::mm < "));
}
