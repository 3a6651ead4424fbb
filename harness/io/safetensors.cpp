#include "harness/io/safetensors.h"

#include "harness/util/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <tuple>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

// The format is little-endian; tensors are written from and read into memory byte for byte.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

namespace mgl::harness {

namespace fs = std::filesystem;
using torch::Tensor;

namespace {

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  uint64_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8}, {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8},  {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},      {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

std::string known_dtypes() {
  std::string s;
  for (const auto& d : kDtypes) s += (s.empty() ? "" : " ") + std::string(d.name);
  return s;
}


std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

}  // namespace

const char* safetensors_dtype_name(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return d.name;
  throw std::invalid_argument(fmt::format("dtype {} has no safetensors equivalent (supported: {})",
                                          c10::toString(t), known_dtypes()));
}

void save_safetensors(const fs::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  auto fail = [&](const std::string& name, const std::string& what) {
    return std::runtime_error(fmt::format("safetensors file '{}': tensor '{}': {}", path.string(), name, what));
  };
  nlohmann::json header = nlohmann::json::object();
  std::vector<Tensor> data;
  data.reserve(tensors.size());
  uint64_t offset = 0;
  // std::map iterates in name order, so the byte layout is a function of the names alone.
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw fail(name, "the name is reserved for the metadata");
    if (!t.defined()) throw fail(name, "undefined tensor");
    const char* dtype = nullptr;
    try {
      dtype = safetensors_dtype_name(t.scalar_type());
    } catch (const std::invalid_argument& e) {
      throw fail(name, e.what());
    }
    Tensor c = t.detach().to(torch::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(c.numel()) * static_cast<uint64_t>(c.element_size());
    header[name] = {{"dtype", dtype}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    data.push_back(std::move(c));
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string h;
  try {
    h = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata string that is not UTF-8
    throw std::runtime_error(fmt::format("safetensors file '{}': cannot encode the header: {}", path.string(), e.what()));
  }
  // Pad to 8 bytes so that the buffer (and so every 8-byte dtype) is aligned when memory-mapped.
  h.append((8 - h.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((static_cast<uint64_t>(h.size()) >> (8 * i)) & 0xff);

  AtomicWriter w(path);
  w.write(len, sizeof len);
  w.write(h.data(), h.size());
  for (const auto& c : data) {
    const size_t n = static_cast<size_t>(c.numel()) * c.element_size();
    if (n > 0) w.write(c.data_ptr(), n);
  }
  w.commit();
}

SafetensorsFile load_safetensors(const fs::path& path) {
  const std::string file = path.string();
  auto fail = [&](const std::string& what) {
    return std::runtime_error(fmt::format("safetensors file '{}': {}", file, what));
  };
  auto fail_t = [&](const std::string& name, const std::string& what) {
    return std::runtime_error(fmt::format("safetensors file '{}': tensor '{}': {}", file, name, what));
  };

  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw fail(fs::exists(path, ec) ? "not a regular file" : "no such file");
  const uint64_t size = fs::file_size(path, ec);
  if (ec) throw fail("cannot read the size: " + ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fail(std::string("cannot open: ") + std::strerror(errno));
  if (size < 8) throw fail(fmt::format("the file is {} bytes, shorter than the 8-byte header length", size));

  unsigned char len[8];
  if (!in.read(reinterpret_cast<char*>(len), 8)) throw fail("cannot read the header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  if (n > size - 8)
    throw fail(fmt::format("the header length {} runs past the end of the file ({} bytes after the length)", n,
                           size - 8));
  const uint64_t buffer_size = size - 8 - n;
  std::string text(static_cast<size_t>(n), '\0');
  if (n > 0 && !in.read(text.data(), static_cast<std::streamsize>(n))) throw fail("cannot read the header");

  // nlohmann keeps the last of duplicate keys silently; two entries for one name are refused instead.
  std::string duplicate;
  std::set<std::string> seen;
  nlohmann::json::parser_callback_t on_event = [&](int depth, nlohmann::json::parse_event_t event,
                                                   nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, on_event);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("the header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw fail(fmt::format("the header must be a JSON object, got {}", header.type_name()));
  if (!duplicate.empty()) throw fail(fmt::format("the header names '{}' twice", duplicate));

  SafetensorsFile out;
  struct Entry {
    std::string name;
    const DtypeInfo* dtype;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) throw fail(fmt::format("__metadata__ must be an object of strings, got {}", v.type_name()));
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string())
          throw fail(fmt::format("__metadata__ key '{}': the value must be a string, got {}", k, s.type_name()));
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    if (!v.is_object())
      throw fail_t(name, fmt::format("the entry must be an object with dtype, shape and data_offsets, got {}",
                                     v.type_name()));
    for (const auto& [k, unused] : v.items()) {
      (void)unused;
      if (k != "dtype" && k != "shape" && k != "data_offsets")
        throw fail_t(name, fmt::format("unexpected field '{}' (expected dtype, shape, data_offsets)", k));
    }
    for (const char* k : {"dtype", "shape", "data_offsets"})
      if (!v.contains(k)) throw fail_t(name, fmt::format("missing field '{}'", k));
    Entry e{name, nullptr, {}, 0, 0};
    const auto& dt = v["dtype"];
    if (!dt.is_string()) throw fail_t(name, fmt::format("dtype must be a string, got {}", dt.type_name()));
    e.dtype = find_dtype(dt.get<std::string>());
    if (!e.dtype)
      throw fail_t(name, fmt::format("unknown dtype '{}' (expected one of {})", dt.get<std::string>(), known_dtypes()));
    const auto& shape = v["shape"];
    if (!shape.is_array()) throw fail_t(name, fmt::format("shape must be an array, got {}", shape.type_name()));
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw fail_t(name, fmt::format("shape {} must hold non-negative integers", shape.dump()));
      const uint64_t dim = d.get<uint64_t>();
      e.shape.push_back(static_cast<int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
    }
    uint64_t bytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, e.dtype->size, &bytes);
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw fail_t(name, fmt::format("data_offsets must be two non-negative integers [begin, end], got {}", off.dump()));
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end) throw fail_t(name, fmt::format("data_offsets [{}, {}] end before they begin", e.begin, e.end));
    if (e.end > buffer_size)
      throw fail_t(name, fmt::format("data_offsets [{}, {}] run past the end of the {}-byte data buffer", e.begin,
                                     e.end, buffer_size));
    if (overflow || bytes != e.end - e.begin)
      throw fail_t(name, fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}",
                                     shape_str(e.shape), e.dtype->name,
                                     overflow ? std::string("too many") : std::to_string(bytes), e.begin, e.end,
                                     e.end - e.begin));
    entries.push_back(std::move(e));
  }

  // The tensors must tile the buffer: no overlaps, no gaps, nothing after the last one.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t covered = 0;
  const Entry* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin < covered)
      throw fail_t(e.name, fmt::format("data_offsets [{}, {}] overlap tensor '{}' [{}, {}]", e.begin, e.end, prev->name,
                                       prev->begin, prev->end));
    if (e.begin > covered)
      throw fail(fmt::format("bytes [{}, {}) of the data buffer belong to no tensor (before tensor '{}')", covered,
                             e.begin, e.name));
    covered = e.end;
    prev = &e;
  }
  if (covered != buffer_size)
    throw fail(fmt::format("bytes [{}, {}) of the data buffer belong to no tensor (after the last one)", covered,
                           buffer_size));

  for (const auto& e : entries) {
    Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    const uint64_t bytes = e.end - e.begin;
    if (bytes > 0) {
      in.seekg(static_cast<std::streamoff>(8 + n + e.begin));
      if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(bytes)))
        throw fail_t(e.name, "cannot read the data (was the file truncated while reading?)");
    }
    // A bool byte other than 0 or 1 is not a valid torch bool.
    if (e.dtype->type == torch::kBool && bytes > 0) {
      const auto* p = static_cast<const unsigned char*>(t.data_ptr());
      if (std::any_of(p, p + bytes, [](unsigned char b) { return b > 1; }))
        throw fail_t(e.name, "a BOOL element is neither 0 nor 1");
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

}  // namespace mgl::harness
