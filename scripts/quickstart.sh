#!/usr/bin/env bash
# Set-up + build + the main job. Until the experiment harness lands, the main job is the model
# benchmark: Megalodon against the Transformer baseline, forward+backward on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p results/bench
./build/megalodon bench --lengths 1024,4096 --json results/bench/quickstart.json
