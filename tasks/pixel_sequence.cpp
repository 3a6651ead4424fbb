// Pixel-sequence image classification (LRA Image style, paper-benchmarks §2.2): each grey image is
// raster-scanned to a sequence of scalar pixels, normalised as (p/255 − mean)/std and embedded as
// real numbers. Sources (task.format): IDX files (MNIST / Fashion-MNIST, Debian
// `dataset-fashion-mnist`), or the CIFAR-10 binary batches converted to grey as Mega does (PIL
// luma; LRA's tf rule selectable with task.gray) — LRA Image.
//
// Validation split (Mega's rule for CIFAR-10): a random permutation of the training set from a
// CPU generator seeded with `task.split_seed` (torch.randperm, as torch.utils.data.random_split
// draws it); the first N − val_size indices train, the last val_size validate.
#include <fmt/format.h>

#include "datasets/cifar10.h"
#include "datasets/idx.h"
#include "harness/task.h"
#include "tasks/classification.h"

namespace mgl::tasks {
namespace {

using harness::Batch;
using harness::Config;
using harness::ConfigError;
using harness::Split;
namespace fs = std::filesystem;

struct ImageSet {
  torch::Tensor images;  // N×H×W uint8
  torch::Tensor labels;  // N int64
};

ImageSet read_idx_pair(const fs::path& images, const fs::path& labels, int64_t num_classes) {
  ImageSet s;
  s.images = datasets::read_idx_u8(images);
  torch::Tensor l = datasets::read_idx_u8(labels);
  if (s.images.dim() != 3) throw std::runtime_error(fmt::format("{}: expected N×H×W images, got {} dims", images.string(), s.images.dim()));
  if (l.dim() != 1) throw std::runtime_error(fmt::format("{}: expected a 1-D label file", labels.string()));
  if (l.size(0) != s.images.size(0))
    throw std::runtime_error(fmt::format("{} has {} labels but {} has {} images", labels.string(), l.size(0),
                                         images.string(), s.images.size(0)));
  s.labels = l.to(torch::kInt64);
  const int64_t mx = s.labels.max().item<int64_t>();
  if (mx >= num_classes)
    throw std::runtime_error(fmt::format("{}: label {} is out of range for task.num_classes = {}", labels.string(), mx,
                                         num_classes));
  return s;
}

class PixelSequenceTask final : public ClassificationTask {
 public:
  PixelSequenceTask(const Config& cfg, int64_t seq_len)
      : ClassificationTask(cfg, cfg.get_int("task.num_classes"), 1, -1, seq_len) {}

  static std::unique_ptr<harness::Task> create(const Config& cfg) {
    const int64_t classes = cfg.get_int("task.num_classes");
    const bool cifar = cfg.get_string("task.format") == "cifar10";
    const fs::path root =
        task_root(cfg, cifar ? "cifar-10-batches-bin with data_batch_{1..5}.bin and test_batch.bin"
                             : "the Fashion-MNIST IDX files: apt-get install dataset-fashion-mnist");
    ImageSet train, test;
    std::string gray;
    if (cifar) {
      datasets::GrayRule rule;
      try {
        rule = datasets::parse_gray_rule(gray = cfg.get_string("task.gray"));
      } catch (const std::invalid_argument& e) {
        throw ConfigError(cfg.origin("task.gray"), "task.gray", e.what());
      }
      for (bool is_train : {true, false}) {
        // The release's batches hold 10,000 records each; another count is an error unless the config
        // explicitly allows partial data (small or hand-made sets).
        const int64_t expected = cfg.get_bool("task.partial_batches") ? -1 : datasets::kCifar10RecordsPerBatch;
        datasets::Cifar10Set set;
        try {
          set = datasets::read_cifar10_bin(datasets::cifar10_files(root, is_train), expected);
        } catch (const datasets::Cifar10SizeError& e) {
          throw std::runtime_error(std::string(e.what()) + "; task.partial_batches = true reads batches of any size");
        }
        if (classes != 10)
          throw ConfigError(cfg.origin("task.num_classes"), "task.num_classes", "CIFAR-10 has 10 classes");
        (is_train ? train : test) = ImageSet{datasets::cifar10_to_gray(set.images, rule), set.labels};
      }
    } else {
      train = read_idx_pair(root / cfg.get_string("task.train_images"), root / cfg.get_string("task.train_labels"), classes);
      test = read_idx_pair(root / cfg.get_string("task.test_images"), root / cfg.get_string("task.test_labels"), classes);
    }
    const int64_t pad = cfg.get_int("task.pad");
    if (pad < 0) throw ConfigError(cfg.origin("task.pad"), "task.pad", "must be >= 0");
    const int64_t down = cfg.get_int("task.downsample");
    if (down < 1 || train.images.size(1) % down || train.images.size(2) % down)
      throw ConfigError(cfg.origin("task.downsample"), "task.downsample",
                        fmt::format("must be a positive divisor of the image size {}×{}", train.images.size(1),
                                    train.images.size(2)));
    if (down > 1) {
      // Box-filter (area) downsampling, rounded back to bytes: a shorter sequence of the same image.
      auto shrink = [&](torch::Tensor img) {
        return torch::avg_pool2d(img.to(torch::kFloat32).unsqueeze(1), down).squeeze(1).round().to(torch::kUInt8);
      };
      train.images = shrink(train.images);
      test.images = shrink(test.images);
    }
    const int64_t H = train.images.size(1) + 2 * pad, W = train.images.size(2) + 2 * pad;
    auto t = std::make_unique<PixelSequenceTask>(cfg, H * W);
    t->pad_ = pad;
    t->down_ = down;
    t->mean_ = cfg.get_float("task.mean");
    t->std_ = cfg.get_float("task.std");
    if (t->std_ <= 0) throw ConfigError(cfg.origin("task.std"), "task.std", "must be > 0");
    t->source_ = cifar ? fmt::format("CIFAR-10 {} (grey, {} rule)", root.string(), gray) : root.string();

    const int64_t N = train.images.size(0), val = cfg.get_int("task.val_size");
    if (val < 0 || val >= N)
      throw ConfigError(cfg.origin("task.val_size"), "task.val_size", fmt::format("must be in [0, {})", N));
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.get_int("task.split_seed")));
    torch::Tensor perm = torch::randperm(N, gen, torch::kInt64);
    auto limit = [&](torch::Tensor idx, const char* key) {
      const int64_t n = cfg.get_int(key);
      return n >= 0 && n < idx.size(0) ? idx.slice(0, 0, n) : idx;
    };
    torch::Tensor tr = limit(perm.slice(0, 0, N - val), "task.train_limit");
    torch::Tensor va = limit(perm.slice(0, N - val, N), "task.val_limit");
    torch::Tensor te = limit(torch::arange(test.images.size(0)), "task.test_limit");
    t->split_[0] = {train.images.index_select(0, tr), train.labels.index_select(0, tr)};
    t->split_[1] = {train.images.index_select(0, va), train.labels.index_select(0, va)};
    t->split_[2] = {test.images.index_select(0, te), test.labels.index_select(0, te)};
    return t;
  }

