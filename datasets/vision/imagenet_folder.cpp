// The ImageNet-layout writer over IDX images; see imagenet_folder.h for the layout.
#include "datasets/vision/imagenet_folder.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <stdexcept>

// clang-format off
#include <cstdio>  // jpeglib.h uses FILE and size_t without including them
#include <jpeglib.h>
// clang-format on

#include "datasets/idx.h"

namespace mgl::datasets {

const char* const kFashionMnistClassNames[kImageNetFolderClasses] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

std::string imagenet_folder_wnid(int64_t label) { return fmt::format("n{:08d}", 91000000 + 100 * label); }

namespace {

namespace fs = std::filesystem;

constexpr int kJpegQuality = 90;

// ---- randomness: std::mt19937_64's output is fixed by the standard; the bounded draw and the
// shuffle are ours (std::uniform_int_distribution and std::shuffle differ between libraries).

uint64_t below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    const uint64_t r = rng();
    if (r < limit) return r % n;
  }
}

template <class T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(rng, i)]);
}

// ---- the IDX source --------------------------------------------------------------------------

struct ImageSet {
  torch::Tensor images;  // N×H×W uint8, contiguous
  torch::Tensor labels;  // N uint8
  fs::path labels_file;
};

fs::path idx_file(const fs::path& dir, const std::string& name) {
  for (const fs::path& p : {dir / (name + ".gz"), dir / name})
    if (fs::exists(p)) return p;
  throw std::runtime_error(fmt::format(
      "{}: no {}[.gz] (Fashion-MNIST: apt-get install dataset-fashion-mnist)", dir.string(), name));
}

ImageSet read_set(const fs::path& dir, const std::string& prefix) {
  const fs::path images = idx_file(dir, prefix + "-images-idx3-ubyte");
  const fs::path labels = idx_file(dir, prefix + "-labels-idx1-ubyte");
  ImageSet s{read_idx_u8(images).contiguous(), read_idx_u8(labels).contiguous(), labels};
  if (s.images.dim() != 3)
    throw std::runtime_error(
        fmt::format("{}: expected N×H×W images, got {} dimensions", images.string(), s.images.dim()));
  if (s.labels.dim() != 1 || s.labels.size(0) != s.images.size(0))
    throw std::runtime_error(fmt::format("{}: expected {} labels to match {}", labels.string(),
                                         s.images.size(0), images.string()));
  if (s.labels.numel() > 0 && s.labels.max().item<int64_t>() >= kImageNetFolderClasses)
    throw std::runtime_error(fmt::format("{}: label {} is not one of the {} classes", labels.string(),
                                         s.labels.max().item<int64_t>(), kImageNetFolderClasses));
  return s;
}

// `per_class` indices of each class, drawn without replacement and listed in ascending order.
std::vector<std::vector<int64_t>> pick(const ImageSet& s, int64_t per_class, std::mt19937_64& rng,
                                       const char* what) {
  std::vector<std::vector<int64_t>> of_class(kImageNetFolderClasses);
  const uint8_t* labels = s.labels.data_ptr<uint8_t>();
  for (int64_t i = 0; i < s.labels.size(0); ++i) of_class[labels[i]].push_back(i);
  for (int64_t c = 0; c < kImageNetFolderClasses; ++c) {
    auto& v = of_class[size_t(c)];
    if (int64_t(v.size()) < per_class)
      throw std::invalid_argument(
          fmt::format("{} {} images per class asked for, but class {} ({}) has only {} in {}", per_class,
                      what, c, kFashionMnistClassNames[c], v.size(), s.labels_file.string()));
    shuffle(v, rng);
    v.resize(size_t(per_class));
    std::sort(v.begin(), v.end());
  }
  return of_class;
}

// ---- encoders --------------------------------------------------------------------------------

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  unsigned char* buffer;  // jpeg_mem_dest's output; here (not a local) so that it survives the longjmp
};

void on_jpeg_error(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegError*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->jump, 1);
}

