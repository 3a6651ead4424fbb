#include "harness/io/official_checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>
#include <torch/csrc/jit/serialization/storage_context.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>

#include "core/models/factory.h"
#include "harness/config/config.h"
#include "harness/config/model.h"
#include "harness/util/files.h"

namespace mgl::harness {

namespace fs = std::filesystem;
using torch::Tensor;

namespace {

std::string shape_str(torch::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }


// ---- reading torch.save ---------------------------------------------------------------------

// The key under which the rewritten pickle stores what BUILD would have set (see below); a NUL
// starts it, so no module path can collide with it.
const std::string kBuildStateKey("\0pickle BUILD state", 19);

// LibTorch's unpickler cannot read a state dict that torch.save wrote, for three reasons:
//  - it expects collections.OrderedDict only as a tensor's empty backward-hooks argument and turns
//    it into None (1.13, and still in 2.x), but a state dict *is* an OrderedDict;
//  - it runs BUILD as REDUCE, and BUILD sets the state dict's `_metadata` attribute;
//  - 1.13 has no SETITEM (nor APPEND), which Python's pickler writes for a batch of one item: every
//    `{'version': 1}` inside `_metadata`, and a state dict of 1 (mod 1000) entries; nor POP.
// So torch::pickle_load fails on every real checkpoint ("Expected GenericDict but got None"). Before
// unpickling we rewrite the opcode stream into one it reads: `OrderedDict` `()` REDUCE (the class
// from GLOBAL or, memoised, from BINGET) becomes EMPTY_DICT; `state` BUILD becomes MARK
// kBuildStateKey `state` SETITEMS, an entry the reader then removes (a plain POP would do, but 1.13
// has no POP either, and deleting the state's opcodes could orphan memo slots); `k v` SETITEM becomes MARK `k
// v` SETITEMS and `x` APPEND becomes MARK `x` APPENDS. The last needs to know where `k` began, so the scan
// tracks, for each item of the unpickler's stack, the output offset where the opcodes producing it begin. A
// pickle stream holds no byte offsets, so inserting and deleting opcodes is safe. Globals other than the
// OrderedDict, the tensor rebuild function, the storage types and LibTorch's own type tags are refused here
// with a message, rather than deep inside the unpickler.
std::string rewrite_state_dict_pickle(const std::string& in, const std::string& where) {
  enum : uint8_t {
    MARK = '(',
    STOP = '.',
    POP = '0',
    EMPTY_TUPLE = ')',
    EMPTY_LIST = ']',
    EMPTY_DICT = '}',
    NONE = 'N',
    REDUCE = 'R',
    BUILD = 'b',
    TUPLE = 't',
    SETITEMS = 'u',
    SETITEM = 's',
    APPENDS = 'e',
    APPEND = 'a',
    BINPERSID = 'Q',
    BININT1 = 'K',
    BINGET = 'h',
    BINPUT = 'q',
    BININT2 = 'M',
    BININT = 'J',
    LONG_BINGET = 'j',
    LONG_BINPUT = 'r',
    BINFLOAT = 'G',
    BINUNICODE = 'X',
    GLOBAL = 'c',
    PROTO = 0x80,
    TUPLE1 = 0x85,
    TUPLE2 = 0x86,
    TUPLE3 = 0x87,
    NEWTRUE = 0x88,
    NEWFALSE = 0x89,
    LONG1 = 0x8a,
  };
  auto fail = [&](size_t at, const std::string& what) {
    return std::runtime_error(fmt::format("{}: data.pkl, byte {}: {}", where, at, what));
  };
  std::string out;
  out.reserve(in.size() + 64);
  std::vector<size_t> starts;  // per stack item: where in `out` the opcodes that produce it begin
  std::vector<std::pair<size_t, size_t>> marks;  // (stack height, offset of the MARK in `out`)
  std::set<uint32_t> ordered_dict_memo;          // memo slots holding the OrderedDict class
  enum { normal, after_class, after_args } state = normal;
  size_t i = 0;
  auto take = [&](size_t n) {
    if (i + n > in.size()) throw fail(i, "the pickle ends inside an opcode (truncated)");
    const size_t at = i;
    i += n;
    return at;
  };
  auto le = [&](size_t at, size_t n) {
    uint32_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint32_t(static_cast<uint8_t>(in[at + k])) << (8 * k);
    return v;
  };
  auto line = [&]() {
    const size_t nl = in.find('\n', i);
    if (nl == std::string::npos) throw fail(i, "the pickle ends inside a GLOBAL (truncated)");
    std::string s = in.substr(i, nl - i);
    i = nl + 1;
    return s;
  };
  auto pop = [&](size_t at, size_t n) {
    if (starts.size() < n || (!marks.empty() && starts.size() - n < marks.back().first))
      throw fail(at, "malformed pickle (the stack underflows)");
    const size_t first = starts[starts.size() - n];
    starts.resize(starts.size() - n);
    return first;
  };
  auto pop_mark = [&](size_t at) {
    if (marks.empty() || marks.back().first > starts.size()) throw fail(at, "malformed pickle (no MARK)");
    const size_t mark_offset = marks.back().second;
    starts.resize(marks.back().first);
    marks.pop_back();
    return mark_offset;
  };
  while (true) {
    const size_t start = take(1);
    const uint8_t op = static_cast<uint8_t>(in[start]);
    const size_t here = out.size();
    if (state != normal) {
      // The OrderedDict class is on the stack: only `()` REDUCE (how OrderedDict pickles itself,
      // its items following as SETITEMS) may follow, after the class is memoised.
      if (state == after_class && (op == BINPUT || op == LONG_BINPUT)) {
        const size_t n = op == BINPUT ? 1 : 4;
        ordered_dict_memo.insert(le(take(n), n));
      } else if (state == after_class && op == EMPTY_TUPLE) {
        state = after_args;
      } else if (state == after_args && op == REDUCE) {
        out.push_back(static_cast<char>(EMPTY_DICT));
        starts.push_back(here);
        state = normal;
      } else {
        throw fail(start, "collections.OrderedDict is used other than as an empty OrderedDict()");
      }
      continue;
    }
    size_t arg = 0;  // bytes of argument after the opcode, copied as they are
    switch (op) {
      case PROTO: {
        const uint8_t version = static_cast<uint8_t>(in[take(1)]);
        if (version != 2)
          throw fail(start, fmt::format("pickle protocol {}; torch.save writes protocol 2", int(version)));
        out.append(in, start, 2);
        continue;
      }
      case STOP:
        out.push_back(static_cast<char>(STOP));
        return out;
      case MARK:
        marks.emplace_back(starts.size(), here);
        break;
      case EMPTY_TUPLE:
      case EMPTY_LIST:
      case EMPTY_DICT:
      case NONE:
      case NEWTRUE:
      case NEWFALSE:
        starts.push_back(here);
        break;
      case BININT1:
        arg = 1, starts.push_back(here);
        break;
      case BININT2:
        arg = 2, starts.push_back(here);
        break;
      case BININT:
        arg = 4, starts.push_back(here);
        break;
      case BINFLOAT:
        arg = 8, starts.push_back(here);
        break;
      case LONG1:  // a 1-byte length, then the little-endian integer
        arg = 1 + le(take(1), 1);
        i = start + 1;
        starts.push_back(here);
        break;
      case BINUNICODE:  // a 4-byte length, then UTF-8
        arg = 4 + size_t(le(take(4), 4));
        i = start + 1;
        starts.push_back(here);
        break;
      case BINPUT:
        arg = 1;
        break;
      case LONG_BINPUT:
        arg = 4;
        break;
      case BINGET:
      case LONG_BINGET: {
        const size_t n = op == BINGET ? 1 : 4;
        const uint32_t slot = le(take(n), n);
        if (ordered_dict_memo.count(slot)) {
          state = after_class;
        } else {
          out.append(in, start, 1 + n);
          starts.push_back(here);
        }
        continue;
      }
      case GLOBAL: {
        const std::string module = line(), name = line();
        if (module == "collections" && name == "OrderedDict") {
          state = after_class;
          continue;
        }
        const bool storage =
            module == "torch" && name.size() > 7 && name.compare(name.size() - 7, 7, "Storage") == 0;
        if (!storage && !(module == "torch._utils" && name == "_rebuild_tensor_v2") &&
            !(module == "torch.jit._pickle" && name == "restore_type_tag"))  // LibTorch's pickle_save
          throw fail(start, fmt::format(
                                "a Python object of type {}.{}, which a state dict (name -> tensor) does not "
                                "hold",
                                module, name));
        out.append(in, start, i - start);
        starts.push_back(here);
        continue;
      }
      case TUPLE:
        starts.push_back(pop_mark(start));
        break;
      case TUPLE1:
      case TUPLE2:
      case TUPLE3:
        starts.push_back(pop(start, op - TUPLE1 + 1));
        break;
      case SETITEMS:
      case APPENDS:
        pop_mark(start);
        break;
      case REDUCE:
        starts.push_back(pop(start, 2));
        break;
      case BINPERSID:
        starts.push_back(pop(start, 1));
        break;
      case BUILD: {  // dict state BUILD -> dict MARK kBuildStateKey state SETITEMS
        const size_t first = pop(start, 1);
        std::string key(1, static_cast<char>(MARK));
        key.push_back(static_cast<char>(BINUNICODE));
        for (int k = 0; k < 4; ++k)
          key.push_back(static_cast<char>((kBuildStateKey.size() >> (8 * k)) & 0xff));
        out.insert(first, key + kBuildStateKey);  // nothing recorded lies beyond `first`
        out.push_back(static_cast<char>(SETITEMS));
        continue;
      }
      case SETITEM:
      case APPEND: {  // container k v -> MARK k v SETITEMS (x -> MARK x APPENDS)
        const size_t first = pop(start, op == SETITEM ? 2 : 1);
        out.insert(first, 1, static_cast<char>(MARK));  // nothing recorded lies beyond `first`
        out.push_back(static_cast<char>(op == SETITEM ? SETITEMS : APPENDS));
        continue;
      }
      default:
        throw fail(start, fmt::format("pickle opcode 0x{:02x}, which torch.save does not write", int(op)));
    }
    take(arg);
    out.append(in, start, 1 + arg);
  }
}

// What Python would call an unpickled value's type.
std::string python_type(const c10::IValue& v) {
  if (v.isGenericDict()) return "dict";
  if (v.isList()) return "list";
  if (v.isTuple()) return "tuple";
  if (v.isInt()) return "int";
  if (v.isDouble()) return "float";
  if (v.isBool()) return "bool";
  if (v.isString()) return "str";
  if (v.isNone()) return "None";
  return v.tagKind();
}

// c10::Error's message without LibTorch's C++ backtrace.
std::string short_what(const c10::Error& e) {
  std::string s = e.what_without_backtrace();
  if (const auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

// ---- the params JSON ------------------------------------------------------------------------

// The fields of the official ModelConf (megalodon/config.py). efficient_attn and layerwise_ckpt
// choose a kernel and activation checkpointing; they change no weight and we have no such switch.
const std::vector<std::string>& official_fields() {
  static const std::vector<std::string> f = {
      "num_layers",        "model_dim",   "z_dim",          "value_dim", "num_heads",  "ffn_hidden_dim",
      "cema_ndim",         "chunk_size",  "efficient_attn", "init_mode", "vocab_size", "output_size",
      "norm_num_groups",   "norm_affine", "norm_eps",       "rope_base", "dropout",    "hidden_dropout",
      "attention_dropout", "swiglu",      "rescale_nffn",   "scale_emb", "share_emb",  "layerwise_ckpt"};
  return f;
}

// ---- checking the state dict ----------------------------------------------------------------

int kind(torch::ScalarType t) {
  return t == torch::kBool ? 0 : c10::isFloatingType(t) ? 1 : c10::isComplexType(t) ? 2 : 3;
}

// Relative spacing of a floating dtype: a value rounded to it is within this of the exact one.
double dtype_eps(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64:
      return 1e-15;
    case torch::kFloat32:
      return 1.2e-7;
    case torch::kFloat16:
      return 9.8e-4;
    case torch::kBFloat16:
      return 7.9e-3;
    default:
      return 0.0;
  }
}

std::map<std::string, Tensor> live_tensors(const torch::nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& p : m.named_parameters(true)) out.emplace(p.key(), p.value());
  for (const auto& b : m.named_buffers(true)) out.emplace(b.key(), b.value());
  return out;
}

fs::path shard_path(const fs::path& dir, int rank) {
  return dir / fmt::format("consolidated.{:02d}.pth", rank);
}

}  // namespace

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return "float32";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    case torch::kFloat64:
      return "float64";
    case torch::kInt64:
      return "int64";
    default:
      return c10::toString(t);
  }
}

