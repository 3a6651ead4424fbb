#!/usr/bin/env bash
# The ImageNet pipeline end to end without ImageNet: writes Fashion-MNIST (Debian's
# dataset-fashion-mnist) as an ImageNet-layout folder under data/imagenet_small (skipped when
# present), measures the input pipeline alone, trains Megalodon-small and the matched Transformer
# on the CPU, and writes results/imagenet/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --target megalodon
mgl=./build/megalodon
if [ ! -f data/imagenet_small/LOC_val_solution.csv ]; then
  time "$mgl" data imagenet-folder --out data/imagenet_small --train-per-class 1000 --val-per-class 100 --quirks
fi
mkdir -p results/imagenet
"$mgl" bench data experiments/imagenet/small/fmnist_folder.toml --batches 30 --workers 0,1,2 | tee results/imagenet/pipeline_fmnist32.txt
status=0
"$mgl" sweep experiments/imagenet/small/fmnist_folder.toml || status=$?
"$mgl" table runs/imagenet/small/fmnist_folder --out results/imagenet
exit "$status"
