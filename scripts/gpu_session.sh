#!/usr/bin/env bash
# One call on the GPU machine (the `device` tool runs it from the repository root): builds against the
# PyTorch installed there, runs the GPU checks, the sanitizers and the kernel/end-to-end/NCCL benchmarks,
# all within $BUDGET seconds (480: one command may run 600 s, and the lease is 15 minutes in all).
#
#   prepare here:  bash ../shared/scripts/device-deps       (writes .devdeps/, carried with the call)
#   device run:    bash scripts/gpu_session.sh               (carry: .devdeps; timeout_s 600)
#   dry run here:  bash scripts/libtorch2.sh dry-run         (runs this script with --dry-run in a
#                  Debian trixie root: LibTorch 2.6, nvcc from /usr/local/cuda, only .devdeps' packages)
#
# --dry-run: configure and compile exactly what the device run builds (MEGALODON_CUDA=ON), log the
# cubins' architectures, and stop before running anything.
#
# Every phase has a deadline and writes its log into $OUT as it goes, so a call killed at its limit
# still returns what was done. At most 8 files come back: build.log, gpu_tests.log, sanitizer.log
# (every report in full), bench.log (all tables), bench_cema.json, bench_tsn.json, bench_e2e.json,
# bench_dist.json. The last lines printed are a summary: phase, exit status, seconds.
set -uo pipefail
cd "$(dirname "$0")/.."

# ---- what runs (names as registered with MGL_GPU_CHECK in tests/gpu; a name matches as a substring)
BUILD_TARGETS=(megalodon megalodon_gpu_tests)
GPU_CHECKS=""  # empty: every check
# Under the sanitizers: the kernels' edge shapes (partial chunks, N = 7, head dim 80, L = 1) and
# the module paths. memcheck runs with the caching allocator off (it hides small overruns).
SANITIZE_CHECKS=("cema impulse_response" "cema fwd/bwd" "cema module dispatch" "timestep_norm" "row_norm"
                 "attention chunked" "attention decode" "attention mega layer")
SANITIZE_TOOLS=(memcheck racecheck)
# CPU tests to run here as well (none use CUDA, and CI runs them all): empty, so the build skips
# megalodon_tests, the largest target. Set e.g. "[kernel_math]" to run those on this machine's LibTorch.
CPU_TEST_TAGS=""
CUDA_ARCH=9.0  # the H100 / H200: TORCH_CUDA_ARCH_LIST (LibTorch's CMake) and CMAKE_CUDA_ARCHITECTURES

# ---- deadlines (seconds); a phase gets the smaller of its own and what is left of BUDGET
BUDGET=${GPU_SESSION_BUDGET:-480}
T_CONFIGURE=90
T_BUILD=240
T_GPU_CHECKS=60
T_SANITIZE_EACH=25
T_BENCH_EACH=40
T_CPU_TESTS=40

[ -n "$CPU_TEST_TAGS" ] && BUILD_TARGETS+=(megalodon_tests)
dry_run=0
[ "${1:-}" = "--dry-run" ] && dry_run=1
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
B=build-gpu
# A CPU-only LibTorch (the dry run's) compiles the torch glue in a target of its own, as a check.
((dry_run)) && B=build-gpu-dry BUILD_TARGETS+=(megalodon_cuda_glue_check)
start=$SECONDS
summary=()

# phase NAME SECONDS LOG COMMAND...: runs COMMAND with a deadline, appending to LOG.
phase() {
  local name=$1 max=$2 log=$3 t0=$SECONDS rc
  shift 3
  local left=$((BUDGET - (SECONDS - start)))
  ((left < max)) && max=$left
  if ((max < 5)); then
    echo "== $name: not run (the budget of ${BUDGET}s is spent)" >> "$log"
    summary+=("$(printf '%-48s %s' "$name" "not run: budget spent")")
    return 124
  fi
  echo "== $name (deadline ${max}s)" >> "$log"
  timeout --kill-after=5 "$max" "$@" >> "$log" 2>&1
  rc=$?
  ((rc == 124)) && echo "== $name: killed at its deadline (${max}s)" >> "$log"
  echo "== $name: exit $rc after $((SECONDS - t0))s" >> "$log"
  summary+=("$(printf '%-48s exit %-3s %4ss' "$name" "$rc" "$((SECONDS - t0))")")
  return $rc
}
finish() {
  echo "---- summary ($((SECONDS - start))s of ${BUDGET}s; logs in $OUT)"
  printf '%s\n' "${summary[@]}"
  exit "$1"
}

