#!/usr/bin/env bash
# omezarrfs mount benchmark (issue item 13). See bench/RESULTS.md ("How to run").
#
#   bench/run_mount_bench.sh [--quick] [--data DIR] [--reps N] [--record|--no-record]
#
# --quick   64x1024x1024 stacks (about a minute); the default is 256x2048x2048 (several minutes)
# --data    where the generated stacks are kept for reuse
#           (default $OMEZARRFS_BENCH_DATA, else /tmp/omezarrfs-bench)
# --reps    repetitions of each measurement; the median is reported (default 3; 1 with --quick)
# --record  append the tables to bench/RESULTS.md (default for the full run; not for --quick)
# Needs: root or a user allowed to FUSE-mount, fusermount3, getfattr, /usr/bin/python3 with
# numpy and tifffile. Builds omezarrfs and the two bench tools into $BUILD_DIR (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CMD="bench/run_mount_bench.sh $*"
QUICK=0
DATA="${OMEZARRFS_BENCH_DATA:-/tmp/omezarrfs-bench}"
REPS=""
RECORD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --data) DATA="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --record) RECORD=1 ;;
    --no-record) RECORD=0 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$RECORD" ]; then RECORD=$((1 - QUICK)); fi
if [ -z "$REPS" ]; then if [ "$QUICK" = 1 ]; then REPS=1; else REPS=3; fi; fi
PY=/usr/bin/python3
BUILD_DIR="${BUILD_DIR:-build}"

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target omezarrfs oz_bench_read_tree oz_bench_tiff_decode >/dev/null

if [ "$QUICK" = 1 ]; then D=64; S=1024; TAG=quick; else D=256; S=2048; TAG=full; fi
RAW="$DATA/$TAG-${D}x${S}-raw"
DEFL="$DATA/$TAG-${D}x${S}-deflate"
echo "generating (or reusing) stacks in $DATA" >&2
$PY bench/gen_stack.py "$RAW" --depth $D --size $S --fill --compression none --rowsperstrip 32
$PY bench/gen_stack.py "$DEFL" --depth $D --size $S --masked --compression zlib --level 6 --rowsperstrip 32

WORK="$DATA/work"
rm -rf "$WORK"
mkdir -p "$WORK"
ARGS=(--build "$BUILD_DIR" --work "$WORK" --reps "$REPS" --command "$CMD" --json "$WORK/../last-$TAG.json")
if [ "$RECORD" = 1 ]; then ARGS+=(--results "$ROOT/bench/RESULTS.md"); fi
$PY bench/mount_bench.py "${ARGS[@]}" "uncompressed=$RAW" "deflate=$DEFL"
rm -rf "$WORK"
