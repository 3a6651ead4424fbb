// safetensors I/O, weight export/import under the official names, and `megalodon forward`.
// Each test names its oracle: hand-assembled bytes, a hand decoding of our bytes, the tensors that
// went in, or the model in this process.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "core/models/factory.h"
#include "harness/io/safetensors.h"
#include "harness/io/weights.h"
#include "support/oracle.h"

using namespace mgl;
using namespace mgl::harness;
using torch::Tensor;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           fmt::format("mgl_safetensors_{}_{}", static_cast<long>(::getpid()), counter.fetch_add(1));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}
// A file from a header text and a data buffer, exactly as given (no padding, no checks).
std::string st_file(const std::string& header, const std::string& data) { return le64(header.size()) + header + data; }

// Tiny models (D = 16, 2 layers); zero-initialised parameters (norm weights, γ/β) are perturbed so
// that a failed import of any of them shows in the logits.
MegalodonConfig tiny_cfg() {
  MegalodonConfig c;
  c.num_layers = 2;
  c.model_dim = 16;
  c.num_heads = 2;
  c.z_dim = 8;
  c.value_dim = 16;
  c.ffn_hidden_dim = 24;
  c.cema_ndim = 4;
  c.norm_num_groups = 4;
  c.chunk_size = 8;
  c.vocab_size = 32;
  return c;
}
void perturb(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.named_parameters()) p.value().add_(torch::randn_like(p.value()) * 0.1);
}
ModelSpec lm_spec(bool share_emb = false) {
  ModelSpec s;
  s.architecture = "megalodon_lm";
  s.model = tiny_cfg();
  s.model.share_emb = share_emb;
  s.model.swiglu = share_emb;  // covers fc3 in one of the two variants
  s.model.rescale_nffn = share_emb;
  return s;
}
ModelSpec classifier_spec(bool tokens) {
  ModelSpec s;
  s.architecture = "megalodon_classifier";
  s.model = tiny_cfg();
  s.model.causal = false;
  s.model.norm = NormKind::group;
  if (!tokens) s.model.vocab_size = -1;
  s.classifier.num_classes = 3;
  s.classifier.input_dim = tokens ? 1 : 3;
  return s;
}
Tensor run(torch::nn::Module& m, const ModelSpec& spec, const Tensor& x, const Tensor& mask = {}) {
  torch::NoGradGuard g;
  m.eval();
  if (spec.architecture == "megalodon_lm") return dynamic_cast<CausalLMImpl&>(m).forward(x);
  return dynamic_cast<MegalodonClassifierImpl&>(m).forward(x, mask);
}

