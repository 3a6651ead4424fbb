#!/usr/bin/env bash
# The LRA runs that work without the LRA data: generates ListOps (LRA grammar, 20 < length < 200,
# 10,000 / 1,000 / 1,000) and Pathfinder-32 (LRA parameters, contour length 14, 10,000 images)
# under data/lra_small/, then runs experiments/lra/small/table.toml (those two and Fashion-MNIST
# in place of CIFAR-10) and writes the table beside the paper's LRA rows to results/lra/.
# Generation is skipped when the data exist; finished runs are skipped on a re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --target megalodon
mgl=./build/megalodon
if [ ! -f data/lra_small/listops/basic_test.tsv ]; then
  time "$mgl" data listops --out data/lra_small/listops --train 10000 --val 1000 --test 1000 \
    --min-length 20 --max-length 200 --seed 1
fi
pf=data/lra_small/pathfinder32/curv_contour_length_14
if [ ! -d "$pf/metadata" ]; then
  time "$mgl" data pathfinder --out "$pf" --images 10000 --preset 32 --contour-length 14 --seed 1 --threads 2
fi
status=0
"$mgl" sweep experiments/lra/small/table.toml || status=$?
"$mgl" table runs/lra/small/table --out results/lra
exit "$status"
