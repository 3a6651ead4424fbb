// ImageNet-1K raw layout (paper-benchmarks §3.10): the index reader, the quirk-tolerant decoder and
// the `data imagenet-folder` tool. Oracles: small trees written here by hand in both val layouts
// (labels known by construction), flat-colour images written by OpenCV and, for CMYK / YCCK, by
// libjpeg directly with the Adobe convention (expected RGB = stored C · stored K / 255), and the
// IDX pixels the tool's images came from.
// idx.h brings in torch, whose glog CHECK must be replaced by Catch's (see test_pathfinder.cpp).
#include "datasets/idx.h"
#undef CHECK
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>

// clang-format off
#include <cstdio>  // jpeglib.h uses FILE and size_t without including them
#include <jpeglib.h>
// clang-format on

#include "datasets/vision/imagenet.h"
#include "datasets/vision/imagenet_folder.h"
#include "support/files.h"

using Catch::Contains;
using mgl::datasets::BadImages;
using mgl::datasets::decode_image_rgb;
using mgl::datasets::ImageError;
using mgl::datasets::ImageNetIndex;
using mgl::datasets::read_imagenet_index;
using mgl::test::TempDir;
using mgl::test::write_text;
namespace fs = std::filesystem;

namespace {

using Bytes = std::vector<unsigned char>;

void write_bytes(const fs::path& p, const Bytes& b) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

Bytes read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A flat side×side image of one colour (given as R, G, B), encoded by OpenCV as `ext` (".jpg",
// ".png"), whatever the file is called.
Bytes flat(int r, int g, int b, const std::string& ext = ".jpg", int side = 16) {
  cv::Mat m(side, side, CV_8UC3, cv::Scalar(b, g, r));
  Bytes out;
  REQUIRE(cv::imencode(ext, m, out, {cv::IMWRITE_JPEG_QUALITY, 95}));
  return out;
}

Bytes flat_gray(int v, int side = 16) {
  cv::Mat m(side, side, CV_8U, cv::Scalar(v));
  Bytes out;
  REQUIRE(cv::imencode(".jpg", m, out, {cv::IMWRITE_JPEG_QUALITY, 95}));
  return out;
}

// A flat 4-channel JPEG written by libjpeg itself: `stored` are the sample values as they go into
// the file (Adobe convention: 255 − ink). `space` JCS_CMYK stores them as they are (Adobe transform
// 0), JCS_YCCK converts them the way Photoshop's usual CMYK JPEGs are stored (transform 2).
Bytes cmyk_jpeg(const std::array<int, 4>& stored, J_COLOR_SPACE space, int side = 16) {
  jpeg_compress_struct ci;
  jpeg_error_mgr err;
  ci.err = jpeg_std_error(&err);  // in-memory, valid parameters: libjpeg has nothing to fail on
  jpeg_create_compress(&ci);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&ci, &buf, &size);
  ci.image_width = JDIMENSION(side);
  ci.image_height = JDIMENSION(side);
  ci.input_components = 4;
  ci.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&ci);
  jpeg_set_colorspace(&ci, space);
  REQUIRE(ci.write_Adobe_marker);
  jpeg_set_quality(&ci, 95, TRUE);
  jpeg_start_compress(&ci, TRUE);
  std::vector<unsigned char> row(size_t(side) * 4);
  for (int x = 0; x < side; ++x)
    for (int k = 0; k < 4; ++k)
      row[size_t(x) * 4 + size_t(k)] = static_cast<unsigned char>(stored[size_t(k)]);
  while (ci.next_scanline < ci.image_height) {
    JSAMPROW r = row.data();
    jpeg_write_scanlines(&ci, &r, 1);
  }
  jpeg_finish_compress(&ci);
  jpeg_destroy_compress(&ci);
  Bytes out(buf, buf + size);
  std::free(buf);
  return out;
}

// Number of colour components in a JPEG's frame header (SOFn), by walking the markers.
int jpeg_components(const Bytes& b) {
  size_t i = 2;
  while (i + 9 < b.size() && b[i] == 0xFF) {
    const int marker = b[i + 1];
    const size_t len = size_t(b[i + 2]) << 8 | b[i + 3];
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC)
      return b[i + 9];
    i += 2 + len;
  }
  return -1;
}

bool has_marker(const Bytes& b, unsigned char marker) {
  for (size_t i = 0; i + 1 < b.size(); ++i)
    if (b[i] == 0xFF && b[i + 1] == marker) return true;
  return false;
}

