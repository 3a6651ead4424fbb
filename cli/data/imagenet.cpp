// `megalodon data imagenet-folder`: a small real-image classification set in the exact ImageNet-1K
// raw layout (paper-benchmarks §3.10) from Fashion-MNIST; the command line over
// datasets/vision/imagenet_folder.h.
#ifdef MEGALODON_HAS_VISION

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cli/args.h"
#include "cli/data/data.h"
#include "datasets/vision/imagenet.h"
#include "datasets/vision/imagenet_folder.h"

namespace mgl::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kImagenetUsage =
    "usage: megalodon data imagenet-folder --out DIR [options]\n"
    "\n"
    "Writes an image-classification set in the ImageNet-1K raw layout from IDX files (Fashion-MNIST):\n"
    "  DIR/train/<wnid>/<wnid>_<k>.JPEG           k = the image's index in train-images-idx3-ubyte\n"
    "  DIR/val/ILSVRC2012_val_<8 digits>.JPEG     from the t10k files, classes shuffled together\n"
    "  DIR/LOC_val_solution.csv                   ImageId,PredictionString ('<wnid> 0 0 S-1 S-1 ')\n"
    "  DIR/LOC_synset_mapping.txt                 '<wnid> <class name>', sorted by WNID\n"
    "The 10 invented WNIDs n91000000, n91000100, ..., n91000900 stand for Fashion-MNIST classes 0..9\n"
    "(T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot), so the\n"
    "sorted-WNID class index equals the Fashion-MNIST label. They lie beyond WordNet 3.0's noun offsets\n"
    "(below n15300000), so they cannot be mistaken for real ImageNet classes. Images are 3-channel\n"
    "JPEGs (quality 90) with R = G = B. Deterministic for a seed.\n"
    "\n"
    "options:\n"
    "  --out DIR               output folder (required)\n"
    "  --idx DIR               folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]\n"
    "                          (default /usr/share/datasets/fashion-mnist)\n"
    "  --train-per-class N     train images per class, drawn at random from the train files (default 1000)\n"
    "  --val-per-class N       val images per class, from the t10k files (default 50, as ImageNet)\n"
    "  --val-layout L          csv: flat val/ + LOC_val_solution.csv (default); folders: val/<wnid>/\n"
    "  --size S                side of the written images; S != 28 resizes bicubically (default 28)\n"
    "  --seed S                64-bit seed (default 0)\n"
    "  --quirks                also write ImageNet's oddities into train: the first image (smallest k) of\n"
    "                          class 0 is a PNG named .JPEG, of class 1 a grayscale JPEG, of class 2 a\n"
    "                          CMYK JPEG\n"
    "  --force                 replace train/, val/ and the two LOC_ files if DIR has them (other\n"
    "                          files in DIR are left alone)\n";

int imagenet_folder_main(const std::vector<std::string>& args) {
  const auto p = parse_args(
      args, {"--out", "--idx", "--train-per-class", "--val-per-class", "--val-layout", "--size", "--seed"},
      {"--quirks", "--force", "--help"});
  if (p.flag("--help")) {
    std::fputs(kImagenetUsage, stdout);
    return 0;
  }
  if (p.option("--out").empty() || !p.positional.empty() || !p.overrides.empty()) {
    std::fputs(kImagenetUsage, stderr);
    return 2;
  }
  datasets::ImageNetFolderOptions o;
  const fs::path out = p.option("--out");
  o.idx_dir = p.option("--idx", o.idx_dir.string());
  o.train_per_class = p.int_option("--train-per-class", o.train_per_class, 1);
  o.val_per_class = p.int_option("--val-per-class", o.val_per_class, 1);
  o.size = int(p.int_option("--size", o.size, 1));
  const std::string layout = p.option("--val-layout", "csv");
  if (layout != "csv" && layout != "folders")
    throw std::invalid_argument(fmt::format("--val-layout must be csv or folders, got '{}'", layout));
  o.val_folders = layout == "folders";
  o.seed = p.seed_option();
  o.quirks = p.flag("--quirks");
  o.force = p.flag("--force");

  std::printf(
      "imagenet-folder: %lld train + %lld val images per class, 10 classes, %d×%d, val layout %s, seed "
      "%llu%s, from %s into %s\n",
      (long long)o.train_per_class, (long long)o.val_per_class, o.size, o.size, layout.c_str(),
      (unsigned long long)o.seed, o.quirks ? ", with quirks" : "", o.idx_dir.string().c_str(),
      out.string().c_str());
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const auto stats = datasets::write_imagenet_folder(out, o, [&](const std::string& line) {
    std::printf("  %s (%.1f s)\n", line.c_str(), seconds());
    std::fflush(stdout);
  });
  const double s = seconds();
  std::printf("done: %lld train + %lld val images in %.1f s (%.0f images/s)\n", (long long)stats.train,
              (long long)stats.val, s, double(stats.train + stats.val) / std::max(s, 1e-9));
  return 0;
}