std::map<std::string, Tensor> read_torch_state_dict(const fs::path& file) {
  const std::string where = file.string();
  {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error(fmt::format("{}: cannot open the checkpoint", where));
    char magic[4] = {0, 0, 0, 0};
    in.read(magic, 4);
    if (in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) != 0) {
      // The pre-1.6 torch.save format starts with a pickled magic number (protocol 2: 0x80 0x02).
      if (static_cast<uint8_t>(magic[0]) == 0x80)
        throw std::runtime_error(fmt::format(
            "{}: the legacy (pre-1.6, non-zip) torch.save format; load it in PyTorch and save it again with "
            "torch.save (which writes the zip format since 1.6)",
            where));
      throw std::runtime_error(
          fmt::format("{}: not a torch.save checkpoint (a zip archive starting with PK\\x03\\x04); "
                      "it starts with bytes {:02x} {:02x} {:02x} {:02x}",
                      where, static_cast<uint8_t>(magic[0]), static_cast<uint8_t>(magic[1]),
                      static_cast<uint8_t>(magic[2]), static_cast<uint8_t>(magic[3])));
    }
    if (in.gcount() < 4)
      throw std::runtime_error(
          fmt::format("{}: not a torch.save checkpoint ({} bytes long)", where, in.gcount()));
  }
  c10::IValue root;
  try {
    caffe2::serialize::PyTorchStreamReader zip(where);
    if (!zip.hasRecord("data.pkl"))
      throw std::runtime_error(fmt::format("{}: a zip archive without the data.pkl of torch.save", where));
    const auto [pkl_data, pkl_size] = zip.getRecord("data.pkl");
    const std::string pickle =
        rewrite_state_dict_pickle(std::string(static_cast<const char*>(pkl_data.get()), pkl_size), where);
    size_t pos = 0;
    auto reader = [&](char* buf, size_t n) {
      n = std::min(n, pickle.size() - pos);
      std::memcpy(buf, pickle.data() + pos, n);
      pos += n;
      return n;
    };
    // Storages are read once however many tensors view them (a tied head shares the embedding's).
    auto storages = std::make_shared<torch::jit::DeserializationStorageContext>();
    torch::jit::Unpickler unpickler(
        reader, nullptr, nullptr,
        [&](const std::string& name) { return std::get<0>(zip.getRecord("data/" + name)); },
        at::Device(at::kCPU), false, torch::jit::Unpickler::defaultTypeParser, storages);
    unpickler.set_version(zip.version());
    root = unpickler.parse_ivalue();
  } catch (const c10::Error& e) {
    throw std::runtime_error(fmt::format("{}: cannot read the torch.save archive: {}", where, short_what(e)));
  } catch (const std::logic_error& e) {  // LibTorch's unpickler indexes with .at() (a fuzz finding)
    throw std::runtime_error(fmt::format("{}: cannot read the torch.save archive: {}", where, e.what()));
  }
  if (!root.isGenericDict())
    throw std::runtime_error(fmt::format("{}: the top level is a {}, not a state dict (name -> tensor)",
                                         where, python_type(root)));
  auto dict = root.toGenericDict();
  (void)dict.erase(kBuildStateKey);  // the OrderedDict's _metadata
  std::map<std::string, Tensor> out;
  for (const auto& item : dict) {
    if (!item.key().isString())
      throw std::runtime_error(
          fmt::format("{}: a state dict key of type {} (expected strings)", where, python_type(item.key())));
    const std::string& key = item.key().toStringRef();
    if (!item.value().isTensor())
      throw std::runtime_error(
          fmt::format("{}: a non-tensor value ({}) under key '{}'; the official consolidated.pth holds the "
                      "model's state dict "
                      "itself (megalodon/reloading.py loads it straight into load_state_dict)",
                      where, python_type(item.value()), key));
    out.emplace(key, item.value().toTensor());
  }
  return out;
}

