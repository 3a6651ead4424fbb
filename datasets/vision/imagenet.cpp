// ImageNet-1K raw layout reader and quirk-tolerant decoder (paper-benchmarks §3.10).
#include "datasets/vision/imagenet.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <sstream>

namespace mgl::datasets {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSynsetMapping = "LOC_synset_mapping.txt";
constexpr const char* kValSolution = "LOC_val_solution.csv";

// ---- names and listings -------------------------------------------------------------------

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_image_name(const fs::path& p) {
  const std::string ext = lower(p.extension().string());
  return ext == ".jpeg" || ext == ".jpg" || ext == ".png";
}

// A WordNet noun id as ImageNet writes it: 'n' and 8 digits (n01440764).
bool is_wnid(const std::string& s) {
  if (s.size() != 9 || s[0] != 'n') return false;
  return std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// Up to `max` items of a list, comma-separated, with "and N more" after them.
std::string some_of(const std::vector<std::string>& items, size_t max = 5) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < max; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > max) out += fmt::format(" and {} more", items.size() - max);
  return out;
}

struct Listing {
  std::vector<std::string> dirs;    // sub-folder names (symlinks to folders included), sorted
  std::vector<std::string> images;  // other entries with an image extension, sorted
};

// One level of `dir`. Names starting with '.' are left out. The entry types come from readdir, so
// a folder of a thousand images costs no stat per file; a symlink is followed (a broken one lands
// among the images and fails check_files).
Listing list_dir(const fs::path& dir) {
  Listing out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw std::runtime_error(fmt::format("{}: cannot list ({})", dir.string(), ec.message()));
  for (; it != end; it.increment(ec)) {
    if (ec) throw std::runtime_error(fmt::format("{}: cannot list ({})", dir.string(), ec.message()));
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code type_ec;
    if (it->is_directory(type_ec))
      out.dirs.push_back(name);
    else if (is_image_name(name))
      out.images.push_back(name);
  }
  // std::string orders bytes as unsigned values, i.e. like Python's sorted() on UTF-8 names.
  std::sort(out.dirs.begin(), out.dirs.end());
  std::sort(out.images.begin(), out.images.end());
  return out;
}

// Lines of a text file, '\r' and a leading UTF-8 byte-order mark removed; lines[i] is line i + 1.
std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file.string()));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lines.empty() && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    lines.push_back(std::move(line));
  }
  if (in.bad()) throw std::runtime_error(fmt::format("{}: read error", file.string()));
  return lines;
}

// ---- byte-level checks ----------------------------------------------------------------------

enum class Format { jpeg, png, other };

constexpr unsigned char kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

Format sniff(const unsigned char* head, size_t n) {
  if (n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) return Format::jpeg;
  if (n >= 8 && std::memcmp(head, kPngSignature, 8) == 0) return Format::png;
  return Format::other;
}

const char* format_name(Format f) { return f == Format::jpeg ? "JPEG" : f == Format::png ? "PNG" : "image"; }

// How many trailing bytes to look at: the end marker itself plus the allowed padding.
size_t tail_window(Format f) { return kImageTailSlack + (f == Format::png ? 12 : 2); }

// Finds `pattern` in bytes [p, p + n).
bool contains(const unsigned char* p, size_t n, const char* pattern, size_t len) {
  if (n < len) return false;
  for (size_t i = 0; i + len <= n; ++i)
    if (std::memcmp(p + i, pattern, len) == 0) return true;
  return false;
}

// "" when the head and tail bytes look like a complete JPEG or PNG, else the problem.
std::string byte_problem(const unsigned char* head, size_t head_n, const unsigned char* tail, size_t tail_n) {
  const Format f = sniff(head, head_n);
  if (f == Format::other) {
    std::string hex;
    for (size_t i = 0; i < std::min<size_t>(head_n, 4); ++i)
      hex += fmt::format("{}{:02x}", i ? " " : "", head[i]);
    return fmt::format("not a JPEG or PNG (the file starts with bytes {})", hex);
  }
  if (f == Format::jpeg && !contains(tail, tail_n, "\xFF\xD9", 2))
    return fmt::format("truncated JPEG (no end-of-image marker FF D9 in its last {} bytes)", tail_n);
  // The IEND chunk: length 0, type "IEND", then its CRC (4 bytes).
  if (f == Format::png && !contains(tail, tail_n >= 4 ? tail_n - 4 : 0, "IEND", 4))
    return fmt::format("truncated PNG (no IEND chunk in its last {} bytes)", tail_n);
  return "";
}

