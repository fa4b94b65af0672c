#!/usr/bin/env bash
# Neuroglancer precomputed benchmark (bench/precomputed_bench.py), side by side with 0.4 in one run.
#
#   bench/run_precomputed_bench.sh [--quick] [--data DIR] [--reps N] [--chunk C]
#
# --quick    64x512x512 stack, chunk 64; the default is 128x1024x1024 uint16 (256 MiB, masked, uncompressed)
# Needs root (drops the page cache between cold runs).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${OMEZARRFS_BENCH_DATA:-/tmp/omezarrfs-bench}"
D=128; S=1024; REPS=3; CHUNK=128
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) D=64; S=512; CHUNK=64 ;;
    --data) DATA="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --chunk) CHUNK="$2"; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target omezarrfs omezarr-materialize oz_bench_codec >/dev/null
SRC="$DATA/precomputed-${D}x${S}-masked"
/usr/bin/python3 bench/gen_stack.py "$SRC" --depth $D --size $S --masked --compression none --rowsperstrip 32
WORK="$DATA/precomputed-work"
rm -rf "$WORK"; mkdir -p "$WORK"
/usr/bin/python3 bench/precomputed_bench.py --src "$SRC" --shape "$D,$S,$S" --build "$BUILD_DIR" --work "$WORK" \
  --reps "$REPS" --chunk "$CHUNK" --json "$DATA/precomputed-last.json"
rm -rf "$WORK"
