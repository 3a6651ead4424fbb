// The SentencePiece tokenizer and trainer, through the SentencePiece module
// (libmegalodon_sentencepiece.so, sentencepiece_module.cpp) loaded on first use with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND): libsentencepiece's bundled protobuf must stay out of the
// symbol scope of LibTorch's protobuf (the reason is spelled out in sentencepiece_module.cpp).
#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include "datasets/text/internal.h"
#include "datasets/text/text.h"

#ifndef MEGALODON_SENTENCEPIECE_MODULE
#define MEGALODON_SENTENCEPIECE_MODULE ""
#endif

namespace mgl::datasets::text {

bool sentencepiece_available() {
#ifdef MEGALODON_HAS_SENTENCEPIECE
  return true;
#else
  return false;
#endif
}

namespace {

constexpr const char* kModuleName = "libmegalodon_sentencepiece.so";

struct Module {
  void* (*load)(const std::string*, std::string*) = nullptr;
  void (*free_model)(void*) = nullptr;
  void (*info)(const void*, int*, int*, std::string*) = nullptr;
  bool (*encode)(const void*, const char*, size_t, std::vector<int>*, std::string*) = nullptr;
  bool (*decode)(const void*, const std::vector<int>*, std::string*, std::string*) = nullptr;
  bool (*train)(const std::unordered_map<std::string, std::string>*, const std::vector<std::string>*,
                unsigned int, std::string*) = nullptr;
};

// Where the module may be: $MEGALODON_SENTENCEPIECE_MODULE, the path the build recorded, then
// beside the running executable.
std::vector<std::string> module_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("MEGALODON_SENTENCEPIECE_MODULE"); env && *env) out.emplace_back(env);
  if (*MEGALODON_SENTENCEPIECE_MODULE) out.emplace_back(MEGALODON_SENTENCEPIECE_MODULE);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) out.push_back((exe.parent_path() / kModuleName).string());
  return out;
}

Module open_module() {
  if (!sentencepiece_available())
    throw std::runtime_error(
        "this build has no SentencePiece (libsentencepiece-dev was not found when CMake configured it): "
        "use the byte or word tokenizer, or install libsentencepiece-dev and re-run CMake");
  std::string tried;
  for (const auto& path : module_candidates()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      tried += fmt::format("\n  {} (absent)", path);
      continue;
    }
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
      const char* err = ::dlerror();
      tried += fmt::format("\n  {} ({})", path, err ? err : "dlopen failed");
      continue;
    }
    Module m;
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (!fn) throw std::runtime_error(fmt::format("{}: the SentencePiece module lacks {}", path, name));
    };
    sym(m.load, "mgl_spm_load");
    sym(m.free_model, "mgl_spm_free");
    sym(m.info, "mgl_spm_info");
    sym(m.encode, "mgl_spm_encode");
    sym(m.decode, "mgl_spm_decode");
    sym(m.train, "mgl_spm_train");
    return m;  // never dlclose'd: models may live until exit
  }
  throw std::runtime_error(
      fmt::format("cannot load the SentencePiece module {} (build the megalodon_sentencepiece "
                  "target, or set MEGALODON_SENTENCEPIECE_MODULE); tried:{}",
                  kModuleName, tried));
}

