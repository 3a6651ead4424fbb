// CIFAR-10 binary reader/writer and the two grayscale rules. Oracles: records laid out byte by
// byte in the test; luma values computed by hand from PIL's fixed-point formula and from TF's
// float32 weights.
//
// LibTorch before Catch: c10 is built with glog, whose logging.h defines its own CHECK (a fatal
// assertion); included after catch.hpp it would replace Catch's CHECK in this file.
// clang-format off
#include "datasets/cifar10.h"

#include <catch2/catch.hpp>
// clang-format on

#include <array>
#include <fstream>

#include "support/files.h"

using mgl::datasets::GrayRule;
using mgl::test::TempDir;

namespace {
void write_bytes(const std::filesystem::path& p, const std::vector<unsigned char>& b) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// One pixel per image, N×3×1×1, for the grayscale rules.
torch::Tensor pixels(const std::vector<std::array<int, 3>>& rgb) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(rgb.size()), 3, 1, 1}, torch::kUInt8);
  for (size_t i = 0; i < rgb.size(); ++i)
    for (int c = 0; c < 3; ++c) t[static_cast<int64_t>(i)][c][0][0] = rgb[i][c];
  return t;
}

std::vector<int> gray_values(const torch::Tensor& gray) {
  torch::Tensor flat = gray.reshape({-1}).to(torch::kInt32);
  return std::vector<int>(flat.data_ptr<int>(), flat.data_ptr<int>() + flat.numel());
}
}  // namespace

TEST_CASE("CIFAR-10 records: label byte then R, G, B planes, row-major", "[cifar10]") {
  TempDir d("cifar");
  // Record 0: label 3; pixel (row 2, col 5) has R=200, G=100, B=50. Record 1: label 9, all zero.
  std::vector<unsigned char> bytes(2 * 3073, 0);
  bytes[0] = 3;
  const size_t at = 2 * 32 + 5;
  bytes[1 + at] = 200;
  bytes[1 + 1024 + at] = 100;
  bytes[1 + 2048 + at] = 50;
  bytes[3073] = 9;
  write_bytes(d / "data_batch_1.bin", bytes);
  auto set = mgl::datasets::read_cifar10_bin({d / "data_batch_1.bin"});
  REQUIRE(set.images.sizes() == torch::IntArrayRef({2, 3, 32, 32}));
  REQUIRE(set.images.scalar_type() == torch::kUInt8);
  REQUIRE(set.labels.scalar_type() == torch::kInt64);
  CHECK(set.labels[0].item<int64_t>() == 3);
  CHECK(set.labels[1].item<int64_t>() == 9);
  CHECK(set.images[0][0][2][5].item<int>() == 200);
  CHECK(set.images[0][1][2][5].item<int>() == 100);
  CHECK(set.images[0][2][2][5].item<int>() == 50);
  CHECK(set.images[0][0][5][2].item<int>() == 0);
  CHECK(set.images.sum().item<int64_t>() == 350);
}

