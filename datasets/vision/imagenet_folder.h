// A small real-image classification set written in the exact ImageNet-1K raw layout
// (paper-benchmarks §3.10) from an IDX image set (Debian's Fashion-MNIST by default), so that
// read_imagenet_index, decode_image_rgb and the ImageNet task run end to end without the 150 GB
// download. `megalodon data imagenet-folder` is the command line over it.
//
//   out/train/<wnid>/<wnid>_<k>.JPEG        k = the image's index in train-images-idx3-ubyte
//   out/val/ILSVRC2012_val_<8 digits>.JPEG  from the t10k files, classes shuffled together
//     (or out/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG with val_folders)
//   out/LOC_val_solution.csv                `ImageId,PredictionString`, rows '<id>,<wnid> 0 0 S-1 S-1 '
//                                           in shuffled order, as Kaggle's (not written with val_folders)
//   out/LOC_synset_mapping.txt              '<wnid> <class name>', sorted by WNID
//
// Class c of the IDX labels gets the invented WNID n91000000 + 100·c (n91000000, n91000100, ...,
// n91000900): increasing with c, so the sorted-WNID class index equals the IDX label, and beyond
// WordNet 3.0's noun offsets (all below n15300000), so they cannot be mistaken for real ImageNet
// classes. Names are Fashion-MNIST's. Images are 3-channel JPEGs (quality 90) with R = G = B.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace mgl::datasets {

inline constexpr int64_t kImageNetFolderClasses = 10;
extern const char* const kFashionMnistClassNames[kImageNetFolderClasses];
std::string imagenet_folder_wnid(int64_t label);  // "n91000000" + 100·label

struct ImageNetFolderOptions {
  std::filesystem::path idx_dir = "/usr/share/datasets/fashion-mnist";  // {train,t10k}-*-ubyte[.gz]
  int64_t train_per_class = 1000;  // drawn without replacement from the train files
  int64_t val_per_class = 50;      // from the t10k files (ImageNet has 50 per class)
  bool val_folders = false;        // val/<wnid>/ folders instead of flat val/ + LOC_val_solution.csv
  int size = 28;                   // side of the written images; another size is a bicubic resize
  uint64_t seed = 0;
  // ImageNet's oddities, written into train: the first file (smallest k) of class 0 is a PNG named
  // .JPEG, of class 1 a grayscale JPEG, of class 2 a CMYK JPEG (Adobe convention, R = G = B on decode).
  bool quirks = false;
  // Replace out/train, out/val and the two LOC_ files if present (nothing else in out is touched);
  // without it, finding any of them is an error.
  bool force = false;
};

struct ImageNetFolderStats {
  int64_t train = 0, val = 0;
  std::vector<std::string> quirks;  // "path: what it is"
};

// Writes the set (deterministic for the options). Each image is written to `<file>.tmp` and renamed
// into place; the LOC_ text files are written last, so a run cut short is visible to the reader.
// `progress` gets one line per train class and per 1,000 val images. Throws std::invalid_argument
// for options the IDX files cannot satisfy (naming the class that has too few images) and
// std::runtime_error for file problems, naming the file.
ImageNetFolderStats write_imagenet_folder(const std::filesystem::path& out,
                                          const ImageNetFolderOptions& options,
                                          const std::function<void(const std::string&)>& progress = {});

}  // namespace mgl::datasets
