#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool runs it from the repository root): builds against the
# PyTorch installed there, runs every GPU check, the sanitizers and the kernel/end-to-end/NCCL benchmarks.
# Everything lands in $OUT (at most 8 files come back): build.log, gpu_tests.log, sanitizer.log,
# bench.log (all tables), bench_cema.json, bench_tsn.json, bench_e2e.json, bench_dist.json.
# Prepare here first: bash ../shared/scripts/device-deps (writes .devdeps/, carried with the call).
#   device run: bash scripts/gpu_session.sh   (carry: .devdeps)
set -uo pipefail
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
if compgen -G ".devdeps/*.deb" > /dev/null; then
  for f in .devdeps/*.deb; do dpkg -x "$f" /opt/devdeps; done
  export CPATH=/opt/devdeps/usr/include LIBRARY_PATH=/opt/devdeps/usr/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH=/opt/devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
export CMAKE_PREFIX_PATH="/opt/devdeps/usr/lib/x86_64-linux-gnu/cmake:/opt/devdeps/usr/share/cmake:$TORCH_PREFIX"
gen=(); command -v ninja > /dev/null && gen=(-G Ninja)
{
  nvidia-smi; nvcc --version; python3 -c 'import torch;print("torch", torch.__version__, torch.version.cuda)'
  cmake -S . -B build-gpu "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMEGALODON_CUDA=ON \
    -DMEGALODON_WITH_VISION=OFF -DMEGALODON_WITH_AUDIO=OFF &&
    cmake --build build-gpu -j "$(nproc)" --target megalodon megalodon_gpu_tests megalodon_tests
} > "$OUT/build.log" 2>&1 || { echo "build failed: see build.log"; tail -50 "$OUT/build.log"; exit 1; }
B=build-gpu
$B/megalodon_gpu_tests > "$OUT/gpu_tests.log" 2>&1; echo "gpu checks exit $?" | tee -a "$OUT/gpu_tests.log"
$B/megalodon_tests "[cema],[cema_kernel],[kernel_math],[tsn],[norms],[attention_kernel],[attn],[kernels],[dist]~[cli]" \
  >> "$OUT/gpu_tests.log" 2>&1
{
  for t in memcheck racecheck; do
    for f in "ema_kernel" "cema_scan module" "timestep_norm" "norms_fused" "attention decode" "attention mega layer"; do
      echo "== $t: $f"
      timeout 300 compute-sanitizer --tool "$t" --error-exitcode 9 $B/megalodon_gpu_tests "$f" | tail -5
    done
  done
} > "$OUT/sanitizer.log" 2>&1
{
  $B/megalodon bench cema --lengths 1024,4096,16384,65536 --json "$OUT/bench_cema.json"
  $B/megalodon bench timestep-norm --device cuda --json "$OUT/bench_tsn.json"
  $B/megalodon bench model --device cuda --kernels reference,auto --json "$OUT/bench_e2e.json"
  $B/megalodon bench dist --device cuda --procs 1 --always --json "$OUT/bench_dist.json"
  $B/megalodon bench dist --device cuda --procs 1
} > "$OUT/bench.log" 2>&1
tail -3 "$OUT/gpu_tests.log"; grep -c "ERROR SUMMARY: 0" "$OUT/sanitizer.log"
