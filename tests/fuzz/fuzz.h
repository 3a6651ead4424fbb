// Fuzz drivers for every reader of untrusted bytes (issue 23). Each driver takes one input (a byte
// string), puts it where its reader looks (a file in a scratch folder, usually) and calls the reader.
// The reader may refuse the input (any std::exception: the expected outcome for garbage, and then its
// message must name the file it refused) or accept it (then the driver checks what came back against
// the format's invariants). A crash, a sanitizer report, a hang, a refusal that names no file or an
// accepted input that breaks an invariant ("silently accepted garbage") is a finding: the engine
// (fuzz_main.cpp) saves the input and stops.
//
// Drivers register themselves with MGL_FUZZ_READER(name, doc, run, seeds): `seeds(dir)` writes the
// reader's seed corpus (real-format files made by the project's own writers, as the tests make them);
// tests/fuzz/corpus/<name>/ holds the committed copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mgl::fuzz {

using Bytes = std::vector<uint8_t>;

struct Reader {
  const char* name;
  const char* doc;
  void (*run)(const uint8_t* data, size_t size);
  void (*seeds)(const std::filesystem::path& dir);
  // Extra strings the mutator splices in (field separators, keywords of the format).
  std::vector<std::string> dictionary;
};

std::vector<const Reader*>& readers();
const Reader* find_reader(const std::string& name);

struct Register {
  explicit Register(const Reader* r) { readers().push_back(r); }
};
#define MGL_FUZZ_CONCAT2(a, b) a##b
#define MGL_FUZZ_CONCAT(a, b) MGL_FUZZ_CONCAT2(a, b)
#define MGL_FUZZ_READER(...)                                                              \
  static const ::mgl::fuzz::Reader MGL_FUZZ_CONCAT(kReader, __LINE__){__VA_ARGS__};      \
  static const ::mgl::fuzz::Register MGL_FUZZ_CONCAT(kRegister, __LINE__)(&MGL_FUZZ_CONCAT(kReader, __LINE__))

// A folder of this process's own, emptied by fresh(): where drivers write their inputs.
const std::filesystem::path& scratch();
std::filesystem::path fresh(const std::string& sub = "");  // scratch()/sub, removed and re-created
void write_file(const std::filesystem::path& file, const uint8_t* data, size_t size);
void write_file(const std::filesystem::path& file, std::string_view text);
Bytes read_file(const std::filesystem::path& file);

// A finding that is not a crash: prints "finding: <what>" and aborts, so the engine saves the input.
[[noreturn]] void finding(const std::string& what);
inline void expect(bool ok, const std::string& what) {
  if (!ok) finding(what);
}

// Runs `read`; an exception derived from std::exception is a refusal, whose message must contain
// `must_name` (the file or folder the reader was given; empty: no check). Returns true when the
// reader accepted the input. Records the outcome's class (the message with names and digits
// masked) for the engine's novelty signal.
bool refuse_or_accept(const std::function<void()>& read, const std::string& must_name);

// The engine's view of the last outcome (set by refuse_or_accept).
std::string& last_outcome();

// Splits an input into parts at a separator byte sequence (drivers that need several files).
std::vector<std::string_view> split_parts(const uint8_t* data, size_t size, std::string_view separator,
                                          size_t max_parts);

}  // namespace mgl::fuzz