// Runs the built executable; returns its exit status, with stdout+stderr in `output`.
int run_cli(const std::string& args, const TempDir& dir, std::string* output = nullptr) {
  const fs::path log = dir / "cli.log";
  const std::string cmd = fmt::format("'{}' {} > '{}' 2>&1", MEGALODON_CLI_PATH, args, log.string());
  const int status = std::system(cmd.c_str());
  if (output) *output = read_bytes(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("safetensors: a hand-assembled file parses to its known values", "[safetensors]") {
  // Oracle: bytes written here by hand. 1.5f = 0x3FC00000, -2.0f = 0xC0000000, bf16 1.0 = 0x3F80,
  // int16 258 = 0x0102, -1 = 0xFFFF; all little-endian.
  TempDir dir;
  const std::string header =
      R"({"b":{"dtype":"I16","shape":[1,2],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("c":{"dtype":"BF16","shape":[],"data_offsets":[12,14]},)"
      R"("d":{"dtype":"BOOL","shape":[2],"data_offsets":[14,16]},)"
      R"("__metadata__":{"k":"v","format":"pt"}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  const std::string data("\x00\x00\xC0\x3F\x00\x00\x00\xC0\x02\x01\xFF\xFF\x80\x3F\x01\x00", 16);
  write_bytes(dir / "hand.safetensors", st_file(padded, data));

  auto f = load_safetensors(dir / "hand.safetensors");
  REQUIRE(f.tensors.size() == 4);
  REQUIRE(f.metadata == std::map<std::string, std::string>{{"k", "v"}, {"format", "pt"}});
  const Tensor& a = f.tensors.at("a");
  REQUIRE(a.scalar_type() == torch::kFloat32);
  REQUIRE(a.sizes() == torch::IntArrayRef({2}));
  REQUIRE(a[0].item<float>() == 1.5f);
  REQUIRE(a[1].item<float>() == -2.0f);
  const Tensor& b = f.tensors.at("b");
  REQUIRE(b.scalar_type() == torch::kInt16);
  REQUIRE(b.sizes() == torch::IntArrayRef({1, 2}));
  REQUIRE(b[0][0].item<int64_t>() == 258);
  REQUIRE(b[0][1].item<int64_t>() == -1);
  const Tensor& c = f.tensors.at("c");
  REQUIRE(c.scalar_type() == torch::kBFloat16);
  REQUIRE(c.dim() == 0);
  REQUIRE(c.item<float>() == 1.0f);
  const Tensor& d = f.tensors.at("d");
  REQUIRE(d.scalar_type() == torch::kBool);
  REQUIRE(d[0].item<bool>());
  REQUIRE(!d[1].item<bool>());
  // Unpadded headers are valid too.
  write_bytes(dir / "unpadded.safetensors", st_file(header, data));
  REQUIRE(load_safetensors(dir / "unpadded.safetensors").tensors.at("a").equal(a));
}

TEST_CASE("safetensors: our writer's bytes decode by hand", "[safetensors]") {
  // Oracle: the 8-byte length and the JSON header decoded here with nlohmann, the data compared with
  // the raw memory of the tensors that went in (a transposed, non-contiguous one included).
  TempDir dir;
  torch::manual_seed(3);
  const Tensor x = torch::randn({3, 4}).t();  // non-contiguous
  const Tensor y = torch::arange(5, torch::kInt32);
  save_safetensors(dir / "w.safetensors", {{"x", x}, {"y", y}}, {{"note", "hello"}});
  REQUIRE(!fs::exists(dir / "w.safetensors.tmp"));
  const std::string bytes = read_bytes(dir / "w.safetensors");
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  REQUIRE(n % 8 == 0);  // padded to 8 bytes
  REQUIRE(8 + n <= bytes.size());
  const auto h = nlohmann::json::parse(bytes.substr(8, n));
  REQUIRE(h["__metadata__"] == nlohmann::json{{"note", "hello"}});
  REQUIRE(h["x"]["dtype"] == "F32");
  REQUIRE(h["x"]["shape"] == nlohmann::json{4, 3});
  REQUIRE(h["y"]["dtype"] == "I32");
  REQUIRE(h["y"]["shape"] == nlohmann::json{5});
  const std::string buffer = bytes.substr(8 + n);
  REQUIRE(buffer.size() == 4 * 12 + 4 * 5);
  for (const auto& [name, t] : std::map<std::string, Tensor>{{"x", x.contiguous()}, {"y", y}}) {
    const auto b = h[name]["data_offsets"][0].get<uint64_t>(), e = h[name]["data_offsets"][1].get<uint64_t>();
    REQUIRE(e - b == static_cast<uint64_t>(t.numel() * t.element_size()));
    REQUIRE(std::memcmp(buffer.data() + b, t.data_ptr(), e - b) == 0);
  }
}

TEST_CASE("safetensors: every dtype, 0-d and empty tensors round-trip exactly", "[safetensors]") {
  // Oracle: the tensors that went in (dtype, shape and every bit).
  TempDir dir;
  torch::manual_seed(5);
  std::map<std::string, Tensor> in;
  for (auto t : {torch::kFloat64, torch::kFloat32, torch::kFloat16, torch::kBFloat16})
    in[fmt::format("f.{}", c10::toString(t))] = torch::randn({2, 3, 2}).to(t);
  for (auto t : {torch::kInt64, torch::kInt32, torch::kInt16, torch::kInt8})
    in[fmt::format("i.{}", c10::toString(t))] = torch::randint(-100, 100, {7}).to(t);
  in["u8"] = torch::randint(0, 256, {4, 4}).to(torch::kUInt8);
  in["bool"] = torch::rand({9}) > 0.5;
  in["scalar"] = torch::tensor(3.25);
  in["scalar_i64"] = torch::tensor(int64_t{1} << 40);
  in["empty"] = torch::empty({0, 3});
  in["empty_bf16"] = torch::empty({2, 0}, torch::kBFloat16);
  in["big.i64"] = torch::tensor({std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()});
  in["f64.special"] =
      torch::tensor(std::vector<double>{std::numeric_limits<double>::infinity(), -0.0, 1e-310}, torch::kFloat64);
  save_safetensors(dir / "all.safetensors", in, {{"a", ""}, {"ü", "ωμέγα"}});
  auto out = load_safetensors(dir / "all.safetensors");
  REQUIRE(out.metadata == std::map<std::string, std::string>{{"a", ""}, {"ü", "ωμέγα"}});
  REQUIRE(out.tensors.size() == in.size());
  for (const auto& [name, t] : in) {
    INFO(name);
    const Tensor& o = out.tensors.at(name);
    REQUIRE(o.scalar_type() == t.scalar_type());
    REQUIRE(o.sizes() == t.sizes());
    REQUIRE(o.is_contiguous());
    REQUIRE(std::memcmp(o.data_ptr(), t.contiguous().data_ptr(), t.numel() * t.element_size()) == 0);
  }
  // An empty file (no tensors) is valid.
  save_safetensors(dir / "none.safetensors", {});
  REQUIRE(load_safetensors(dir / "none.safetensors").tensors.empty());
  // Dtypes without a safetensors equivalent and the reserved name are refused, naming the file and tensor.
  REQUIRE_THROWS_WITH(save_safetensors(dir / "c.safetensors", {{"z", torch::randn({2}, torch::kComplexFloat)}}),
                      Catch::Contains("c.safetensors") && Catch::Contains("'z'"));
  REQUIRE_THROWS_WITH(save_safetensors(dir / "m.safetensors", {{"__metadata__", torch::zeros({1})}}),
                      Catch::Contains("reserved"));
  REQUIRE(!fs::exists(dir / "c.safetensors.tmp"));
}

TEST_CASE("safetensors: corrupt files are refused with the file (and tensor) named", "[safetensors]") {
  // Oracle: hand-made corruptions of a valid two-tensor file; each must be a std::runtime_error naming
  // the file, and the tensor where one is at fault.
  TempDir dir;
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string b = R"("b":{"dtype":"U8","shape":[4],"data_offsets":[8,12]})";
  const std::string data(12, '\x01');
  struct Case {
    const char* what;
    std::string bytes;
    std::string expect;  // a substring of the message besides the file name
  };
  std::vector<Case> cases = {
      {"short", std::string("\x05\x00\x00", 3), "shorter than the 8-byte"},
      {"empty", "", "shorter than the 8-byte"},
      {"length_past_end", le64(1000) + "{}", "runs past the end"},
      {"length_huge", le64(~uint64_t{0}) + "{}", "runs past the end"},
      {"bad_json", st_file("{" + a + ",", data), "not valid JSON"},
      {"not_object", st_file("[1,2]", ""), "must be a JSON object"},
      {"bad_utf8", st_file("{\"\xff\xfe\":1}", ""), "not valid JSON"},
      {"unknown_dtype", st_file(R"({"a":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", "xx"), "'a': unknown dtype"},
      {"size_mismatch", st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data.substr(0, 8)),
       "'a': shape [3] of F32 needs 12 bytes"},
      {"shape_overflow",
       st_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", data.substr(0, 8)),
       "'a': shape"},
      {"negative_dim", st_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data.substr(0, 8)),
       "'a': shape"},
      {"offsets_out_of_range", st_file("{" + a + R"(,"b":{"dtype":"U8","shape":[4],"data_offsets":[8,16]}})", data),
       "'b': data_offsets [8, 16] run past"},
      {"offsets_reversed", st_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "xxxx"),
       "'a': data_offsets [4, 0]"},
      {"offsets_bad_type", st_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x"),
       "'a': data_offsets must be"},
      {"overlap", st_file("{" + a + R"(,"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}})", data.substr(0, 10)),
       "overlap"},
      {"gap", st_file("{" + a + R"(,"b":{"dtype":"U8","shape":[2],"data_offsets":[10,12]}})", data),
       "belong to no tensor"},
      {"trailing_bytes", st_file("{" + a + "," + b + "}", data + "zz"), "belong to no tensor"},
      {"metadata_not_string", st_file("{" + a + R"(,"__metadata__":{"k":1}})", data.substr(0, 8)),
       "__metadata__ key 'k'"},
      {"metadata_not_object", st_file("{" + a + R"(,"__metadata__":[]})", data.substr(0, 8)), "__metadata__"},
      {"missing_field", st_file(R"({"a":{"dtype":"F32","shape":[2]}})", data.substr(0, 8)),
       "'a': missing field 'data_offsets'"},
      {"extra_field", st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", data.substr(0, 8)),
       "'a': unexpected field 'x'"},
      {"entry_not_object", st_file(R"({"a":3})", ""), "'a': the entry must be an object"},
      {"duplicate", st_file("{" + a + "," + a + "}", data.substr(0, 8)), "names 'a' twice"},
      {"bad_bool", st_file(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x07"),
       "'a': a BOOL element"},
  };
  const std::string valid = st_file("{" + a + "," + b + "}", data);
  write_bytes(dir / "valid.safetensors", valid);
  REQUIRE(load_safetensors(dir / "valid.safetensors").tensors.size() == 2);
  for (size_t cut : {size_t{4}, size_t{20}, valid.size() - 1}) {
    cases.push_back({"truncated", valid.substr(0, cut), ""});
  }
  for (const auto& c : cases) {
    const fs::path p = dir / fmt::format("corrupt_{}.safetensors", c.what);
    write_bytes(p, c.bytes);
    INFO(c.what);
    try {
      load_safetensors(p);
      FAIL("no error for " << c.what);
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      INFO(msg);
      REQUIRE(msg.find(p.filename().string()) != std::string::npos);
      REQUIRE(msg.find(c.expect) != std::string::npos);
    }
  }
  REQUIRE_THROWS_WITH(load_safetensors(dir / "absent.safetensors"), Catch::Contains("absent.safetensors"));
  REQUIRE_THROWS_WITH(load_safetensors(dir.path), Catch::Contains("not a regular file"));
}

