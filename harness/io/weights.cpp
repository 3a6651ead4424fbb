#include "harness/io/weights.h"

#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "core/models/factory.h"
#include "harness/config/config.h"
#include "harness/config/model.h"
#include "harness/io/safetensors.h"
#include "harness/util/files.h"

namespace mgl::harness {

namespace fs = std::filesystem;
using torch::Tensor;

namespace {

constexpr const char* kLM = "megalodon_lm";
constexpr const char* kClassifier = "megalodon_classifier";

std::string weights_shape_str(torch::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The module's own parameters and buffers, by their (official) LibTorch names, sharing storage.
std::map<std::string, Tensor> module_tensors(const torch::nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& p : m.named_parameters(true)) out.emplace(p.key(), p.value());
  for (const auto& b : m.named_buffers(true)) out.emplace(b.key(), b.value());
  return out;
}

const MegalodonConfig* lm_config(const torch::nn::Module& m) {
  if (const auto* lm = dynamic_cast<const MegalodonLMImpl*>(&m)) return &lm->cfg;
  return nullptr;
}

nlohmann::json classifier_json(const ClassifierOptions& o) {
  return {{"num_classes", o.num_classes},
          {"input_dim", o.input_dim},
          {"head_dim", o.head_dim},
          {"head_dropout", o.head_dropout},
          {"num_documents", o.num_documents},
          {"max_positions", o.max_positions},
          {"head", to_string(o.head)}};
}

ClassifierOptions classifier_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw ConfigError(where, "classifier", "must be a JSON object");
  ClassifierOptions o;
  for (const auto& [k, v] : j.items()) {
    const std::string key = "classifier." + k;
    if (k == "num_classes" || k == "input_dim" || k == "head_dim" || k == "num_documents" || k == "max_positions") {
      if (!v.is_number_integer()) throw ConfigError(where, key, fmt::format("expected an integer, got {}", v.dump()));
      (k == "num_classes"   ? o.num_classes
       : k == "input_dim"   ? o.input_dim
       : k == "head_dim"    ? o.head_dim
       : k == "max_positions" ? o.max_positions
                            : o.num_documents) = v.get<int64_t>();
    } else if (k == "head") {
      if (!v.is_string()) throw ConfigError(where, key, fmt::format("expected \"mlp\" or \"image\", got {}", v.dump()));
      try {
        o.head = parse_classifier_head(key, v.get<std::string>());
      } catch (ConfigError& e) {
        e.locate(where);
        throw;
      }
    } else if (k == "head_dropout") {
      if (!v.is_number()) throw ConfigError(where, key, fmt::format("expected a number, got {}", v.dump()));
      o.head_dropout = v.get<double>();
    } else {
      throw ConfigError(where, key, "unknown key (expected num_classes, input_dim, head_dim, head_dropout, num_documents, max_positions, head)");
    }
  }
  if (o.num_classes < 2) throw ConfigError(where, "classifier.num_classes", "must be >= 2");
  if (o.input_dim < 1) throw ConfigError(where, "classifier.input_dim", "must be >= 1");
  if (o.num_documents != 1 && o.num_documents != 2)
    throw ConfigError(where, "classifier.num_documents", "must be 1 or 2");
  if (o.head_dropout < 0 || o.head_dropout >= 1) throw ConfigError(where, "classifier.head_dropout", "must be in [0, 1)");
  if (o.max_positions < 0) throw ConfigError(where, "classifier.max_positions", "must be >= 0");
  return o;
}

}  // namespace

// The official RotaryEmbedding buffer (`freqs`, §3.3): base ** (j / d_z) in double for j = 0, 2, ..,
// rounded to fp32, then 1/x in fp32 — the same operations in the same precisions, so bit-equal.
Tensor rope_freqs(const MegalodonConfig& c) {
  const int64_t d = c.z_head_dim();
  Tensor t = torch::empty({d / 2}, torch::kFloat32);
  float* p = t.data_ptr<float>();
  for (int64_t j = 0; j < d; j += 2)
    p[j / 2] = 1.0f / static_cast<float>(std::pow(c.rope_base, static_cast<double>(j) / static_cast<double>(d)));
  return t;
}

nlohmann::json to_json(const ModelSpec& spec) {
  nlohmann::json j = {{"format", kModelSpecFormat}, {"architecture", spec.architecture}, {"model", to_json(spec.model)}};
  if (spec.architecture == kClassifier) j["classifier"] = classifier_json(spec.classifier);
  return j;
}

