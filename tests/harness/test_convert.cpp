// The official-checkpoint converter (harness/io/official_checkpoint.h) and `megalodon convert`.
// Oracles: a state dict that PyTorch 1.13's own torch.save wrote (a checked-in file, with the values
// it was given), and a tiny MegalodonLM in this process whose state dict the test writes in the
// official layout; the converted weights must reproduce it bit for bit, logits included.
#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/models/factory.h"
#include "harness/config/config.h"
#include "harness/config/model.h"
#include "harness/io/official_checkpoint.h"
#include "harness/io/safetensors.h"
#include "harness/io/weights.h"
#include "harness/util/files.h"
#include "support/files.h"

using namespace mgl;
using namespace mgl::harness;
using torch::Tensor;
namespace fs = std::filesystem;
using Catch::Contains;

namespace {

// ---- a writer of torch.save's layout ----------------------------------------------------------
// torch.save(obj, "dir/consolidated.pth") writes a zip (PyTorchStreamWriter, so "PK\x03\x04" first)
// whose entries sit under the file's stem: consolidated/data.pkl (the pickle, protocol 2),
// consolidated/data/<key> (one raw little-endian storage each), consolidated/version. A state dict
// pickles as an OrderedDict: GLOBAL collections.OrderedDict, () REDUCE, the items as SETITEMS, each
// tensor as torch._utils._rebuild_tensor_v2((persistent id ('storage', torch.XStorage, key, 'cpu',
// numel)), offset, size, stride, requires_grad, OrderedDict()), then BUILD with {'_metadata': ...}.
// This is what pickletools shows for a real state_dict() saved by PyTorch 1.13 (and what the fixture
// below holds); LibTorch's pickle_save writes a plain dict instead (see the last test), which is why
// the round trip writes its files with this writer.
class TorchSaveWriter {
 public:
  void add(const std::string& key, const Tensor& t) { items_.emplace_back(key, t); }
  void add_int(const std::string& key, int64_t v) { ints_.emplace_back(key, v); }

  void save(const fs::path& file) {
    caffe2::serialize::PyTorchStreamWriter zip(file.string());  // the archive is named after the stem
    p_.assign("\x80\x02", 2);                                   // PROTO 2
    global("collections", "OrderedDict");
    op('q'), u8(0);  // BINPUT 0: the class, fetched again for every OrderedDict()
    op(')'), op('R'), op('q'), u8(1);
    // Python's pickler writes the items in batches of up to 1000: MARK k v ... SETITEMS, or k v
    // SETITEM for a batch of one.
    const bool single = items_.size() + ints_.size() == 1;
    if (!single) op('(');
    std::vector<std::pair<std::string, Tensor>> storages;
    bool rebuild_memo = false;
    for (const auto& [key, t] : items_) {
      str(key);
      if (rebuild_memo) {
        op('h'), u8(2);
      } else {
        global("torch._utils", "_rebuild_tensor_v2");
        op('q'), u8(2);
        rebuild_memo = true;
      }
      // Storages shared between tensors (a tied head) are written once, under one key.
      std::string skey;
      for (const auto& [k, s] : storages)
        if (s.storage().is_alias_of(t.storage())) skey = k;
      if (skey.empty()) {
        skey = std::to_string(storages.size());
        storages.emplace_back(skey, t);
      }
      op('(');
      op('('), str("storage"), global("torch", storage_type(t.scalar_type())), str(skey), str("cpu");
      integer(static_cast<int64_t>(t.storage().nbytes() / t.element_size()));
      op('t'), op('Q');  // BINPERSID
      integer(t.storage_offset());
      int_tuple(t.sizes()), int_tuple(t.strides());
      op('\x89');                        // NEWFALSE: requires_grad
      op('h'), u8(0), op(')'), op('R');  // OrderedDict(): backward hooks
      op('t'), op('R');
    }
    for (const auto& [key, v] : ints_) str(key), integer(v);
    op(single ? 's' : 'u');
    // The state BUILD sets: {'_metadata': OrderedDict([('', {'version': 1})])}, each a batch of one.
    op('}'), str("_metadata"), op('h'), u8(0), op(')'), op('R');
    str(""), op('}'), str("version"), integer(1), op('s'), op('s'), op('s');
    op('b'), op('.');
    zip.writeRecord("data.pkl", p_.data(), p_.size());
    for (const auto& [k, s] : storages)
      zip.writeRecord("data/" + k, s.storage().data(), s.storage().nbytes());
    zip.writeEndOfFile();
  }

