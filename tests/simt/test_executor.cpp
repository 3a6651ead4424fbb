// The SIMT executor itself (simt.h) on small kernels (toy_kernels.cpp): it computes what a GPU
// computes, and it reports each kind of defect it promises to report.
#include <cmath>
#include <vector>

#include "simt/support.h"
#include "simt/toy_kernels.h"

using simt::Kind;

namespace {
std::vector<simt::Finding> run_defect(toy::Defect d) {
  std::vector<float> out(64, 0.f);
  toy::launch_defect(d, out.data());
  auto f = simt::take_findings();
  (void)simt::last_error(true);
  return f;
}
bool mentions(const std::vector<simt::Finding>& f, Kind k, const std::string& text) {
  for (const auto& x : f)
    if (x.kind == k && x.message.find(text) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST_CASE("simt executor: barriers and shuffles compute what the GPU computes", "[executor]") {
  std::vector<float> x(4 * 128), sums(4);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7);
  toy::launch_block_sum(x.data(), sums.data(), 4, 128, 128 * sizeof(float));
  mgl::simt_tests::require_no_findings("block sum");
  for (int b = 0; b < 4; ++b) {
    float want = 0.f;
    for (int i = 0; i < 128; ++i) want += x[b * 128 + i];
    CHECK(sums[b] == want);
  }
  std::vector<float> xo(64), half(64);
  std::vector<double> up(64);
  std::vector<long long> up64(64);
  toy::launch_shuffles(xo.data(), up.data(), up64.data(), half.data());
  mgl::simt_tests::require_no_findings("shuffles");
  for (int t = 0; t < 64; ++t) {
    const int lane = t % 32;
    CHECK(xo[t] == 496.f);                                // Σ 0..31 in every lane
    CHECK(up[t] == 0.5 * (lane >= 3 ? lane - 3 : lane));  // lanes below delta keep their own value
    CHECK(up64[t] == (1LL << 40) + (lane >= 1 ? lane - 1 : lane));
    CHECK(half[t] == (lane < 16 ? 120.f : 376.f));  // width 16: two independent half-warps
  }
}

TEST_CASE("simt executor: static shared memory is one array per block, dynamic is NaN-filled", "[executor]") {
  std::vector<float> out(3 * 64);
  toy::launch_static_per_block(out.data(), 3, 64);
  mgl::simt_tests::require_no_findings("static per block");
  for (int i = 0; i < 3 * 64; ++i) CHECK(out[i] == static_cast<float>(i / 64 + 1));
  std::vector<float> r(32, 0.f);
  toy::launch_read_unwritten(r.data(), 32);
  const auto f = simt::take_findings();
  for (float v : r) CHECK(std::isnan(v));
  if (simt::race_detector_enabled()) CHECK(simt::count(f, Kind::uninitialized) > 0);
}

TEST_CASE("simt executor: launches are checked against the H100's limits", "[executor]") {
  std::vector<float> out(64);
  CHECK(toy::launch_config(1, 1, 32, 32, 1, out.data()) == 0);  // 1024 threads
  CHECK(toy::launch_config(1, 1, 1, 1, 64, out.data()) == 0);
  mgl::simt_tests::require_no_findings("within limits");
  CHECK(toy::launch_config(1, 1, 1025, 1, 1, out.data()) != 0);
  CHECK(toy::launch_config(1, 1, 64, 1, 65, out.data()) != 0);
  CHECK(toy::launch_config(1, 65536, 1, 1, 1, out.data()) != 0);
  CHECK(toy::launch_config(0, 1, 1, 1, 1, out.data()) != 0);
  CHECK(simt::count(simt::take_findings(), Kind::launch) == 4);
  // Dynamic shared memory: ≤ 48 KB freely, more only after the opt-in, never more than 227 KB.
  CHECK(toy::launch_touch_last(12 * 1024, out.data(), false) == 0);
  CHECK(out[0] == 1.f);
  mgl::simt_tests::require_no_findings("48 KB");
  CHECK(toy::launch_touch_last(12 * 1024 + 1, out.data(), false) != 0);
  CHECK(mentions(simt::take_findings(), Kind::launch, "cudaFuncSetAttribute"));
  out[0] = 0.f;
  CHECK(toy::launch_touch_last(50 * 1024, out.data(), true) == 0);
  CHECK(out[0] == 1.f);
  mgl::simt_tests::require_no_findings("opt-in");
  CHECK(toy::launch_touch_last(58 * 1024 + 1, out.data(), true) != 0);
  CHECK(simt::count(simt::take_findings(), Kind::launch) == 1);
}

TEST_CASE("simt executor: divergent barriers, exits and deadlocks are reported", "[executor]") {
  CHECK(mentions(run_defect(toy::Defect::barrier_in_branch), Kind::barrier, "different __syncthreads"));
  CHECK(
      mentions(run_defect(toy::Defect::exit_before_barrier), Kind::barrier, "exited while the others wait"));
  CHECK(mentions(run_defect(toy::Defect::shuffle_vs_barrier), Kind::barrier, "deadlock"));
}

TEST_CASE("simt executor: shuffles check their mask against the lanes", "[executor]") {
  const auto f = run_defect(toy::Defect::partial_mask);
  CHECK(mentions(f, Kind::shuffle, "does not name it"));
  CHECK(mentions(f, Kind::shuffle, "outside the mask"));
  CHECK(mentions(run_defect(toy::Defect::shuffle_sites), Kind::shuffle, "disagree"));
}

TEST_CASE("simt executor: shared-memory races without a barrier between them", "[executor][race]") {
  REQUIRE(simt::race_detector_enabled());
  CHECK(mentions(run_defect(toy::Defect::race_raw), Kind::race, "read after write"));
  CHECK(mentions(run_defect(toy::Defect::race_war), Kind::race, "write after read"));
  CHECK(mentions(run_defect(toy::Defect::race_waw), Kind::race, "write after write"));
  // Iteration i's neighbour read races with iteration i + 1's write: a loop-carried race.
  CHECK(mentions(run_defect(toy::Defect::race_loop), Kind::race, "write after read"));
}
