// `megalodon forward`: one forward pass of exported weights on given inputs, written as safetensors.
// This is how our numbers are compared with another implementation of the same weights (the
// official PyTorch code reads the same model.safetensors, see harness/io/weights.h for the names).
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "harness/config/model.h"
#include "harness/io/safetensors.h"
#include "harness/io/weights.h"

namespace mgl::cli {
namespace {

namespace fs = std::filesystem;
using torch::Tensor;

const char* kForwardHelp =
    "usage: megalodon forward --config config.json --weights model.safetensors --input FILE\n"
    "                         --output out.safetensors [--layers] [--dtype float32|float64] [--device cpu|cuda]\n"
    "Runs the model of config.json (as written by export, format megalodon-harness/1) with the weights of\n"
    "model.safetensors (official state-dict names; strict: every tensor must match) on the inputs, in\n"
    "evaluation mode, and writes the outputs as safetensors.\n\n"
    "  --config FILE     the model spec (config.json beside the exported weights)\n"
    "  --weights FILE    the safetensors weights\n"
    "  --input FILE      a .safetensors file holding\n"
    "                      input_ids     int64/int32 B×L token ids (LM, token classifier), or\n"
    "                      inputs        float B×L or B×L×F (classifier on real-valued inputs),\n"
    "                      padding_mask  optional bool/u8 B×L, true = padded (classifier only);\n"
    "                    or a text file with one sequence per line of whitespace-separated token ids,\n"
    "                    every line the same length (blank lines are skipped)\n"
    "  --output FILE     written atomically: `logits` (LM: B×L×V, classifier: B×classes), and with\n"
    "                    --layers the hidden state after each block as `layers.{i}` (B×L×D); the\n"
    "                    metadata records the input shape, model spec, dtype and device\n"
    "  --layers          also write every block's output\n"
    "  --dtype float32   the model's dtype: float32 (default) or float64\n"
    "  --device cpu      cpu (default) or cuda[:N]\n";

struct ForwardOptions {
  std::string config, weights, input, output, dtype = "float32", device = "cpu";
  bool layers = false;
};

struct Inputs {
  Tensor ids;   // B×L int64, or undefined
  Tensor real;  // B×L or B×L×F floating, or undefined
  Tensor mask;  // B×L bool, or undefined
  Tensor primary() const { return ids.defined() ? ids : real; }
};

// One sequence per line; every non-blank line must hold the same number of integer ids.
Inputs read_text_input(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("cannot open the input '{}'", file.string()));
  std::vector<int64_t> ids;
  int64_t rows = 0, width = -1, first_line = 0, line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    std::istringstream ss(line);
    int64_t n = 0;
    for (std::string tok; ss >> tok; ++n) {
      int64_t v = 0;
      const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (ec != std::errc() || end != tok.data() + tok.size())
        throw std::runtime_error(
            fmt::format("{}:{}: '{}' is not an integer token id", file.string(), line_no, tok));
      ids.push_back(v);
    }
    if (n == 0) continue;
    if (width < 0) {
      width = n, first_line = line_no;
    } else if (n != width) {
      throw std::runtime_error(fmt::format("{}:{}: {} token ids, but line {} has {} (every sequence must have the "
                                           "same length)",
                                           file.string(), line_no, n, first_line, width));
    }
    ++rows;
  }
  if (rows == 0) throw std::runtime_error(fmt::format("{}: no sequences (one line of token ids per sequence)",
                                                      file.string()));
  Inputs out;
  out.ids = torch::tensor(ids, torch::kInt64).view({rows, width});
  return out;
}

Inputs read_safetensors_input(const fs::path& file) {
  auto st = harness::load_safetensors(file);
  auto fail = [&](const std::string& what) {
    return std::runtime_error(fmt::format("input '{}': {}", file.string(), what));
  };
  for (const auto& [name, t] : st.tensors) {
    (void)t;
    if (name != "input_ids" && name != "inputs" && name != "padding_mask")
      throw fail(fmt::format("unexpected tensor '{}' (expected input_ids or inputs, and optionally padding_mask)",
                             name));
  }
  const bool has_ids = st.tensors.count("input_ids"), has_real = st.tensors.count("inputs");
  if (has_ids == has_real) throw fail("expected exactly one of the tensors 'input_ids' and 'inputs'");
  Inputs out;
  if (has_ids) {
    const Tensor& t = st.tensors.at("input_ids");
    if (t.scalar_type() != torch::kInt64 && t.scalar_type() != torch::kInt32)
      throw fail(fmt::format("tensor 'input_ids' must be int64 or int32, got {}", c10::toString(t.scalar_type())));
    if (t.dim() != 2) throw fail(fmt::format("tensor 'input_ids' must be B×L, got {} dimensions", t.dim()));
    out.ids = t.to(torch::kInt64);
  } else {
    const Tensor& t = st.tensors.at("inputs");
    if (!t.is_floating_point())
      throw fail(fmt::format("tensor 'inputs' must be floating point, got {}", c10::toString(t.scalar_type())));
    if (t.dim() != 2 && t.dim() != 3)
      throw fail(fmt::format("tensor 'inputs' must be B×L or B×L×F, got {} dimensions", t.dim()));
    out.real = t;
  }
  if (st.tensors.count("padding_mask")) {
    const Tensor& m = st.tensors.at("padding_mask");
    const Tensor x = out.primary();
    if (m.scalar_type() != torch::kBool && m.scalar_type() != torch::kUInt8)
      throw fail(fmt::format("tensor 'padding_mask' must be bool or u8, got {}", c10::toString(m.scalar_type())));
    if (m.dim() != 2 || m.size(0) != x.size(0) || m.size(1) != x.size(1))
      throw fail(fmt::format("tensor 'padding_mask' must be B×L = [{}, {}], got {}", x.size(0), x.size(1),
                             fmt::join(m.sizes(), "×")));
    if (m.scalar_type() == torch::kUInt8 && m.gt(1).any().item<bool>())
      throw fail("tensor 'padding_mask' (u8) must hold only 0 and 1");
    out.mask = m.to(torch::kBool);
  }
  return out;
}