cv::Vec3b centre(const cv::Mat& rgb) { return rgb.at<cv::Vec3b>(rgb.rows / 2, rgb.cols / 2); }

void check_rgb(const cv::Mat& rgb, int r, int g, int b, int tol) {
  REQUIRE(rgb.type() == CV_8UC3);
  const cv::Vec3b p = centre(rgb);
  INFO("decoded R,G,B = " << int(p[0]) << "," << int(p[1]) << "," << int(p[2]) << "; expected " << r << ","
                          << g << "," << b << " ± " << tol);
  CHECK(std::abs(int(p[0]) - r) <= tol);
  CHECK(std::abs(int(p[1]) - g) <= tol);
  CHECK(std::abs(int(p[2]) - b) <= tol);
}

std::string names_of(const std::vector<mgl::datasets::LabeledImage>& v) {
  std::string s;
  for (const auto& x : v) s += x.path.filename().string() + ":" + std::to_string(x.label) + " ";
  return s;
}

// A small tree in the Kaggle layout. Classes (sorted): n01000000 tench, n02000000 goldfish,
// n03000000 shark; each val image's colour encodes its class so that decoding can check labels.
struct Tree {
  TempDir dir{"imagenet"};
  fs::path root = dir.path();
  Tree() {
    write_bytes(root / "train/n02000000/n02000000_7.JPEG", flat(10, 200, 10));
    write_bytes(root / "train/n02000000/n02000000_10.JPEG", flat(10, 200, 10));
    write_bytes(root / "train/n02000000/n02000000_2.jpg", flat(10, 200, 10));
    write_bytes(root / "train/n01000000/n01000000_5.PNG", flat(200, 10, 10, ".png"));
    write_bytes(root / "train/n01000000/n01000000_1.JPEG", flat(200, 10, 10));
    write_bytes(root / "train/n03000000/n03000000_3.jpeg", flat(10, 10, 200));
    // Not images, or hidden: left out.
    write_text(root / "train/n02000000/notes.txt", "x");
    write_bytes(root / "train/n02000000/.n02000000_9.JPEG", flat(0, 0, 0));
    write_bytes(root / "train/n02000000/n02000000_8.JPEG.tmp", flat(0, 0, 0));
    write_text(root / "train/n01000000.tar", "tar");
    write_bytes(root / "val/ILSVRC2012_val_00000003.JPEG", flat(10, 200, 10));
    write_bytes(root / "val/ILSVRC2012_val_00000001.JPEG", flat(10, 10, 200));
    write_bytes(root / "val/ILSVRC2012_val_00000002.png", flat(200, 10, 10, ".png"));
    write_bytes(root / "val/ILSVRC2012_val_00000004.JPEG", flat(10, 200, 10));
    // Unsorted lines, Windows line ends, a blank line.
    write_text(root / "LOC_synset_mapping.txt",
               "n03000000 great white shark, white shark\r\nn01000000 tench, Tinca tinca\r\n\r\n"
               "n02000000 goldfish, Carassius auratus\r\n");
    // A UTF-8 byte-order mark (as spreadsheet programs save CSV); rows out of order; quoted fields,
    // one holding a comma and a doubled quote.
    write_text(root / "LOC_val_solution.csv",
               "\xEF\xBB\xBFImageId,PredictionString\n"
               "ILSVRC2012_val_00000003,n02000000 0 0 15 15 \n"
               "\"ILSVRC2012_val_00000001\",\"n03000000 1 2 3 4 n03000000 5 6 7 8 \"\n"
               "ILSVRC2012_val_00000002,\"n01000000 0 0 15 15, \"\"odd\"\"\"\n"
               "ILSVRC2012_val_00000004,n02000000 0 0 15 15 \n");
  }
  fs::path csv() const { return root / "LOC_val_solution.csv"; }
};

