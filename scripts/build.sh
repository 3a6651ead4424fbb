#!/usr/bin/env bash
# Installs what is missing, configures and builds (Release) into build/. Idempotent.
# Usage: build.sh [--target T] [cmake -D... options]   (default: every target)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
jobs=$(nproc)
target=()
if [ "${1:-}" = "--target" ]; then
  target=(--target "$2")
  shift 2
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$jobs" "${target[@]}"
