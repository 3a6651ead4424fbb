// Catch2 main of the test suite. Like the megalodon executable, the test binary runs with idle
// OpenMP and OpenBLAS threads that sleep soon (harness/util/thread_env.h): the tests see the same
// threading as the CLI, and run faster on shared cores.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#if __has_include(<catch2/catch_session.hpp>)  // Catch2 v3 (Debian trixie)
#include <catch2/catch_session.hpp>
#endif

#include "harness/util/thread_env.h"

int main(int argc, char** argv) {
  mgl::harness::restart_with_sleeping_idle_threads(argv);
  return Catch::Session().run(argc, argv);
}
