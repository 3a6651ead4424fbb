// Checkpoint checksums (see checkpoint_file.h).
#include "harness/train/checkpoint_file.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "harness/util/files.h"
#include "harness/util/user_message.h"

namespace mgl::harness {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSumFormat = "megalodon-checkpoint-sum/1";

// A 64-bit hash of the bytes, 8 at a time (multiply-rotate mixing, as in the xxHash family): fast
// enough for multi-gigabyte checkpoints, and any truncation, bit flip or overwrite changes it. It
// guards against damage, not against an adversary.
struct Hasher {
  uint64_t h = 0x9e3779b97f4a7c15ull, n = 0;
  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  void word(uint64_t w) {
    h ^= rotl(w * 0xc2b2ae3d27d4eb4full, 31) * 0x9e3779b97f4a7c15ull;
    h = rotl(h, 27) * 0x100000001b3ull + 0x52dce729ull;
  }
  void add(const unsigned char* p, size_t len) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      word(w);
    }
    uint64_t tail = 0;
    for (size_t k = 0; i + k < len; ++k) tail |= static_cast<uint64_t>(p[i + k]) << (8 * k);
    if (i < len) word(tail ^ (static_cast<uint64_t>(len - i) << 56));
    n += len;
  }
  uint64_t digest() const {
    uint64_t x = h ^ n;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
  }
};

}  // namespace

CheckpointDamaged::CheckpointDamaged(const fs::path& f, const std::string& p)
    : std::runtime_error(fmt::format("{}: damaged checkpoint ({})", f.string(), p)), file(f), problem(p) {}

fs::path checksum_path(const fs::path& file) { return file.string() + ".sum"; }

std::string file_checksum(const fs::path& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (!f) throw std::runtime_error(fmt::format("{}: cannot open ({})", file.string(), std::strerror(errno)));
  // Blocks are a multiple of 8 bytes, so the words do not depend on where the reads end.
  std::vector<unsigned char> buf(1 << 20);
  Hasher h;
  size_t got = 0;
  std::vector<unsigned char> carry;
  while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
    if (got == buf.size()) {
      h.add(buf.data(), got);
    } else {
      carry.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
      break;
    }
  }
  const bool bad = std::ferror(f);
  std::fclose(f);
  if (bad) throw std::runtime_error(fmt::format("{}: read error", file.string()));
  h.add(carry.data(), carry.size());
  return fmt::format("{} {:016x}", h.n, h.digest());
}

void write_checksum(const fs::path& data_file, const fs::path& final_file) {
  write_file_atomic(checksum_path(final_file),
                    fmt::format("{} {} {}\n", kSumFormat, file_checksum(data_file), final_file.filename().string()));
}

CheckpointCheck verify_checkpoint(const fs::path& file) {
  CheckpointCheck c;
  std::error_code ec;
  if (!fs::exists(file, ec)) return {CheckpointState::damaged, "missing"};
  const fs::path sum = checksum_path(file);
  if (!fs::exists(sum, ec)) return c;  // written before checksums existed
  std::ifstream in(sum);
  std::string format, bytes, hash;
  in >> format >> bytes >> hash;
  if (format != kSumFormat || bytes.empty() || hash.size() != 16)
    return {CheckpointState::damaged, fmt::format("its checksum file {} is unreadable", sum.string())};
  std::string actual;
  try {
    actual = file_checksum(file);
  } catch (const std::exception& e) {
    return {CheckpointState::damaged, e.what()};
  }
  const std::string expected = bytes + " " + hash;
  if (actual != expected) {
    const std::string actual_bytes = actual.substr(0, actual.find(' '));
    if (actual_bytes != bytes)
      return {CheckpointState::damaged,
              fmt::format("{} bytes, but {} were written (truncated or overwritten)", actual_bytes, bytes)};
    return {CheckpointState::damaged, "its contents changed after it was written (checksum mismatch)"};
  }
  c.state = CheckpointState::intact;
  return c;
}

