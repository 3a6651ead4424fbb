#!/usr/bin/env bash
# Installs (only) what is missing from Debian bookworm for building and testing the harness.
# Idempotent: a second run installs nothing and takes about a second.
set -euo pipefail

# The project's packages (scripts/packages.txt, shared with the LibTorch 2.x root of
# scripts/libtorch2.sh) and debootstrap, which makes that root.
mapfile -t packages < <(sed 's/#.*//; /^[[:space:]]*$/d; s/[[:space:]]//g' "$(dirname "$0")/packages.txt")
packages+=(debootstrap)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "bootstrap: all packages present"
fi

# libtorch links libblas.so.3; make sure the alternative points at OpenBLAS (pthread build).
alt=/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
if [ -e "$alt" ] && command -v update-alternatives >/dev/null; then
  update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt" >/dev/null 2>&1 || true
  update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3 >/dev/null 2>&1 || true
fi