// check_files' test of one file: "" when it passes, else the problem. Reads only the first bytes
// and the last tail_window bytes.
std::string file_problem(const fs::path& file) {
  std::error_code ec;
  const fs::file_status st = fs::status(file, ec);
  if (!fs::exists(st)) return "missing (no such file)";
  if (!fs::is_regular_file(st)) return "not a regular file";
  const uintmax_t size = fs::file_size(file, ec);
  if (ec) return fmt::format("cannot read its size ({})", ec.message());
  if (size == 0) return "empty file (0 bytes)";
  std::ifstream in(file, std::ios::binary);
  if (!in) return "cannot open for reading";
  unsigned char head[8] = {};
  const size_t head_n = static_cast<size_t>(std::min<uintmax_t>(size, sizeof head));
  in.read(reinterpret_cast<char*>(head), static_cast<std::streamsize>(head_n));
  const size_t tail_n = static_cast<size_t>(std::min<uintmax_t>(size, tail_window(sniff(head, head_n))));
  std::vector<unsigned char> tail(tail_n);
  in.seekg(static_cast<std::streamoff>(size - tail_n));
  in.read(reinterpret_cast<char*>(tail.data()), static_cast<std::streamsize>(tail_n));
  if (!in) return "read error";
  return byte_problem(head, head_n, tail.data(), tail_n);
}

// ---- the text files ---------------------------------------------------------------------------

struct Synset {
  std::string wnid, name;
};

// LOC_synset_mapping.txt: `n01440764 tench, Tinca tinca` per line; blank lines are allowed. Returned
// sorted by WNID.
std::vector<Synset> read_synset_mapping(const fs::path& file) {
  const auto lines = read_lines(file);
  std::vector<Synset> out;
  std::map<std::string, size_t> line_of;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (trim(line).empty()) continue;
    const size_t space = line.find_first_of(" \t");
    const std::string wnid = line.substr(0, space);
    if (!is_wnid(wnid))
      throw std::runtime_error(
          fmt::format("{}:{}: expected '<wnid> <class name>' with a WNID like n01440764 at the start of the "
                      "line, got '{}'",
                      file.string(), i + 1, line));
    const auto [it, fresh] = line_of.emplace(wnid, i + 1);
    if (!fresh)
      throw std::runtime_error(fmt::format("{}:{}: {} is listed again (first on line {})", file.string(),
                                           i + 1, wnid, it->second));
    const std::string name = space == std::string::npos ? "" : trim(line.substr(space));
    out.push_back({wnid, name.empty() ? wnid : name});
  }
  if (out.empty()) throw std::runtime_error(fmt::format("{}: no classes listed", file.string()));
  std::sort(out.begin(), out.end(), [](const Synset& a, const Synset& b) { return a.wnid < b.wnid; });
  return out;
}

// One CSV record on one line (RFC 4180 quoting: a field in double quotes may hold commas, and ""
// stands for a quote). Returns false with `error` set for an unterminated quote or text after a
// closing quote.
bool split_csv_line(const std::string& line, std::vector<std::string>& fields, std::string& error) {
  fields.assign(1, "");
  size_t i = 0;
  while (i <= line.size()) {
    std::string& field = fields.back();
    if (i < line.size() && line[i] == '"') {
      const size_t open = i++;
      for (;;) {
        if (i >= line.size()) {
          error = fmt::format(
              "unterminated quoted field starting at column {} (a field spanning lines is not "
              "supported)",
              open + 1);
          return false;
        }
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += line[i++];
      }
      if (i < line.size() && line[i] != ',') {
        error = fmt::format("unexpected '{}' after the closing quote at column {}", line[i], i + 1);
        return false;
      }
    } else {
      const size_t comma = line.find(',', i);
      field += line.substr(i, comma == std::string::npos ? std::string::npos : comma - i);
      i = comma == std::string::npos ? line.size() : comma;
    }
    if (i >= line.size()) break;
    fields.emplace_back();  // line[i] == ','
    ++i;
  }
  return true;
}

}  // namespace

// ---- the index ------------------------------------------------------------------------------------