// libjpeg reports errors by longjmp, so this function holds no C++ objects with destructors.
// Returns a malloc'ed buffer (or nullptr with `message` set).
unsigned char* encode_cmyk_raw(const unsigned char* cmyk, int width, int height, unsigned long* size,
                               char* message) {
  jpeg_compress_struct ci;
  JpegError err;
  err.buffer = nullptr;
  ci.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = on_jpeg_error;
  if (setjmp(err.jump)) {
    jpeg_destroy_compress(&ci);
    std::free(err.buffer);
    std::memcpy(message, err.message, JMSG_LENGTH_MAX);
    return nullptr;
  }
  jpeg_create_compress(&ci);
  *size = 0;
  jpeg_mem_dest(&ci, &err.buffer, size);
  ci.image_width = JDIMENSION(width);
  ci.image_height = JDIMENSION(height);
  ci.input_components = 4;
  ci.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&ci);
  jpeg_set_colorspace(&ci, JCS_CMYK);  // stored as CMYK, with an Adobe APP14 marker (transform 0)
  jpeg_set_quality(&ci, kJpegQuality, TRUE);
  jpeg_start_compress(&ci, TRUE);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW row = const_cast<unsigned char*>(cmyk) + size_t(ci.next_scanline) * size_t(width) * 4;
    jpeg_write_scanlines(&ci, &row, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  return err.buffer;
}

// A grey image as a CMYK JPEG in the Adobe convention that Photoshop writes (stored values are
// 255 − ink): no cyan, magenta or yellow ink (stored 255) and black ink 255 − grey (stored grey),
// which a correct decoder turns back into R = G = B = grey.
std::vector<unsigned char> encode_cmyk_jpeg(const cv::Mat& gray) {
  std::vector<unsigned char> cmyk(size_t(gray.rows) * size_t(gray.cols) * 4);
  for (int y = 0; y < gray.rows; ++y)
    for (int x = 0; x < gray.cols; ++x) {
      unsigned char* p = &cmyk[(size_t(y) * size_t(gray.cols) + size_t(x)) * 4];
      p[0] = p[1] = p[2] = 255;
      p[3] = gray.at<uint8_t>(y, x);
    }
  unsigned long size = 0;
  char message[JMSG_LENGTH_MAX] = {};
  unsigned char* buf = encode_cmyk_raw(cmyk.data(), gray.cols, gray.rows, &size, message);
  if (!buf) throw std::runtime_error(fmt::format("libjpeg cannot write a CMYK JPEG: {}", message));
  std::vector<unsigned char> out(buf, buf + size);
  std::free(buf);
  return out;
}

enum class Kind { jpeg_rgb, jpeg_gray, png_as_jpeg, jpeg_cmyk };

std::vector<unsigned char> encode(const cv::Mat& gray, Kind kind) {
  if (kind == Kind::jpeg_cmyk) return encode_cmyk_jpeg(gray);
  cv::Mat img = gray;
  if (kind != Kind::jpeg_gray) cv::cvtColor(gray, img, cv::COLOR_GRAY2BGR);
  std::vector<unsigned char> out;
  const bool ok = kind == Kind::png_as_jpeg
                      ? cv::imencode(".png", img, out)
                      : cv::imencode(".jpg", img, out, {cv::IMWRITE_JPEG_QUALITY, kJpegQuality});
  if (!ok) throw std::runtime_error("OpenCV cannot encode an image");
  return out;
}

// Written to `<file>.tmp` and renamed into place, so a reader never sees a torn image (the reader
// ignores the .tmp names). Not fsync'ed one by one: a hundred thousand syncs would take minutes,
// and read_imagenet_index's check_files catches the empty files a crash could leave.
void write_bytes_atomic(const fs::path& file, const std::vector<unsigned char>& bytes) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot create", tmp.string()));
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    out.close();
    if (!out) throw std::runtime_error(fmt::format("{}: write failed", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec)
    throw std::runtime_error(fmt::format("{}: cannot rename into place: {}", file.string(), ec.message()));
}

cv::Mat image_at(const ImageSet& s, int64_t i, int side) {
  const int h = int(s.images.size(1)), w = int(s.images.size(2));
  cv::Mat src(h, w, CV_8U, s.images.data_ptr<uint8_t>() + i * h * w);
  if (side == h && side == w) return src.clone();
  cv::Mat out;
  cv::resize(src, out, cv::Size(side, side), 0, 0, cv::INTER_CUBIC);
  return out;
}

}  // namespace

