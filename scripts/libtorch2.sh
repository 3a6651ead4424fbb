#!/usr/bin/env bash
# The LibTorch 2.x leg: builds and tests the project against Debian trixie's LibTorch 2.6 (g++ 14,
# C++20, Catch2 v3, fmt 10) inside a trixie root made with debootstrap, without touching the host.
#
#   bash scripts/libtorch2.sh [test]   every target (C++20) and the full ctest suite in the full root
#   bash scripts/libtorch2.sh build    the same build, no tests
#   bash scripts/libtorch2.sh dry-run  scripts/gpu_session.sh --dry-run in the device root (below)
#   bash scripts/libtorch2.sh roots    only make (or check) the roots
#   bash scripts/libtorch2.sh shell    a shell in the full root (the repository is /src)
#   bash scripts/libtorch2.sh run CMD  one command there, from /src
#
# Two roots, made once and re-used (idempotent; a root is complete only once its stamp is written):
#   device: trixie minbase + libtorch-dev, cmake, ninja, g++, pkg-config. Like the GPU machine: a
#           LibTorch 2.x and a compiler, and no OpenCV, libsndfile or SentencePiece; the device
#           script's dry run adds only what ../shared/scripts/device-deps carries (and nvcc).
#   full:   a copy of the device root plus every package scripts/packages.txt lists.
# They live in $MEGALODON_ROOTS (default: .cache/roots in the repository, git-ignored; point it
# elsewhere to keep the roots across clones). The repository is bind-mounted at /src inside a
# private mount namespace (nothing stays mounted afterwards); /usr/local/cuda too when present.
# Build folders: build-torch2/ (full) and build-gpu-dry/ (the dry run), both git-ignored.
# Needs root, debootstrap (scripts/bootstrap.sh installs it) and Debian's mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
roots=${MEGALODON_ROOTS:-$repo/.cache/roots}
suite=trixie
jobs=$(nproc)

# The Debian mirror this machine uses (deb822 or one-line sources), else Debian's own.
mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's|^URIs:[[:space:]]*\(\S*/debian\)/\?$|\1|p' | head -1)
  [ -n "$m" ] || m=$(cat /etc/apt/sources.list 2>/dev/null | sed -n 's|^deb[[:space:]]\+\(\S*/debian\)/\?[[:space:]].*|\1|p' | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}

device_packages=(libtorch-dev cmake ninja-build g++ pkg-config)
# The project's packages (one per line, # comments) plus ccache for local iteration.
mapfile -t full_packages < <(sed 's/#.*//; /^[[:space:]]*$/d; s/[[:space:]]//g' scripts/packages.txt)
full_packages+=(ccache)

say() { echo "libtorch2: $*"; }
die() { echo "libtorch2: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and bind mounts)"

# Runs a command in root $1 as root, the repository at /src, /usr/local/cuda (when present) read-only.
in_root() {
  local r=$1
  shift
  unshare --mount --propagation private -- bash -euc '
    r=$1 repo=$2
    shift 2
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mkdir -p "$r/src"
    mount --bind "$repo" "$r/src"
    if [ -d /usr/local/cuda/bin ]; then
      mkdir -p "$r/usr/local/cuda"
      mount --bind -o ro "$(readlink -f /usr/local/cuda)" "$r/usr/local/cuda"
    fi
    exec chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ' _ "$r" "$repo" "$@"
}

stamp_of() { printf '%s\n' "$suite" "$@" | sort | sha1sum | cut -c1-16; }

make_device_root() {
  local dest=$roots/device want
  want=$(stamp_of "${device_packages[@]}")
  if [ "$(cat "$dest/.megalodon-root" 2>/dev/null)" = "$want" ]; then return; fi
  command -v debootstrap > /dev/null || die "debootstrap is missing: run scripts/bootstrap.sh"
  say "making the device root ($suite from $(mirror)); takes a few minutes"
  rm -rf "$dest" "$dest.partial"
  mkdir -p "$roots"
  local t0=$SECONDS
  debootstrap --variant=minbase --include="$(IFS=,; echo "${device_packages[*]}")" \
    "$suite" "$dest.partial" "$(mirror)" > "$roots/device.log" 2>&1 ||
    { tail -20 "$roots/device.log"; die "debootstrap failed (whole log: $roots/device.log)"; }
  rm -f "$dest.partial"/var/cache/apt/archives/*.deb
  echo "$want" > "$dest.partial/.megalodon-root"
  mv "$dest.partial" "$dest"
  say "device root made in $((SECONDS - t0)) s"
}

make_full_root() {
  local dest=$roots/full want
  want=$(stamp_of "${device_packages[@]}" "${full_packages[@]}")
  if [ "$(cat "$dest/.megalodon-root" 2>/dev/null)" = "$want" ]; then return; fi
  say "making the full root (the device root + ${#full_packages[@]} packages)"
  rm -rf "$dest" "$dest.partial"
  local t0=$SECONDS
  cp -a "$roots/device" "$dest.partial"
  rm -f "$dest.partial/.megalodon-root"
  cp /etc/resolv.conf "$dest.partial/etc/resolv.conf"
  echo "deb $(mirror) $suite main" > "$dest.partial/etc/apt/sources.list"
  in_root "$dest.partial" bash -euc '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" > /dev/null
    apt-get clean' _ "${full_packages[@]}" > "$roots/full.log" 2>&1 ||
    { tail -20 "$roots/full.log"; die "installing the packages failed (whole log: $roots/full.log)"; }
  echo "$want" > "$dest.partial/.megalodon-root"
  mv "$dest.partial" "$dest"
  say "full root made in $((SECONDS - t0)) s"
}

build_full() {
  # C++20: the standard newer LibTorch headers require; the bookworm leg builds C++17.
  in_root "$roots/full" bash -euc '
    cd /src
    cmake -S . -B build-torch2 -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=20 "$@" > /dev/null
    cmake --build build-torch2 -j '"$jobs"'' _ "$@"
}

cmd=${1:-test}
[ $# -gt 0 ] && shift
case $cmd in
  roots)
    make_device_root
    make_full_root
    in_root "$roots/full" bash -c 'dpkg-query -W -f "\${Package} \${Version}\n" libtorch-dev g++-14 catch2 libfmt-dev cmake'
    ;;
  build)
    make_device_root
    make_full_root
    build_full "$@"
    ;;
  test)
    make_device_root
    make_full_root
    build_full "$@"
    # As scripts/test.sh: the thread environment once, not by every test process starting itself again.
    in_root "$roots/full" bash -euc 'export OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=20; cd /src/build-torch2 && ctest --output-on-failure -j '"$jobs"
    ;;
  dry-run)
    make_device_root
    [ -d ../shared/scripts ] || die "../shared/scripts/device-deps is missing (the dry run uses what it carries)"
    if ! compgen -G ".devdeps/*.deb" > /dev/null; then bash ../shared/scripts/device-deps .devdeps > /dev/null; fi
    [ -d /usr/local/cuda/bin ] || die "no nvcc at /usr/local/cuda: the dry run compiles the CUDA kernels"
    in_root "$roots/device" env OUT=/src/build-gpu-dry/out bash /src/scripts/gpu_session.sh --dry-run "$@"
    ;;
  shell)
    make_device_root
    make_full_root
    in_root "$roots/full" bash -c 'cd /src && exec bash -i'
    ;;
  run)
    make_device_root
    make_full_root
    in_root "$roots/full" bash -c 'cd /src && "$@"' _ "$@"
    ;;
  *) die "unknown command '$cmd' (test, build, dry-run, roots, shell, run)" ;;
esac
