#!/usr/bin/env bash
# Installs (only) what is missing from Debian bookworm for building and testing the harness.
# Idempotent: a second run installs nothing and takes about a second.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libtorch-dev            # LibTorch 1.13 (CPU)
  libopenblas0-pthread    # fast CPU BLAS: libtorch otherwise uses the reference BLAS (see README)
  libfmt-dev libtomlplusplus-dev nlohmann-json3-dev catch2 zlib1g-dev libgloo-dev
  libopencv-dev libsndfile1-dev
  libjpeg62-turbo-dev     # CMYK JPEGs for the ImageNet-layout data tool and the decoder tests
  libsoxr-dev             # resampling Speech Commands clips recorded at other rates
  libsentencepiece-dev    # PG-19 tokenizer and `megalodon data sentencepiece` (model training)
  espeak-ng flite         # synthetic command words for the small Speech Commands set
  dataset-fashion-mnist   # real data for the quickstart (IDX files in /usr/share/datasets/fashion-mnist)
)

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