TEST_CASE("safetensors: random damage never crashes the reader", "[safetensors]") {
  // Oracle: the reader's contract — any byte string gives a file or a std::runtime_error, nothing else.
  TempDir dir;
  torch::manual_seed(9);
  save_safetensors(dir / "ok.safetensors",
                   {{"w", torch::randn({3, 2})}, {"m", torch::rand({4}) > 0.5}, {"i", torch::arange(3)}});
  const std::string valid = read_bytes(dir / "ok.safetensors");
  std::mt19937 rng(123);
  int refused = 0;
  for (int it = 0; it < 150; ++it) {
    std::string bytes = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    write_bytes(dir / "fuzz.safetensors", bytes);
    try {
      load_safetensors(dir / "fuzz.safetensors");
    } catch (const std::runtime_error& e) {
      ++refused;
      REQUIRE(std::string(e.what()).find("fuzz.safetensors") != std::string::npos);
    }
  }
  REQUIRE(refused > 0);
}

TEST_CASE("weights: the state dict carries the official names", "[safetensors]") {
  // Oracle: the names of megalodon/model/mega.py's state dict (spec §0–§4), written out here.
  torch::manual_seed(1);
  auto spec = lm_spec(/*share_emb=*/true);
  auto model = build_model(spec);
  auto state = model_state(*model);
  for (const char* name :
       {"embed.weight", "rope.freqs", "layers.0.mega.timenorm.weight", "layers.0.mega.timenorm.bias",
        "layers.0.mega.timenorm.prior_count", "layers.0.mega.timenorm.prior_mean", "layers.0.mega.timenorm.prior_logv",
        "layers.0.mega.cema.alpha", "layers.0.mega.cema.delta", "layers.0.mega.cema.theta", "layers.0.mega.cema.gamma",
        "layers.0.mega.cema.omega", "layers.0.mega.rmsnorm.weight", "layers.0.mega.wz.weight", "layers.0.mega.wz.bias",
        "layers.0.mega.wv.weight", "layers.0.mega.wv.bias", "layers.0.mega.wr.weight", "layers.0.mega.wr.bias",
        "layers.0.mega.wh1.weight", "layers.0.mega.wh1.bias", "layers.0.mega.wh2.weight", "layers.0.mega.gamma",
        "layers.0.mega.beta", "layers.1.nffn.norm.weight", "layers.1.nffn.norm.bias", "layers.1.nffn.fc1.weight",
        "layers.1.nffn.fc2.weight", "layers.1.nffn.fc3.weight", "layers.1.nffn.alpha", "output.final_norm.weight",
        "output.final_norm.bias", "output.final_norm.prior_count", "output.output.weight"}) {
    INFO(name);
    REQUIRE(state.count(name) == 1);
  }
  REQUIRE(state.count("layers.0.mega.wh2.bias") == 0);
  REQUIRE(state.size() == 3 + 2 * 28 + 5);  // embed, rope, head + 22 (mega) + 6 (nffn) per layer + final norm
  REQUIRE(state.at("layers.0.mega.timenorm.prior_count").scalar_type() == torch::kInt64);
  REQUIRE(state.at("layers.0.mega.cema.gamma").sizes() == torch::IntArrayRef({16, 4, 2}));
  // The tied head is the embedding (one tensor under two names, as PyTorch's state_dict has it).
  REQUIRE(state.at("output.output.weight").is_same(state.at("embed.weight")));
  // rope.freqs = 1 / 10000^(j/d_z), j = 0, 2, .. (d_z = 4 here).
  REQUIRE(state.at("rope.freqs").scalar_type() == torch::kFloat32);
  REQUIRE(state.at("rope.freqs")[0].item<float>() == 1.0f);
  REQUIRE(state.at("rope.freqs")[1].item<float>() == 1.0f / 100.0f);
  // After a cast to fp64, prior_count is still written as the official int64.
  model->to(torch::kFloat64);
  REQUIRE(model_state(*model).at("output.final_norm.prior_count").scalar_type() == torch::kInt64);
}

