// ImageNet-1K (ILSVRC2012) in its raw layout (paper-benchmarks §3.10): the index of the train and
// validation images with their class labels, cheap per-file checks, and a decoder that copes with
// the data set's quirks (a PNG named .JPEG, CMYK / YCCK JPEGs, grayscale JPEGs).
//
// Layout read:
//   root/train/<wnid>/<wnid>_<k>.JPEG                    one folder per class
//   root/val/ILSVRC2012_val_00000001.JPEG ...            flat, labelled by root/LOC_val_solution.csv
//   or root/val/<wnid>/*.JPEG                            class folders (e.g. after valprep.sh)
//   root/LOC_synset_mapping.txt                          optional: `n01440764 tench, Tinca tinca`
#pragma once
#include <cstdint>
#include <filesystem>
#include <opencv2/core.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace mgl::datasets {

struct LabeledImage {
  std::filesystem::path path;  // root / "train" / ... or root / "val" / ...
  int64_t label;               // index into ImageNetIndex::wnids
};

// What read_imagenet_index does with a file that fails check_files: throw, or leave it out and
// list it in ImageNetIndex::skipped.
enum class BadImages { error, skip };

struct ImageNetIndex {
  std::filesystem::path root;
  std::vector<std::string> wnids;  // class i = i-th WNID in sorted order (= torchvision ImageFolder index)
  std::vector<std::string> names;  // human-readable class names (LOC_synset_mapping.txt text after the
                                   // WNID; else the WNID)
  std::vector<LabeledImage> train, val;  // deterministic order: classes in order, file names sorted
                                         // (val: sorted by file name, in both layouts)
  std::vector<std::string> skipped;      // "path: reason" for each file dropped (BadImages::skip)
  std::string val_source;                // "LOC_val_solution.csv" or "val/<wnid>/ folders"
};

// Reads root/train/<wnid>/ image files and the validation set, in one of two layouts:
//  (a) root/val/ flat (ILSVRC2012_val_00000001.JPEG ...) labelled by root/LOC_val_solution.csv
//      (header `ImageId,PredictionString`; the first token of PredictionString is the WNID; fields
//      may be quoted as in RFC 4180, on one line), or
//  (b) root/val/<wnid>/ class folders (root/LOC_val_solution.csv, if present, is then not used).
// The layout is chosen by what val/ holds: image files -> (a), sub-folders -> (b), both -> error.
//
// Image files are those whose extension is .jpeg, .jpg or .png in any case; other files and
// entries whose name starts with '.' are ignored (e.g. `x.JPEG.tmp` from an interrupted copy, or
// the per-class .tar files beside train/'s folders); class folders are not searched recursively.
// The class list comes from root/LOC_synset_mapping.txt when present (its lines are sorted by
// WNID here; its set of WNIDs must equal train/'s folders, else an error naming both), else from
// the sorted train/ folder names (then any folder name is a class).
//
// Errors (std::runtime_error) name the file and, for text files, `file:line:` and what was
// expected: missing train/ or val/, an empty class folder, a malformed or duplicate line, a WNID
// not in the class list, a CSV row whose image does not exist, a flat val image with no CSV row,
// a val/ folder that is not a class. These structural errors are raised in both BadImages modes.
//
// check_files adds cheap per-file checks that do not decode: the file exists and is not empty; its
// first bytes are a JPEG (FF D8 FF) or PNG signature (whatever the extension says); a JPEG's last
// kImageTailSlack bytes contain the EOI marker FF D9 and a PNG's contain its IEND chunk (so a
// truncated download is caught). A failing file is an error naming it (BadImages::error) or is
// dropped and listed in `skipped` as "path: reason" (BadImages::skip; a class may then end up with
// no images, and keeps its label). Without check_files only the listing is done.
ImageNetIndex read_imagenet_index(const std::filesystem::path& root, BadImages bad, bool check_files);

// How many trailing bytes may follow a JPEG's EOI marker or a PNG's IEND chunk (zero padding some
// writers and downloaders leave) before the file counts as truncated.
inline constexpr size_t kImageTailSlack = 64;

struct ImageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What decode_image_rgb does to this file beyond plain decoding, one line per quirk ("PNG data
// under a .JPEG name: decoded as PNG by its content", "CMYK JPEG: converted to RGB ...", "grayscale
// JPEG: R = G = B", ...); empty for an ordinary 8-bit RGB JPEG (or RGB PNG named .png). Reads the
// header only (the JPEG markers up to the frame header, a PNG's IHDR), not the image data. A file
// that is not a JPEG or PNG, or whose header cannot be walked, gives no quirk (check_files and the
// decoder report those). `bytes_limit` bounds how much of the file is read.
std::vector<std::string> image_quirks(const std::filesystem::path& file, size_t bytes_limit = 1 << 20);
// The same on bytes in memory; `extension` is the file name's (".JPEG"), compared without case.
std::vector<std::string> image_quirks(const unsigned char* data, size_t size, const std::string& extension);

// Decodes one file to an 8-bit RGB image (CV_8UC3, channels in R, G, B order). The content decides
// the format (JPEG or PNG; a PNG saved as .JPEG decodes), never the extension. Grayscale images
// come out with R = G = B; 16-bit PNGs are reduced to 8 bits; a PNG's alpha channel is dropped
// (as PIL's convert("RGB") does). CMYK and YCCK JPEGs are converted with the Adobe convention
// (stored values inverted: R = stored_C · stored_K / 255, which is what Photoshop writes, OpenCV 4.6
// assumes for every 4-channel JPEG, and Pillow also assumes). EXIF orientation is ignored, as by
// PIL.Image.open in torchvision's loader. Throws ImageError naming the file and the problem for a
// missing, empty, non-JPEG/PNG, truncated (JPEG without EOI, PNG without IEND) or undecodable file.
cv::Mat decode_image_rgb(const std::filesystem::path& file);

}  // namespace mgl::datasets