ImageNetIndex read_imagenet_index(const fs::path& root, BadImages bad, bool check_files) {
  ImageNetIndex ix;
  ix.root = root;
  if (!fs::is_directory(root))
    throw std::runtime_error(
        fmt::format("{}: not a directory (expected an ImageNet folder with train/ and val/)", root.string()));

  // Keeps `file` unless check_files finds a problem with it.
  auto keep = [&](const fs::path& file) {
    if (!check_files) return true;
    const std::string problem = file_problem(file);
    if (problem.empty()) return true;
    const std::string line = fmt::format("{}: {}", file.string(), problem);
    if (bad == BadImages::error) throw std::runtime_error(line);
    ix.skipped.push_back(line);
    return false;
  };

  // Classes: train/'s folders, checked against LOC_synset_mapping.txt when there is one.
  const fs::path train = root / "train";
  if (!fs::is_directory(train))
    throw std::runtime_error(
        fmt::format("{}: missing (expected train/<wnid>/ class folders)", train.string()));
  const Listing train_listing = list_dir(train);
  if (train_listing.dirs.empty())
    throw std::runtime_error(fmt::format("{}: no class folders (expected train/<wnid>/)", train.string()));
  const fs::path mapping = root / kSynsetMapping;
  const bool has_mapping = fs::exists(mapping);
  if (has_mapping) {
    std::vector<std::string> unfoldered, unlisted;
    const auto synsets = read_synset_mapping(mapping);
    const std::set<std::string> folders(train_listing.dirs.begin(), train_listing.dirs.end());
    std::set<std::string> listed;
    for (const auto& s : synsets) {
      listed.insert(s.wnid);
      if (!folders.count(s.wnid)) unfoldered.push_back(s.wnid);
      ix.wnids.push_back(s.wnid);
      ix.names.push_back(s.name);
    }
    for (const auto& f : train_listing.dirs)
      if (!listed.count(f)) unlisted.push_back(f);
    if (!unfoldered.empty() || !unlisted.empty()) {
      std::string what;
      if (!unfoldered.empty())
        what += fmt::format("; {} listed WNIDs have no folder: {}", unfoldered.size(), some_of(unfoldered));
      if (!unlisted.empty())
        what += fmt::format("; {} folders are not listed: {}", unlisted.size(), some_of(unlisted));
      throw std::runtime_error(fmt::format("{} ({} classes) does not match the class folders of {} ({}){}",
                                           mapping.string(), synsets.size(), train.string(),
                                           train_listing.dirs.size(), what));
    }
  } else {
    ix.wnids = train_listing.dirs;
    ix.names = train_listing.dirs;
  }
  std::map<std::string, int64_t> label_of;
  for (size_t c = 0; c < ix.wnids.size(); ++c) label_of[ix.wnids[c]] = int64_t(c);
  const std::string class_list_name =
      has_mapping ? mapping.filename().string() : fmt::format("the class folders of {}", train.string());

  for (size_t c = 0; c < ix.wnids.size(); ++c) {
    const fs::path dir = train / ix.wnids[c];
    const Listing l = list_dir(dir);
    if (l.images.empty())
      throw std::runtime_error(
          fmt::format("{}: empty class folder (no .JPEG, .jpg or .png files)", dir.string()));
    for (const auto& name : l.images)
      if (keep(dir / name)) ix.train.push_back({dir / name, int64_t(c)});
  }

  // Validation: the layout follows what val/ holds.
  const fs::path val = root / "val";
  if (!fs::is_directory(val))
    throw std::runtime_error(
        fmt::format("{}: missing (expected flat images labelled by {}, or val/<wnid>/ class folders)",
                    val.string(), kValSolution));
  const Listing val_listing = list_dir(val);
  if (!val_listing.images.empty() && !val_listing.dirs.empty())
    throw std::runtime_error(fmt::format(
        "{}: holds both image files ({}) and folders ({}); expected flat images labelled by {} or only "
        "val/<wnid>/ class folders",
        val.string(), some_of(val_listing.images, 2), some_of(val_listing.dirs, 2), kValSolution));
  struct ValItem {
    std::string name;
    fs::path path;
    int64_t label;
  };
  std::vector<ValItem> val_items;
  if (!val_listing.dirs.empty()) {
    ix.val_source = "val/<wnid>/ folders";
    for (const auto& wnid : val_listing.dirs) {
      const fs::path dir = val / wnid;
      const auto it = label_of.find(wnid);
      if (it == label_of.end())
        throw std::runtime_error(
            fmt::format("{}: '{}' is not a class (not in {})", dir.string(), wnid, class_list_name));
      const Listing l = list_dir(dir);
      if (l.images.empty())
        throw std::runtime_error(
            fmt::format("{}: empty class folder (no .JPEG, .jpg or .png files)", dir.string()));
      for (const auto& name : l.images) val_items.push_back({name, dir / name, it->second});
    }
  } else if (!val_listing.images.empty()) {
    ix.val_source = kValSolution;
    const fs::path csv = root / kValSolution;
    if (!fs::exists(csv))
      throw std::runtime_error(fmt::format(
          "{}: missing; {} holds {} flat images, whose labels it gives (or use val/<wnid>/ class folders)",
          csv.string(), val.string(), val_listing.images.size()));
    // ImageId is the file name without its extension; an ImageId that is a whole file name works too.
    std::map<std::string, std::string> file_of_id;
    for (const auto& name : val_listing.images) {
      const std::string stem = fs::path(name).stem().string();
      const auto [it, fresh] = file_of_id.emplace(stem, name);
      if (!fresh)
        throw std::runtime_error(
            fmt::format("{}: {} and {} have the same ImageId '{}'", val.string(), it->second, name, stem));
    }
    const auto lines = read_lines(csv);
    if (lines.empty())
      throw std::runtime_error(
          fmt::format("{}: empty (expected the header 'ImageId,PredictionString')", csv.string()));
    std::vector<std::string> fields;
    std::string error;
    if (!split_csv_line(lines[0], fields, error) || fields.size() != 2 || trim(fields[0]) != "ImageId" ||
        trim(fields[1]) != "PredictionString")
      throw std::runtime_error(fmt::format("{}:1: expected the header 'ImageId,PredictionString', got '{}'",
                                           csv.string(), lines[0]));
    std::map<std::string, size_t> row_of_file;  // val file name -> CSV line
    for (size_t i = 1; i < lines.size(); ++i) {
      if (trim(lines[i]).empty()) continue;
      const std::string where = fmt::format("{}:{}", csv.string(), i + 1);
      if (!split_csv_line(lines[i], fields, error))
        throw std::runtime_error(fmt::format("{}: {}", where, error));
      if (fields.size() != 2)
        throw std::runtime_error(fmt::format("{}: expected 2 fields (ImageId,PredictionString), got {}: '{}'",
                                             where, fields.size(), lines[i]));
      const std::string id = trim(fields[0]);
      std::istringstream prediction(fields[1]);
      std::string wnid;
      prediction >> wnid;
      if (id.empty()) throw std::runtime_error(fmt::format("{}: empty ImageId", where));
      if (!is_wnid(wnid))
        throw std::runtime_error(fmt::format(
            "{}: expected PredictionString to start with a WNID like n01440764, got '{}'", where, fields[1]));
      const auto label = label_of.find(wnid);
      if (label == label_of.end())
        throw std::runtime_error(
            fmt::format("{}: unknown WNID {} (not in {})", where, wnid, class_list_name));
      auto file = file_of_id.find(id);
      if (file == file_of_id.end()) {
        const auto exact = std::find(val_listing.images.begin(), val_listing.images.end(), id);
        if (exact == val_listing.images.end())
          throw std::runtime_error(
              fmt::format("{}: image {} (ImageId '{}', as .JPEG, .jpg or .png) does not exist", where,
                          (val / (id + ".JPEG")).string(), id));
        file = file_of_id.find(fs::path(id).stem().string());
      }
      const auto [seen, fresh] = row_of_file.emplace(file->second, i + 1);
      if (!fresh)
        throw std::runtime_error(
            fmt::format("{}: ImageId '{}' has a row already (line {})", where, id, seen->second));
      val_items.push_back({file->second, val / file->second, label->second});
    }
    std::vector<std::string> unlabelled;
    for (const auto& name : val_listing.images)
      if (!row_of_file.count(name)) unlabelled.push_back(name);
    if (!unlabelled.empty())
      throw std::runtime_error(fmt::format("{}: no row in {} ({} flat val images have none: {})",
                                           (val / unlabelled[0]).string(), csv.string(), unlabelled.size(),
                                           some_of(unlabelled, 3)));
  } else {
    throw std::runtime_error(
        fmt::format("{}: empty (expected flat images labelled by {}, or val/<wnid>/ class folders)",
                    val.string(), kValSolution));
  }
  // Sorted by file name in both layouts, so both give the same order for the same images.
  std::sort(val_items.begin(), val_items.end(), [](const ValItem& a, const ValItem& b) {
    return a.name != b.name ? a.name < b.name : a.path < b.path;
  });
  for (const auto& v : val_items)
    if (keep(v.path)) ix.val.push_back({v.path, v.label});
  return ix;
}