std::string error_of(const fs::path& root, BadImages bad = BadImages::error, bool check = true) {
  try {
    read_imagenet_index(root, bad, check);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("ImageNet index: sorted-WNID classes, train in class then file-name order, val labels from the CSV",
          "[imagenet]") {
  Tree t;
  const ImageNetIndex ix = read_imagenet_index(t.root, BadImages::error, true);
  CHECK(ix.root == t.root);
  CHECK(ix.wnids == std::vector<std::string>{"n01000000", "n02000000", "n03000000"});
  CHECK(ix.names == std::vector<std::string>{"tench, Tinca tinca", "goldfish, Carassius auratus",
                                             "great white shark, white shark"});
  // Byte order of file names: "_1" < "_5", "_10" < "_2" < "_7" (as Python's sorted and ImageFolder).
  CHECK(names_of(ix.train) ==
        "n01000000_1.JPEG:0 n01000000_5.PNG:0 n02000000_10.JPEG:1 n02000000_2.jpg:1 n02000000_7.JPEG:1 "
        "n03000000_3.jpeg:2 ");
  CHECK(ix.train[0].path == t.root / "train/n01000000/n01000000_1.JPEG");
  CHECK(ix.val_source == "LOC_val_solution.csv");
  CHECK(names_of(ix.val) ==
        "ILSVRC2012_val_00000001.JPEG:2 ILSVRC2012_val_00000002.png:0 ILSVRC2012_val_00000003.JPEG:1 "
        "ILSVRC2012_val_00000004.JPEG:1 ");
  CHECK(ix.val[1].path == t.root / "val/ILSVRC2012_val_00000002.png");
  CHECK(ix.skipped.empty());
  // The labels agree with the pixels: class 0 red, 1 green, 2 blue.
  for (const auto& item : ix.val) {
    const cv::Vec3b p = centre(decode_image_rgb(item.path));
    CHECK(int(std::max_element(&p[0], &p[0] + 3) - &p[0]) == item.label);
  }

  SECTION("without LOC_synset_mapping.txt the classes are the sorted train folders and the names the WNIDs") {
    fs::remove(t.root / "LOC_synset_mapping.txt");
    const auto ix2 = read_imagenet_index(t.root, BadImages::error, false);
    CHECK(ix2.wnids == ix.wnids);
    CHECK(ix2.names == ix.wnids);
    CHECK(names_of(ix2.val) == names_of(ix.val));
  }
  SECTION("val/<wnid>/ folders give the same val list as the CSV") {
    for (const auto& item : ix.val) {
      const fs::path to = t.root / "val" / ix.wnids[size_t(item.label)] / item.path.filename();
      fs::create_directories(to.parent_path());
      fs::rename(item.path, to);
    }
    // The CSV is not consulted in this layout: corrupting it changes nothing.
    write_text(t.csv(), "garbage\n");
    const auto ix2 = read_imagenet_index(t.root, BadImages::error, true);
    CHECK(ix2.val_source == "val/<wnid>/ folders");
    CHECK(names_of(ix2.val) == names_of(ix.val));
    CHECK(ix2.val[0].path == t.root / "val/n03000000/ILSVRC2012_val_00000001.JPEG");
  }
}

TEST_CASE("ImageNet index: errors name the file, the line and what was expected", "[imagenet]") {
  Tree t;
  const std::string csv = t.csv().string(), mapping = (t.root / "LOC_synset_mapping.txt").string();
  auto replace_line = [](const fs::path& file, size_t line, const std::string& text) {
    std::ifstream in(file);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    lines.at(line - 1) = text;
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    write_text(file, all);
  };

  SECTION("unknown WNID in the CSV") {
    replace_line(t.csv(), 3, "ILSVRC2012_val_00000001,n09999999 0 0 1 1");
    CHECK_THAT(error_of(t.root), Contains(csv + ":3:") && Contains("unknown WNID n09999999") &&
                                     Contains("LOC_synset_mapping.txt"));
  }
  SECTION("a CSV row whose image does not exist") {
    replace_line(t.csv(), 5, "ILSVRC2012_val_00000009,n02000000 0 0 1 1");
    fs::remove(t.root / "val/ILSVRC2012_val_00000004.JPEG");
    CHECK_THAT(error_of(t.root), Contains(csv + ":5:") && Contains("ILSVRC2012_val_00000009.JPEG") &&
                                     Contains("does not exist"));
  }
  SECTION("a val image with no CSV row") {
    write_bytes(t.root / "val/ILSVRC2012_val_00000005.JPEG", flat(1, 2, 3));
    CHECK_THAT(error_of(t.root), Contains("val/ILSVRC2012_val_00000005.JPEG: no row in " + csv));
  }
  SECTION("a repeated ImageId") {
    replace_line(t.csv(), 5, "ILSVRC2012_val_00000003,n02000000 0 0 1 1");
    CHECK_THAT(error_of(t.root), Contains(csv + ":5:") && Contains("line 2"));
  }
  SECTION("a wrong header") {
    replace_line(t.csv(), 1, "ImageId;PredictionString");
    CHECK_THAT(error_of(t.root), Contains(csv + ":1: expected the header 'ImageId,PredictionString'"));
  }
  SECTION("a row with three fields") {
    replace_line(t.csv(), 2, "ILSVRC2012_val_00000003,n02000000 0 0 15 15,extra");
    CHECK_THAT(error_of(t.root), Contains(csv + ":2: expected 2 fields"));
  }
  SECTION("an unterminated quote") {
    replace_line(t.csv(), 4, "ILSVRC2012_val_00000002,\"n01000000 0 0 15 15");
    CHECK_THAT(error_of(t.root), Contains(csv + ":4: unterminated quoted field"));
  }
  SECTION("text after a closing quote") {
    replace_line(t.csv(), 2, "\"ILSVRC2012_val_00000003\"x,n02000000 0 0 15 15");
    CHECK_THAT(error_of(t.root), Contains(csv + ":2: unexpected 'x' after the closing quote at column 26"));
  }
  SECTION("a PredictionString that does not start with a WNID") {
    replace_line(t.csv(), 2, "ILSVRC2012_val_00000003,0 0 15 15 n02000000");
    CHECK_THAT(error_of(t.root), Contains(csv + ":2: expected PredictionString to start with a WNID"));
  }
  SECTION("a malformed LOC_synset_mapping.txt line") {
    replace_line(t.root / "LOC_synset_mapping.txt", 2, "tench n01000000");
    CHECK_THAT(error_of(t.root),
               Contains(mapping + ":2: expected '<wnid> <class name>'") && Contains("tench n01000000"));
  }
  SECTION("a repeated WNID in LOC_synset_mapping.txt") {
    replace_line(t.root / "LOC_synset_mapping.txt", 4, "n01000000 tench again");
    CHECK_THAT(error_of(t.root), Contains(mapping + ":4: n01000000 is listed again (first on line 2)"));
  }
  SECTION("LOC_synset_mapping.txt and the train folders disagree: both are named") {
    fs::rename(t.root / "train/n03000000", t.root / "train/n04000000");
    CHECK_THAT(error_of(t.root), Contains(mapping) && Contains((t.root / "train").string()) &&
                                     Contains("have no folder: n03000000") &&
                                     Contains("are not listed: n04000000"));
  }
  SECTION("an empty class folder") {
    fs::remove(t.root / "train/n03000000/n03000000_3.jpeg");
    CHECK_THAT(error_of(t.root), Contains((t.root / "train/n03000000").string() + ": empty class folder"));
  }
  SECTION("no train/") {
    fs::rename(t.root / "train", t.root / "training");
    CHECK_THAT(error_of(t.root), Contains((t.root / "train").string() + ": missing"));
  }
  SECTION("no val/") {
    fs::remove_all(t.root / "val");
    CHECK_THAT(error_of(t.root), Contains((t.root / "val").string() + ": missing"));
  }
  SECTION("flat val/ without LOC_val_solution.csv") {
    fs::remove(t.csv());
    CHECK_THAT(error_of(t.root), Contains(csv + ": missing") && Contains("4 flat images"));
  }
  SECTION("val/ with both images and folders") {
    fs::create_directories(t.root / "val/n01000000");
    CHECK_THAT(error_of(t.root), Contains("holds both image files"));
  }
  SECTION("a val/ folder that is not a class") {
    for (const auto& e : fs::directory_iterator(t.root / "val")) fs::remove(e.path());
    write_bytes(t.root / "val/n05000000/x.JPEG", flat(1, 2, 3));
    CHECK_THAT(error_of(t.root),
               Contains((t.root / "val/n05000000").string() + ": 'n05000000' is not a class"));
  }
  // The intact tree reads, so each section's error is the one its change caused.
  SECTION("control") { CHECK(error_of(t.root) == "(no error)"); }
}

TEST_CASE("ImageNet index check_files: quirks pass, truncated / non-image / empty files fail or are skipped",
          "[imagenet]") {
  Tree t;
  const fs::path dir = t.root / "train/n02000000";
  // ImageNet's quirks, which must pass: a PNG named .JPEG, a CMYK and a grayscale JPEG, a JPEG
  // with a little zero padding after its end marker.
  write_bytes(dir / "n02000000_2933.JPEG", flat(1, 2, 3, ".png"));
  write_bytes(dir / "n02000000_30.JPEG", cmyk_jpeg({255, 255, 255, 128}, JCS_CMYK));
  write_bytes(dir / "n02000000_31.JPEG", flat_gray(77));
  Bytes padded = flat(5, 6, 7);
  padded.insert(padded.end(), 20, 0);
  write_bytes(dir / "n02000000_32.JPEG", padded);
  // Bad files.
  Bytes truncated = flat(9, 9, 9, ".jpg", 64);
  truncated.resize(truncated.size() * 2 / 3);
  write_bytes(dir / "n02000000_40.JPEG", truncated);
  std::mt19937 rng(3);
  Bytes noise(500);
  for (auto& b : noise) b = static_cast<unsigned char>(rng() & 0xFF);
  noise[0] = 0x12;  // never a JPEG or PNG signature by chance
  write_bytes(dir / "n02000000_41.JPEG", noise);
  write_bytes(dir / "n02000000_42.JPEG", {});
  Bytes png = flat(9, 9, 9, ".png", 64);
  png.resize(png.size() - 20);
  write_bytes(t.root / "val/ILSVRC2012_val_00000004.JPEG", png);

  SECTION("error mode names the first bad file and the problem") {
    CHECK_THAT(error_of(t.root), Contains((dir / "n02000000_40.JPEG").string() + ": truncated JPEG"));
  }
  SECTION("skip mode drops and lists each bad file; labels are unchanged") {
    const auto ix = read_imagenet_index(t.root, BadImages::skip, true);
    REQUIRE(ix.skipped.size() == 4);
    CHECK_THAT(ix.skipped[0],
               Contains((dir / "n02000000_40.JPEG").string() + ": truncated JPEG (no end-of-image"));
    CHECK_THAT(ix.skipped[1], Contains((dir / "n02000000_41.JPEG").string() +
                                       ": not a JPEG or PNG (the file starts with bytes 12"));
    CHECK(ix.skipped[2] == (dir / "n02000000_42.JPEG").string() + ": empty file (0 bytes)");
    CHECK_THAT(ix.skipped[3],
               Contains((t.root / "val/ILSVRC2012_val_00000004.JPEG").string() + ": truncated PNG (no IEND"));
    CHECK(
        names_of(ix.train) ==
        "n01000000_1.JPEG:0 n01000000_5.PNG:0 n02000000_10.JPEG:1 n02000000_2.jpg:1 n02000000_2933.JPEG:1 "
        "n02000000_30.JPEG:1 n02000000_31.JPEG:1 n02000000_32.JPEG:1 n02000000_7.JPEG:1 n03000000_3.jpeg:2 ");
    CHECK(names_of(ix.val) ==
          "ILSVRC2012_val_00000001.JPEG:2 ILSVRC2012_val_00000002.png:0 ILSVRC2012_val_00000003.JPEG:1 ");
  }
  SECTION("without check_files every listed file is kept") {
    const auto ix = read_imagenet_index(t.root, BadImages::error, false);
    CHECK(ix.skipped.empty());
    CHECK(ix.train.size() == 13);
    CHECK(ix.val.size() == 4);
  }
}

TEST_CASE("decode_image_rgb: R,G,B order, content over extension, grayscale, CMYK and YCCK JPEGs",
          "[imagenet]") {
  TempDir d("imagenet-decode");
  SECTION("a colour JPEG comes out in R,G,B order") {
    write_bytes(d / "a.JPEG", flat(200, 30, 90));
    const cv::Mat m = decode_image_rgb(d / "a.JPEG");
    CHECK(m.rows == 16);
    CHECK(m.cols == 16);
    check_rgb(m, 200, 30, 90, 3);
  }
  SECTION("a PNG named .JPEG decodes exactly") {
    write_bytes(d / "n02105855_2933.JPEG", flat(201, 31, 91, ".png"));
    check_rgb(decode_image_rgb(d / "n02105855_2933.JPEG"), 201, 31, 91, 0);
  }
  SECTION("a grayscale JPEG gives R = G = B") {
    const Bytes g = flat_gray(77);
    REQUIRE(jpeg_components(g) == 1);
    write_bytes(d / "g.JPEG", g);
    check_rgb(decode_image_rgb(d / "g.JPEG"), 77, 77, 77, 2);
  }
  SECTION("CMYK and YCCK JPEGs: the Adobe convention, not inverted") {
    // Ink C=20 M=200 Y=120 K=40 is stored inverted: 235 55 135 215. RGB = stored·stored_K/255.
    // Read the other way round (stored = ink) the result would be about (3, 46, 25).
    const std::array<int, 4> stored = {235, 55, 135, 215};
    const int r = 235 * 215 / 255, g = 55 * 215 / 255, b = 135 * 215 / 255;  // 198, 46, 113
    for (J_COLOR_SPACE space : {JCS_CMYK, JCS_YCCK}) {
      INFO((space == JCS_CMYK ? "CMYK" : "YCCK"));
      const Bytes jpg = cmyk_jpeg(stored, space);
      REQUIRE(jpeg_components(jpg) == 4);
      REQUIRE(has_marker(jpg, 0xEE));  // Adobe APP14
      write_bytes(d / "c.JPEG", jpg);
      check_rgb(decode_image_rgb(d / "c.JPEG"), r, g, b, 4);
    }
  }
  SECTION("problems throw ImageError naming the file") {
    const fs::path f = d / "bad.JPEG";
    CHECK_THROWS_AS(decode_image_rgb(f), ImageError);
    CHECK_THROWS_WITH(decode_image_rgb(f), Contains(f.string() + ": missing"));
    write_bytes(f, {});
    CHECK_THROWS_WITH(decode_image_rgb(f), Contains(f.string() + ": empty file"));
    Bytes truncated = flat(9, 9, 9, ".jpg", 64);
    truncated.resize(truncated.size() / 2);
    write_bytes(f, truncated);
    CHECK_THROWS_AS(decode_image_rgb(f), ImageError);
    CHECK_THROWS_WITH(decode_image_rgb(f), Contains(f.string() + ": truncated JPEG"));
    write_bytes(f, {'<', 'h', 't', 'm', 'l', '>', 'x', 'y'});
    CHECK_THROWS_WITH(decode_image_rgb(f),
                      Contains(f.string() + ": not a JPEG or PNG (the file starts with bytes 3c 68 74 6d)"));
    // JPEG signature and end marker around garbage: only the decoder can tell.
    Bytes garbage = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02};
    for (int i = 0; i < 300; ++i) garbage.push_back(static_cast<unsigned char>(i * 37 + 11));
    garbage.push_back(0xFF);
    garbage.push_back(0xD9);
    write_bytes(f, garbage);
    CHECK_THROWS_AS(decode_image_rgb(f), ImageError);
    CHECK_THROWS_WITH(decode_image_rgb(f), Contains(f.string() + ": OpenCV cannot decode this JPEG"));
  }
}

TEST_CASE("imagenet-folder writes a set that the reader reads back with the IDX labels and pixels",
          "[imagenet]") {
  TempDir d("imagenet-tool");
  // Small IDX files: train image i is flat with value 10 + 20·label + (i / 10 % 3); t10k image i
  // flat 10 + 20·label; labels cycle 0..9.
  const int64_t n_train = 40, n_test = 30;
  auto make = [](int64_t n, bool vary) {
    torch::Tensor images = torch::empty({n, 28, 28}, torch::kUInt8),
                  labels = torch::empty({n}, torch::kUInt8);
    for (int64_t i = 0; i < n; ++i) {
      labels[i] = i % 10;
      images[i].fill_(10 + 20 * (i % 10) + (vary ? i / 10 % 3 : 0));
    }
    return std::make_pair(images, labels);
  };
  const auto [train_x, train_y] = make(n_train, true);
  const auto [test_x, test_y] = make(n_test, false);
  fs::create_directories(d / "idx");
  mgl::datasets::write_idx_u8(d / "idx/train-images-idx3-ubyte.gz", train_x);
  mgl::datasets::write_idx_u8(d / "idx/train-labels-idx1-ubyte.gz", train_y);
  mgl::datasets::write_idx_u8(d / "idx/t10k-images-idx3-ubyte", test_x);  // plain files work too
  mgl::datasets::write_idx_u8(d / "idx/t10k-labels-idx1-ubyte", test_y);
  const fs::path log = d / "log.txt";
  auto run = [&](const std::string& args) {
    const std::string cmd = fmt::format("'{}' data imagenet-folder --idx '{}' {} > '{}' 2>&1",
                                        MEGALODON_CLI_PATH, (d / "idx").string(), args, log.string());
    const int status = std::system(cmd.c_str());
    std::ifstream in(log);
    std::stringstream s;
    s << in.rdbuf();
    INFO(cmd << "\n" << s.str());
    return status;
  };
  const std::vector<std::string> wnids = {"n91000000", "n91000100", "n91000200", "n91000300", "n91000400",
                                          "n91000500", "n91000600", "n91000700", "n91000800", "n91000900"};

  SECTION("csv layout with the quirks, through the command line") {
    const fs::path out = d / "csv";
    REQUIRE(run(fmt::format("--out '{}' --train-per-class 3 --val-per-class 2 --quirks --seed 5",
                            out.string())) == 0);
    const auto ix = read_imagenet_index(out, BadImages::error, true);
    CHECK(ix.wnids == wnids);
    CHECK(ix.names.at(0) == "T-shirt/top");
    CHECK(ix.names.at(9) == "Ankle boot");
    CHECK(ix.val_source == "LOC_val_solution.csv");
    REQUIRE(ix.train.size() == 30);
    REQUIRE(ix.val.size() == 20);
    std::map<int64_t, std::pair<int64_t, fs::path>> first_of_class;  // label -> smallest k and its file
    for (const auto& item : ix.train) {
      // <wnid>_<k>.JPEG with k the IDX index: the label and the pixels must both match image k.
      const std::string stem = item.path.stem().string();
      const int64_t k = std::stoll(stem.substr(stem.find('_') + 1));
      INFO(item.path);
      CHECK(stem.substr(0, 9) == wnids.at(size_t(item.label)));
      CHECK(train_y[k].item<int64_t>() == item.label);
      const int v = train_x[k][0][0].item<int>();
      check_rgb(decode_image_rgb(item.path), v, v, v, 2);
      auto& first = first_of_class.emplace(item.label, std::make_pair(k, item.path)).first->second;
      if (k < first.first) first = {k, item.path};
    }
    for (size_t i = 0; i < ix.val.size(); ++i) {
      INFO(ix.val[i].path);
      CHECK(ix.val[i].path.filename() == fmt::format("ILSVRC2012_val_{:08d}.JPEG", i + 1));
      const int v = 10 + 20 * int(ix.val[i].label);
      check_rgb(decode_image_rgb(ix.val[i].path), v, v, v, 2);
    }
    // The quirks are the first image (smallest k) of classes 0, 1 and 2; the others are RGB JPEGs.
    const Bytes png = read_bytes(first_of_class.at(0).second), gray = read_bytes(first_of_class.at(1).second),
                cmyk = read_bytes(first_of_class.at(2).second);
    CHECK(png.at(0) == 0x89);
    CHECK(png.at(1) == 'P');
    CHECK(jpeg_components(gray) == 1);
    CHECK(jpeg_components(cmyk) == 4);
    CHECK(jpeg_components(read_bytes(first_of_class.at(3).second)) == 3);
  }
  mgl::datasets::ImageNetFolderOptions o;
  o.idx_dir = d / "idx";
  o.train_per_class = 1;
  o.val_per_class = 3;
  SECTION("folders layout, resized, and force") {
    const fs::path out = d / "folders";
    fs::create_directories(out / "val/stale");
    write_text(out / "keep.txt", "mine");
    o.val_folders = true;
    o.size = 40;
    CHECK_THROWS_WITH(mgl::datasets::write_imagenet_folder(out, o),
                      Contains((out / "val").string() + " exists; pass force"));
    o.force = true;
    const auto stats = mgl::datasets::write_imagenet_folder(out, o);
    CHECK(stats.train == 10);
    CHECK(stats.val == 30);
    CHECK(stats.quirks.empty());
    const auto ix = read_imagenet_index(out, BadImages::error, true);
    CHECK(ix.val_source == "val/<wnid>/ folders");
    CHECK(ix.train.size() == 10);
    REQUIRE(ix.val.size() == 30);
    CHECK(fs::exists(out / "keep.txt"));
    CHECK_FALSE(fs::exists(out / "val/stale"));
    CHECK_FALSE(fs::exists(out / "LOC_val_solution.csv"));
    for (const auto& item : ix.val) {
      CHECK(item.path.parent_path().filename() == wnids.at(size_t(item.label)));
      const cv::Mat m = decode_image_rgb(item.path);
      CHECK(m.rows == 40);
      const int v = 10 + 20 * int(item.label);
      check_rgb(m, v, v, v, 2);
    }
  }
  SECTION("deterministic for a seed, different for another") {
    auto files = [](const fs::path& root) {
      std::map<std::string, Bytes> all;
      for (const auto& e : fs::recursive_directory_iterator(root))
        if (e.is_regular_file()) all[fs::relative(e.path(), root).string()] = read_bytes(e.path());
      return all;
    };
    o.quirks = true;
    mgl::datasets::write_imagenet_folder(d / "a", o);
    mgl::datasets::write_imagenet_folder(d / "b", o);
    o.seed = 1;
    mgl::datasets::write_imagenet_folder(d / "c", o);
    const auto a = files(d / "a");
    CHECK(a.size() == 10 + 30 + 2);
    CHECK(a == files(d / "b"));
    CHECK(a != files(d / "c"));
  }
  SECTION("too few images per class is an error naming the class and the file") {
    o.train_per_class = 5;
    CHECK_THROWS_WITH(
        mgl::datasets::write_imagenet_folder(d / "x", o),
        Contains("5 train images per class asked for, but class 0 (T-shirt/top) has only 4 in " +
                 (d / "idx/train-labels-idx1-ubyte.gz").string()));
  }
}

TEST_CASE("image_quirks: what the decoder does to each of ImageNet's oddities, from the header", "[imagenet]") {
  TempDir d("imagenet-quirks");
  auto quirks = [&](const std::string& name, const Bytes& bytes) {
    write_bytes(d / name, bytes);
    std::string all;
    for (const auto& q : mgl::datasets::image_quirks(d / name)) all += q + "|";
    return all;
  };
  CHECK(quirks("plain.JPEG", flat(1, 2, 3)) == "");
  CHECK(quirks("plain.png", flat(1, 2, 3, ".png")) == "");
  CHECK(quirks("png.JPEG", flat(1, 2, 3, ".png")) == "PNG data under a .JPEG name: decoded as PNG by its content|");
  CHECK(quirks("jpeg.png", flat(1, 2, 3)) == "JPEG data under a .png name: decoded as JPEG by its content|");
  CHECK(quirks("grey.JPEG", flat_gray(77)) == "grayscale JPEG: R = G = B|");
  CHECK_THAT(quirks("cmyk.JPEG", cmyk_jpeg({255, 255, 255, 128}, JCS_CMYK)), Contains("CMYK JPEG: converted to RGB"));
  CHECK_THAT(quirks("ycck.JPEG", cmyk_jpeg({255, 255, 255, 128}, JCS_YCCK)), Contains("YCCK JPEG: converted to RGB"));
  CHECK(quirks("noise.JPEG", Bytes{0x12, 0x34}) == "");  // not an image: check_files reports it, not this
  Bytes cut = flat_gray(77);
  cut.resize(6);  // the header walk stops at the end of the bytes without reading past them
  CHECK(quirks("cut.JPEG", cut) == "");
}

TEST_CASE("megalodon data imagenet-check --skip-bad: exit 0, bad files and each quirk file listed", "[imagenet]") {
  Tree t;
  const fs::path dir = t.root / "train/n02000000";
  write_bytes(dir / "n02000000_2933.JPEG", flat(1, 2, 3, ".png"));
  write_bytes(dir / "n02000000_30.JPEG", cmyk_jpeg({255, 255, 255, 128}, JCS_CMYK));
  write_bytes(dir / "n02000000_31.JPEG", flat_gray(77));
  write_bytes(dir / "n02000000_42.JPEG", {});
  TempDir out("imagenet-check");
  auto run = [&](const std::string& args, std::string& text) {
    const std::string cmd = fmt::format("'{}' data imagenet-check --root '{}' {} > '{}' 2>&1", MEGALODON_CLI_PATH,
                                        t.root.string(), args, (out / "log.txt").string());
    const int status = std::system(cmd.c_str());
    std::ifstream in(out / "log.txt");
    std::stringstream s;
    s << in.rdbuf();
    text = s.str();
    INFO(cmd << "\n" << text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  std::string text;
  CHECK(run("--skip-bad --decode --threads 1", text) == 0);
  INFO(text);
  CHECK_THAT(text, Contains("skipped " + (dir / "n02000000_42.JPEG").string() + ": empty file"));
  CHECK_THAT(text, Contains("quirk " + (dir / "n02000000_2933.JPEG").string() + ": PNG data under a .JPEG name"));
  CHECK_THAT(text, Contains("quirk " + (dir / "n02000000_30.JPEG").string() + ": CMYK JPEG: converted to RGB"));
  CHECK_THAT(text, Contains("quirk " + (dir / "n02000000_31.JPEG").string() + ": grayscale JPEG"));
  CHECK_THAT(text, Contains("1 bad files skipped, 3 files with quirks handled"));
  // Without --skip-bad the empty file stops the check with its name and exit status 1.
  CHECK(run("", text) == 1);
  CHECK_THAT(text, Contains((dir / "n02000000_42.JPEG").string()));
}