namespace {
// A TorchScript type as OutputArchive writes it: a dotted name, optionally with [type, ...]
// arguments (Tuple[float, float], List[str], __torch__.___torch_mangle_3.Module), nested a few deep.
bool type_expression(const std::string& s, size_t& i, int depth) {
  if (depth > 8) return false;
  const size_t start = i;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_' || s[i] == '.')) {
    if (s[i] == '.' && (i == start || s[i - 1] == '.')) return false;  // no empty name parts
    ++i;
  }
  if (i == start || std::isdigit(static_cast<unsigned char>(s[start])) || s[i - 1] == '.') return false;
  if (i < s.size() && s[i] == '[') {
    ++i;
    for (;;) {
      if (!type_expression(s, i, depth + 1)) return false;
      if (i < s.size() && s[i] == ',') {
        if (++i < s.size() && s[i] == ' ') ++i;
        continue;
      }
      if (i < s.size() && s[i] == ']') return ++i, true;
      return false;
    }
  }
  return true;
}

// Hand-written matchers (std::regex recurses per character: a long damaged line could exhaust the
// stack). Each consumes from s[i] and reports whether it matched.
bool literal(const std::string& s, size_t& i, const char* lit) {
  const size_t n = std::strlen(lit);
  if (s.compare(i, n, lit) != 0) return false;
  i += n;
  return true;
}
bool identifier(const std::string& s, size_t& i) {
  const size_t start = i;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
  return i > start && !std::isdigit(static_cast<unsigned char>(s[start]));
}
bool quoted(const std::string& s, size_t& i) {  // "..." without quotes or backslashes inside
  if (i >= s.size() || s[i] != '"') return false;
  const size_t end = s.find_first_of("\"\\", i + 1);
  if (end == std::string::npos || s[end] != '"') return false;
  i = end + 1;
  return true;
}

// The class sources (code/**.py) of an archive that torch::serialize::OutputArchive wrote hold only
// attribute declarations:
//   class Module(Module):
//     __parameters__ = ["weight", "bias", ]      (and __buffers__)
//     __annotations__ = []
//     __annotations__["params/0"] = str
//     weight : Tensor
// LibTorch 1.13's TorchScript parser can crash (not throw) on a damaged one, e.g. a misspelt
// `__parameters__` taken for a class constant (a fuzz finding), so every line is checked against
// that shape before LibTorch reads the file. Returns the first line that does not fit, or "".
bool source_line_ok(const std::string& line, bool first) {
  size_t i = 0;
  if (first) return literal(line, i, "class ") && identifier(line, i) && literal(line, i, "(Module):") && i == line.size();
  if (line.empty() || line == "  __annotations__ = []") return true;
  if (literal(line, i, "  __parameters__ = [") || literal(line, i, "  __buffers__ = [")) {
    while (quoted(line, i))
      if (!literal(line, i, ", ")) return false;
    return literal(line, i, "]") && i == line.size();
  }
  i = 0;
  if (literal(line, i, "  __annotations__[")) {
    if (!quoted(line, i) || !literal(line, i, "] = ")) return false;
  } else {
    i = 0;
    if (!literal(line, i, "  ") || !identifier(line, i) || !literal(line, i, " : ")) return false;
  }
  return type_expression(line, i, 0) && i == line.size();
}
std::string unexpected_source_line(const std::string& source) {
  std::istringstream in(source);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (!source_line_ok(line, first)) return line;
    first = false;
  }
  return first ? "(empty)" : "";
}

void check_class_sources(const fs::path& file) {
  caffe2::serialize::PyTorchStreamReader zip(file.string());
  for (const auto& record : zip.getAllRecords()) {
    if (record.rfind("code/", 0) != 0 || record.size() < 3 || record.compare(record.size() - 3, 3, ".py") != 0)
      continue;
    const auto [data, size] = zip.getRecord(record);
    const std::string bad = unexpected_source_line(std::string(static_cast<const char*>(data.get()), size));
    if (!bad.empty())
      throw CheckpointDamaged(file, fmt::format("its class source {} is not what a checkpoint holds (line '{}')",
                                                record, bad.substr(0, 80)));
  }
}
}  // namespace

