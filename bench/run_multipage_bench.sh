#!/usr/bin/env bash
# Multi-page TIFF vs the same data as slice files (TIFF "sources in the wild"). See bench/RESULTS.md.
#
#   bench/run_multipage_bench.sh [--quick] [--data DIR] [--reps N]
#
# Generates (or reuses) two slice stacks with gen_stack.py (uncompressed, and deflate level 6;
# rowsperstrip 32), writes the same pages in the same encoding into one BigTIFF each (tifffile),
# then per stack and layout, the median of --reps runs:
#   core   oz_bench_tiff_pages: TiffStack::Open (the mount's header scan) and a read of the whole
#          volume in 128^3 boxes on 2 threads, a fresh strip cache each run
#   mount  omezarrfs SOURCE MNT with a fresh cache dir (the time until it returns, i.e. until the
#          mount answers), then oz_bench_read_tree --grid of every level-0 chunk (2 threads)
# and the ratio multi-page / slices. The files are in the page cache for both layouts (each is
# read once before timing), so the ratios compare the layouts, not the disk.
# --quick   64x512x512 and 512x128x128 (default 128x1024x1024, 256 MiB per copy, and 2048 slices
#           of 256x256 deflate, where the header scan dominates the mount)
# --data    where the stacks are kept (default $OMEZARRFS_BENCH_DATA, else /tmp/omezarrfs-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
DATA="${OMEZARRFS_BENCH_DATA:-/tmp/omezarrfs-bench}"
REPS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --data) DATA="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
PY=/usr/bin/python3
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target omezarrfs oz_bench_read_tree oz_bench_tiff_pages >/dev/null
FS="$BUILD_DIR/fs/omezarrfs"
if [ "$QUICK" = 1 ]; then D=64; S=512; DM=512; SM=128; else D=128; S=1024; DM=2048; SM=256; fi
CHUNK=128
WORK="$(mktemp -d "${TMPDIR:-/tmp}/oz-mpbench-XXXXXX")"
MNT="$WORK/mnt"
mkdir -p "$MNT"
cleanup() {
  fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { "$PY" -c 'import sys, statistics; print("%.4f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
field() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# Writes the slices of $1 into one BigTIFF $2, page by page, in the slices' own encoding.
to_multipage() {
  [ -s "$2" ] && [ "$2" -nt "$1/STACK.json" ] && return 0
  "$PY" - "$1" "$2" <<'EOF'
import json, os, sys
import tifffile
src, out = sys.argv[1], sys.argv[2]
p = json.load(open(os.path.join(src, "STACK.json")))
kw = dict(photometric="minisblack", metadata=None, rowsperstrip=p["rowsperstrip"])
if p["compression"] == "zlib":
    kw.update(compression="zlib", compressionargs={"level": p["level"]})
with tifffile.TiffWriter(out + ".tmp", bigtiff=True) as w:
    for z in range(p["depth"]):
        w.write(tifffile.imread(os.path.join(src, "%05d.tif" % z)), **kw)
os.replace(out + ".tmp", out)
EOF
}

mount_once() {  # $1 source; prints "mount_seconds level0_read_seconds"
  local t0 t1 j
  rm -rf "$WORK/cache"
  t0=$(now)
  "$FS" "$1" "$MNT" -o "cache=$WORK/cache,chunk=$CHUNK" >>"$WORK/mount.log" 2>&1
  t1=$(now)
  j="$("$BUILD_DIR/bench/oz_bench_read_tree" "$MNT/0" --threads 2 --grid "$GRID")"
  fusermount3 -u "$MNT"
  sleep 0.3
  echo "$("$PY" -c "print($t1 - $t0)") $(field "$j" seconds)"
}

measure() {  # $1 label a, $2 source a, $3 label b, $4 source b: the two interleaved, run by run
  local ca cb ma=() ra=() mb=() rb=() x
  cat "$2"/*.tif "$4" >/dev/null 2>&1 || true  # into the page cache
  ca="$("$BUILD_DIR/bench/oz_bench_tiff_pages" "$2" --threads 2 --chunk $CHUNK --reps "$REPS")"
  cb="$("$BUILD_DIR/bench/oz_bench_tiff_pages" "$4" --threads 2 --chunk $CHUNK --reps "$REPS")"
  for _ in $(seq "$REPS"); do
    read -r -a x <<<"$(mount_once "$2")"
    ma+=("${x[0]}") ra+=("${x[1]}")
    read -r -a x <<<"$(mount_once "$4")"
    mb+=("${x[0]}") rb+=("${x[1]}")
  done
  echo "$1 core_open_s=$(field "$ca" open_s) core_read_s=$(field "$ca" read_s)" \
       "mount_s=$(median "${ma[@]}") level0_read_s=$(median "${ra[@]}")"
  echo "$3 core_open_s=$(field "$cb" open_s) core_read_s=$(field "$cb" read_s)" \
       "mount_s=$(median "${mb[@]}") level0_read_s=$(median "${rb[@]}")"
}

echo "# uint16, chunk $CHUNK, 2 threads, median of $REPS; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in raw deflate many; do
  d=$D s=$S
  if [ $kind = many ]; then d=$DM s=$SM; fi
  GRID="$(( (d + CHUNK - 1) / CHUNK )),$(( (s + CHUNK - 1) / CHUNK )),$(( (s + CHUNK - 1) / CHUNK ))"
  st="$DATA/mp-${d}x${s}-$kind"
  if [ $kind = raw ]; then
    "$PY" bench/gen_stack.py "$st" --depth $d --size $s --fill --compression none --rowsperstrip 32 >&2
  else  # deflate; many: small deflate pages, where the header scan dominates the mount
    "$PY" bench/gen_stack.py "$st" --depth $d --size $s --masked --compression zlib --level 6 --rowsperstrip 32 >&2
  fi
  to_multipage "$st" "$DATA/mp-${d}x${s}-$kind.tif"
  echo "## $kind: ${d}x${s}x${s}"
  lines="$(measure "$kind slices    " "$st" "$kind multi-page" "$DATA/mp-${d}x${s}-$kind.tif")"
  echo "$lines"
  a="$(sed -n 1p <<<"$lines")"
  b="$(sed -n 2p <<<"$lines")"
  "$PY" - "$a" "$b" <<'EOF'
import sys
def kv(line):
    return {k: float(v) for k, v in (p.split("=") for p in line.split() if "=" in p)}
a, b = kv(sys.argv[1]), kv(sys.argv[2])
print("  ratio multi-page/slices: " + ", ".join("%s %.2f" % (k, b[k] / a[k]) for k in a))
EOF
done
