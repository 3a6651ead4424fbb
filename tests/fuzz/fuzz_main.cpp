// The fuzz engine: a seeded mutation loop of our own over a reader's seed corpus (the default, built
// with g++ and AddressSanitizer + UBSan in the normal build), or libFuzzer's coverage-guided loop when
// built with clang and MEGALODON_FUZZ_LIBFUZZER (the reader is then chosen by $MGL_FUZZ_READER).
//
//   megalodon_fuzz READER [--seconds S] [--runs N] [--seed X] [--corpus DIR] [--out DIR] [FILE...]
//
// Our loop: every corpus file once, then mutated inputs (bit flips, interesting integers, inserted
// dictionary strings, deletions, duplications, splices of two inputs, truncations) until the time or
// run budget is spent. Without coverage feedback it keeps, as new parents, inputs whose outcome
// (the refusal message with names and numbers masked, or "accepted") was not seen before: a cheap
// signal that an input got further into the format. A crash, sanitizer report, hang or finding
// saves the input under --out and exits non-zero; the line printed names the file to replay.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

#include "fuzz/fuzz.h"

#ifndef MEGALODON_SOURCE_DIR
#define MEGALODON_SOURCE_DIR "."
#endif

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace mgl::fuzz {

std::vector<const Reader*>& readers() {
  static std::vector<const Reader*> r;
  return r;
}

const Reader* find_reader(const std::string& name) {
  for (const auto* r : readers())
    if (name == r->name) return r;
  return nullptr;
}

const std::filesystem::path& scratch() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path();
    auto d = base / ("mgl-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

std::filesystem::path fresh(const std::string& sub) {
  const auto d = sub.empty() ? scratch() / "in" : scratch() / sub;
  std::error_code ec;
  std::filesystem::remove_all(d, ec);
  std::filesystem::create_directories(d);
  return d;
}

void write_file(const std::filesystem::path& file, const uint8_t* data, size_t size) {
  if (!file.parent_path().empty()) std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) throw std::logic_error("fuzz: cannot write " + file.string());
}

void write_file(const std::filesystem::path& file, std::string_view text) {
  write_file(file, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

Bytes read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string& last_outcome() {
  static std::string s;
  return s;
}

void finding(const std::string& what) {
  std::fprintf(stderr, "finding: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

namespace {
// The message with the scratch folder, numbers and quoted excerpts masked: "a class of outcome".
std::string outcome_class(const std::string& msg) {
  std::string m = msg;
  const std::string s = scratch().string();
  for (size_t at; (at = m.find(s)) != std::string::npos;) m.replace(at, s.size(), "@");
  std::string out;
  bool in_quote = false;
  for (char c : m) {
    if (c == '\'') in_quote = !in_quote;
    else if (in_quote) continue;
    if (c >= '0' && c <= '9') {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += c;
    }
    if (out.size() >= 96) break;
  }
  return out;
}
}  // namespace

bool refuse_or_accept(const std::function<void()>& read, const std::string& must_name) {
  try {
    read();
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    if (!must_name.empty() && msg.find(must_name) == std::string::npos)
      finding("a refusal that does not name the input " + must_name + ": " + msg.substr(0, 2000));
    last_outcome() = "refused: " + outcome_class(msg);
    return false;
  }
  last_outcome() = "accepted";
  return true;
}

std::vector<std::string_view> split_parts(const uint8_t* data, size_t size, std::string_view separator,
                                          size_t max_parts) {
  std::vector<std::string_view> parts;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  while (parts.size() + 1 < max_parts) {
    const size_t at = all.find(separator);
    if (at == std::string_view::npos) break;
    parts.push_back(all.substr(0, at));
    all.remove_prefix(at + separator.size());
  }
  parts.push_back(all);
  return parts;
}

}  // namespace mgl::fuzz

#ifdef MEGALODON_FUZZ_LIBFUZZER
// ---- libFuzzer ----------------------------------------------------------------------------------
namespace {
const mgl::fuzz::Reader* g_reader = nullptr;
}
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* name = std::getenv("MGL_FUZZ_READER");
  g_reader = name ? mgl::fuzz::find_reader(name) : nullptr;
  if (!g_reader) {
    std::fprintf(stderr, "set MGL_FUZZ_READER to one of:");
    for (const auto* r : mgl::fuzz::readers()) std::fprintf(stderr, " %s", r->name);
    std::fprintf(stderr, "\n");
    std::exit(2);
  }
  return 0;
}
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_reader->run(data, size);
  return 0;
}
#else
// ---- our own loop -------------------------------------------------------------------------------
namespace {

using mgl::fuzz::Bytes;
namespace fs = std::filesystem;

struct Current {
  const mgl::fuzz::Reader* reader = nullptr;
  const Bytes* input = nullptr;
  fs::path out;
  uint64_t executions = 0;
};
Current g;

// Writes the input being run to --out (async-signal-safe enough for a dying process: open/write).
void save_current(const char* kind) {
  static bool saved = false;
  if (saved || !g.input) return;
  saved = true;
  // A name from the input's FNV-1a hash, so the same finding saves to the same file.
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : *g.input) h = (h ^ b) * 0x100000001b3ull;
  char name[64];
  std::snprintf(name, sizeof name, "/%s-%s-%016llx", g.reader->name, kind, static_cast<unsigned long long>(h));
  const std::string path = g.out.string() + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    const ssize_t w = ::write(fd, g.input->data(), g.input->size());
    (void)w;
    ::close(fd);
  }
  char line[600];
  const int n = std::snprintf(line, sizeof line, "\nfuzz %s: %s after %llu executions; input saved to %s (replay: "
                                                 "megalodon_fuzz %s %s)\n",
                              g.reader->name, kind, static_cast<unsigned long long>(g.executions), path.c_str(),
                              g.reader->name, path.c_str());
  const ssize_t w = ::write(2, line, static_cast<size_t>(n));
  (void)w;
}

void on_death() { save_current("crash"); }
void on_signal(int sig) {
  save_current(sig == SIGALRM ? "hang" : "crash");
  ::signal(sig, SIG_DFL);
  if (sig == SIGALRM) ::_exit(3);
  ::raise(sig);
}

class Mutator {
 public:
  Mutator(uint64_t seed, std::vector<std::string> dictionary) : rng_(seed), dict_(std::move(dictionary)) {
    for (const char* s : {"\n", "\r\n", "\t", ",", " ", "\"", "0", "-1", "255", "65536", "4294967295",
                          "18446744073709551615", "9999999999999999999999", "1e308", "nan", "\xff\xff\xff\xff"})
      dict_.emplace_back(s);
    dict_.emplace_back(std::string("\0\0\0\0\0\0\0\0", 8));
  }
  size_t below(size_t n) { return n ? std::uniform_int_distribution<size_t>(0, n - 1)(rng_) : 0; }

  Bytes mutate(const Bytes& parent, const Bytes& other) {
    Bytes b = parent;
    const size_t rounds = 1 + below(4);
    for (size_t r = 0; r < rounds; ++r) {
      switch (below(b.empty() ? 3 : 10)) {
        case 0: {  // insert a dictionary string
          const std::string& s = dict_[below(dict_.size())];
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), s.begin(), s.end());
          break;
        }
        case 1: {  // insert random bytes
          const size_t n = 1 + below(8), at = below(b.size() + 1);
          for (size_t i = 0; i < n; ++i) b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(rng_()));
          break;
        }
        case 2: {  // splice: a prefix of this one, a suffix of the other
          if (other.empty()) break;
          const size_t cut = below(b.size() + 1), from = below(other.size());
          b.resize(cut);
          b.insert(b.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
          break;
        }
        case 3:  // flip a bit
          b[below(b.size())] ^= static_cast<uint8_t>(1u << below(8));
          break;
        case 4:  // an interesting byte
          b[below(b.size())] = std::array<uint8_t, 6>{0, 1, 0x7f, 0x80, 0xfe, 0xff}[below(6)];
          break;
        case 5: {  // an interesting little- or big-endian integer of 2, 4 or 8 bytes
          const size_t width = size_t{2} << below(3);
          if (b.size() < width) break;
          const uint64_t values[] = {0, 1, 2, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
                                     0x7fffffffffffffffull, ~0ull, 1ull << 40};
          const uint64_t v = values[below(sizeof values / sizeof values[0])];
          const size_t at = below(b.size() - width + 1);
          const bool big = below(2);
          for (size_t i = 0; i < width; ++i) b[at + (big ? width - 1 - i : i)] = static_cast<uint8_t>(v >> (8 * i));
          break;
        }
        case 6: {  // delete a range
          const size_t at = below(b.size()), n = 1 + below(std::min<size_t>(b.size() - at, 64));
          b.erase(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
          break;
        }
        case 7: {  // duplicate a range
          const size_t at = below(b.size()), n = 1 + below(std::min<size_t>(b.size() - at, 64));
          const Bytes piece(b.begin() + static_cast<std::ptrdiff_t>(at), b.begin() + static_cast<std::ptrdiff_t>(at + n));
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(below(b.size() + 1)), piece.begin(), piece.end());
          break;
        }
        case 8:  // truncate
          b.resize(below(b.size() + 1));
          break;
        default: {  // overwrite with a dictionary string
          const std::string& s = dict_[below(dict_.size())];
          const size_t at = below(b.size());
          for (size_t i = 0; i < s.size() && at + i < b.size(); ++i) b[at + i] = static_cast<uint8_t>(s[i]);
          break;
        }
      }
    }
    if (b.size() > (1u << 20)) b.resize(1u << 20);
    return b;
  }

 private:
  std::mt19937_64 rng_;
  std::vector<std::string> dict_;
};

