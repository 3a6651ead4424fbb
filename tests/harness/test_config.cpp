// Config composition, overrides and validation errors (issue 3 "config errors"). The oracle is the
// expected resolved value or the expected error text: file, line/column, key, and hint.
#include <catch2/catch.hpp>

#include <type_traits>

#include "harness/config/config.h"
#include "harness/config/model.h"
#include "harness/experiment.h"
#include "support/files.h"

using mgl::harness::Config;
using mgl::harness::ConfigError;
using mgl::harness::load_experiment;
using mgl::test::TempDir;
using mgl::test::write_text;

namespace {

// A miniature project: configs/ groups and an experiment composing them.
struct Project {
  TempDir dir{"config"};
  Project() {
    write_text(dir / "configs/task/fm.toml", "name = \"pixel_sequence\"\nroot = \"/data/fm\"\nnum_classes = 10\n");
    write_text(dir / "configs/model/small.toml", "num_layers = 2\nmodel_dim = 32\nz_dim = 16\nvalue_dim = 64\n"
                                                  "ffn_hidden_dim = 64\nchunk_size = 64\nnorm_num_groups = 4\n");
    write_text(dir / "configs/model/wide.toml", "num_layers = 2\nmodel_dim = 64\nz_dim = 16\nvalue_dim = 64\n"
                                                 "ffn_hidden_dim = 128\nchunk_size = 64\nnorm_num_groups = 4\n");
    write_text(dir / "configs/optim/adamw.toml", "name = \"adamw\"\nlr = 1e-3\nweight_decay = 0.1\n");
    write_text(dir / "experiments/exp.toml",
               "defaults = [\"task/fm\", \"model/small\", \"optim/adamw\"]\n\n[optim]\nlr = 5e-3\n\n"
               "[trainer]\nsteps = 7\n");
  }
  std::filesystem::path exp() const { return dir / "experiments/exp.toml"; }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("defaults compose groups, the experiment body and command-line overrides in that order", "[config]") {
  Project p;
  Config c = load_experiment(p.exp(), {"trainer.batch_size=3", "model.norm=layer"});
  CHECK(c.get_string("task.name") == "pixel_sequence");
  CHECK(c.get_int("model.model_dim") == 32);         // from configs/model/small.toml
  CHECK(c.get_float("optim.lr") == Approx(5e-3));     // the experiment overrides the group
  CHECK(c.get_float("optim.weight_decay") == Approx(0.1));
  CHECK(c.get_int("trainer.steps") == 7);
  CHECK(c.get_int("trainer.batch_size") == 3);         // command line
  CHECK(c.get_string("model.norm") == "layer");
  CHECK(c.get_int("trainer.eval_every") == 0);         // schema default
  CHECK(c.origin("model.model_dim").find("small.toml:2") != std::string::npos);
  CHECK(c.origin("trainer.batch_size") == "command line");
  CHECK(c.origin("trainer.eval_every") == "default");
  // Ints are accepted for float keys and stored as floats.
  Config c2 = load_experiment(p.exp(), {"optim.lr=1"});
  CHECK(c2.get_float("optim.lr") == 1.0);
}

TEST_CASE("a `group=name` override swaps a defaults entry", "[config]") {
  Project p;
  CHECK(load_experiment(p.exp(), {"model=wide"}).get_int("model.model_dim") == 64);
  const std::string e = error_of([&] { load_experiment(p.exp(), {"model=huge"}); });
  CHECK(e.find("model/huge") != std::string::npos);
  CHECK(e.find("available in model: small wide") != std::string::npos);
}

TEST_CASE("an unknown key stops with the file, line, key and the nearest valid keys", "[config]") {
  Project p;
  write_text(p.dir / "experiments/typo.toml", "defaults = [\"task/fm\"]\n\n[optim]\nlearning_rat = 1e-3\nlr = 2e-3\n");
  const std::string e = error_of([&] { load_experiment(p.dir / "experiments/typo.toml", {}); });
  INFO(e);
  CHECK(e.find("typo.toml:4") != std::string::npos);
  CHECK(e.find("optim.learning_rat") != std::string::npos);
  CHECK(e.find("unknown key") != std::string::npos);
  // A leaf under another section is suggested too.
  const std::string e2 = error_of([&] { load_experiment(p.exp(), {"optim.warmup=10"}); });
  INFO(e2);
  CHECK(e2.find("command line") != std::string::npos);
  CHECK(e2.find("did you mean 'schedule.warmup'") != std::string::npos);
  const std::string e3 = error_of([&] { load_experiment(p.exp(), {"model.model_dimm=8"}); });
  CHECK(e3.find("'model.model_dim'") != std::string::npos);
}

TEST_CASE("a wrong type or a value outside the choices names the key and what was expected", "[config]") {
  Project p;
  const std::string e = error_of([&] { load_experiment(p.exp(), {"trainer.steps=many"}); });
  CHECK(e.find("trainer.steps") != std::string::npos);
  CHECK(e.find("expected a integer") != std::string::npos);
  const std::string e2 = error_of([&] { load_experiment(p.exp(), {"model.norm=batch"}); });
  CHECK(e2.find("one of: timestep layer group") != std::string::npos);
  const std::string e3 = error_of([&] { load_experiment(p.exp(), {"trainer.steps=1.5"}); });
  CHECK(e3.find("trainer.steps") != std::string::npos);
  write_text(p.dir / "experiments/badtype.toml", "defaults = [\"task/fm\"]\n[optim]\nbetas = \"0.9\"\n");
  const std::string e4 = error_of([&] { load_experiment(p.dir / "experiments/badtype.toml", {}); });
  CHECK(e4.find("badtype.toml:3") != std::string::npos);
  CHECK(e4.find("list of floats") != std::string::npos);
  // A key that is a section cannot take a value.
  CHECK(error_of([&] { load_experiment(p.exp(), {"optim=3"}); }).find("optim") != std::string::npos);
}

TEST_CASE("a malformed TOML file reports file, line and column", "[config]") {
  Project p;
  write_text(p.dir / "configs/optim/broken.toml", "name = \"adamw\"\nlr = = 3\n");
  const std::string e = error_of([&] { load_experiment(p.exp(), {"optim=broken"}); });
  INFO(e);
  CHECK(e.find("broken.toml:2:") != std::string::npos);
  CHECK(e.find("TOML syntax error") != std::string::npos);
}

TEST_CASE("missing task, unknown task and defaults cycles are reported", "[config]") {
  Project p;
  write_text(p.dir / "experiments/notask.toml", "[trainer]\nsteps = 3\n");
  CHECK(error_of([&] { load_experiment(p.dir / "experiments/notask.toml", {}); }).find("task.name") !=
        std::string::npos);
  const std::string e = error_of([&] { load_experiment(p.exp(), {"task.name=nope"}); });
  CHECK(e.find("pixel_sequence") != std::string::npos);  // lists registered tasks
  write_text(p.dir / "experiments/a.toml", "defaults = [\"b.toml\"]\n");
  write_text(p.dir / "experiments/b.toml", "defaults = [\"a.toml\"]\n");
  CHECK(error_of([&] { load_experiment(p.dir / "experiments/a.toml", {}); }).find("cycle") != std::string::npos);
}

TEST_CASE("experiments can build on another experiment file", "[config]") {
  Project p;
  write_text(p.dir / "experiments/child.toml", "defaults = [\"exp.toml\"]\n[trainer]\nsteps = 11\n");
  Config c = load_experiment(p.dir / "experiments/child.toml", {});
  CHECK(c.get_int("trainer.steps") == 11);
  CHECK(c.get_float("optim.lr") == Approx(5e-3));
  CHECK(c.experiment_name == "child");
}

TEST_CASE("the resolved config round-trips through its TOML text", "[config]") {
  Project p;
  Config c = load_experiment(p.exp(), {"sweep.seeds=[1, 2]", "optim.no_decay=[\"norm\", \"cema\"]"});
  write_text(p.dir / "resolved.toml", c.to_toml());
  mgl::harness::LoadOptions lo;
  lo.config_root = p.dir / "configs";
  Config back = mgl::harness::ConfigLoader::load(p.dir / "resolved.toml", lo, mgl::harness::experiment_schema);
  CHECK(back.to_toml() == c.to_toml());
  CHECK(back.get_ints("sweep.seeds") == std::vector<int64_t>{1, 2});
  CHECK(back.get_strings("optim.no_decay") == std::vector<std::string>{"norm", "cema"});
}

TEST_CASE("model presets are the base that explicit keys override", "[config]") {
  Project p;
  Config c = load_experiment(p.exp(), {"model.preset=mega200M"});
  // The experiment's model group sets model_dim = 32 explicitly, so it wins over the preset.
  auto m = mgl::harness::megalodon_config_from(c);
  CHECK(m.model_dim == 32);
  CHECK(m.num_layers == 2);
  auto ref = mgl::MegalodonConfig::preset("mega200M");
  CHECK(m.cema_ndim == ref.cema_ndim);
  CHECK(m.norm_num_groups == 4);
  // An invalid combination is reported with the config key.
  const std::string e = error_of([&] {
    mgl::harness::megalodon_config_from(load_experiment(p.exp(), {"model.z_dim=15", "model.num_heads=2"}));
  });
  CHECK(e.find("model.") != std::string::npos);
}

TEST_CASE("one ConfigError: the core's validation error gets its value's origin once, with its key", "[config]") {
  Project p;
  // z_dim = 15 with two heads fails the core's MegalodonConfig::validate, which knows only the key.
  try {
    mgl::harness::megalodon_config_from(load_experiment(p.exp(), {"model.z_dim=15", "model.num_heads=2"}));
    FAIL("an invalid model config must be refused");
  } catch (const mgl::ConfigError& e) {  // the same type as harness::ConfigError
    INFO(e.what());
    CHECK(e.where == "command line");
    CHECK(e.key.rfind("model.", 0) == 0);
    CHECK(std::string(e.what()) == e.where + ": " + e.key + ": " + e.detail);
  }
  static_assert(std::is_same_v<mgl::ConfigError, mgl::harness::ConfigError>);
  // A core error without a known key position is located once; a later locate() keeps the first.
  mgl::ConfigError core("model.norm", "got \"x\"");
  CHECK(std::string(core.what()) == "model.norm: got \"x\"");
  core.locate("exp.toml:3:1");
  core.locate("elsewhere");
  CHECK(std::string(core.what()) == "exp.toml:3:1: model.norm: got \"x\"");
  // Switch choice lists come from the core's spellings.
  const std::string bad = error_of([&] { load_experiment(p.exp(), {"model.kernel_row_norm=fast"}); });
  CHECK(bad.find("model.kernel_row_norm") != std::string::npos);
  CHECK(bad.find("one of: reference fused auto") != std::string::npos);
  CHECK(mgl::names_of<mgl::NormKind>() == std::vector<std::string>{"timestep", "layer", "group", "sequence"});
  // The row norms have their own key: kernel_timestep_norm no longer switches them.
  const auto m = mgl::harness::megalodon_config_from(load_experiment(p.exp(), {"model.kernel_timestep_norm=auto"}));
  CHECK(m.kernel_timestep_norm == mgl::KernelImpl::auto_select);
  CHECK(m.kernel_row_norm == mgl::KernelImpl::reference);
}

TEST_CASE("override values parse as TOML literals, bare words as strings", "[config]") {
  using mgl::harness::parse_override;
  CHECK(std::get<int64_t>(parse_override("a.b=3").second) == 3);
  CHECK(std::get<double>(parse_override("a.b=1e-3").second) == Approx(1e-3));
  CHECK(std::get<bool>(parse_override("a.b=true").second));
  CHECK(std::get<std::string>(parse_override("a.b=layer").second) == "layer");
  CHECK(std::get<std::string>(parse_override("a.b=/tmp/x y").second) == "/tmp/x y");
  CHECK(std::get<std::vector<int64_t>>(parse_override("a.b=[1,2]").second) == std::vector<int64_t>{1, 2});
  CHECK_THROWS_AS(parse_override("novalue"), ConfigError);
  CHECK_THROWS_AS(parse_override("bad key=1"), ConfigError);
}

TEST_CASE("numeric keys outside their range stop validation with the value's origin", "[config]") {
  Project p;
  struct Case {
    const char* override;
    const char* expected;
  };
  for (const Case& c : {Case{"trainer.batch_size=-8", "expected a value >= 1, got -8"},
                        Case{"trainer.batch_size=0", "expected a value >= 1, got 0"},
                        Case{"optim.lr=-1", "expected a value > 0, got -1"},
                        Case{"optim.lr=0", "expected a value > 0, got 0"},
                        Case{"optim.betas=[0.9, 1.5]", "expected every element in [0, 1), got"},
                        Case{"trainer.eval_batch_size=0", "expected a value >= 1 (or -1), got 0"},
                        Case{"model.dropout=1.0", "expected a value in [0, 1), got 1"},
                        Case{"model.num_layers=0", "expected a value >= 1, got 0"},
                        Case{"task.val_size=-1", "expected a value >= 0, got -1"},
                        Case{"task.train_limit=-2", "expected a value >= 0 (or -1), got -2"}}) {
    INFO(c.override);
    const std::string e = error_of([&] { load_experiment(p.exp(), {c.override}); });
    CHECK(e.find("command line") != std::string::npos);
    CHECK(e.find(std::string(c.override).substr(0, std::string(c.override).find('='))) != std::string::npos);
    CHECK(e.find(c.expected) != std::string::npos);
  }
  // In a file: the file and line of the value.
  write_text(p.dir / "experiments/neg.toml", "defaults = [\"task/fm\"]\n[trainer]\nbatch_size = -8\n");
  const std::string e = error_of([&] { load_experiment(p.dir / "experiments/neg.toml", {}); });
  CHECK(e.find("neg.toml:3") != std::string::npos);
  CHECK(e.find("trainer.batch_size") != std::string::npos);
  // The sentinel and the bounds themselves are valid; --help-config shows the range.
  CHECK(load_experiment(p.exp(), {"trainer.eval_batch_size=-1", "trainer.batch_size=1", "model.dropout=0"})
            .get_int("trainer.batch_size") == 1);
  CHECK(mgl::harness::base_schema().describe().find("examples per micro-batch (>= 1)") != std::string::npos);
}

TEST_CASE("a schema default outside its own range is refused when the schema is built", "[config]") {
  mgl::harness::Schema s;
  CHECK_THROWS_AS(s.add_int("a.b", 0, "doc", mgl::harness::Range::at_least(1)), std::logic_error);
  CHECK_NOTHROW(s.add_int("a.c", -1, "doc", mgl::harness::Range::at_least(1).or_value(-1)));
}

TEST_CASE("config groups are looked up in the search path, and the error names the folders", "[config]") {
  // An experiment kept outside any tree with a configs/ folder still finds the project's groups.
  TempDir outside("config-outside");
  write_text(outside / "mine.toml", "defaults = [\"task/fashion_mnist\", \"model/tiny\"]\n[trainer]\nsteps = 3\n");
  const Config c = load_experiment(outside / "mine.toml", {});
  CHECK(c.get_string("task.name") == "pixel_sequence");
  CHECK(c.origin("task.name").find("configs/task/fashion_mnist.toml") != std::string::npos);

  // The experiment's own tree comes first: a local group shadows the project's.
  Project p;
  write_text(p.dir / "configs/model/tiny.toml", "num_layers = 3\nmodel_dim = 32\nz_dim = 16\nvalue_dim = 64\n"
                                                 "ffn_hidden_dim = 64\nchunk_size = 64\nnorm_num_groups = 4\n");
  CHECK(load_experiment(p.exp(), {"model=tiny"}).get_int("model.num_layers") == 3);

  // $MEGALODON_CONFIG_PATH comes last, for groups found nowhere else.
  TempDir extra("config-extra");
  write_text(extra / "optim/special.toml", "name = \"adam\"\nlr = 7e-4\n");
  const std::string missing = error_of([&] { load_experiment(p.exp(), {"optim=special"}); });
  INFO(missing);
  CHECK(missing.find("no config 'optim/special'") != std::string::npos);
  CHECK(missing.find((p.dir / "configs").string()) != std::string::npos);         // the folders searched
  CHECK(missing.find(std::string(MEGALODON_SOURCE_DIR) + "/configs") != std::string::npos);
  CHECK(missing.find("MEGALODON_CONFIG_PATH") != std::string::npos);
  setenv("MEGALODON_CONFIG_PATH", ("/nonexistent:" + extra.path().string()).c_str(), 1);
  const Config c2 = load_experiment(p.exp(), {"optim=special"});
  unsetenv("MEGALODON_CONFIG_PATH");
  CHECK(c2.get_string("optim.name") == "adam");  // from the folder of $MEGALODON_CONFIG_PATH
  CHECK(c2.origin("optim.name").find(extra.path().string()) != std::string::npos);
}