CheckpointFields read_checkpoint(const fs::path& file, torch::nn::Module& model, torch::optim::Optimizer* opt) {
  const CheckpointCheck check = verify_checkpoint(file);
  if (check.state == CheckpointState::damaged) throw CheckpointDamaged(file, check.problem);
  torch::serialize::InputArchive ar;
  try {
    check_class_sources(file);
    ar.load_from(file.string());
  } catch (const CheckpointDamaged&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointDamaged(file, "cannot be read as a checkpoint: " + user_message(e));
  }
  CheckpointFields f;
  try {
    c10::IValue v;
    auto get_int = [&](const char* k) {
      ar.read(k, v);
      if (!v.isInt()) throw std::runtime_error(fmt::format("'{}' is not an integer", k));
      return v.toInt();
    };
    auto get_double = [&](const char* k) {
      ar.read(k, v);
      if (!v.isDouble()) throw std::runtime_error(fmt::format("'{}' is not a number", k));
      return v.toDouble();
    };
    const int64_t format = get_int("format");
    if (format != kCheckpointFormat)
      throw std::runtime_error(fmt::format("checkpoint format {} (expected {})", format, kCheckpointFormat));
    // Module::load replaces each tensor with the one read (Tensor::set_), whatever its shape: compare
    // against the model's own shapes and dtypes, or a checkpoint of another configuration would load
    // "successfully" and fail later, far from its cause.
    std::vector<std::pair<std::string, std::pair<std::vector<int64_t>, c10::ScalarType>>> expected;
    for (const auto& p : model.named_parameters()) expected.push_back({p.key(), {p.value().sizes().vec(), p.value().scalar_type()}});
    for (const auto& b : model.named_buffers()) expected.push_back({b.key(), {b.value().sizes().vec(), b.value().scalar_type()}});
    torch::serialize::InputArchive model_ar;
    ar.read("model", model_ar);
    model.load(model_ar);
    std::map<std::string, torch::Tensor> now;
    for (const auto& p : model.named_parameters()) now[p.key()] = p.value();
    for (const auto& b : model.named_buffers()) now[b.key()] = b.value();
    for (const auto& [name, shape] : expected) {
      const auto it = now.find(name);
      if (it == now.end() || it->second.sizes().vec() != shape.first || it->second.scalar_type() != shape.second)
        throw std::runtime_error(fmt::format("'{}' has shape [{}] {} in the checkpoint, [{}] {} in the model", name,
                                             it == now.end() ? "" : fmt::format("{}", fmt::join(it->second.sizes(), ", ")),
                                             it == now.end() ? "" : c10::toString(it->second.scalar_type()),
                                             fmt::format("{}", fmt::join(shape.first, ", ")), c10::toString(shape.second)));
    }
    if (!opt) return f;
    torch::serialize::InputArchive opt_ar;
    ar.read("optimizer", opt_ar);
    opt->load(opt_ar);
    f.step = get_int("step");
    f.data_epoch = get_int("data_epoch");
    f.data_batch = get_int("data_batch");
    f.best_step = get_int("best_step");
    f.bad_evals = get_int("bad_evals");
    f.best = get_double("best");
    f.train_seconds = get_double("train_seconds");
    if (f.step < 0 || f.data_epoch < 0 || f.data_batch < 0 || f.bad_evals < 0)
      throw std::runtime_error(fmt::format("negative counters (step {}, epoch {}, batch {}, bad evaluations {})", f.step,
                                           f.data_epoch, f.data_batch, f.bad_evals));
    ar.read("rng_cpu", f.rng_cpu);
  } catch (const std::exception& e) {
    throw std::runtime_error(
        fmt::format("{}: not a checkpoint of this run's model and optimizer: {}", file.string(), user_message(e)));
  }
  return f;
}

fs::path set_aside_damaged(const fs::path& file) {
  const fs::path to = file.string() + ".damaged";
  std::error_code ec;
  fs::rename(file, to, ec);
  fs::remove(checksum_path(file), ec);
  return to;
}

}  // namespace mgl::harness