// ---- quirks ---------------------------------------------------------------------------------------

std::vector<std::string> image_quirks(const unsigned char* d, size_t n, const std::string& extension) {
  std::vector<std::string> out;
  const Format f = sniff(d, n);
  if (f == Format::other) return out;
  const std::string ext = lower(extension);
  const bool named_png = ext == ".png";
  if (f == Format::png && !named_png)
    out.push_back(fmt::format("PNG data under a {} name: decoded as PNG by its content", extension));
  if (f == Format::jpeg && named_png)
    out.push_back(fmt::format("JPEG data under a {} name: decoded as JPEG by its content", extension));
  auto be16 = [&](size_t at) { return static_cast<unsigned>(d[at]) << 8 | d[at + 1]; };
  if (f == Format::png) {
    // IHDR is the first chunk: length (4), "IHDR", width (4), height (4), bit depth, colour type.
    if (n < 8 + 8 + 13 || std::memcmp(d + 12, "IHDR", 4) != 0) return out;
    const unsigned depth = d[24], colour = d[25];
    if (colour == 0 || colour == 4) out.push_back("grayscale PNG: R = G = B");
    if (colour == 3) out.push_back("palette PNG: expanded to RGB");
    if (colour == 4 || colour == 6) out.push_back("PNG with an alpha channel: alpha dropped");
    if (depth == 16) out.push_back("16-bit PNG: reduced to 8 bits");
    return out;
  }
  // JPEG: walk the marker segments after SOI (FF D8) up to the frame header (SOFn) or the scan.
  int adobe_transform = -1;
  size_t pos = 2;
  while (pos + 4 <= n) {
    if (d[pos] != 0xFF) return out;  // not a marker where one must be: leave it to the decoder
    const unsigned marker = d[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
      pos += 2;
      continue;
    }
    if (marker == 0xD9 || marker == 0xDA) return out;  // end of image / start of scan before a frame
    const size_t length = be16(pos + 2);
    if (length < 2 || length > n - pos - 2) return out;
    const size_t body = pos + 4, body_n = length - 2;
    if (marker == 0xEE && body_n >= 12 && std::memcmp(d + body, "Adobe", 5) == 0) adobe_transform = d[body + 11];
    const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) {
      if (body_n < 6) return out;
      const unsigned components = d[body + 5];
      if (components == 1) out.push_back("grayscale JPEG: R = G = B");
      if (components == 4)
        out.push_back(adobe_transform == 2
                          ? "YCCK JPEG: converted to RGB (Adobe convention, inverted stored values)"
                          : "CMYK JPEG: converted to RGB (Adobe convention, inverted stored values)");
      if (d[body] != 8) out.push_back(fmt::format("{}-bit JPEG samples: reduced to 8 bits", d[body]));
      return out;
    }
    pos = body + body_n;
  }
  return out;
}

