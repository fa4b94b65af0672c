#!/usr/bin/env bash
# A tour from the build tree (nothing is installed): set up, build, generate a small sample TIFF
# stack, mount it as OME-Zarr, show the tree, read every level back with zarr-python, serve it
# over HTTP with omezarr-serve as a web viewer would read it, unmount.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --no-viewers
./scripts/build.sh
work="${DEMO_DIR:-/tmp/omezarrfs-demo}"
mnt="$work/www/sample.zarr"
fusermount3 -u "$mnt" 2>/dev/null || true
rm -rf "$work"
mkdir -p "$mnt"
echo "== generating a sample stack"
/usr/bin/python3 scripts/make-sample-stack.py "$work/slices" --shape 96 320 320
echo "== mounting: omezarrfs $work/slices $mnt -o chunk=64,levels=3,cache=$work/cache"
build/fs/omezarrfs "$work/slices" "$mnt" -o "chunk=64,levels=3,cache=$work/cache"
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  fusermount3 -u "$mnt" 2>/dev/null || true
}
trap cleanup EXIT
echo "== the tree (first entries)"
find "$mnt" -maxdepth 2 | sort | head -20
echo "   ..."
echo "== /.zattrs (head)"
head -c 400 "$mnt/.zattrs"; echo " ..."
echo "== reading every level with zarr-python and checking level 0 against the TIFFs"
/usr/bin/python3 - "$work/slices" "$mnt" <<'PY'
import glob, sys
import numpy as np, tifffile, zarr
src, mnt = sys.argv[1:3]
g = zarr.open_group(mnt, mode="r")
print("multiscales:", [d["path"] for d in g.attrs["multiscales"][0]["datasets"]])
for name in ("0", "1", "2"):
    a = g[name]
    data = a[...]
    print(f"level {name}: shape {a.shape} chunks {a.chunks} dtype {a.dtype} mean {data.mean():.1f}")
ref = np.stack([tifffile.imread(f) for f in sorted(glob.glob(src + "/*.tif"))])
assert np.array_equal(g["0"][...], ref), "level 0 differs from the TIFF slices"
print("level 0 equals the TIFF slices: OK")
PY
echo "== serving $work/www over HTTP with CORS: cli/omezarr-serve $work/www --port 0"
cli/omezarr-serve "$work/www" --port 0 --port-file "$work/port" 2>/dev/null &
server=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
/usr/bin/python3 - "$port" <<'PY'
import sys, urllib.error, urllib.request
base = "http://127.0.0.1:%s/sample.zarr/" % sys.argv[1]
for key in (".zattrs", "0/.zarray", "0/0/0/0", "0/.zattrs"):
    try:
        r = urllib.request.urlopen(base + key)
        print("GET %-10s %d  %6s bytes  Access-Control-Allow-Origin: %s" % (
            key, r.status, r.headers["Content-Length"], r.headers["Access-Control-Allow-Origin"]))
    except urllib.error.HTTPError as e:
        print("GET %-10s %d  (absent: a viewer reads it as fill value)" % (key, e.code))
print("Neuroglancer layer source: zarr2://" + base)
PY
echo "== counters: $(getfattr --only-values -n user.omezarrfs.stats "$mnt" 2>/dev/null | tr '\n' ' ')"
kill "$server"; wait "$server" 2>/dev/null || true
server=
fusermount3 -u "$mnt"
trap - EXIT
echo "== unmounted. Demo finished."
