// Fuzz drivers for the harness's readers: safetensors, the model-spec JSON beside exported weights,
// TOML experiment files (composition and validation), and the official checkpoint (torch.save zip +
// pickle) reader. Our own checkpoints: drivers_checkpoint.cpp.
#include <fmt/format.h>

#include "fuzz/fuzz.h"
#include "harness/config/config.h"
#include "harness/io/official_checkpoint.h"
#include "harness/io/safetensors.h"
#include "harness/io/weights.h"

#ifndef MEGALODON_SOURCE_DIR
#define MEGALODON_SOURCE_DIR "."
#endif

namespace mgl::fuzz {
namespace {

namespace fs = std::filesystem;

// ---- safetensors --------------------------------------------------------------------------------

void run_safetensors(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "model.safetensors";
  write_file(f, data, size);
  harness::SafetensorsFile st;
  if (!refuse_or_accept([&] { st = harness::load_safetensors(f); }, f.string())) return;
  for (const auto& [name, t] : st.tensors) {
    expect(t.is_contiguous() && t.device().is_cpu(), "safetensors: tensor " + name + " not a contiguous CPU tensor");
    expect(name != "__metadata__", "safetensors: the reserved name as a tensor");
  }
}
void seeds_safetensors(const fs::path& dir) {
  harness::save_safetensors(dir / "small.safetensors",
                            {{"a.weight", torch::arange(6, torch::kFloat32).reshape({2, 3})},
                             {"b", torch::tensor({1, 2}, torch::kInt64)},
                             {"c.bf16", torch::ones({3}, torch::kBFloat16)},
                             {"mask", torch::tensor({true, false})},
                             {"empty", torch::empty({0, 4}, torch::kFloat16)}},
                            {{"format", "pt"}});
}
MGL_FUZZ_READER("safetensors", "safetensors weight files", run_safetensors, seeds_safetensors,
                {"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"F32\"", "\"BF16\"", "\"BOOL\"", "\"__metadata__\"", "[0,",
                 "]", "{", "}", ":", "        "});

// ---- the model spec (config.json beside exported weights) --------------------------------------

void run_model_spec(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "config.json";
  write_file(f, data, size);
  harness::ModelSpec spec;
  if (!refuse_or_accept([&] { spec = harness::read_model_spec(f); }, f.string())) return;
  // What forward/import do next: the core's own validation must hold for an accepted spec.
  expect(spec.model.model_dim > 0 && spec.model.num_layers > 0 && spec.model.vocab_size != 0,
         "model spec: accepted with a non-positive size");
  try {
    spec.model.validate("model");
  } catch (const std::exception& e) {
    finding(std::string("model spec: accepted, but the core refuses it: ") + e.what());
  }
}
void seeds_model_spec(const fs::path& dir) {
  harness::ModelSpec lm;
  lm.model.vocab_size = 32;
  lm.model.model_dim = 16;
  lm.model.num_layers = 1;
  lm.model.num_heads = 1;
  lm.model.z_dim = 8;
  lm.model.value_dim = 16;
  lm.model.ffn_hidden_dim = 32;
  lm.model.chunk_size = 8;
  lm.model.cema_ndim = 2;
  lm.model.norm_num_groups = 4;
  write_file(dir / "lm.json", harness::to_json(lm).dump(1));
  harness::ModelSpec cls = lm;
  cls.architecture = "megalodon_classifier";
  cls.model.vocab_size = -1;
  cls.classifier.num_classes = 3;
  cls.classifier.input_dim = 1;
  write_file(dir / "classifier.json", harness::to_json(cls).dump(1));
}
MGL_FUZZ_READER("model_spec", "model-spec JSON (config.json of exported weights)", run_model_spec, seeds_model_spec,
                {"\"model\"", "\"architecture\"", "\"format\"", "\"megalodon-harness/1\"", "\"model_dim\"", "-1", "1e9",
                 "null", "true", "[]", "{}"});

// ---- TOML experiment files ---------------------------------------------------------------------
// The input is the experiment file; it may compose `defaults` from a small configs/ tree made here.

void run_toml(const uint8_t* data, size_t size) {
  const fs::path root = fresh();
  write_file(root / "configs/model/tiny.toml", std::string_view("model_dim = 16\nnorm = \"layer\"\n"));
  write_file(root / "configs/optim/adamw.toml", std::string_view("lr = 1e-3\nbetas = [0.9, 0.98]\n"));
  write_file(root / "experiments/base.toml", std::string_view("seed = 3\n[trainer]\nsteps = 10\n"));
  const fs::path f = root / "experiments/x.toml";
  write_file(f, data, size);
  harness::Schema schema;
  schema.add_int("seed", 1, "seed");
  schema.add_int("model.model_dim", 8, "width");
  schema.add_string("model.norm", "timestep", "norm", {"timestep", "layer"});
  schema.add_float("optim.lr", 1e-3, "lr");
  schema.add_floats("optim.betas", {0.9, 0.98}, "betas");
  schema.add_int("trainer.steps", 1, "steps");
  schema.add_strings("trainer.tags", {}, "tags");
  schema.add_table("sweep.grid", "grid");
  schema.add_table_list("sweep.variant", "variants");
  harness::Config cfg;
  harness::LoadOptions o;
  o.config_root = root / "configs";
  if (!refuse_or_accept([&] { cfg = harness::ConfigLoader::load(f, o, [&](const harness::Config&) { return schema; }); },
                        "x.toml"))
    return;
  (void)cfg.to_toml();
  (void)cfg.table_entries("sweep.grid");
  (void)cfg.table_list("sweep.variant");
}
void seeds_toml(const fs::path& dir) {
  write_file(dir / "experiment.toml",
            "defaults = [\"model/tiny\", \"optim/adamw\", \"base.toml\"]\nseed = 7\n\n[model]\nmodel_dim = 32\n\n"
            "[trainer]\ntags = [\"a\", \"b\"]\n\n[sweep.grid]\n\"model.model_dim\" = [16, 32]\n\n[[sweep.variant]]\n"
            "name = \"v\"\noverrides = [\"model.norm=layer\"]\n");
  write_file(dir / "plain.toml", "seed = 1\noptim.lr = 3e-4\n[model]\nnorm = \"timestep\"\n");
}
MGL_FUZZ_READER("toml", "TOML experiment files (composition and schema validation)", run_toml, seeds_toml,
                {"defaults = [", "\"model/tiny\"", "\"base.toml\"", "\"../x\"", "[model]", "[[sweep.variant]]", " = ", "\"\"\"",
                 "'''", "1e400", "inf", "nan", "0x7fffffffffffffff", "1979-05-27T07:32:00Z"});

// ---- official checkpoints (torch.save zip + pickle) ---------------------------------------------

void run_official(const uint8_t* data, size_t size) {
  const fs::path f = fresh() / "consolidated.pth";
  write_file(f, data, size);
  std::map<std::string, torch::Tensor> state;
  if (!refuse_or_accept([&] { state = harness::read_torch_state_dict(f); }, f.string())) return;
  for (const auto& [name, t] : state) expect(t.defined(), "official checkpoint: undefined tensor " + name);
}
void seeds_official(const fs::path& dir) {
  const fs::path src = fs::path(MEGALODON_SOURCE_DIR) / "tests/harness/data/torch_save_state_dict.pth";
  fs::copy_file(src, dir / "torch_save_state_dict.pth", fs::copy_options::overwrite_existing);
}
MGL_FUZZ_READER("official", "official checkpoints (torch.save: zip archive with a pickled state dict)", run_official,
                seeds_official, {"PK\x03\x04", "data.pkl", "\x80\x02", "ctorch._utils\n_rebuild_tensor_v2\n", "q\x00"});

}  // namespace
}  // namespace mgl::fuzz