void check_ids(const Tensor& ids, int64_t vocab, const std::string& input) {
  if (ids.numel() == 0) return;
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < 0 || hi >= vocab)
    throw std::runtime_error(fmt::format("input '{}': token ids must lie in [0, {}) (vocab_size), found {}", input,
                                         vocab, lo < 0 ? lo : hi));
}

int forward_main(const std::vector<std::string>& args) {
  ForwardOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], value;
    bool has_value = false;
    if (const auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = a.substr(eq + 1), a = a.substr(0, eq), has_value = true;
    }
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= args.size()) throw std::invalid_argument("option " + a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kForwardHelp, stdout);
      return 0;
    } else if (a == "--config") o.config = next();
    else if (a == "--weights") o.weights = next();
    else if (a == "--input") o.input = next();
    else if (a == "--output") o.output = next();
    else if (a == "--dtype") o.dtype = next();
    else if (a == "--device") o.device = next();
    else if (a == "--layers") o.layers = true;
    else throw std::invalid_argument("unknown option '" + a + "' (see megalodon forward --help)");
  }
  for (auto [name, v] : {std::pair{"--config", &o.config}, std::pair{"--weights", &o.weights},
                         std::pair{"--input", &o.input}, std::pair{"--output", &o.output}})
    if (v->empty()) throw std::invalid_argument(fmt::format("{} is required (see megalodon forward --help)", name));
  torch::ScalarType dtype;
  if (o.dtype == "float32") dtype = torch::kFloat32;
  else if (o.dtype == "float64") dtype = torch::kFloat64;
  else throw std::invalid_argument("--dtype must be float32 or float64, got '" + o.dtype + "'");
  if (o.device != "cpu" && o.device.rfind("cuda", 0) != 0)
    throw std::invalid_argument("--device must be cpu or cuda[:N], got '" + o.device + "'");
  const torch::Device device(o.device);
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("--device " + o.device + ": CUDA is not available in this build or on this machine");

  const harness::ModelSpec spec = harness::read_model_spec(o.config);
  const fs::path input(o.input);
  const Inputs in = input.extension() == ".safetensors" ? read_safetensors_input(input) : read_text_input(input);

  const bool is_lm = spec.architecture == "megalodon_lm";
  if (is_lm || spec.model.vocab_size > 0) {
    if (!in.ids.defined())
      throw std::runtime_error(fmt::format("input '{}': this model takes token ids ('input_ids'), not real-valued "
                                           "'inputs'", o.input));
    check_ids(in.ids, spec.model.vocab_size, o.input);
  } else {
    if (!in.real.defined())
      throw std::runtime_error(fmt::format("input '{}': this model (vocab_size <= 0) takes real-valued 'inputs' "
                                           "(B×L×{}), not token ids", o.input, spec.classifier.input_dim));
    const int64_t features = in.real.dim() == 3 ? in.real.size(2) : 1;
    if (features != spec.classifier.input_dim)
      throw std::runtime_error(fmt::format("input '{}': 'inputs' has {} features per position, the model's "
                                           "classifier.input_dim is {}", o.input, features,
                                           spec.classifier.input_dim));
  }
  // The LM never takes a mask: padding goes on the right, which a causal model cannot see (§2.3).
  if (is_lm && in.mask.defined())
    throw std::runtime_error(fmt::format("input '{}': a causal LM takes no padding_mask (pad on the right and "
                                         "ignore those positions)", o.input));

  auto model = harness::build_model(spec);
  model->to(dtype);
  harness::import_weights(*model, o.weights);
  model->to(device);
  model->eval();

  torch::NoGradGuard no_grad;
  std::vector<Tensor> layers;
  Tensor logits;
  if (is_lm) {
    auto& lm = dynamic_cast<CausalLMImpl&>(*model);
    logits = lm.forward(in.ids.to(device), nullptr, o.layers ? &layers : nullptr);
  } else {
    auto& clf = dynamic_cast<MegalodonClassifierImpl&>(*model);
    const Tensor x = in.ids.defined() ? in.ids.to(device) : in.real.to(device, dtype);
    logits = clf.forward(x, in.mask.defined() ? in.mask.to(device) : Tensor(), o.layers ? &layers : nullptr);
  }

  std::map<std::string, Tensor> out{{"logits", logits}};
  for (size_t i = 0; i < layers.size(); ++i) out.emplace(fmt::format("layers.{}", i), layers[i]);
  const Tensor x = in.primary();
  const std::map<std::string, std::string> metadata{
      {"format", "pt"},
      {"input", o.input},
      {"input_shape", nlohmann::json(x.sizes().vec()).dump()},
      {"padding_mask", in.mask.defined() ? "true" : "false"},
      {"weights", o.weights},
      {"model", harness::to_json(spec).dump()},
      {"dtype", o.dtype},
      {"device", o.device},
  };
  harness::save_safetensors(o.output, out, metadata);
  std::printf("wrote %s: logits [%s]%s\n", o.output.c_str(), fmt::format("{}", fmt::join(logits.sizes(), ", ")).c_str(),
              layers.empty() ? "" : fmt::format(", {} layer outputs", layers.size()).c_str());
  return 0;
}

}  // namespace

static const Command kForward{"forward", "run exported weights on given inputs; write logits (and layers) as safetensors",
                              forward_main};

}  // namespace mgl::cli
