// The SentencePiece module: the only code that touches libsentencepiece, built as its own shared
// object (libmegalodon_sentencepiece.so) and loaded with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) by
// sentencepiece.cpp.
//
// Why not link it: Debian's libsentencepiece 0.1.97 carries its own protobuf-lite 3.14 and exports
// every protobuf symbol, while LibTorch loads the system libprotobuf 3.21. In one symbol scope one
// copy interposes on the other and the process dies in a static initialiser (segfault) or in
// protobuf's version check. Loaded locally with deep binding, the module and libsentencepiece
// resolve protobuf to their own copy and LibTorch never sees it.
//
// The interface is plain functions over std types (one libstdc++ is shared by both sides); no
// exception crosses it: failures come back as false + a message.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#define MGL_SPM_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

// Feeds the trainer the lines of the input files in order (the library's own --input takes a
// comma-joined list, which breaks on names with commas; this also names a file it cannot read).
class FileLines final : public sentencepiece::SentenceIterator {
 public:
  explicit FileLines(const std::vector<std::string>& files) : files_(files) { advance(); }
  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return status_; }

 private:
  void advance() {
    for (;;) {
      if (in_.is_open() && std::getline(in_, line_)) {
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        return;
      }
      if (in_.is_open()) {
        if (in_.bad())
          return fail(sentencepiece::util::StatusCode::kDataLoss, files_[next_ - 1] + ": read error");
        in_.close();
      }
      if (next_ >= files_.size()) {
        done_ = true;
        return;
      }
      const auto& f = files_[next_++];
      in_.clear();
      in_.open(f, std::ios::binary);
      if (!in_) return fail(sentencepiece::util::StatusCode::kNotFound, f + ": cannot open");
    }
  }
  void fail(sentencepiece::util::StatusCode code, const std::string& what) {
    status_ = sentencepiece::util::Status(code, what);
    done_ = true;
  }
  const std::vector<std::string>& files_;
  size_t next_ = 0;
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

}  // namespace

// A loaded model, or nullptr with *error set.
MGL_SPM_EXPORT void* mgl_spm_load(const std::string* file, std::string* error) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = sp->Load(*file);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return sp.release();
}

MGL_SPM_EXPORT void mgl_spm_free(void* model) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(model);
}

// Pieces, eos id and the serialized model (for the fingerprint).
MGL_SPM_EXPORT void mgl_spm_info(const void* model, int* pieces, int* eos, std::string* serialized) {
  const auto* sp = static_cast<const sentencepiece::SentencePieceProcessor*>(model);
  *pieces = sp->GetPieceSize();
  *eos = sp->eos_id();
  *serialized = sp->serialized_model_proto();
}

MGL_SPM_EXPORT bool mgl_spm_encode(const void* model, const char* text, size_t size, std::vector<int>* ids,
                                   std::string* error) {
  const auto status = static_cast<const sentencepiece::SentencePieceProcessor*>(model)->Encode(
      std::string_view(text, size), ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

MGL_SPM_EXPORT bool mgl_spm_decode(const void* model, const std::vector<int>* ids, std::string* text,
                                   std::string* error) {
  const auto status = static_cast<const sentencepiece::SentencePieceProcessor*>(model)->Decode(*ids, text);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

// Trains on the lines of `inputs` with the trainer flags `args` (name -> value). The trainer has
// no seed flag: its sampling and shuffling draw from the library's global generator, which
// SetRandomGeneratorSeed fixes (what spm_train --random_seed does).
MGL_SPM_EXPORT bool mgl_spm_train(const std::unordered_map<std::string, std::string>* args,
                                  const std::vector<std::string>* inputs, unsigned int seed,
                                  std::string* error) {
  sentencepiece::SetRandomGeneratorSeed(seed);
  FileLines lines(*inputs);
  const auto status = sentencepiece::SentencePieceTrainer::Train(*args, &lines);
  if (!lines.status().ok()) {
    *error = lines.status().ToString();
    return false;
  }
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}
