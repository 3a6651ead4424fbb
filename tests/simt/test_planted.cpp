// The executor catches the bugs issue 20 plants in scratch copies of the real kernels
// (planted/planted.h): (a) a missing __syncthreads, (b) dynamic shared memory one element short,
// (c) a barrier inside a thread-dependent branch, (d) a shuffle with a partial mask. Each test runs
// the real kernel on the same operands first (no findings), then the planted copy (the finding).
#include <fmt/format.h>

#include "core/cuda/attention/attention.h"
#include "core/cuda/cema/cema_scan.h"
#include "simt/planted/planted.h"
#include "simt/support.h"

using simt::Kind;
using torch::Tensor;

namespace {

// CEMA operands for B×D×L, N modes: fp32, coefficients of a stable decay, interleaved complex.
struct Cema {
  int64_t B = 1, D = 2, N = 16, L = 200;
  Tensor x, p, lq, eta, omega, h0, y, h_last, states;
  Cema() {
    torch::manual_seed(5);
    x = torch::randn({B, D, L});
    p = torch::rand({D, N}) + 0.5;
    lq = torch::stack({-torch::rand({D, N}) * 0.5 - 0.01, torch::rand({D, N}) * 3}, -1).contiguous();
    eta = torch::randn({D, N, 2});
    omega = torch::randn({D});
    h0 = torch::randn({B, D, N, 2});
    y = torch::empty_like(x);
    h_last = torch::empty({B, D, N, 2});
    states = torch::empty({B, D, mgl::cuda::cema_num_chunks(L, mgl::cuda::cema_scan_plan(N)), N, 2});
  }
  void real_forward() {
    mgl::cuda::cema_scan_forward<float, float>(
        x.data_ptr<float>(), p.data_ptr<float>(), lq.data_ptr<float>(), eta.data_ptr<float>(),
        omega.data_ptr<float>(), h0.data_ptr<float>(), y.data_ptr<float>(), h_last.data_ptr<float>(),
        states.data_ptr<float>(), B, D, N, L, false, nullptr);
  }
  using Fwd = void (*)(const float*, const float*, const float*, const float*, const float*, const float*,
                       float*, float*, float*, int64_t, int64_t, int64_t, int64_t);
  void planted_forward(Fwd f) {
    f(x.data_ptr<float>(), p.data_ptr<float>(), lq.data_ptr<float>(), eta.data_ptr<float>(),
      omega.data_ptr<float>(), h0.data_ptr<float>(), y.data_ptr<float>(), h_last.data_ptr<float>(),
      states.data_ptr<float>(), B, D, N, L);
  }
  // The backward (real or planted) with everything it writes freshly allocated.
  template <class Bwd>
  void backward(Bwd bwd) {
    Tensor gy = torch::randn_like(x), gh = torch::randn_like(h_last), dx = torch::empty_like(x);
    Tensor pp = torch::empty({B, D, N}), plq = torch::empty({B, D, N, 2}), peta = torch::empty({B, D, N, 2});
    Tensor pom = torch::empty({B, D}), dh0 = torch::empty({B, D, N, 2});
    bwd(gy.data_ptr<float>(), gh.data_ptr<float>(), x.data_ptr<float>(), p.data_ptr<float>(),
        lq.data_ptr<float>(), eta.data_ptr<float>(), omega.data_ptr<float>(), states.data_ptr<float>(),
        dx.data_ptr<float>(), pp.data_ptr<float>(), plq.data_ptr<float>(), peta.data_ptr<float>(),
        pom.data_ptr<float>(), dh0.data_ptr<float>(), B, D, N, L);
  }
};

void real_backward(const float* gy, const float* gh, const float* x, const float* p, const float* lq,
                   const float* eta, const float* om, const float* st, float* dx, float* pp, float* plq,
                   float* peta, float* pom, float* dh0, int64_t B, int64_t D, int64_t N, int64_t L) {
  mgl::cuda::cema_scan_backward<float, float>(gy, gh, x, p, lq, eta, om, st, dx, pp, plq, peta, pom, dh0, B,
                                              D, N, L, false, nullptr);
}

std::vector<simt::Finding> findings() {
  auto f = simt::take_findings();
  (void)simt::last_error(true);
  return f;
}

}  // namespace

TEST_CASE("planted (a): a missing __syncthreads is a shared-memory race", "[planted][race]") {
  REQUIRE(simt::race_detector_enabled());
  Cema c;
  c.real_forward();
  mgl::simt_tests::require_no_findings("the real CEMA forward");
  c.planted_forward(planted::cema_forward_missing_sync);
  const auto f = findings();
  INFO(simt::describe(f));
  CHECK(simt::count(f, Kind::race) > 0);
}

TEST_CASE("planted (b): dynamic shared memory one element short is an out-of-bounds access",
          "[planted][race]") {
  REQUIRE(simt::race_detector_enabled());
  Cema c;
  c.real_forward();
  c.backward(real_backward);
  mgl::simt_tests::require_no_findings("the real CEMA backward");
  c.backward(planted::cema_backward_smem_short);
  const auto f = findings();
  INFO(simt::describe(f));
  CHECK(simt::count(f, Kind::out_of_bounds) > 0);
}

// The AddressSanitizer build has no access hooks: the overrun of the exactly-sized shared buffer
// is ASan's heap-buffer-overflow, which ends the process. ctest runs this hidden test alone and
// passes when ASan's report names the overflow ("simt: planted (b) caught by AddressSanitizer").
TEST_CASE("planted (b) under AddressSanitizer", "[.asan_plant]") {
  Cema c;
  c.real_forward();
  c.backward(planted::cema_backward_smem_short);
  FAIL("AddressSanitizer did not stop the planted overrun");
}

TEST_CASE("planted (c): a barrier inside a thread-dependent branch is a divergent barrier", "[planted]") {
  Cema c;
  c.real_forward();
  mgl::simt_tests::require_no_findings("the real CEMA forward");
  c.planted_forward(planted::cema_forward_barrier_in_branch);
  const auto f = findings();
  INFO(simt::describe(f));
  CHECK(simt::count(f, Kind::barrier) > 0);
}

TEST_CASE("planted (d): a shuffle with a partial mask is reported", "[planted]") {
  torch::manual_seed(6);
  const int64_t B = 1, H = 1, L = 40, C = 40, dk = 64, dv = 32;
  Tensor q = torch::randn({B, L, H, dk}), k = torch::randn({B, L, H, dk}), v = torch::randn({B, L, H, dv});
  Tensor o = torch::empty({B, L, H, dv}), lse = torch::empty({B, H, L});
  mgl::cuda::AttentionShape s;
  s.B = B, s.H = H, s.Lq = s.Lk = L, s.chunk_q = s.chunk_k = C, s.dk = dk, s.dv = dv, s.causal = true;
  CHECK(mgl::cuda::attention_forward<float>(s, q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                                            nullptr, o.data_ptr<float>(), lse.data_ptr<float>(),
                                            nullptr) == nullptr);
  mgl::simt_tests::require_no_findings("the real attention forward");
  planted::attention_forward_partial_mask(B, H, L, C, dk, dv, q.data_ptr<float>(), k.data_ptr<float>(),
                                          v.data_ptr<float>(), o.data_ptr<float>(), lse.data_ptr<float>());
  const auto f = findings();
  INFO(simt::describe(f));
  CHECK(simt::count(f, Kind::shuffle) > 0);
}