mgl::MegalodonConfig official_model_config(const nlohmann::json& j, const std::string& where,
                                           int64_t vocab_size) {
  if (!j.is_object()) throw ConfigError(where, "", "the params must be a JSON object");
  // The official config.json is the whole training config with the ModelConf under "model"; its other
  // sections (tokenizer, optim, model_parallel_size, ...) do not describe the weights.
  const bool nested = j.contains("model");
  if (nested && !j["model"].is_object())
    throw ConfigError(where, "model", "must be a JSON object (the ModelConf)");
  const nlohmann::json& conf = nested ? j["model"] : j;
  const std::string prefix = nested ? "model." : "";
  const auto& fields = official_fields();
  nlohmann::json ours = nlohmann::json::object();
  for (const auto& [k, v] : conf.items()) {
    if (std::find(fields.begin(), fields.end(), k) == fields.end())
      throw ConfigError(where, prefix + k,
                        fmt::format("not a field of the official ModelConf (megalodon/config.py: {})",
                                    fmt::join(fields, ", ")));
    if (k == "efficient_attn") {
      if (!(v.is_null() || (v.is_string() && (v == "swift" || v == "fused"))))
        throw ConfigError(where, prefix + k,
                          fmt::format("expected null, \"swift\" or \"fused\", got {}", v.dump()));
    } else if (k == "layerwise_ckpt") {
      if (!v.is_boolean())
        throw ConfigError(where, prefix + k, fmt::format("expected a boolean, got {}", v.dump()));
    } else if (k == "rope_base" && v.is_null()) {
      // None: RotaryEmbedding uses 10000, MegalodonConfig's default.
    } else {
      ours[k] = v;
    }
  }
  if (vocab_size > 0) {
    if (ours.contains("vocab_size") && ours["vocab_size"].is_number_integer() &&
        ours["vocab_size"].get<int64_t>() > 0 && ours["vocab_size"].get<int64_t>() != vocab_size)
      throw ConfigError(
          where, prefix + "vocab_size",
          fmt::format("is {}, but --vocab-size {} was given (the official code asserts they agree)",
                      ours["vocab_size"].get<int64_t>(), vocab_size));
    ours["vocab_size"] = vocab_size;
  }
  MegalodonConfig c;
  try {
    c = megalodon_config_from_json(ours, where);
  } catch (const ConfigError& e) {
    if (!nested || e.key.empty() || e.key.rfind("model.", 0) == 0) throw;  // validate() keys are model.<key>
    throw ConfigError(where, prefix + e.key, e.detail);                    // re-key it as model.<key>
  }
  if (c.vocab_size <= 0)
    throw ConfigError(
        where, prefix + "vocab_size",
        fmt::format("is {}: the official code sets it from the tokenizer; give --vocab-size N (the rows "
                    "of embed.weight)",
                    c.vocab_size));
  return c;
}