  int64_t size(Split s) const override { return split_[int(s)].images.defined() ? split_[int(s)].images.size(0) : 0; }

  Batch make_batch(Split s, const std::vector<int64_t>& indices, uint64_t) const override {
    const ImageSet& set = split_[int(s)];
    torch::Tensor idx = torch::tensor(indices, torch::kInt64);
    torch::Tensor img = set.images.index_select(0, idx).to(torch::kFloat32).div_(255.0).sub_(mean_).div_(std_);
    // Padding is black pixels (value 0 before normalisation), as zero-padding the image would give.
    if (pad_ > 0)
      img = torch::constant_pad_nd(img, {pad_, pad_, pad_, pad_}, (0.0 - mean_) / std_);
    Batch b;
    b.inputs = img.reshape({img.size(0), -1});
    b.targets = set.labels.index_select(0, idx);
    b.examples = img.size(0);
    b.tokens = b.inputs.numel();
    return b;
  }

  std::string describe() const override {
    return fmt::format("{}: {}×{} grey pixels{}{} as a {}-long sequence; {} train / {} val / {} test", source_,
                       split_[0].images.size(1), split_[0].images.size(2),
                       down_ > 1 ? fmt::format(" (box-downsampled ×{})", down_) : "",
                       pad_ ? fmt::format(" zero-padded by {}", pad_) : "", seq_len_, size(Split::train),
                       size(Split::val), size(Split::test));
  }

 private:
  ImageSet split_[3];
  int64_t pad_ = 0, down_ = 1;
  double mean_ = 0.5, std_ = 0.5;
  std::string source_;
};

void pixel_sequence_schema(harness::Schema& s) {
  s.add_string("task.format", "idx", "idx (MNIST / Fashion-MNIST files) or cifar10 (binary batches)", {"idx", "cifar10"});
  s.add_string("task.root", "/usr/share/datasets/fashion-mnist", "directory with the IDX files or cifar-10-batches-bin");
  s.add_bool("task.partial_batches", false,
             "CIFAR-10: accept batch files of another size than the release's 10,000 records (small or cut sets)");
  s.add_string("task.gray", "pil", "CIFAR-10 grey conversion: pil (Mega, torchvision) or tf (LRA)", {"pil", "tf"});
  s.add_string("task.train_images", "train-images-idx3-ubyte.gz", "training images (IDX, optionally gzipped)");
  s.add_string("task.train_labels", "train-labels-idx1-ubyte.gz", "training labels");
  s.add_string("task.test_images", "t10k-images-idx3-ubyte.gz", "test images");
  s.add_string("task.test_labels", "t10k-labels-idx1-ubyte.gz", "test labels");
  s.add_int("task.num_classes", 10, "classes", harness::Range::at_least(1));
  s.add_int("task.downsample", 1, "box-filter downsampling factor (2: 28×28 → 14×14, a 196-pixel sequence)", harness::Range::at_least(1));
  s.add_int("task.pad", 0, "zero padding on each side (2 turns 28×28 into LRA Image's 1,024 pixels)", harness::Range::at_least(0));
  s.add_float("task.mean", 0.5, "pixel normalisation: (p/255 − mean)/std");
  s.add_float("task.std", 0.5, "pixel normalisation std", harness::Range::above(0));
  s.add_int("task.val_size", 5000, "validation examples held out of the training set", harness::Range::at_least(0));
  s.add_int("task.split_seed", 42, "seed of the train/validation permutation (Mega: 42)", harness::Range::at_least(0));
  add_split_limits(s, "use only the first N training examples of the split",
                   "use only the first N validation examples",
                   "use only the first N test examples (file order)");
}

MGL_REGISTER_TASK("pixel_sequence", "grey images as pixel sequences (LRA Image: CIFAR-10; or Fashion-MNIST / MNIST IDX files)", pixel_sequence_schema,
                  [](const Config& cfg) { return PixelSequenceTask::create(cfg); });

}  // namespace
}  // namespace mgl::tasks