TEST_CASE("CIFAR-10 write/read round trip, files concatenated in order", "[cifar10]") {
  TempDir d("cifar");
  torch::manual_seed(3);
  torch::Tensor a = torch::randint(0, 256, {3, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  torch::Tensor b = torch::randint(0, 256, {2, 3, 32, 32}, torch::kInt64).to(torch::kUInt8);
  mgl::datasets::write_cifar10_bin(d / "a.bin", a, torch::tensor({0, 9, 5}));
  mgl::datasets::write_cifar10_bin(d / "b.bin", b, torch::tensor({1, 2}));
  CHECK(std::filesystem::file_size(d / "a.bin") == 3 * 3073);
  auto set = mgl::datasets::read_cifar10_bin({d / "a.bin", d / "b.bin"});
  CHECK(torch::equal(set.images, torch::cat({a, b})));
  CHECK(torch::equal(set.labels, torch::tensor({0, 9, 5, 1, 2}, torch::kInt64)));
  auto empty = mgl::datasets::read_cifar10_bin({});
  CHECK(empty.images.sizes() == torch::IntArrayRef({0, 3, 32, 32}));

  auto train = mgl::datasets::cifar10_files("/x/cifar-10-batches-bin", true);
  REQUIRE(train.size() == 5);
  CHECK(train[0] == std::filesystem::path("/x/cifar-10-batches-bin/data_batch_1.bin"));
  CHECK(train[4].filename() == "data_batch_5.bin");
  CHECK(mgl::datasets::cifar10_files("/x", false) == std::vector<std::filesystem::path>{"/x/test_batch.bin"});
}

TEST_CASE("CIFAR-10 errors name the file: size, label, missing", "[cifar10]") {
  TempDir d("cifar");
  write_bytes(d / "short.bin", std::vector<unsigned char>(3072, 0));
  REQUIRE_THROWS_WITH(mgl::datasets::read_cifar10_bin({d / "short.bin"}),
                      Catch::Contains("short.bin") && Catch::Contains("3073"));
  std::vector<unsigned char> bytes(2 * 3073, 0);
  bytes[3073] = 10;
  write_bytes(d / "label.bin", bytes);
  REQUIRE_THROWS_WITH(mgl::datasets::read_cifar10_bin({d / "label.bin"}),
                      Catch::Contains("label.bin") && Catch::Contains("record 1") && Catch::Contains("10"));
  REQUIRE_THROWS_WITH(mgl::datasets::read_cifar10_bin({d / "absent.bin"}), Catch::Contains("absent.bin"));
}

TEST_CASE("grayscale, pil rule: PIL's fixed-point luma survives the float32 round trip", "[cifar10][gray]") {
  // (R·19595 + G·38470 + B·7471 + 32768) >> 16 (Pillow >= 7):
  //   (255,0,0): 4996725+32768 >> 16 = 76;  (0,255,0): 9809850+32768 >> 16 = 150 (149.69 rounded);
  //   (0,0,255): 1905105+32768 >> 16 = 29;  (128,64,32): 2508160+2462080+239072+32768 >> 16 = 79.
  auto rgb = pixels({{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}, {0, 0, 0}, {128, 64, 32}});
  torch::Tensor g = mgl::datasets::cifar10_to_gray(rgb, GrayRule::pil);
  CHECK(g.sizes() == torch::IntArrayRef({6, 1, 1}));
  CHECK(g.scalar_type() == torch::kUInt8);
  CHECK(gray_values(g) == std::vector<int>{76, 150, 29, 255, 0, 79});

  // ToTensor()'s v/255 and mul(255) in float32, then truncation: for every v in 0..255 the two
  // correctly rounded steps come back to exactly v (checked exhaustively when this test was
  // written: no value is lost), so a grey pixel (v,v,v), whose luma is v, stays v.
  torch::Tensor levels =
      torch::arange(256, torch::kInt64).to(torch::kUInt8).reshape({1, 1, 16, 16}).expand({1, 3, 16, 16});
  torch::Tensor back = mgl::datasets::cifar10_to_gray(levels, GrayRule::pil);
  CHECK(torch::equal(back.reshape({256}), torch::arange(256, torch::kInt64).to(torch::kUInt8)));
  for (int v = 0; v < 256; ++v) {
    const float x = static_cast<float>(v) / 255.0f;
    REQUIRE(static_cast<int>(x * 255.0f) == v);
  }
}

TEST_CASE("grayscale, tf rule: float32 weights 0.2989/0.5870/0.1140, ×255.5, truncated", "[cifar10][gray]") {
  // (255,0,0): 0.2989·255.5 = 76.37 -> 76;  (0,255,0): 0.587·255.5 = 149.98 -> 149;
  // (0,0,255): 0.114·255.5 = 29.13 -> 29;  white: 0.9999·255.5 = 255.47 -> 255;
  // (128,64,32): (0.2989·128 + 0.587·64 + 0.114·32)/255·255.5 = 79.63 -> 79.
  auto rgb = pixels({{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}, {0, 0, 0}, {128, 64, 32}});
  CHECK(gray_values(mgl::datasets::cifar10_to_gray(rgb, GrayRule::tf)) ==
        std::vector<int>{76, 149, 29, 255, 0, 79});
  // The two rules differ on pure green (149 vs 150), by at most one level on grey (v·0.9999·255.5/255).
  auto grey = pixels({{100, 100, 100}});
  CHECK(gray_values(mgl::datasets::cifar10_to_gray(grey, GrayRule::tf)) == std::vector<int>{100});
}

TEST_CASE("grayscale rule names", "[cifar10][gray]") {
  CHECK(mgl::datasets::parse_gray_rule("pil") == GrayRule::pil);
  CHECK(mgl::datasets::parse_gray_rule("tf") == GrayRule::tf);
  CHECK_THROWS_WITH(mgl::datasets::parse_gray_rule("luma"), Catch::Contains("luma"));
  CHECK_THROWS_AS(mgl::datasets::cifar10_to_gray(torch::zeros({2, 32, 32}, torch::kUInt8), GrayRule::pil),
                  std::invalid_argument);
}

TEST_CASE("CIFAR-10: a batch of another size than asked for names the file and both counts", "[cifar10]") {
  TempDir d("cifar");
  mgl::datasets::write_cifar10_bin(d / "data_batch_1.bin", torch::zeros({5, 3, 32, 32}, torch::kUInt8),
                                   torch::zeros({5}, torch::kInt64));
  REQUIRE_THROWS_AS(mgl::datasets::read_cifar10_bin({d / "data_batch_1.bin"}, 10), mgl::datasets::Cifar10SizeError);
  REQUIRE_THROWS_WITH(mgl::datasets::read_cifar10_bin({d / "data_batch_1.bin"}, 10),
                      Catch::Contains("data_batch_1.bin") && Catch::Contains("5 records, expected 10"));
  CHECK(mgl::datasets::read_cifar10_bin({d / "data_batch_1.bin"}, 5).labels.size(0) == 5);
  CHECK(mgl::datasets::read_cifar10_bin({d / "data_batch_1.bin"}).labels.size(0) == 5);  // -1: any size
}