TEST_CASE("weights: export then import into a differently seeded model gives bit-identical logits",
          "[safetensors]") {
  // Oracle: the exporting model's own logits in this process.
  TempDir dir;
  struct Variant {
    const char* name;
    ModelSpec spec;
    Tensor input;
    Tensor mask;
  };
  torch::manual_seed(11);
  auto pad = torch::zeros({2, 12}, torch::kBool);
  pad[1].narrow(0, 9, 3).fill_(true);
  std::vector<Variant> variants = {
      {"lm", lm_spec(false), torch::randint(0, 32, {2, 16}), {}},
      {"lm_tied", lm_spec(true), torch::randint(0, 32, {2, 16}), {}},
      {"clf_tokens", classifier_spec(true), torch::randint(0, 32, {2, 12}), pad},
      {"clf_real", classifier_spec(false), torch::randn({2, 12, 3}), {}},
  };
  for (auto& v : variants) {
    INFO(v.name);
    torch::manual_seed(100);
    auto src = build_model(v.spec);
    perturb(*src);
    const Tensor want = run(*src, v.spec, v.input, v.mask);
    export_weights(*src, v.spec, dir / v.name);
    REQUIRE(fs::exists(dir / v.name / "model.safetensors"));
    // config.json describes the same model.
    const ModelSpec back = read_model_spec(dir / v.name / "config.json");
    REQUIRE(to_json(back) == to_json(v.spec));

    torch::manual_seed(200);
    auto dst = build_model(back);
    REQUIRE(!run(*dst, back, v.input, v.mask).equal(want));
    import_weights(*dst, dir / v.name / "model.safetensors");
    REQUIRE(run(*dst, back, v.input, v.mask).equal(want));
    // Importing into a float64 model converts the dtype (and agrees to float32 accuracy).
    torch::manual_seed(300);
    auto dst64 = build_model(back);
    dst64->to(torch::kFloat64);
    import_weights(*dst64, dir / v.name / "model.safetensors");
    const Tensor in64 = v.input.is_floating_point() ? v.input.to(torch::kFloat64) : v.input;
    REQUIRE(mgl::test::rel_err(run(*dst64, back, in64, v.mask), want) < 1e-5);
  }
  // The spec must describe the module.
  torch::manual_seed(1);
  auto lm = build_model(lm_spec());
  auto other = lm_spec();
  other.model.ffn_hidden_dim = 32;
  REQUIRE_THROWS_WITH(export_weights(*lm, other, dir / "bad"), Catch::Contains("ffn_hidden_dim"));
  REQUIRE_THROWS_WITH(export_weights(*lm, classifier_spec(true), dir / "bad"), Catch::Contains("not a MegalodonClassifier"));
}