constexpr const char* kUsage =
    "usage: megalodon_fuzz READER [options] [FILE...]\n"
    "  --seconds S      mutate for S seconds after replaying the corpus (default 10)\n"
    "  --runs N         stop after N mutated inputs instead (0 = replay the corpus only)\n"
    "  --seed X         seed of the mutations (default 1)\n"
    "  --corpus DIR     seed inputs (default tests/fuzz/corpus/READER of the source tree)\n"
    "  --out DIR        where a crashing or hanging input is saved (default fuzz-findings)\n"
    "  --timeout S      an input running longer than S seconds is a hang (default 20)\n"
    "  --write-seeds D  write the reader's seed corpus (real-format files from the project's writers) to D\n"
    "  --list           the readers\n"
    "  FILE...          run only these inputs (to replay a finding)\n";

int run_main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--list") {
    for (const auto* r : mgl::fuzz::readers()) std::printf("%-18s %s\n", r->name, r->doc);
    return 0;
  }
  const auto* reader = mgl::fuzz::find_reader(args[0]);
  if (!reader) {
    std::fprintf(stderr, "megalodon_fuzz: unknown reader '%s' (--list)\n", args[0].c_str());
    return 2;
  }
  double seconds = 10;
  long long runs = -1;
  uint64_t seed = 1;
  unsigned timeout = 20;
  fs::path corpus = fs::path(MEGALODON_SOURCE_DIR) / "tests/fuzz/corpus" / reader->name, out = "fuzz-findings";
  std::vector<fs::path> files;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
      return args[++i];
    };
    if (a == "--seconds") seconds = std::stod(value());
    else if (a == "--runs") runs = std::stoll(value());
    else if (a == "--seed") seed = std::stoull(value());
    else if (a == "--corpus") corpus = value();
    else if (a == "--out") out = value();
    else if (a == "--timeout") timeout = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--write-seeds") {
      const fs::path dir = value();
      fs::create_directories(dir);
      reader->seeds(dir);
      size_t n = 0, bytes = 0;
      for (const auto& e : fs::directory_iterator(dir)) n += 1, bytes += fs::file_size(e.path());
      std::printf("fuzz %s: %zu seed files, %zu bytes in %s\n", reader->name, n, bytes, dir.string().c_str());
      return 0;
    } else if (!a.empty() && a[0] == '-') throw std::invalid_argument("unknown option " + a);
    else files.push_back(a);
  }

  fs::create_directories(out);
  g.reader = reader;
  g.out = fs::absolute(out);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_death);
  for (int sig : {SIGSEGV, SIGABRT, SIGFPE, SIGILL, SIGBUS, SIGALRM}) ::signal(sig, on_signal);

  auto run_one = [&](const Bytes& input) {
    g.input = &input;
    ::alarm(timeout);
    reader->run(input.data(), input.size());
    ::alarm(0);
    ++g.executions;
    g.input = nullptr;
  };

  if (!files.empty()) {  // replay
    for (const auto& f : files) {
      const Bytes input = mgl::fuzz::read_file(f);
      run_one(input);
      std::printf("%s: %s\n", f.string().c_str(), mgl::fuzz::last_outcome().c_str());
    }
    return 0;
  }

  std::vector<Bytes> pool;
  if (fs::is_directory(corpus)) {
    std::vector<fs::path> seeds;
    for (const auto& e : fs::directory_iterator(corpus))
      if (e.is_regular_file()) seeds.push_back(e.path());
    std::sort(seeds.begin(), seeds.end());
    for (const auto& f : seeds) pool.push_back(mgl::fuzz::read_file(f));
  }
  if (pool.empty()) {
    std::fprintf(stderr, "megalodon_fuzz %s: no seed files in %s (--write-seeds DIR makes them)\n", reader->name,
                 corpus.string().c_str());
    return 2;
  }
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  std::map<std::string, uint64_t> outcomes;
  const size_t seeds = pool.size();
  for (size_t i = 0; i < seeds; ++i) {
    run_one(pool[i]);
    ++outcomes[mgl::fuzz::last_outcome()];
  }
  Mutator m(seed, reader->dictionary);
  uint64_t mutated = 0, kept = 0;
  while (runs < 0 ? elapsed() < seconds : static_cast<long long>(mutated) < runs) {
    const Bytes& parent = pool[m.below(pool.size())];
    const Bytes& other = pool[m.below(pool.size())];
    Bytes child = m.mutate(parent, other);
    run_one(child);
    ++mutated;
    auto [it, inserted] = outcomes.emplace(mgl::fuzz::last_outcome(), 0);
    ++it->second;
    if (inserted && pool.size() < 4096) {
      pool.push_back(std::move(child));
      ++kept;
    }
  }
  const double t = elapsed();
  std::printf("fuzz %s: %llu executions (%zu seeds + %llu mutated) in %.1f s, %.0f/s; %zu distinct outcomes, "
              "%llu inputs kept; no crash, hang or finding\n",
              reader->name, static_cast<unsigned long long>(g.executions), seeds, static_cast<unsigned long long>(mutated),
              t, static_cast<double>(g.executions) / std::max(t, 1e-9), outcomes.size(),
              static_cast<unsigned long long>(kept));
  if (std::getenv("MGL_FUZZ_OUTCOMES"))
    for (const auto& [o, n] : outcomes) std::printf("  %8llu  %s\n", static_cast<unsigned long long>(n), o.c_str());
  std::error_code ec;
  fs::remove_all(mgl::fuzz::scratch(), ec);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megalodon_fuzz: error: %s\n", e.what());
    return 2;
  }
}
#endif
