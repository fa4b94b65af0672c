#!/usr/bin/env bash
# OME-Zarr 0.5 / sharding benchmark (bench/zarr3_bench.py), side by side with 0.4 in one run.
#
#   bench/run_zarr3_bench.sh [--quick] [--data DIR] [--reps N] [--old-bin DIR] [--chunk C]
#
# --quick    64x1024x1024 stack; the default is 256x1024x1024 uint16 (512 MiB, masked, uncompressed)
# --old-bin  a directory with omezarrfs and omezarr-materialize built from an earlier commit, to
#            compare the 0.4 tree's materialize and cold reads against them
# Needs root (drops the page cache between cold runs).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${OMEZARRFS_BENCH_DATA:-/tmp/omezarrfs-bench}"
D=256; S=1024; REPS=3; OLD=""; CHUNK=64
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) D=64 ;;
    --data) DATA="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --old-bin) OLD="$2"; shift ;;
    --chunk) CHUNK="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target omezarrfs omezarr-materialize oz_bench_read_tree >/dev/null
SRC="$DATA/zarr3-${D}x${S}-masked"
/usr/bin/python3 bench/gen_stack.py "$SRC" --depth $D --size $S --masked --compression none --rowsperstrip 32
WORK="$DATA/zarr3-work"
rm -rf "$WORK"; mkdir -p "$WORK"
ARGS=(--src "$SRC" --shape "$D,$S,$S" --build "$BUILD_DIR" --work "$WORK" --reps "$REPS" --chunk "$CHUNK"
      --json "$DATA/zarr3-last.json")
[ -n "$OLD" ] && ARGS+=(--old-bin "$OLD")
/usr/bin/python3 bench/zarr3_bench.py "${ARGS[@]}"
rm -rf "$WORK"
