#!/usr/bin/env bash
# Set-up + build + the full default test suite (slow checks are tagged [.slow] and not run here:
#   build/megalodon_tests "[.slow]" runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
# The thread environment that `megalodon` and the test binary would otherwise set by starting
# themselves again (harness/util/thread_env.h), set once for the whole run: each of the ~370 test
# processes then loads LibTorch once, not twice (about 90 s of the suite on 2 cores).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-20}"
cd build && ctest --output-on-failure -j "$(nproc)"
