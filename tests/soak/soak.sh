#!/usr/bin/env bash
# The soak check (issue 23), outside the default test run:
#   bash tests/soak/soak.sh [BUILD_DIR] [WORK_DIR]
# 1. 5,000 training steps of a small model (Fashion-MNIST pixel sequences, box-downsampled to 14×14)
#    with the process's resident memory, open file descriptors and threads sampled every second:
#    RSS may not grow more than 2 % after warm-up (the first 10 % of the samples), descriptors and
#    threads may not grow at all.
# 2. A streaming evaluation (`megalodon lm-eval`) over 10 M byte tokens of generated text, sampled the
#    same way (constant memory is the point of streaming).
# 3. A sweep of 20 runs, 4 at a time, with runs killed (SIGKILL) at random while it works; the same
#    sweep command is run again until every run has finished: every run's final.json and metrics must
#    be intact (every step exactly once), and every killed run must have resumed from a checkpoint.
# Prints the figures and exits non-zero when a check fails. Takes roughly 35 minutes on 2 cores.
# SOAK_PHASES="1 3" runs only those phases (default: all three).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="$(cd "${1:-$src/build}" && pwd)"
work="${2:-$(mktemp -d /tmp/mgl-soak.XXXXXX)}"
mkdir -p "$work"
cli="$build/megalodon"
[ -x "$cli" ] || { echo "soak: no $cli (build the megalodon target first)" >&2; exit 2; }
echo "soak: work folder $work; load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
fail=0
phases=" ${SOAK_PHASES:-1 2 3} "
want() { [[ "$phases" == *" $1 "* ]]; }

# ---- 1. training -----------------------------------------------------------------------------------
if want 1; then
echo "== 1. 5,000 training steps with RSS, descriptor and thread sampling"
"$cli" train "$src/experiments/fmnist_tiny.toml" run.dir="$work/train" trainer.steps=5000 trainer.batch_size=16 \
  task.downsample=2 model.chunk_size=49 task.train_limit=4000 task.val_limit=500 task.test_limit=500 \
  trainer.eval_every=1000 trainer.checkpoint_every=500 trainer.log_every=500 trainer.progress=lines \
  schedule.warmup=100 run.threads=1 > "$work/train.log" 2>&1 &
python3 "$here/sample.py" $! "$work/train.samples" || fail=1
wait $! || { echo "soak: training failed (see $work/train.log)"; fail=1; }
python3 "$here/sample.py" --report "$work/train.samples" "training, 5,000 steps" || fail=1

fi

# ---- 2. streaming evaluation over 10 M tokens --------------------------------------------------------
if want 2; then
echo "== 2. streaming evaluation over 10 M tokens"
python3 - "$work/text" <<'EOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
words = [''.join(rng.choice('etaoinshrdlucmfwypvbgkjqxz') for _ in range(rng.randint(1, 9))) for _ in range(3000)]
def text(n_bytes):
    out, size = [], 0
    while size < n_bytes:
        line = ' '.join(rng.choice(words) for _ in range(rng.randint(5, 20))) + '.\n'
        out.append(line); size += len(line)
    return ''.join(out)
for split, docs, size in (('train', 4, 200_000), ('valid', 1, 50_000), ('test', 5, 2_000_000)):
    os.makedirs(os.path.join(root, split), exist_ok=True)
    for d in range(docs):
        with open(os.path.join(root, split, f'doc{d}.txt'), 'w') as f:
            f.write(text(size))
EOF
cat > "$work/lm.toml" <<EOF
defaults = ["model/lm_small", "optim/adamw", "schedule/linear", "trainer/cpu_quick"]
[task]
name = "lm"
format = "text"
root = "$work/text"
tokenizer = "byte"
cache_dir = "$work/cache"
sample_chunk = 128
min_chunks = 2
max_chunks = 2
[model]
num_layers = 1
model_dim = 32
z_dim = 16
value_dim = 32
ffn_hidden_dim = 64
chunk_size = 128
norm_num_groups = 4
[trainer]
steps = 20
batch_size = 4
eval_every = 0
eval_batch_size = 4
monitor = "val/loss"
progress = "off"
[run]
threads = 1
EOF
"$cli" train "$work/lm.toml" run.dir="$work/lm" task.eval_tokens_limit=4096 > "$work/lm_train.log" 2>&1 \
  || { echo "soak: LM training failed (see $work/lm_train.log)"; fail=1; }
"$cli" lm-eval "$work/lm" --split test --contexts 65536 --out "$work/lm_eval.json" > "$work/lm_eval.log" 2>&1 &
python3 "$here/sample.py" $! "$work/eval.samples" || fail=1
wait $! || { echo "soak: lm-eval failed (see $work/lm_eval.log)"; fail=1; }
python3 "$here/sample.py" --report "$work/eval.samples" "streaming evaluation, 10 M tokens" || fail=1
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('  tokens evaluated:', j.get('tokens', j.get('whole', {}).get('tokens')))" \
  "$work/lm_eval.json" 2>/dev/null || true

fi

# ---- 3. the killed sweep --------------------------------------------------------------------------
if want 3; then
echo "== 3. 20 runs, 4 at a time, some killed at random, the sweep re-run until all have finished"
cat > "$work/sweep.toml" <<EOF
defaults = ["$src/experiments/fmnist_tiny.toml"]
[task]
downsample = 2
train_limit = 2000
val_limit = 200
test_limit = 200
[model]
chunk_size = 49
[trainer]
steps = 300
batch_size = 16
eval_every = 100
checkpoint_every = 25
log_every = 50
progress = "lines"
[run]
threads = 1
root = "$work/runs"
[sweep]
seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
jobs = 4
EOF
# defaults entries ending in .toml are relative to the file: point at the experiment by a link.
ln -sf "$src/experiments/fmnist_tiny.toml" "$work/fmnist_tiny.toml"
sed -i "s|\"$src/experiments/fmnist_tiny.toml\"|\"fmnist_tiny.toml\"|" "$work/sweep.toml"
python3 "$here/killer.py" "$cli" "$work/sweep.toml" "$work/runs" "$work/killed.txt" || fail=1
python3 "$here/sample.py" --check-sweep "$work/runs" "$work/killed.txt" 300 50 || fail=1
fi

if [ "$fail" -ne 0 ]; then echo "soak: FAILED"; exit 1; fi
echo "soak: all checks passed"