const Module& module() {
  static std::mutex m;
  static std::unique_ptr<Module> loaded;
  std::lock_guard<std::mutex> lock(m);
  if (!loaded) loaded = std::make_unique<Module>(open_module());  // a failure is retried next time
  return *loaded;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& file) : file_(file.string()), spm_(module()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
      throw std::runtime_error(fmt::format("{}: SentencePiece model file not found", file_));
    std::string error;
    model_ = spm_.load(&file_, &error);
    if (!model_)
      throw std::runtime_error(fmt::format("{}: not a loadable SentencePiece model ({})", file_, error));
    std::string serialized;
    spm_.info(model_, &pieces_, &eos_, &serialized);
    if (pieces_ <= 0) throw std::runtime_error(fmt::format("{}: SentencePiece model has no pieces", file_));
    fingerprint_ = "sentencepiece-" + detail::fnv1a_hex(serialized);
  }
  ~SentencePieceTokenizer() override {
    if (model_) spm_.free_model(model_);
  }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::string kind() const override { return "sentencepiece"; }
  int64_t vocab_size() const override { return pieces_; }
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    std::string error;
    if (!spm_.encode(model_, text.data(), text.size(), &ids, &error))
      throw std::runtime_error(fmt::format("{}: SentencePiece encode failed ({})", file_, error));
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    check_decode_ids(ids, vocab_size(), "sentencepiece");
    const std::vector<int> in(ids.begin(), ids.end());
    std::string out, error;
    if (!spm_.decode(model_, &in, &out, &error))
      throw std::runtime_error(fmt::format("{}: SentencePiece decode failed ({})", file_, error));
    return out;
  }
  int32_t eos_id() const override { return eos_; }
  std::string fingerprint() const override { return fingerprint_; }
  std::string describe() const override {
    return fmt::format("sentencepiece: {} pieces, eos {}, from {}", pieces_, eos_, file_);
  }

 private:
  std::string file_;
  const Module& spm_;
  void* model_ = nullptr;
  int pieces_ = 0, eos_ = -1;
  std::string fingerprint_;
};

std::string inputs_named(const std::vector<std::filesystem::path>& inputs) {
  std::string s;
  for (size_t i = 0; i < inputs.size() && i < 3; ++i) s += (i ? ", " : "") + inputs[i].string();
  if (inputs.size() > 3) s += fmt::format(" and {} more", inputs.size() - 3);
  return s;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& model_file) {
  return std::make_unique<SentencePieceTokenizer>(model_file);
}

std::filesystem::path train_sentencepiece(const std::vector<std::filesystem::path>& inputs,
                                          const std::filesystem::path& model_prefix,
                                          const SentencePieceOptions& o) {
  if (inputs.empty()) throw std::invalid_argument("sentencepiece: no input files");
  for (const auto& f : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(f, ec))
      throw std::runtime_error(fmt::format("{}: SentencePiece training input not found", f.string()));
  }
  if (o.vocab_size < 1 || o.vocab_size > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument(fmt::format("sentencepiece: vocab_size {} out of range", o.vocab_size));
  if (o.threads < 1 || o.threads > 128)
    throw std::invalid_argument(fmt::format("sentencepiece: threads {} outside [1, 128]", o.threads));
  if (!(o.character_coverage > 0.0 && o.character_coverage <= 1.0))
    throw std::invalid_argument(
        fmt::format("sentencepiece: character_coverage {} outside (0, 1]", o.character_coverage));
  if (o.input_sentence_size < 0)
    throw std::invalid_argument(
        fmt::format("sentencepiece: input_sentence_size {} < 0", o.input_sentence_size));
  if (!model_prefix.parent_path().empty()) std::filesystem::create_directories(model_prefix.parent_path());

  const std::unordered_map<std::string, std::string> args{
      {"model_prefix", model_prefix.string()},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"model_type", o.model_type},
      {"character_coverage", fmt::format("{}", o.character_coverage)},
      {"input_sentence_size", std::to_string(o.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(o.threads)},
      {"byte_fallback", o.byte_fallback ? "true" : "false"},
      {"hard_vocab_limit", o.hard_vocab_limit ? "true" : "false"},
      // unk 0, bos 1, eos 2, no pad: the library's defaults (eos is the tokenizer's eos_id()).
      {"minloglevel", o.verbose ? "0" : "1"},  // 1: warnings and errors only
  };
  std::vector<std::string> files;
  for (const auto& f : inputs) files.push_back(f.string());
  // The seed lives in the library's global generator: one training at a time per process.
  static std::mutex train_mutex;
  std::lock_guard<std::mutex> lock(train_mutex);
  auto seed = static_cast<unsigned int>(o.seed);
  if (seed == std::numeric_limits<unsigned int>::max()) seed = 0;  // reserved by the library (random_device)
  std::string error;
  if (!module().train(&args, &files, seed, &error))
    throw std::runtime_error(
        fmt::format("SentencePiece training on {} failed: {}", inputs_named(inputs), error));
  auto model = model_prefix;
  model += ".model";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model, ec))
    throw std::runtime_error(
        fmt::format("{}: SentencePiece training reported success but wrote no model", model.string()));
  return model;
}

}  // namespace mgl::datasets::text