ModelSpec model_spec_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw ConfigError(where, "", "the model spec must be a JSON object");
  for (const auto& [k, v] : j.items()) {
    (void)v;
    if (k != "format" && k != "architecture" && k != "model" && k != "classifier")
      throw ConfigError(where, k, "unknown key (expected format, architecture, model, classifier)");
  }
  if (!j.contains("format") || !j["format"].is_string() || j["format"].get<std::string>() != kModelSpecFormat)
    throw ConfigError(where, "format", fmt::format("expected \"{}\", got {}", kModelSpecFormat,
                                                   j.contains("format") ? j["format"].dump() : "nothing"));
  ModelSpec spec;
  if (!j.contains("architecture") || !j["architecture"].is_string())
    throw ConfigError(where, "architecture", fmt::format("expected \"{}\" or \"{}\"", kLM, kClassifier));
  spec.architecture = j["architecture"].get<std::string>();
  if (spec.architecture != kLM && spec.architecture != kClassifier)
    throw ConfigError(where, "architecture",
                      fmt::format("expected \"{}\" or \"{}\", got \"{}\"", kLM, kClassifier, spec.architecture));
  if (!j.contains("model")) throw ConfigError(where, "model", "missing (the model configuration)");
  spec.model = megalodon_config_from_json(j["model"], where);
  if (spec.architecture == kClassifier) {
    if (!j.contains("classifier")) throw ConfigError(where, "classifier", "missing (a classifier needs its head options)");
    spec.classifier = classifier_from_json(j["classifier"], where);
  } else if (j.contains("classifier")) {
    throw ConfigError(where, "classifier", fmt::format("only a \"{}\" has classifier options", kClassifier));
  }
  return spec;
}

ModelSpec read_model_spec(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string(), "", "cannot open the model config");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(file.string(), "", std::string("not valid JSON: ") + e.what());
  }
  return model_spec_from_json(j, file.string());
}

std::shared_ptr<torch::nn::Module> build_model(const ModelSpec& spec) {
  if (spec.architecture == kLM) return make_megalodon_lm(spec.model);
  if (spec.architecture == kClassifier) return std::make_shared<MegalodonClassifierImpl>(spec.model, spec.classifier);
  throw std::invalid_argument(fmt::format("unknown architecture \"{}\" (expected \"{}\" or \"{}\")", spec.architecture,
                                          kLM, kClassifier));
}

std::map<std::string, Tensor> model_state(const torch::nn::Module& m) {
  auto out = module_tensors(m);
  // Module::to(dtype) converts integer buffers too; the official prior_count is int64 (§2.2).
  for (auto& [name, t] : out)
    if (ends_with(name, "prior_count") && t.scalar_type() != torch::kInt64) t = t.to(torch::kInt64);
  if (const MegalodonConfig* c = lm_config(m)) {
    out.emplace("rope.freqs", rope_freqs(*c));
    // With share_emb, PyTorch's state_dict lists the one Parameter under both names (§4.3).
    if (c->share_emb) out.emplace("output.output.weight", out.at("embed.weight"));
  }
  return out;
}

void export_weights(const torch::nn::Module& m, const ModelSpec& spec, const fs::path& dir) {
  // The config written must describe the weights written: compare what each would build.
  MegalodonConfig expected = spec.model;
  const MegalodonConfig* actual = nullptr;
  if (spec.architecture == kLM) {
    actual = lm_config(m);
    if (!actual) throw std::invalid_argument("export_weights: the spec says megalodon_lm but the module is not a MegalodonLM");
  } else if (spec.architecture == kClassifier) {
    const auto* clf = dynamic_cast<const MegalodonClassifierImpl*>(&m);
    if (!clf)
      throw std::invalid_argument(
          "export_weights: the spec says megalodon_classifier but the module is not a MegalodonClassifier");
    expected.causal = false;  // the classifier forces the encoder form
    actual = &clf->cfg;
    if (classifier_json(clf->options) != classifier_json(spec.classifier))
      throw std::invalid_argument(fmt::format("export_weights: the classifier options {} differ from the spec's {}",
                                              classifier_json(clf->options).dump(),
                                              classifier_json(spec.classifier).dump()));
  } else {
    throw std::invalid_argument(fmt::format("export_weights: unknown architecture \"{}\"", spec.architecture));
  }
  const nlohmann::json have = to_json(*actual), want = to_json(expected);
  std::vector<std::string> diffs;
  for (const auto& [k, v] : have.items())
    if (!want.contains(k) || want[k] != v)
      diffs.push_back(fmt::format("{} (module {}, spec {})", k, v.dump(), want.contains(k) ? want[k].dump() : "-"));
  if (!diffs.empty())
    throw std::invalid_argument(fmt::format("export_weights: the module's configuration differs from the spec in {}",
                                            fmt::join(diffs, ", ")));

  fs::create_directories(dir);
  const std::string spec_text = to_json(spec).dump(2) + "\n";
  // "format": "pt" is the key Hugging Face loaders check; the spec rides along for self-description.
  save_safetensors(dir / "model.safetensors", model_state(m),
                   {{"format", "pt"}, {"megalodon_spec", to_json(spec).dump()}});
  write_file_atomic(dir / "config.json", spec_text);
}