 private:
  static std::string storage_type(torch::ScalarType t) {
    switch (t) {
      case torch::kFloat32:
        return "FloatStorage";
      case torch::kBFloat16:
        return "BFloat16Storage";
      case torch::kFloat16:
        return "HalfStorage";
      case torch::kFloat64:
        return "DoubleStorage";
      case torch::kInt64:
        return "LongStorage";
      default:
        throw std::invalid_argument("TorchSaveWriter: no storage type for this dtype");
    }
  }
  void op(char c) { p_.push_back(c); }
  void u8(uint8_t v) { p_.push_back(static_cast<char>(v)); }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) p_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void str(const std::string& s) { op('X'), le(s.size(), 4), p_ += s; }
  void global(const std::string& m, const std::string& n) { op('c'), p_ += m + "\n" + n + "\n"; }
  void integer(int64_t v) {  // as Python's pickler: BININT1, BININT2, BININT or LONG1
    if (v >= 0 && v < 256)
      op('K'), u8(static_cast<uint8_t>(v));
    else if (v >= 0 && v < 65536)
      op('M'), le(static_cast<uint64_t>(v), 2);
    else if (v >= INT32_MIN && v <= INT32_MAX)
      op('J'), le(static_cast<uint32_t>(static_cast<int32_t>(v)), 4);
    else
      op('\x8a'), u8(8), le(static_cast<uint64_t>(v), 8);
  }
  void int_tuple(torch::IntArrayRef v) {
    op('(');
    for (int64_t x : v) integer(x);
    op('t');
  }
  std::string p_;
  std::vector<std::pair<std::string, Tensor>> items_;
  std::vector<std::pair<std::string, int64_t>> ints_;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

MegalodonConfig tiny_config(bool share_emb, bool swiglu) {
  MegalodonConfig c;
  c.num_layers = 2;
  c.model_dim = 32;
  c.z_dim = 16;
  c.value_dim = 64;
  c.num_heads = 2;
  c.ffn_hidden_dim = 48;
  c.cema_ndim = 4;
  c.chunk_size = 16;
  c.norm_num_groups = 4;
  c.vocab_size = 50;
  c.share_emb = share_emb;
  c.swiglu = swiglu;
  c.rescale_nffn = swiglu;  // nffn.alpha on one of the two models
  c.scale_emb = share_emb;
  return c;
}

// The ModelConf object of the official config.json: every field, as dataclasses.asdict writes it.
nlohmann::json official_model_json(const MegalodonConfig& c, bool rope_base_null) {
  return {{"num_layers", c.num_layers},
          {"model_dim", c.model_dim},
          {"z_dim", c.z_dim},
          {"value_dim", c.value_dim},
          {"num_heads", c.num_heads},
          {"ffn_hidden_dim", c.ffn_hidden_dim},
          {"cema_ndim", c.cema_ndim},
          {"chunk_size", c.chunk_size},
          {"efficient_attn", nullptr},
          {"init_mode", "he"},
          {"vocab_size", c.vocab_size},
          {"output_size", -1},
          {"norm_num_groups", c.norm_num_groups},
          {"norm_affine", c.norm_affine},
          {"norm_eps", c.norm_eps},
          {"rope_base", rope_base_null ? nlohmann::json(nullptr) : nlohmann::json(c.rope_base)},
          {"dropout", 0.0},
          {"hidden_dropout", 0.0},
          {"attention_dropout", 0.0},
          {"swiglu", c.swiglu},
          {"rescale_nffn", c.rescale_nffn},
          {"scale_emb", c.scale_emb},
          {"share_emb", c.share_emb},
          {"layerwise_ckpt", false}};
}

// A model with every floating tensor randomised (so no tensor is a constant that any init matches).
std::shared_ptr<MegalodonLMImpl> random_lm(const MegalodonConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  ModelSpec spec;
  spec.model = c;
  auto lm = std::dynamic_pointer_cast<MegalodonLMImpl>(build_model(spec));
  torch::NoGradGuard g;
  for (auto& p : lm->parameters()) p.normal_(0.0, 0.5);
  for (auto& b : lm->buffers())
    if (b.is_floating_point()) b.normal_(0.0, 0.5);
  return lm;
}

// Writes `state` as <dir>/consolidated.pth with the official config.json and consolidate_config.json.
void write_official(const fs::path& dir, const std::map<std::string, Tensor>& state,
                    const nlohmann::json& model, const std::string& dtype = "fp32") {
  fs::create_directories(dir);
  TorchSaveWriter w;
  for (const auto& [k, t] : state) w.add(k, t);
  w.save(dir / "consolidated.pth");
  // The rest of the training config rides along in the official file; the converter ignores it.
  write_json_atomic(dir / "config.json", {{"model", model},
                                          {"tokenizer", {{"path", "/data/tokenizer.model"}}},
                                          {"model_parallel_size", 1},
                                          {"chunk_parallel_size", 1},
                                          {"seed", 42}});
  write_json_atomic(dir / "consolidate_config.json", {{"model_parallel_size", 1}, {"dtype", dtype}});
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

int run_cli(const std::string& args, const test::TempDir& dir, std::string* output = nullptr) {
  const fs::path log = dir / "cli.log";
  const std::string cmd = fmt::format("'{}' {} > '{}' 2>&1", MEGALODON_CLI_PATH, args, log.string());
  const int status = std::system(cmd.c_str());
  if (output) *output = read_bytes(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("convert: reads a state dict that PyTorch's own torch.save wrote", "[convert]") {
  // Oracle: tests/harness/data/torch_save_state_dict.pth, written by PyTorch 1.13.1 (Debian
  // python3-torch) with
  //   class M(nn.Module):  # embed = Embedding(3, 2); out = Linear(2, 3, bias=False); out.weight =
  //   embed.weight
  //                        # register_buffer("count", torch.tensor(7))
  //   embed.weight <- arange(6).reshape(3, 2); sd = M().state_dict()
  //   sd["w_t"] = arange(6.).reshape(2, 3).t(); sd["tail"] = arange(10.)[4:7]
  //   sd["bf"] = tensor([1.5, -2, .25], bfloat16); sd["h"] = tensor([.5, 3], float16); sd["d"] =
  //   tensor([1., 2.], float64) torch.save(sd, "fixture.pth")
  // It is an OrderedDict with _metadata (BUILD), a memoised OrderedDict class, a storage shared by
  // the tied pair, a transposed view and a view at a storage offset.
  const auto sd =
      read_torch_state_dict(fs::path(MEGALODON_SOURCE_DIR) / "tests/harness/data/torch_save_state_dict.pth");
  REQUIRE(sd.size() == 8);
  const Tensor w = torch::arange(6, torch::kFloat32).reshape({3, 2});
  REQUIRE(sd.at("count").scalar_type() == torch::kInt64);
  REQUIRE(sd.at("count").dim() == 0);
  REQUIRE(sd.at("count").item<int64_t>() == 7);
  REQUIRE(torch::equal(sd.at("embed.weight"), w));
  REQUIRE(torch::equal(sd.at("out.weight"), w));
  REQUIRE(sd.at("out.weight").storage().is_alias_of(sd.at("embed.weight").storage()));  // read once
  REQUIRE(torch::equal(sd.at("w_t"), torch::arange(6, torch::kFloat32).reshape({2, 3}).t()));
  REQUIRE(torch::equal(sd.at("tail"), torch::tensor({4.0f, 5.0f, 6.0f})));
  REQUIRE(sd.at("bf").scalar_type() == torch::kBFloat16);
  REQUIRE(torch::equal(sd.at("bf"), torch::tensor({1.5, -2.0, 0.25}).to(torch::kBFloat16)));
  REQUIRE(sd.at("h").scalar_type() == torch::kFloat16);
  REQUIRE(torch::equal(sd.at("h"), torch::tensor({0.5, 3.0}).to(torch::kFloat16)));
  REQUIRE(sd.at("d").scalar_type() == torch::kFloat64);
  REQUIRE(torch::equal(sd.at("d"), torch::tensor({1.0, 2.0}, torch::kFloat64)));
}

TEST_CASE("convert: our torch.save-layout writer matches the zip layout of torch.save", "[convert]") {
  // Oracle: the entry names PyTorch 1.13 wrote for the fixture above (fixture/data.pkl, fixture/data/N,
  // fixture/version), and the reader of the previous test.
  test::TempDir dir("convert");
  TorchSaveWriter w;
  const Tensor a = torch::randn({3, 4});
  w.add("a", a);
  w.add("a_again", a);  // shares the storage: one record
  w.save(dir / "consolidated.pth");
  const std::string bytes = read_bytes(dir / "consolidated.pth");
  REQUIRE(bytes.compare(0, 4, std::string("PK\x03\x04", 4)) == 0);
  caffe2::serialize::PyTorchStreamReader zip((dir / "consolidated.pth").string());
  auto names = zip.getAllRecords();
  // LibTorch 2.x's zip writer adds records of its own (as torch.save 2.x does): not ours to check.
  names.erase(std::remove_if(names.begin(), names.end(),
                             [](const std::string& n) { return n == ".data/serialization_id" || n == "byteorder"; }),
              names.end());
  std::sort(names.begin(), names.end());
  REQUIRE(names == std::vector<std::string>{"data.pkl", "data/0", "version"});
  REQUIRE(bytes.find("consolidated/data.pkl") != std::string::npos);  // entries under the file's stem
  const auto sd = read_torch_state_dict(dir / "consolidated.pth");
  REQUIRE(torch::equal(sd.at("a"), a));
  REQUIRE(torch::equal(sd.at("a_again"), a));
}

TEST_CASE("convert: an official checkpoint round-trips bit for bit, logits included", "[convert]") {
  // Oracle: the model whose state dict was written, in this process.
  for (const bool tied : {false, true}) {
    DYNAMIC_SECTION((tied ? "share_emb, SwiGLU, rope_base null" : "separate head, rope_base 5e5")) {
      test::TempDir dir("convert");
      MegalodonConfig c = tiny_config(tied, /*swiglu=*/tied);
      if (!tied) c.rope_base = 500000.0;
      auto src = random_lm(c, 1);
      const auto state = model_state(*src);  // the official names, rope.freqs and a tied head included
      REQUIRE(state.count("rope.freqs") == 1);
      REQUIRE(state.count("output.output.weight") == 1);
      write_official(dir / "official", state, official_model_json(c, /*rope_base_null=*/tied));

      ConvertOptions o;
      o.official_dir = dir / "official";
      const ConvertSummary s = convert_official_checkpoint(o, dir / "ours");
      REQUIRE(s.params == dir / "official" / "config.json");
      REQUIRE(s.tensors_read == state.size());
      REQUIRE(s.dtype == torch::kFloat32);
      REQUIRE(s.parameters == count_parameters(*src));
      REQUIRE(fs::exists(dir / "ours" / "model.safetensors"));

      const ModelSpec spec = read_model_spec(dir / "ours" / "config.json");
      REQUIRE(to_json(spec.model) == to_json(c));
      auto dst = random_lm(spec.model, 2);
      import_weights(*dst, dir / "ours" / "model.safetensors");
      const auto got = model_state(*dst);
      REQUIRE(got.size() == state.size());
      for (const auto& [name, t] : state) {
        INFO(name);
        REQUIRE(got.at(name).scalar_type() == t.scalar_type());
        REQUIRE(torch::equal(got.at(name), t));
      }
      torch::NoGradGuard g;
      src->eval(), dst->eval();
      const Tensor tokens = torch::randint(0, c.vocab_size, {2, 40}, torch::kInt64);  // several chunks
      REQUIRE(torch::equal(src->forward(tokens), dst->forward(tokens)));
    }
  }
}

TEST_CASE("convert: a bfloat16 checkpoint is kept or cast, float32 can be cast to bfloat16", "[convert]") {
  // Oracle: the source tensors rounded once to bfloat16 (Tensor::to).
  test::TempDir dir("convert");
  const MegalodonConfig c = tiny_config(true, false);
  auto src = random_lm(c, 3);
  const auto state = model_state(*src);

  SECTION("float32 -> bfloat16") {
    write_official(dir / "official", state, official_model_json(c, true));
    ConvertOptions o;
    o.official_dir = dir / "official";
    o.dtype = torch::kBFloat16;
    const ConvertSummary s = convert_official_checkpoint(o, dir / "ours");
    REQUIRE(s.source_dtype == torch::kFloat32);
    REQUIRE(s.dtype == torch::kBFloat16);
    const auto st = load_safetensors(dir / "ours" / "model.safetensors");
    for (const auto& [name, t] : state) {
      if (name == "rope.freqs") continue;  // written in fp32 whatever the model's dtype
      INFO(name);
      const Tensor want = t.is_floating_point() ? t.to(torch::kBFloat16) : t;
      REQUIRE(st.tensors.at(name).scalar_type() == want.scalar_type());
      REQUIRE(torch::equal(st.tensors.at(name), want));
    }
  }
  SECTION("bfloat16 kept, rope.freqs cast with the model as Module.to does") {
    std::map<std::string, Tensor> bf;
    for (const auto& [name, t] : state) bf.emplace(name, t.is_floating_point() ? t.to(torch::kBFloat16) : t);
    bf.at("output.output.weight") = bf.at("embed.weight");
    write_official(dir / "official", bf, official_model_json(c, true), "bf16");
    ConvertOptions o;
    o.official_dir = dir / "official";
    const ConvertSummary s = convert_official_checkpoint(o, dir / "ours");
    REQUIRE(s.dtype == torch::kBFloat16);
    const auto st = load_safetensors(dir / "ours" / "model.safetensors");
    REQUIRE(torch::equal(st.tensors.at("layers.0.mega.cema.alpha"), bf.at("layers.0.mega.cema.alpha")));
    REQUIRE(torch::equal(st.tensors.at("embed.weight"), bf.at("embed.weight")));
  }
}

TEST_CASE("convert: a checkpoint that does not fit its params lists every problem", "[convert]") {
  // Oracle: the damage done here by hand.
  test::TempDir dir("convert");
  const MegalodonConfig c = tiny_config(false, false);
  auto state = model_state(*random_lm(c, 4));
  state.erase("layers.1.mega.cema.alpha");
  state["layers.0.nffn.fc1.weight"] = torch::zeros({47, 32});
  state["layers.0.mega.extra"] = torch::zeros({2});
  write_official(dir / "official", state, official_model_json(c, true));
  ConvertOptions o;
  o.official_dir = dir / "official";
  const std::string e = error_of([&] { convert_official_checkpoint(o, dir / "ours"); });
  CHECK_THAT(e, Contains((dir / "official" / "consolidated.pth").string()));
  CHECK_THAT(e, Contains("3 problems"));
  CHECK_THAT(e, Contains("missing tensor 'layers.1.mega.cema.alpha'"));
  CHECK_THAT(
      e,
      Contains(
          "tensor 'layers.0.nffn.fc1.weight': shape [47, 32] in the checkpoint, the model expects [48, 32]"));
  CHECK_THAT(e, Contains("unexpected tensor 'layers.0.mega.extra'"));
  REQUIRE_FALSE(fs::exists(dir / "ours" / "model.safetensors"));  // nothing written
}

TEST_CASE("convert: a tied head that differs from the embedding, or rope.freqs of another base",
          "[convert]") {
  // Oracle: the official semantics: with share_emb the head is the embedding Parameter (§4.3), and
  // rope.freqs = 1/base^(2i/d_z) (§3.3).
  test::TempDir dir("convert");
  const MegalodonConfig c = tiny_config(true, false);
  auto state = model_state(*random_lm(c, 5));
  SECTION("tied head") {
    state["output.output.weight"] = state.at("embed.weight") + 1;
    write_official(dir / "official", state, official_model_json(c, true));
    ConvertOptions o;
    o.official_dir = dir / "official";
    CHECK_THAT(error_of([&] { convert_official_checkpoint(o, dir / "ours"); }),
               Contains("'output.output.weight' differs from 'embed.weight'"));
  }
  SECTION("rope base") {
    auto model = official_model_json(c, false);
    model["rope_base"] = 500000.0;  // the file's rope.freqs were computed for 10000
    write_official(dir / "official", state, model);
    ConvertOptions o;
    o.official_dir = dir / "official";
    CHECK_THAT(error_of([&] { convert_official_checkpoint(o, dir / "ours"); }),
               Contains("'rope.freqs' does not match rope_base = 500000"));
  }
}

TEST_CASE("convert: the params JSON follows the official ModelConf", "[convert]") {
  // Oracle: megalodon/config.py (fields, defaults) and megalodon/reloading.py (vocab_size from the
  // tokenizer when -1; ModelConf(**cfg["model"]) rejects unknown fields).
  const std::string f = "/ckpt/config.json";
  SECTION("defaults: an empty ModelConf plus a vocabulary is ModelConf()") {
    const MegalodonConfig m = official_model_config({{"model", nlohmann::json::object()}}, f, 32000);
    MegalodonConfig want;
    want.vocab_size = 32000;
    REQUIRE(to_json(m) == to_json(want));
    REQUIRE(m.rope_base == 10000.0);
    REQUIRE(m.out_size() == 32000);
  }
  SECTION("flat params, rope_base null, efficient_attn and layerwise_ckpt accepted") {
    const MegalodonConfig m = official_model_config(
        {{"vocab_size", 100}, {"rope_base", nullptr}, {"efficient_attn", "fused"}, {"layerwise_ckpt", true}},
        f);
    REQUIRE(m.vocab_size == 100);
    REQUIRE(m.rope_base == 10000.0);
  }
  SECTION("an unknown key names the key and the file") {
    const std::string e = error_of([&] {
      official_model_config({{"model", {{"vocab_size", 10}, {"num_layer", 2}}}}, f);
    });
    CHECK_THAT(e, Contains(f));
    CHECK_THAT(e, Contains("model.num_layer"));
    CHECK_THAT(e, Contains("not a field of the official ModelConf"));
    // Our own extensions are not official fields either.
    CHECK_THAT(error_of([&] {
                 official_model_config({{"vocab_size", 10}, {"drop_path", 0.1}}, f);
               }),
               Contains("drop_path"));
  }
  SECTION("vocab_size -1 needs --vocab-size; both given must agree") {
    CHECK_THAT(error_of([&] {
                 official_model_config({{"model", {{"vocab_size", -1}}}}, f);
               }),
               Contains("--vocab-size"));
    REQUIRE(official_model_config({{"model", {{"vocab_size", -1}}}}, f, 77).vocab_size == 77);
    CHECK_THAT(error_of([&] {
                 official_model_config({{"model", {{"vocab_size", 50}}}}, f, 77);
               }),
               Contains("model.vocab_size"));
  }
  SECTION("types and invalid values") {
    CHECK_THAT(error_of([&] {
                 official_model_config({{"model", {{"vocab_size", 10}, {"swiglu", "yes"}}}}, f);
               }),
               Contains("swiglu"));
    CHECK_THAT(error_of([&] {
                 official_model_config({{"vocab_size", 10}, {"efficient_attn", "flash"}}, f);
               }),
               Contains("efficient_attn"));
  }
}

TEST_CASE("convert: files that are not a single torch.save state dict", "[convert]") {
  // Oracle: the bytes written here.
  test::TempDir dir("convert");
  const MegalodonConfig c = tiny_config(false, false);
  auto state = model_state(*random_lm(c, 6));
  SECTION("not a zip") {
    test::write_text(dir / "x.pth", "hello, world");
    const std::string e = error_of([&] { read_torch_state_dict(dir / "x.pth"); });
    CHECK_THAT(e, Contains((dir / "x.pth").string()));
    CHECK_THAT(e, Contains("not a torch.save checkpoint"));
  }
  SECTION("the legacy pre-1.6 format") {
    test::write_text(dir / "x.pth",
                     std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 14));
    CHECK_THAT(error_of([&] { read_torch_state_dict(dir / "x.pth"); }), Contains("legacy"));
  }
  SECTION("a truncated zip") {
    TorchSaveWriter w;
    w.add("a", torch::ones({4}));
    w.save(dir / "x.pth");
    const std::string bytes = read_bytes(dir / "x.pth");
    test::write_text(dir / "y.pth", bytes.substr(0, bytes.size() / 2));
    CHECK_THAT(error_of([&] { read_torch_state_dict(dir / "y.pth"); }), Contains((dir / "y.pth").string()));
  }
  SECTION("a one-entry state dict (SETITEM, which LibTorch 1.13's unpickler lacks)") {
    TorchSaveWriter w;
    w.add("only", torch::arange(3, torch::kFloat32));
    w.save(dir / "x.pth");
    const auto sd = read_torch_state_dict(dir / "x.pth");
    REQUIRE(sd.size() == 1);
    REQUIRE(torch::equal(sd.at("only"), torch::arange(3, torch::kFloat32)));
  }
  SECTION("a non-tensor value names its key") {
    TorchSaveWriter w;
    w.add("a", torch::ones({4}));
    w.add_int("step", 1000);
    w.save(dir / "x.pth");
    CHECK_THAT(error_of([&] { read_torch_state_dict(dir / "x.pth"); }),
               Contains("a non-tensor value (int) under key 'step'"));
  }
  SECTION("model-parallel shards are refused, naming how many") {
    write_official(dir / "official", state, official_model_json(c, true));
    fs::rename(dir / "official" / "consolidated.pth", dir / "official" / "consolidated.00.pth");
    fs::copy_file(dir / "official" / "consolidated.00.pth", dir / "official" / "consolidated.01.pth");
    write_json_atomic(dir / "official" / "consolidate_config.json",
                      {{"model_parallel_size", 2}, {"dtype", "bf16"}});
    ConvertOptions o;
    o.official_dir = dir / "official";
    const std::string e = error_of([&] { convert_official_checkpoint(o, dir / "ours"); });
    CHECK_THAT(e, Contains("2 shards"));
    CHECK_THAT(e, Contains("model_parallel_size 2"));
  }
  SECTION("--out must not be the official directory") {
    write_official(dir / "official", state, official_model_json(c, true));
    ConvertOptions o;
    o.official_dir = dir / "official";
    CHECK_THAT(error_of([&] { convert_official_checkpoint(o, dir / "official"); }), Contains("overwritten"));
  }
}

TEST_CASE("convert: the megalodon convert command", "[convert]") {
  // Oracle: the library call's result (tested above) and the documented exit statuses.
  test::TempDir dir("convert");
  const MegalodonConfig c = tiny_config(true, true);
  auto src = random_lm(c, 7);
  auto model = official_model_json(c, true);
  model["vocab_size"] = -1;  // as in checkpoints whose vocabulary comes from the tokenizer
  write_official(dir / "official", model_state(*src), model);
  fs::rename(dir / "official" / "config.json", dir / "official" / "train_config.json");
  const std::string off = (dir / "official").string(), out = (dir / "ours").string();
  std::string log;

  REQUIRE(run_cli("convert --help", dir, &log) == 0);
  CHECK_THAT(log, Contains("--official DIR"));
  REQUIRE(run_cli("convert --out x", dir, &log) == 2);
  CHECK_THAT(log, Contains("--official DIR is required"));
  REQUIRE(run_cli(fmt::format("convert --official '{}' --out '{}' --dtype float16", off, out), dir, &log) ==
          2);
  REQUIRE(run_cli(fmt::format("convert --official '{}' --out '{}' --vocab-size zero", off, out), dir, &log) ==
          2);
  REQUIRE(run_cli(fmt::format("convert --official '{}' --out '{}' --frobnicate", off, out), dir, &log) == 2);
  // No config.json or params.json in the directory: bad data.
  REQUIRE(run_cli(fmt::format("convert --official '{}' --out '{}'", off, out), dir, &log) == 1);
  CHECK_THAT(log, Contains("give --params"));
  const std::string params = (dir / "official" / "train_config.json").string();
  REQUIRE(run_cli(fmt::format("convert --official '{}' --params '{}' --out '{}'", off, params, out), dir,
                  &log) == 1);
  CHECK_THAT(log, Contains("--vocab-size"));
  REQUIRE(
      run_cli(fmt::format("convert --official '{}' --params '{}' --vocab-size 50 --dtype float32 --out '{}'",
                          off, params, out),
              dir, &log) == 0);
  CHECK_THAT(log, Contains(fmt::format("parameters {}", count_parameters(*src))));
  CHECK_THAT(log, Contains("dtype      float32 (checkpoint float32)"));
  CHECK_THAT(log, Contains("tied head"));
  auto dst = random_lm(read_model_spec(dir / "ours" / "config.json").model, 8);
  import_weights(*dst, dir / "ours" / "model.safetensors");
  REQUIRE(torch::equal(dst->embed->weight, src->embed->weight));
}

TEST_CASE("convert: LibTorch's pickle_save writes torch.save's zip, with a plain dict", "[convert]") {
  // Oracle: the zip format of torch.save (local file header magic "PK\x03\x04", entries under
  // "archive/" as torch.save names them when it writes to a buffer) — pickle_save does write it. It
  // pickles a c10::Dict as a plain dict (EMPTY_DICT), not as the OrderedDict of a real state dict,
  // so it alone would not exercise the OrderedDict path that torch.save's files need (see
  // TorchSaveWriter); the reader accepts both.
  test::TempDir dir("convert");
  c10::Dict<std::string, Tensor> d;
  d.insert("w", torch::arange(4, torch::kFloat32));
  const std::vector<char> bytes = torch::jit::pickle_save(d);
  const std::string s(bytes.begin(), bytes.end());
  REQUIRE(s.compare(0, 4, std::string("PK\x03\x04", 4)) == 0);
  REQUIRE(s.find("archive/data.pkl") != std::string::npos);
  std::ofstream(dir / "p.pth", std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const auto sd = read_torch_state_dict(dir / "p.pth");
  REQUIRE(torch::equal(sd.at("w"), torch::arange(4, torch::kFloat32)));
}