TEST_CASE("weights: missing, unexpected and mis-shaped tensors are all refused by name", "[safetensors]") {
  // Oracle: the names edited out of / into a valid exported state dict.
  TempDir dir;
  torch::manual_seed(13);
  auto spec = lm_spec(false);
  auto src = build_model(spec);
  auto state = model_state(*src);
  state.erase("layers.1.mega.wz.bias");
  state.erase("output.final_norm.prior_mean");
  state["layers.0.mega.extra"] = torch::zeros({3});
  state["layers.0.nffn.fc1.weight"] = torch::zeros({24, 15});
  state["layers.0.mega.cema.omega"] = torch::zeros({16, 1}, torch::kInt32);
  save_safetensors(dir / "bad.safetensors", state);
  torch::manual_seed(14);
  auto dst = build_model(spec);
  const Tensor before = dst->named_parameters()["embed.weight"].clone();
  try {
    import_weights(*dst, dir / "bad.safetensors");
    FAIL("the import was accepted");
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    INFO(msg);
    REQUIRE(msg.find("bad.safetensors") != std::string::npos);
    REQUIRE(msg.find("5 problems") != std::string::npos);
    REQUIRE(msg.find("missing tensor 'layers.1.mega.wz.bias'") != std::string::npos);
    REQUIRE(msg.find("missing tensor 'output.final_norm.prior_mean'") != std::string::npos);
    REQUIRE(msg.find("unexpected tensor 'layers.0.mega.extra'") != std::string::npos);
    REQUIRE(msg.find("'layers.0.nffn.fc1.weight': shape [24, 15] in the file, the model expects [24, 16]") !=
            std::string::npos);
    REQUIRE(msg.find("'layers.0.mega.cema.omega': dtype Int") != std::string::npos);
  }
  // Nothing was copied.
  REQUIRE(dst->named_parameters()["embed.weight"].equal(before));

  // The synthesised official entries: optional, but checked when present.
  auto good = model_state(*src);
  good.erase("rope.freqs");
  save_safetensors(dir / "norope.safetensors", good);
  REQUIRE_NOTHROW(import_weights(*dst, dir / "norope.safetensors"));
  good["rope.freqs"] = torch::ones({2});
  save_safetensors(dir / "badrope.safetensors", good);
  REQUIRE_THROWS_WITH(import_weights(*dst, dir / "badrope.safetensors"), Catch::Contains("'rope.freqs'"));
  // A head tensor in an untied model's file is just unexpected; in a tied one it must equal embed.weight.
  torch::manual_seed(15);
  auto tied_spec = lm_spec(true);
  auto tied = build_model(tied_spec);
  auto tstate = model_state(*tied);
  tstate.erase("output.output.weight");
  save_safetensors(dir / "dedup.safetensors", tstate);
  REQUIRE_NOTHROW(import_weights(*build_model(tied_spec), dir / "dedup.safetensors"));
  tstate["output.output.weight"] = torch::zeros_like(tstate.at("embed.weight"));
  save_safetensors(dir / "untied.safetensors", tstate);
  REQUIRE_THROWS_WITH(import_weights(*build_model(tied_spec), dir / "untied.safetensors"),
                      Catch::Contains("'output.output.weight' differs from 'embed.weight'"));
}

