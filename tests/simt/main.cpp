// Catch2 main of the SIMT executor's tests; prints what the executor ran at the end.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#ifdef MEGALODON_CATCH2_V3
#include <catch2/catch_session.hpp>
#include <catch2/reporters/catch_reporter_event_listener.hpp>
#include <catch2/reporters/catch_reporter_registrars.hpp>
#endif
#include <cstdio>

#include "simt/simt.h"

// Each test case starts clean: no finding or tracked buffer left over from one that failed midway.
#ifdef MEGALODON_CATCH2_V3
using ListenerBase = Catch::EventListenerBase;
#else
using ListenerBase = Catch::TestEventListenerBase;
#endif
struct FreshExecutor : ListenerBase {
  using ListenerBase::ListenerBase;
  void testCaseStarting(Catch::TestCaseInfo const&) override {
    simt::untrack_all();
    (void)simt::take_findings();
    (void)simt::last_error(true);
  }
};
CATCH_REGISTER_LISTENER(FreshExecutor)

int main(int argc, char** argv) {
  const int rc = Catch::Session().run(argc, argv);
  const simt::Stats s = simt::stats();
  std::printf(
      "simt executor (%s): %llu launches, %llu blocks, %llu threads, %llu barriers, %llu warp shuffles, "
      "%llu fiber switches; deepest fiber stack %zu of %zu bytes\n",
      simt::race_detector_enabled() ? "race detector + UBSan" : "AddressSanitizer + UBSan",
      static_cast<unsigned long long>(s.launches), static_cast<unsigned long long>(s.blocks),
      static_cast<unsigned long long>(s.threads), static_cast<unsigned long long>(s.barriers),
      static_cast<unsigned long long>(s.shuffles), static_cast<unsigned long long>(s.switches),
      s.max_stack_bytes, s.stack_reserved);
  return rc;
}
