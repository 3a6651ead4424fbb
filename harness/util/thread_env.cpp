#include "harness/util/thread_env.h"

#include <unistd.h>

#include <cstdlib>

namespace mgl::harness {
void restart_with_sleeping_idle_threads(char** argv) {
  bool set = false;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
    set = setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0 || set;
  if (!std::getenv("OPENBLAS_THREAD_TIMEOUT")) set = setenv("OPENBLAS_THREAD_TIMEOUT", "20", 1) == 0 || set;
  if (set) execv("/proc/self/exe", argv);
}
}  // namespace mgl::harness
