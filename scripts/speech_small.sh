#!/usr/bin/env bash
# The Speech Commands run that works without the data set: synthesises the ten SC10 words with
# espeak-ng and flite into data/speech_small/sc10 (the release layout; skipped when present), runs
# experiments/speech/small/sc10_synthetic.toml on the CPU and writes results/speech/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --target megalodon
mgl=./build/megalodon
if [ ! -f data/speech_small/sc10/testing_list.txt ]; then
  time "$mgl" data speech --out data/speech_small/sc10 --words sc10 --per-word 300 --seed 1
fi
status=0
"$mgl" sweep experiments/speech/small/sc10_synthetic.toml || status=$?
"$mgl" table runs/speech/small/sc10_synthetic --out results/speech
exit "$status"