TEST_CASE("weights: config.json is validated strictly", "[safetensors]") {
  // Oracle: hand-edited specs; each error names the offending key.
  auto j = to_json(classifier_spec(true));
  REQUIRE(j["format"] == kModelSpecFormat);
  REQUIRE(j["classifier"]["num_classes"] == 3);
  REQUIRE(to_json(model_spec_from_json(j, "c.json")) == j);
  REQUIRE(!to_json(lm_spec()).contains("classifier"));
  auto bad = j;
  bad["format"] = "other/1";
  REQUIRE_THROWS_WITH(model_spec_from_json(bad, "c.json"), Catch::Contains("c.json") && Catch::Contains("format"));
  bad = j;
  bad["architecture"] = "gpt";
  REQUIRE_THROWS_WITH(model_spec_from_json(bad, "c.json"), Catch::Contains("architecture"));
  bad = j;
  bad["classifier"]["heads"] = 2;
  REQUIRE_THROWS_WITH(model_spec_from_json(bad, "c.json"), Catch::Contains("classifier.heads"));
  bad = j;
  bad["model"]["model_dimm"] = 2;
  REQUIRE_THROWS_WITH(model_spec_from_json(bad, "c.json"), Catch::Contains("model_dimm"));
  bad = j;
  bad["extra"] = 1;
  REQUIRE_THROWS_WITH(model_spec_from_json(bad, "c.json"), Catch::Contains("extra"));
  auto lm = to_json(lm_spec());
  lm["classifier"] = j["classifier"];
  REQUIRE_THROWS_WITH(model_spec_from_json(lm, "c.json"), Catch::Contains("classifier"));
}

