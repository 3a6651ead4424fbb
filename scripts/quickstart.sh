#!/usr/bin/env bash
# Set-up + build + the main job: the quickstart ablation sweep (full Megalodon against each of its
# four ablation axes) on Fashion-MNIST pixel sequences, then its table and curves in
# results/quickstart/. About 10 minutes on 2 CPU cores after the build. Running it again skips the
# runs that already finished (remove runs/quickstart to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --target megalodon   # the tests are not needed here
# A failed run does not stop the others; the table is written either way, and lists it.
status=0
./build/megalodon sweep experiments/quickstart.toml || status=$?
./build/megalodon table runs/quickstart --out results/quickstart
exit "$status"