# ---- environment: the carried header/library packages and the PyTorch of this machine
if compgen -G ".devdeps/*.deb" > /dev/null; then
  for f in .devdeps/*.deb; do dpkg -x "$f" /opt/devdeps; done
  export LIBRARY_PATH=/opt/devdeps/usr/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH=/opt/devdeps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
fi
# The unpacked root is a prefix: CMake finds Catch2 (usr/lib/cmake), fmt and toml++
# (usr/lib/x86_64-linux-gnu/cmake) and nlohmann_json (usr/share/cmake) below it.
prefixes="/opt/devdeps/usr"
torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)' 2> /dev/null) &&
  prefixes="$prefixes;$torch_prefix"
export TORCH_CUDA_ARCH_LIST=$CUDA_ARCH
[ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)

# The dry run (2 shared CPUs in CI) has no deadlines; on the device every phase has one.
((dry_run)) && BUDGET=100000 T_CONFIGURE=100000 T_BUILD=100000
log=$OUT/build.log
{
  echo "== $( ((dry_run)) && echo "dry run" || echo "device run") $(date -u +%FT%TZ), $(nproc) CPUs"
  command -v nvidia-smi > /dev/null && nvidia-smi
  nvcc --version
  python3 -c 'import torch;print("torch", torch.__version__, torch.version.cuda)' 2> /dev/null ||
    echo "torch: no Python torch here; CMake's default search finds LibTorch"
  echo "CMAKE_PREFIX_PATH=$prefixes TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
} > "$log" 2>&1
phase configure $T_CONFIGURE "$log" cmake -S . -B $B "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DMEGALODON_CUDA=ON \
  -DMEGALODON_WITH_VISION=OFF -DMEGALODON_WITH_AUDIO=OFF "-DCMAKE_PREFIX_PATH=$prefixes" \
  "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCH/./}" || { tail -40 "$log"; finish 1; }
phase build $T_BUILD "$log" cmake --build $B -j "$(nproc)" --target "${BUILD_TARGETS[@]}" || { tail -40 "$log"; finish 1; }
# The log proves which GPU code was built: every kernel object must hold sm_${CUDA_ARCH/./} code.
# Where the CUDA toolkit has no cuobjdump (the CPU machine's minimal nvcc install), the nvcc command
# lines in build.ninja are the evidence instead, and the log says so.
{
  if command -v cuobjdump > /dev/null; then
    echo "== cuobjdump --list-elf $B/libmegalodon_kernels.a"
    cuobjdump --list-elf $B/libmegalodon_kernels.a
  else
    echo "== no cuobjdump in this CUDA toolkit: the nvcc code targets of $B/build.ninja instead"
    grep -o "arch=compute_[0-9]*,code=[^ \"]*" $B/build.ninja | sort | uniq -c
  fi
} >> "$log" 2>&1
if ! grep -q "sm_${CUDA_ARCH/./}" "$log"; then
  echo "no sm_${CUDA_ARCH/./} code in libmegalodon_kernels.a (see build.log)" | tee -a "$log"
  finish 1
fi
if ((dry_run)); then
  summary+=("dry run: configured and compiled $(IFS=' '; echo "${BUILD_TARGETS[*]}"); nothing run")
  finish 0
fi

# ---- the GPU checks (the kernels against the reference path, fp64 oracles)
log=$OUT/gpu_tests.log
: > "$log"
phase "gpu checks" $T_GPU_CHECKS "$log" $B/megalodon_gpu_tests $GPU_CHECKS

# ---- sanitizers: full reports
log=$OUT/sanitizer.log
: > "$log"
for tool in "${SANITIZE_TOOLS[@]}"; do
  for check in "${SANITIZE_CHECKS[@]}"; do
    env_extra=()
    [ "$tool" = memcheck ] && env_extra=(PYTORCH_NO_CUDA_MEMORY_CACHING=1)
    phase "$tool: $check" $T_SANITIZE_EACH "$log" env "${env_extra[@]}" compute-sanitizer --tool "$tool" \
      --error-exitcode 9 --print-limit 1000 $B/megalodon_gpu_tests "$check"
  done
done

# ---- benchmarks
log=$OUT/bench.log
: > "$log"
phase bench-cema $T_BENCH_EACH "$log" $B/megalodon bench cema --lengths 1024,4096,16384,65536 --json "$OUT/bench_cema.json"
phase bench-tsn $T_BENCH_EACH "$log" $B/megalodon bench timestep-norm --device cuda --json "$OUT/bench_tsn.json"
phase "bench e2e" $((2 * T_BENCH_EACH)) "$log" $B/megalodon bench model --device cuda --kernels reference,auto --json "$OUT/bench_e2e.json"
phase bench-dist $T_BENCH_EACH "$log" $B/megalodon bench dist --device cuda --procs 1 --always --json "$OUT/bench_dist.json"

# ---- CPU tests on this machine's LibTorch, if asked for
[ -n "$CPU_TEST_TAGS" ] &&
  phase "cpu tests $CPU_TEST_TAGS" $T_CPU_TESTS "$OUT/gpu_tests.log" $B/megalodon_tests "$CPU_TEST_TAGS"

grep -h "passed, .* failed" "$OUT/gpu_tests.log" | tail -2
echo "sanitizer runs with ERROR SUMMARY: 0 errors: $(grep -c "ERROR SUMMARY: 0 errors" "$OUT/sanitizer.log")" \
  "of $((${#SANITIZE_TOOLS[@]} * ${#SANITIZE_CHECKS[@]}))"
finish 0