TEST_CASE("forward: the subcommand's logits and layers equal the in-process model", "[safetensors][cli]") {
  // Oracle: the same weights run in this process. (Six runs of the executable: its start-up, loading
  // LibTorch, is most of this test's time.)
  TempDir dir;
  std::string log;
  REQUIRE(run_cli("forward --help", dir, &log) == 0);
  REQUIRE(log.find("--layers") != std::string::npos);

  // ---- LM, safetensors input (int32 ids), with --layers ----
  torch::manual_seed(21);
  auto spec = lm_spec(false);
  auto lm = build_model(spec);
  perturb(*lm);
  export_weights(*lm, spec, dir / "lm");
  const Tensor ids = torch::randint(0, 32, {2, 16});
  save_safetensors(dir / "in.safetensors", {{"input_ids", ids.to(torch::kInt32)}});
  const std::string common = fmt::format("--config '{}' --weights '{}'", (dir / "lm" / "config.json").string(),
                                         (dir / "lm" / "model.safetensors").string());
  REQUIRE(run_cli(fmt::format("forward {} --input '{}' --output '{}' --layers", common,
                              (dir / "in.safetensors").string(), (dir / "out.safetensors").string()),
                  dir, &log) == 0);
  INFO(log);
  std::vector<Tensor> layers;
  Tensor want;
  {
    torch::NoGradGuard g;
    lm->eval();
    want = dynamic_cast<CausalLMImpl&>(*lm).forward(ids, nullptr, &layers);
  }
  auto out = load_safetensors(dir / "out.safetensors");
  REQUIRE(out.tensors.size() == 1 + 2);
  REQUIRE(out.tensors.at("logits").equal(want));
  REQUIRE(out.tensors.at("layers.0").equal(layers[0]));
  REQUIRE(out.tensors.at("layers.1").equal(layers[1]));
  REQUIRE(out.metadata.at("input_shape") == "[2,16]");
  REQUIRE(out.metadata.at("dtype") == "float32");
  REQUIRE(nlohmann::json::parse(out.metadata.at("model")) == to_json(spec));

  // ---- the same ids as a text file, in float64 ----
  {
    std::ofstream txt(dir / "in.txt");
    for (int64_t b = 0; b < 2; ++b) {
      for (int64_t t = 0; t < 16; ++t) txt << ids[b][t].item<int64_t>() << (t + 1 < 16 ? " " : "\n");
      txt << "\n";  // blank lines are skipped
    }
  }
  REQUIRE(run_cli(fmt::format("forward {} --input '{}' --output '{}' --dtype float64", common,
                              (dir / "in.txt").string(), (dir / "out64.safetensors").string()),
                  dir, &log) == 0);
  auto out64 = load_safetensors(dir / "out64.safetensors");
  REQUIRE(out64.tensors.size() == 1);
  REQUIRE(out64.tensors.at("logits").scalar_type() == torch::kFloat64);
  REQUIRE(mgl::test::rel_err(out64.tensors.at("logits"), want) < 1e-5);

  // ---- errors: ragged text names the line; out-of-vocabulary ids; a mask for the LM ----
  {
    std::ofstream txt(dir / "ragged.txt");
    txt << "1 2 3\n4 5 6\n7 8\n";
  }
  REQUIRE(run_cli(fmt::format("forward {} --input '{}' --output '{}'", common, (dir / "ragged.txt").string(),
                              (dir / "x.safetensors").string()),
                  dir, &log) == 1);
  REQUIRE(log.find("ragged.txt:3") != std::string::npos);
  save_safetensors(dir / "oov.safetensors", {{"input_ids", torch::full({1, 4}, 32, torch::kInt64)}});
  REQUIRE(run_cli(fmt::format("forward {} --input '{}' --output '{}'", common, (dir / "oov.safetensors").string(),
                              (dir / "x.safetensors").string()),
                  dir, &log) == 1);
  REQUIRE(log.find("vocab_size") != std::string::npos);
  REQUIRE(!fs::exists(dir / "x.safetensors"));

  // ---- classifier on real-valued inputs with a u8 padding mask, --layers ----
  torch::manual_seed(22);
  auto cspec = classifier_spec(false);
  auto clf = build_model(cspec);
  perturb(*clf);
  export_weights(*clf, cspec, dir / "clf");
  const Tensor x = torch::randn({3, 10, 3});
  auto mask = torch::zeros({3, 10}, torch::kUInt8);
  mask[2].narrow(0, 6, 4).fill_(1);
  save_safetensors(dir / "cin.safetensors", {{"inputs", x}, {"padding_mask", mask}});
  REQUIRE(run_cli(fmt::format("forward --config '{}' --weights '{}' --input '{}' --output '{}' --layers",
                              (dir / "clf" / "config.json").string(), (dir / "clf" / "model.safetensors").string(),
                              (dir / "cin.safetensors").string(), (dir / "cout.safetensors").string()),
                  dir, &log) == 0);
  std::vector<Tensor> clayers;
  Tensor cwant;
  {
    torch::NoGradGuard g;
    clf->eval();
    cwant = dynamic_cast<MegalodonClassifierImpl&>(*clf).forward(x, mask.to(torch::kBool), &clayers);
  }
  auto cres = load_safetensors(dir / "cout.safetensors");
  REQUIRE(cres.tensors.at("logits").sizes() == torch::IntArrayRef({3, 3}));
  REQUIRE(cres.tensors.at("logits").equal(cwant));
  REQUIRE(clayers.size() == 2);
  REQUIRE(cres.tensors.size() == 1 + clayers.size());
  for (size_t i = 0; i < clayers.size(); ++i) REQUIRE(cres.tensors.at(fmt::format("layers.{}", i)).equal(clayers[i]));
  REQUIRE(cres.metadata.at("input_shape") == "[3,10,3]");
  REQUIRE(cres.metadata.at("padding_mask") == "true");
}
