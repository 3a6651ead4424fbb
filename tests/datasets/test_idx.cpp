// IDX reader (MNIST / Fashion-MNIST format). Oracle: bytes written by hand in the test.
#include <catch2/catch.hpp>

#include <fstream>

#include "datasets/idx.h"
#include "support/files.h"

using mgl::test::TempDir;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
void write_bytes(const std::filesystem::path& p, const std::vector<unsigned char>& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
}
}  // namespace

TEST_CASE("IDX files written byte by byte are read with their shape and values", "[idx]") {
  TempDir d("idx");
  // 2 images of 2×3: header 00 00 08 03, sizes big-endian.
  write_bytes(d / "img.idx", {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 255});
  torch::Tensor t = mgl::datasets::read_idx_u8(d / "img.idx");
  REQUIRE(t.sizes() == torch::IntArrayRef({2, 2, 3}));
  CHECK(t[0][1][2].item<int>() == 6);
  CHECK(t[1][1][2].item<int>() == 255);
  write_bytes(d / "lab.idx", {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9});
  torch::Tensor l = mgl::datasets::read_idx_u8(d / "lab.idx");
  CHECK(l.sizes() == torch::IntArrayRef({3}));
  CHECK(l[2].item<int>() == 9);
}

TEST_CASE("IDX write/read round-trips, plain and gzipped", "[idx]") {
  TempDir d("idx");
  torch::Tensor x = torch::randint(0, 256, {5, 7, 4}, torch::kInt64).to(torch::kUInt8);
  mgl::datasets::write_idx_u8(d / "x.idx", x);
  CHECK(torch::equal(mgl::datasets::read_idx_u8(d / "x.idx"), x));
  CHECK(std::filesystem::file_size(d / "x.idx") == 4 + 3 * 4 + 5 * 7 * 4);
#ifdef MEGALODON_HAS_ZLIB
  mgl::datasets::write_idx_u8(d / "x.idx.gz", x);
  CHECK(torch::equal(mgl::datasets::read_idx_u8(d / "x.idx.gz"), x));
  // The .gz really is compressed (gzip magic 1f 8b).
  std::ifstream gz(d / "x.idx.gz", std::ios::binary);
  CHECK(gz.get() == 0x1f);
#else
  CHECK_THROWS_WITH(mgl::datasets::write_idx_u8(d / "x.idx.gz", x), Catch::Contains("zlib"));
#endif
}

TEST_CASE("corrupt IDX files give an error naming the file and the problem", "[idx]") {
  TempDir d("idx");
  write_bytes(d / "short.idx", {0, 0, 8, 1, 0, 0, 0, 5, 1, 2});
  std::string e = error_of([&] { mgl::datasets::read_idx_u8(d / "short.idx"); });
  CHECK(e.find("short.idx") != std::string::npos);
  CHECK(e.find("truncated") != std::string::npos);
  write_bytes(d / "magic.idx", {1, 2, 8, 1, 0, 0, 0, 1, 1});
  CHECK(error_of([&] { mgl::datasets::read_idx_u8(d / "magic.idx"); }).find("not an IDX file") != std::string::npos);
  write_bytes(d / "float.idx", {0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0});
  CHECK(error_of([&] { mgl::datasets::read_idx_u8(d / "float.idx"); }).find("0x0d") != std::string::npos);
  write_bytes(d / "long.idx", {0, 0, 8, 1, 0, 0, 0, 1, 1, 2});
  CHECK(error_of([&] { mgl::datasets::read_idx_u8(d / "long.idx"); }).find("trailing") != std::string::npos);
  CHECK(error_of([&] { mgl::datasets::read_idx_u8(d / "absent.idx"); }).find("absent.idx") != std::string::npos);
}

TEST_CASE("the real Fashion-MNIST files from Debian's dataset-fashion-mnist read as documented", "[idx][real]") {
  const std::filesystem::path root = "/usr/share/datasets/fashion-mnist";
#ifndef MEGALODON_HAS_ZLIB
  WARN("built without zlib: the gzipped Fashion-MNIST files cannot be read; skipped");
  return;
#endif
  if (!std::filesystem::exists(root / "t10k-labels-idx1-ubyte.gz")) {
    WARN("dataset-fashion-mnist is not installed; skipped");
    return;
  }
  torch::Tensor l = mgl::datasets::read_idx_u8(root / "t10k-labels-idx1-ubyte.gz");
  REQUIRE(l.sizes() == torch::IntArrayRef({10000}));
  // The test set has exactly 1,000 images per class (datasets.md).
  torch::Tensor h = torch::bincount(l.to(torch::kInt64));
  CHECK(torch::all(h == 1000).item<bool>());
}