mgl::MegalodonConfig read_official_params(const fs::path& file, int64_t vocab_size) {
  return official_model_config(read_json(file), file.string(), vocab_size);
}

void load_official_state(MegalodonLMImpl& lm, const std::map<std::string, Tensor>& state,
                         const std::string& where) {
  const MegalodonConfig& c = lm.cfg;
  const auto live = live_tensors(lm);
  std::vector<std::string> problems;
  for (const auto& [name, t] : live) {
    auto it = state.find(name);
    if (it == state.end()) {
      problems.push_back(fmt::format("missing tensor '{}' (the model expects {} {})", name,
                                     dtype_name(t.scalar_type()), shape_str(t.sizes())));
      continue;
    }
    const Tensor& f = it->second;
    if (f.sizes() != t.sizes())
      problems.push_back(fmt::format("tensor '{}': shape {} in the checkpoint, the model expects {}", name,
                                     shape_str(f.sizes()), shape_str(t.sizes())));
    else if (kind(f.scalar_type()) != kind(t.scalar_type()) &&
             // Module::to(dtype) makes the prior_count buffer floating; the official one is int64.
             !(name.size() >= 11 && name.compare(name.size() - 11, 11, "prior_count") == 0 &&
               c10::isIntegralType(f.scalar_type(), false)))
      problems.push_back(fmt::format("tensor '{}': dtype {} in the checkpoint, the model expects {}", name,
                                     dtype_name(f.scalar_type()), dtype_name(t.scalar_type())));
  }
  for (const auto& [name, f] : state) {
    if (live.count(name)) continue;
    if (name == "rope.freqs") {
      // The RotaryEmbedding buffer (§3.3), cast with the model: compare in its own precision.
      const Tensor expect = rope_freqs(c).to(torch::kFloat64);
      if (!f.is_floating_point() || f.sizes() != expect.sizes()) {
        problems.push_back(fmt::format(
            "tensor 'rope.freqs': {} {} in the checkpoint, expected {} floats (d_z/2 = {})",
            dtype_name(f.scalar_type()), shape_str(f.sizes()), expect.numel(), c.z_head_dim() / 2));
      } else {
        const double rel = ((f.to(torch::kFloat64) - expect).abs() / expect.abs()).max().item<double>();
        if (!(rel <= dtype_eps(f.scalar_type())))
          problems.push_back(
              fmt::format("tensor 'rope.freqs' does not match rope_base = {} and d_z = {} (relative "
                          "difference {:.3g}); is rope_base in the params right?",
                          c.rope_base, c.z_head_dim(), rel));
      }
      continue;
    }
    if (name == "output.output.weight" && c.share_emb) {
      // With share_emb the head is the embedding Parameter, listed under both names (§4.3).
      auto e = state.find("embed.weight");
      if (e != state.end() && !(f.sizes() == e->second.sizes() &&
                                f.scalar_type() == e->second.scalar_type() && f.equal(e->second)))
        problems.push_back(
            "tensor 'output.output.weight' differs from 'embed.weight', but with share_emb the head is the "
            "embedding "
            "(§4.3): is share_emb in the params right?");
      continue;
    }
    problems.push_back(
        fmt::format("unexpected tensor '{}' ({} {}): the model of these params has no such parameter or "
                    "buffer",
                    name, dtype_name(f.scalar_type()), shape_str(f.sizes())));
  }
  if (!problems.empty())
    throw std::runtime_error(fmt::format("{} does not match the model of its params: {} problem{}:\n  {}",
                                         where, problems.size(), problems.size() == 1 ? "" : "s",
                                         fmt::join(problems, "\n  ")));
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : live) {
    Tensor target = t;  // shares the parameter's storage
    target.copy_(state.at(name));
  }
}

