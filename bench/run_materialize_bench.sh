#!/usr/bin/env bash
# omezarr-materialize benchmark (issue item 8). See bench/RESULTS.md ("materialize" sections).
#
#   bench/run_materialize_bench.sh [--quick] [--data DIR] [--reps N] [--big N|--no-big]
#                                  [--record|--no-record]
#
# --quick   64x1024x1024 stacks, no large stack (about a minute); default 256x2048x2048
# --data    where the generated stacks are kept for reuse (default $OMEZARRFS_BENCH_DATA, else
#           /tmp/omezarrfs-bench); the same stacks as bench/run_mount_bench.sh
# --reps    repetitions per measurement, median reported (default 3; 1 with --quick)
# --big N   also materialize a generated N x 8192x8192 uint16 stack (default 48 = 6 GiB, needs
#           ~14 GB free) with -o memory=1G for peak RSS and time; it is deleted afterwards
# --record  append the table to bench/RESULTS.md (default for the full run; not for --quick)
# --scroll-repo GIT_DIR  git directory of KhartesViewer/scroll2zarr (default
#           $SCROLL2ZARR_GIT, else /work/.mirror/KhartesViewer+scroll2zarr/repo): scroll_to_ome.py
#           is exported from its HEAD into a temp dir and run as the baseline (python3-zarr,
#           python3-tifffile, python3-skimage, python3-tqdm); skipped with a note when absent
# Needs /usr/bin/python3 with numpy and tifffile, GNU /usr/bin/time. Builds omezarr-materialize
# oz_bench_tiff_decode and oz_bench_write_tree into $BUILD_DIR (default build/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CMD="bench/run_materialize_bench.sh $*"
QUICK=0
DATA="${OMEZARRFS_BENCH_DATA:-/tmp/omezarrfs-bench}"
REPS=""
RECORD=""
BIG=""
SCROLL_GIT="${SCROLL2ZARR_GIT:-/work/.mirror/KhartesViewer+scroll2zarr/repo}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --data) DATA="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --big) BIG="$2"; shift ;;
    --no-big) BIG=0 ;;
    --scroll-repo) SCROLL_GIT="$2"; shift ;;
    --record) RECORD=1 ;;
    --no-record) RECORD=0 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$RECORD" ]; then RECORD=$((1 - QUICK)); fi
if [ -z "$REPS" ]; then if [ "$QUICK" = 1 ]; then REPS=1; else REPS=3; fi; fi
if [ -z "$BIG" ]; then if [ "$QUICK" = 1 ]; then BIG=0; else BIG=48; fi; fi
PY=/usr/bin/python3
BUILD_DIR="${BUILD_DIR:-build}"

cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target omezarr-materialize oz_bench_tiff_decode oz_bench_write_tree >/dev/null

if [ "$QUICK" = 1 ]; then D=64; S=1024; TAG=quick; else D=256; S=2048; TAG=full; fi
RAW="$DATA/$TAG-${D}x${S}-raw"
DEFL="$DATA/$TAG-${D}x${S}-deflate"
echo "generating (or reusing) stacks in $DATA" >&2
$PY bench/gen_stack.py "$RAW" --depth $D --size $S --fill --compression none --rowsperstrip 32
$PY bench/gen_stack.py "$DEFL" --depth $D --size $S --masked --compression zlib --level 6 --rowsperstrip 32

WORK="$DATA/mwork"
rm -rf "$WORK"
mkdir -p "$WORK"
ARGS=(--build "$BUILD_DIR" --work "$WORK" --reps "$REPS" --command "$CMD" --json "$DATA/last-materialize-$TAG.json"
      --decode deflate)
BIGDIR=""
if [ "$BIG" != 0 ]; then
  BIGDIR="$DATA/big-${BIG}x8192-raw"
  df -h "$DATA" >&2
  $PY bench/gen_stack.py "$BIGDIR" --depth "$BIG" --size 8192 --fill --compression none --rowsperstrip 32 --jobs 2
  ARGS+=(--rss "big=$BIGDIR")
fi
SCROLL_TMP=$(mktemp -d)
if git --git-dir="$SCROLL_GIT" show HEAD:scroll_to_ome.py >"$SCROLL_TMP/scroll_to_ome.py" 2>/dev/null; then
  ARGS+=(--scroll "$SCROLL_TMP/scroll_to_ome.py")
else
  echo "no scroll2zarr repository at $SCROLL_GIT: the scroll_to_ome.py baseline is skipped" >&2
fi
trap 'rm -rf "$WORK" "$SCROLL_TMP"; if [ -n "$BIGDIR" ]; then rm -rf "$BIGDIR"; fi' EXIT
if [ "$RECORD" = 1 ]; then ARGS+=(--results "$ROOT/bench/RESULTS.md"); fi
$PY bench/materialize_bench.py "${ARGS[@]}" "uncompressed=$RAW" "deflate=$DEFL"