ImageNetFolderStats write_imagenet_folder(const fs::path& out, const ImageNetFolderOptions& o,
                                          const std::function<void(const std::string&)>& progress) {
  if (o.train_per_class < 1 || o.val_per_class < 1)
    throw std::invalid_argument("train_per_class and val_per_class must be >= 1");
  if (o.size < 1 || o.size > 4096)
    throw std::invalid_argument(fmt::format("size {} is not in 1..4096", o.size));
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };

  const ImageSet train = read_set(o.idx_dir, "train"), test = read_set(o.idx_dir, "t10k");
  // One stream, drawn in a fixed order: train picks, val picks, val order, CSV row order.
  std::mt19937_64 rng(o.seed);
  const auto train_picks = pick(train, o.train_per_class, rng, "train");
  const auto val_picks = pick(test, o.val_per_class, rng, "val (t10k)");
  std::vector<std::pair<int64_t, int64_t>> val_order;  // (t10k index, class), in val file order
  for (int64_t c = 0; c < kImageNetFolderClasses; ++c)
    for (int64_t i : val_picks[size_t(c)]) val_order.emplace_back(i, c);
  shuffle(val_order, rng);

  // Only what this writer makes is replaced; anything else in `out` stays.
  for (const fs::path& f :
       {out / "train", out / "val", out / "LOC_val_solution.csv", out / "LOC_synset_mapping.txt"}) {
    if (!fs::exists(fs::symlink_status(f))) continue;
    if (!o.force)
      throw std::runtime_error(fmt::format("{} exists; pass force (--force) to replace the data set in {}",
                                           f.string(), out.string()));
    fs::remove_all(f);
  }

  ImageNetFolderStats stats;
  for (int64_t c = 0; c < kImageNetFolderClasses; ++c) {
    const std::string wnid = imagenet_folder_wnid(c);
    const fs::path dir = out / "train" / wnid;
    fs::create_directories(dir);
    const auto& picks = train_picks[size_t(c)];
    for (size_t j = 0; j < picks.size(); ++j) {
      Kind kind = Kind::jpeg_rgb;
      if (o.quirks && j == 0)
        kind = c == 0 ? Kind::png_as_jpeg : c == 1 ? Kind::jpeg_gray : c == 2 ? Kind::jpeg_cmyk : kind;
      const fs::path file = dir / fmt::format("{}_{}.JPEG", wnid, picks[j]);
      write_bytes_atomic(file, encode(image_at(train, picks[j], o.size), kind));
      if (kind != Kind::jpeg_rgb) {
        stats.quirks.push_back(fmt::format("{}: {}", file.string(),
                                           kind == Kind::png_as_jpeg ? "a PNG"
                                           : kind == Kind::jpeg_gray ? "a grayscale JPEG"
                                                                     : "a CMYK JPEG (Adobe convention)"));
        say("quirk: " + stats.quirks.back());
      }
    }
    stats.train += int64_t(picks.size());
    say(fmt::format("train {}/{} {} {}: {} images", c + 1, kImageNetFolderClasses, wnid,
                    kFashionMnistClassNames[c], picks.size()));
  }

  fs::create_directories(out / "val");
  std::vector<std::string> rows;
  for (size_t k = 0; k < val_order.size(); ++k) {
    const auto [i, c] = val_order[k];
    const std::string id = fmt::format("ILSVRC2012_val_{:08d}", k + 1);
    const fs::path dir = o.val_folders ? out / "val" / imagenet_folder_wnid(c) : out / "val";
    if (o.val_folders) fs::create_directories(dir);
    write_bytes_atomic(dir / (id + ".JPEG"), encode(image_at(test, i, o.size), Kind::jpeg_rgb));
    // Kaggle's rows: ImageId, then "<wnid> xmin ymin xmax ymax " per box; here one box, the whole image.
    rows.push_back(fmt::format("{},{} 0 0 {} {} \n", id, imagenet_folder_wnid(c), o.size - 1, o.size - 1));
    ++stats.val;
    if ((k + 1) % 1000 == 0 || k + 1 == val_order.size())
      say(fmt::format("val {}/{} images", k + 1, val_order.size()));
  }

  // The text files come last: a run cut short leaves no LOC_val_solution.csv, which the reader reports.
  if (!o.val_folders) {
    shuffle(rows, rng);  // Kaggle's file is not in ImageId order either
    std::string csv = "ImageId,PredictionString\n";
    for (const auto& r : rows) csv += r;
    write_bytes_atomic(out / "LOC_val_solution.csv", std::vector<unsigned char>(csv.begin(), csv.end()));
  }
  std::string mapping;
  for (int64_t c = 0; c < kImageNetFolderClasses; ++c)
    mapping += fmt::format("{} {}\n", imagenet_folder_wnid(c), kFashionMnistClassNames[c]);
  write_bytes_atomic(out / "LOC_synset_mapping.txt",
                     std::vector<unsigned char>(mapping.begin(), mapping.end()));
  return stats;
}

}  // namespace mgl::datasets
