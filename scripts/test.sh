#!/usr/bin/env bash
# Set-up + build + the full default test suite (slow checks are tagged [.slow] and not run here:
#   build/megalodon_tests "[.slow]" runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd build && ctest --output-on-failure -j "$(nproc)"