std::vector<std::string> image_quirks(const fs::path& file, size_t bytes_limit) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return {};
  std::vector<unsigned char> bytes(bytes_limit);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return image_quirks(bytes.data(), bytes.size(), file.extension().string());
}

// ---- decoding -------------------------------------------------------------------------------------

cv::Mat decode_image_rgb(const fs::path& file) {
  std::error_code ec;
  const fs::file_status st = fs::status(file, ec);
  if (!fs::exists(st)) throw ImageError(fmt::format("{}: missing (no such file)", file.string()));
  if (!fs::is_regular_file(st)) throw ImageError(fmt::format("{}: not a regular file", file.string()));
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ImageError(fmt::format("{}: cannot open for reading", file.string()));
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw ImageError(fmt::format("{}: read error", file.string()));
  if (bytes.empty()) throw ImageError(fmt::format("{}: empty file (0 bytes)", file.string()));

  // The same checks as check_files: libjpeg only warns about a truncated file and fills the
  // missing rows with grey, which would train on a half-grey image without a word.
  const Format format = sniff(bytes.data(), bytes.size());
  const size_t tail_n = std::min(bytes.size(), tail_window(format));
  const std::string problem =
      byte_problem(bytes.data(), bytes.size(), bytes.data() + bytes.size() - tail_n, tail_n);
  if (!problem.empty()) throw ImageError(fmt::format("{}: {}", file.string(), problem));

  cv::Mat bgr;
  try {
    // IMREAD_COLOR gives 8-bit BGR for grayscale, 16-bit, palette and alpha PNGs and for CMYK/YCCK
    // JPEGs (OpenCV converts 4-channel JPEGs with the Adobe convention, checked by the tests);
    // IMREAD_IGNORE_ORIENTATION leaves EXIF rotation alone, as PIL does.
    bgr = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw ImageError(
        fmt::format("{}: OpenCV cannot decode this {}: {}", file.string(), format_name(format), e.what()));
  }
  if (bgr.empty())
    throw ImageError(
        fmt::format("{}: OpenCV cannot decode this {} (corrupt data?)", file.string(), format_name(format)));
  if (bgr.type() != CV_8UC3)
    throw ImageError(
        fmt::format("{}: decoded to OpenCV type {}, expected 8-bit 3-channel", file.string(), bgr.type()));
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

}  // namespace mgl::datasets