ConvertSummary convert_official_checkpoint(const ConvertOptions& o, const fs::path& out) {
  const fs::path& dir = o.official_dir;
  if (!fs::is_directory(dir))
    throw std::runtime_error(
        fmt::format("{}: not a directory (the official checkpoint directory)", dir.string()));
  if (fs::exists(out) && fs::equivalent(out, dir))
    throw std::runtime_error(fmt::format(
        "--out {} is the official directory: its config.json would be overwritten; write somewhere else",
        out.string()));
  ConvertSummary s;
  s.out = out;

  // Model parallelism: consolidate_config.json records the size; rank r's shard is
  // consolidated.{r:02d}.pth (megalodon/reloading.py: get_consolidated_ckpt_path).
  int64_t mp = 1;
  const fs::path consolidate = dir / "consolidate_config.json";
  if (fs::exists(consolidate)) {
    const nlohmann::json cc = read_json(consolidate);
    if (cc.contains("model_parallel_size")) {
      if (!cc["model_parallel_size"].is_number_integer() || cc["model_parallel_size"].get<int64_t>() < 1)
        throw ConfigError(consolidate.string(), "model_parallel_size", "expected a positive integer");
      mp = cc["model_parallel_size"].get<int64_t>();
    }
    s.notes.push_back(fmt::format("{}: model_parallel_size {}, dtype {}", consolidate.filename().string(), mp,
                                  cc.contains("dtype") ? cc["dtype"].dump() : "not recorded"));
  }
  int shards = 0;
  while (fs::exists(shard_path(dir, shards))) ++shards;
  static const std::regex shard_name(R"(consolidated\.\d\d\.pth)");
  const bool named_shard =
      !o.checkpoint.empty() && std::regex_match(o.checkpoint.filename().string(), shard_name);
  if (mp > 1 || named_shard || (o.checkpoint.empty() && !fs::exists(dir / "consolidated.pth") && shards > 0))
    throw std::runtime_error(fmt::format(
        "{}: a model-parallel checkpoint ({} shard{} consolidated.NN.pth found{}); merging shards is not "
        "supported: "
        "each shard holds a slice of every partitioned weight, split along a dimension that depends on the "
        "layer. "
        "Convert a checkpoint consolidated with model_parallel_size 1 (a single consolidated.pth)",
        dir.string(), shards, shards == 1 ? "" : "s",
        mp > 1 ? fmt::format(", consolidate_config.json says model_parallel_size {}", mp) : ""));

  s.checkpoint = o.checkpoint.empty() ? dir / "consolidated.pth" : o.checkpoint;
  if (o.params.empty()) {
    s.params = fs::exists(dir / "config.json") ? dir / "config.json" : dir / "params.json";
    if (!fs::exists(s.params))
      throw std::runtime_error(fmt::format(
          "{}: no config.json (or params.json) holding the ModelConf; give --params", dir.string()));
  } else {
    s.params = o.params;
  }
  if (!fs::exists(s.checkpoint))
    throw std::runtime_error(
        fmt::format("{}: no such checkpoint (give --checkpoint)", s.checkpoint.string()));

  s.spec.architecture = "megalodon_lm";
  s.spec.model = read_official_params(s.params, o.vocab_size);
  const auto state = read_torch_state_dict(s.checkpoint);
  s.tensors_read = state.size();

  std::set<torch::ScalarType> floating;
  for (const auto& [name, t] : state)
    if (t.is_floating_point()) floating.insert(t.scalar_type());
  if (floating.empty())
    throw std::runtime_error(fmt::format("{}: no floating-point tensors", s.checkpoint.string()));
  s.source_dtype = *floating.begin();
  if (floating.size() > 1) {
    std::vector<std::string> names;
    for (auto t : floating) names.push_back(dtype_name(t));
    if (!o.dtype)
      throw std::runtime_error(
          fmt::format("{}: tensors of several floating dtypes ({}); choose one with --dtype",
                      s.checkpoint.string(), fmt::join(names, ", ")));
    s.notes.push_back(fmt::format("the checkpoint mixes {}", fmt::join(names, ", ")));
  }
  s.dtype = o.dtype.value_or(s.source_dtype);

  auto model = build_model(s.spec);
  auto& lm = dynamic_cast<MegalodonLMImpl&>(*model);
  lm.to(s.dtype);  // the copy below rounds once, from the checkpoint's values
  load_official_state(lm, state, s.checkpoint.string());
  if (state.count("rope.freqs"))
    s.notes.push_back(fmt::format("rope.freqs matches rope_base {} (our file computes it from the config)",
                                  s.spec.model.rope_base));
  if (s.spec.model.share_emb && state.count("output.output.weight"))
    s.notes.push_back("output.output.weight equals embed.weight (the tied head)");

  export_weights(lm, s.spec, out);
  s.parameters = count_parameters(lm);
  s.tensors_written = model_state(lm).size();
  return s;
}

}  // namespace mgl::harness