void import_weights(torch::nn::Module& m, const fs::path& file) {
  const SafetensorsFile st = load_safetensors(file);
  const auto live = module_tensors(m);
  std::vector<std::string> problems;
  auto kind = [](torch::ScalarType t) {
    return t == torch::kBool ? 0 : c10::isFloatingType(t) ? 1 : c10::isComplexType(t) ? 2 : 3;
  };
  for (const auto& [name, t] : live) {
    auto it = st.tensors.find(name);
    if (it == st.tensors.end()) {
      problems.push_back(fmt::format("missing tensor '{}' (the model expects shape {}, {})", name,
                                     weights_shape_str(t.sizes()), c10::toString(t.scalar_type())));
      continue;
    }
    const Tensor& f = it->second;
    if (f.sizes() != t.sizes()) {
      problems.push_back(fmt::format("tensor '{}': shape {} in the file, the model expects {}", name,
                                     weights_shape_str(f.sizes()), weights_shape_str(t.sizes())));
    } else if (kind(f.scalar_type()) != kind(t.scalar_type()) &&
               !(ends_with(name, "prior_count") && c10::isFloatingType(t.scalar_type()) &&
                 c10::isIntegralType(f.scalar_type(), false))) {
      // (A prior_count buffer is floating after Module::to(dtype); the file holds the int64 count.)
      problems.push_back(fmt::format("tensor '{}': dtype {} in the file where the model holds {}", name,
                                     c10::toString(f.scalar_type()), c10::toString(t.scalar_type())));
    }
  }
  const MegalodonConfig* c = lm_config(m);
  for (const auto& [name, f] : st.tensors) {
    if (live.count(name)) continue;
    if (c && name == "rope.freqs") {
      const Tensor expect = rope_freqs(*c);
      if (f.sizes() != expect.sizes() || !f.is_floating_point()) {
        problems.push_back(fmt::format("tensor 'rope.freqs': {} {} in the file, expected {} floats (d_z/2)",
                                       c10::toString(f.scalar_type()), weights_shape_str(f.sizes()), weights_shape_str(expect.sizes())));
      } else {
        const double diff = (f.to(torch::kFloat64) - expect.to(torch::kFloat64)).abs().max().item<double>();
        if (!(diff <= 1e-6 * expect.abs().max().item<double>()))
          problems.push_back(fmt::format("tensor 'rope.freqs' does not match rope_base = {} and d_z = {} of the model "
                                         "(max difference {:g}); RoPE is computed from the config",
                                         c->rope_base, c->z_head_dim(), diff));
      }
      continue;
    }
    if (c && c->share_emb && name == "output.output.weight") {
      auto e = st.tensors.find("embed.weight");
      if (e != st.tensors.end() && !(f.sizes() == e->second.sizes() && f.scalar_type() == e->second.scalar_type() &&
                                     f.equal(e->second)))
        problems.push_back(
            "tensor 'output.output.weight' differs from 'embed.weight', but with share_emb the head is the "
            "embedding (§4.3)");
      continue;
    }
    problems.push_back(fmt::format("unexpected tensor '{}' ({} {}): the model has no such parameter or buffer", name,
                                   c10::toString(f.scalar_type()), weights_shape_str(f.sizes())));
  }
  if (!problems.empty())
    throw std::runtime_error(fmt::format("cannot import the weights of '{}': {} problem{}:\n  {}", file.string(),
                                         problems.size(), problems.size() == 1 ? "" : "s",
                                         fmt::join(problems, "\n  ")));
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : live) {
    Tensor target = t;  // shares the parameter's storage
    target.copy_(st.tensors.at(name));
  }
}

}  // namespace mgl::harness
