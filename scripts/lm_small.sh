#!/usr/bin/env bash
# Language modelling end to end on real public-domain text that Debian ships (no corpus can be
# downloaded here): builds the PG-19 stand-in (KJV Bible, PG-19 layout) and the WikiText-103 stand-in
# (FOLDOC, WikiText layout) with scripts/lm_data.sh, trains a 4,096-piece SentencePiece model on the
# KJV train books, trains Megalodon-small and the matched Transformer on each (CPU, one thread per
# run, two runs side by side), then writes into results/lm/:
#   kjv/ foldoc/                    the tables beside the paper rows, training curves
#   <corpus>_<model>_stream.json    whole-book streaming perplexity, ppl vs context, per position
#   <corpus>_<model>_context.png    the perplexity-versus-context plot
#   <corpus>_<model>_generate.txt   greedy and nucleus samples from a prompt
# Data and finished runs are reused on a re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --target megalodon
mgl=./build/megalodon
export MEGALODON="$mgl"
bash scripts/lm_data.sh
kjv=data/lm/pg19_kjv
if [ ! -f "$kjv/sp4096.model" ]; then
  time "$mgl" data sentencepiece --input "$kjv/train" --model-prefix "$kjv/sp4096" --vocab-size 4096 --seed 1
fi
mkdir -p results/lm
status=0
"$mgl" sweep experiments/lm/small/kjv.toml || status=$?
"$mgl" sweep experiments/lm/small/foldoc.toml || status=$?
"$mgl" table runs/lm/small/kjv --out results/lm/kjv || status=$?
"$mgl" table runs/lm/small/foldoc --out results/lm/foldoc || status=$?

# Streaming evaluation (one thread each, the two models side by side) and generation.
evaluate() {  # corpus variant_dir name extra-args...
  local corpus=$1 dir=$2 name=$3
  shift 3
  "$mgl" lm-eval "$dir" --split test --out "results/lm/${corpus}_${name}_stream.json" \
    --plot "results/lm/${corpus}_${name}_context.png" "$@" run.threads=1 > "results/lm/${corpus}_${name}_stream.md"
}
for corpus in kjv foldoc; do
  pids=()
  for dir in runs/lm/small/$corpus/*/seed1; do
    name=$(basename "$(dirname "$dir")" | sed 's/-(ours)//; s/-small.*//' | tr '[:upper:]' '[:lower:]')
    if [ "$corpus" = foldoc ]; then
      evaluate "$corpus" "$dir" "$name" --blocks 10 &   # the paper's WikiText-103 protocol
    else
      evaluate "$corpus" "$dir" "$name" &
    fi
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || status=$?; done
  for dir in runs/lm/small/$corpus/*/seed1; do
    name=$(basename "$(dirname "$dir")" | sed 's/-(ours)//; s/-small.*//' | tr '[:upper:]' '[:lower:]')
    prompt="And it came to pass"
    [ "$corpus" = foldoc ] && prompt="A programming language is"
    out="results/lm/${corpus}_${name}_generate.txt"
    {
      echo "## greedy"; "$mgl" generate "$dir" --prompt "$prompt" --max-tokens 60 --greedy run.threads=1 2>&1; echo
      echo "## top-p 0.9, temperature 0.8, seed 1"
      "$mgl" generate "$dir" --prompt "$prompt" --max-tokens 60 --top-p 0.9 --temperature 0.8 --seed 1 run.threads=1 2>&1; echo
    } > "$out" || status=$?
  done
done
exit "$status"