constexpr const char* kCheckUsage =
    "usage: megalodon data imagenet-check --root DIR [options]\n"
    "\n"
    "Indexes an ImageNet-1K folder in the raw layout (train/<wnid>/, flat val/ + LOC_val_solution.csv or\n"
    "val/<wnid>/, optional LOC_synset_mapping.txt) as training reads it, with the per-file checks\n"
    "(signature, non-empty, JPEG end marker / PNG IEND), and prints the classes and counts, then each\n"
    "file with a quirk the decoder handles (a PNG named .JPEG, CMYK, grayscale, ...) and what is done\n"
    "to it. Exit status 0 when the check completes (with --skip-bad, bad files are listed, not fatal),\n"
    "1 when a bad file stops it or (without --skip-bad) an image fails to decode.\n"
    "\n"
    "options:\n"
    "  --root DIR      the folder (required)\n"
    "  --skip-bad      list files that fail the checks instead of stopping at the first\n"
    "  --decode        also decode every image as training would (slow on the full set: about\n"
    "                  1.3 million JPEGs); failures are listed\n"
    "  --threads T     decoding threads (default: all cores)\n";

int imagenet_check_main(const std::vector<std::string>& args) {
  const auto p = parse_args(args, {"--root", "--threads"}, {"--skip-bad", "--decode", "--help"});
  if (p.flag("--help")) {
    std::fputs(kCheckUsage, stdout);
    return 0;
  }
  if (p.option("--root").empty() || !p.positional.empty() || !p.overrides.empty()) {
    std::fputs(kCheckUsage, stderr);
    return 2;
  }
  const int64_t threads =
      p.int_option("--threads", std::max<int64_t>(1, std::thread::hardware_concurrency()), 1);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const auto ix = datasets::read_imagenet_index(
      p.option("--root"), p.flag("--skip-bad") ? datasets::BadImages::skip : datasets::BadImages::error,
      true);
  std::printf(
      "%s: %zu classes (%s ... %s), %zu train and %zu val images (val from %s), indexed and checked in "
      "%.1f s\n",
      ix.root.string().c_str(), ix.wnids.size(), ix.wnids.front().c_str(), ix.wnids.back().c_str(),
      ix.train.size(), ix.val.size(), ix.val_source.c_str(), seconds());
  for (size_t c = 0; c < ix.wnids.size() && c < 5; ++c)
    std::printf("  class %zu: %s %s\n", c, ix.wnids[c].c_str(), ix.names[c].c_str());
  for (const auto& s : ix.skipped) std::printf("  skipped %s\n", s.c_str());
  // The quirks the decoder handles, per file (header bytes only).
  int64_t quirky = 0;
  for (const auto* split : {&ix.train, &ix.val})
    for (const auto& item : *split) {
      const auto quirks = datasets::image_quirks(item.path, 1 << 18);
      if (quirks.empty()) continue;
      ++quirky;
      std::string what;
      for (const auto& q : quirks) what += (what.empty() ? "" : "; ") + q;
      std::printf("  quirk %s: %s\n", item.path.string().c_str(), what.c_str());
    }
  std::printf("%zu bad files skipped, %lld files with quirks handled\n", ix.skipped.size(), (long long)quirky);
  const bool skip_bad = p.flag("--skip-bad");
  if (!p.flag("--decode")) return 0;  // a bad file without --skip-bad has already stopped the index

  std::vector<const datasets::LabeledImage*> all;
  for (const auto* split : {&ix.train, &ix.val})
    for (const auto& item : *split) all.push_back(&item);
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::vector<std::string> failures;
  int64_t min_side = INT64_MAX, max_side = 0;
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < all.size();) {
        try {
          const cv::Mat m = datasets::decode_image_rgb(all[i]->path);
          std::lock_guard<std::mutex> lock(mu);
          min_side = std::min<int64_t>(min_side, std::min(m.rows, m.cols));
          max_side = std::max<int64_t>(max_side, std::max(m.rows, m.cols));
        } catch (const datasets::ImageError& e) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(e.what());
        }
      }
    });
  for (auto& t : pool) t.join();
  std::sort(failures.begin(), failures.end());
  for (const auto& f : failures) std::printf("  cannot decode: %s\n", f.c_str());
  std::printf("decoded %zu images (sides %lld..%lld) with %zu failures in %.1f s\n",
              all.size() - failures.size(), (long long)(failures.size() == all.size() ? 0 : min_side),
              (long long)max_side, failures.size(), seconds());
  return failures.empty() || skip_bad ? 0 : 1;
}

const DataTool kImageNetCheck{
    "imagenet-check", "index and check an ImageNet-1K raw-layout folder (optionally decode every image)",
    imagenet_check_main};

const DataTool kImageNetFolder{"imagenet-folder",
                               "write a small ImageNet-1K-layout image set from Fashion-MNIST (IDX) images",
                               imagenet_folder_main};

}  // namespace
}  // namespace mgl::cli

#endif  // MEGALODON_HAS_VISION
