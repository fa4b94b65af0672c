#!/usr/bin/env bash
# Installs every Debian package omezarrfs needs to build, test and run (idempotent, needs root),
# then sets up the web-client checks (scripts/setup-viewer-checks.sh: zarrita.js with npm ci, and
# Neuroglancer in headless Chromium). --no-viewers skips Chromium and that setup (scripts/demo.sh
# uses it: building and mounting need neither). --bench also installs what the benchmarks' baselines
# need (bench/run_materialize_bench.sh runs scroll2zarr's scroll_to_ome.py: scikit-image, tqdm).
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=1
bench=0
for a in "$@"; do
  case "$a" in
    --no-viewers) viewers=0 ;;
    --bench) bench=1 ;;
    *) echo "install-deps: unknown argument $a (expected --no-viewers, --bench)" >&2; exit 2 ;;
  esac
done
PKGS=(
  build-essential cmake pkg-config clang-format
  fuse3 libfuse3-dev libtiff-dev libblosc-dev libzstd-dev libjpeg62-turbo-dev zlib1g-dev libcurl4-openssl-dev nlohmann-json3-dev catch2
  python3 python3-zarr python3-tifffile python3-numpy python3-numcodecs
  libjpeg-turbo-progs  # djpeg: the precomputed jpeg test decodes with it
  libqhull-dev  # omezarr-surface-to-obj's Delaunay triangulation (the qhull scipy's Delaunay uses)
  python3-opencv  # test_surface_to_obj runs scroll2zarr's surface_to_obj.py (it imports cv2) as the reference
  python3-scipy  # test_layers runs scroll2zarr's ppm_to_layers.py (it imports scipy) as the reference
  attr procps
  # deployment tests: mount(8)/findmnt/setpriv, systemd-analyze and systemd-fstab-generator,
  # man(1)/groff for the man pages, libseccomp for the units' syscall filters
  util-linux mount systemd man-db groff-base python3-seccomp
  # TIFF files written by other tools (test_multipage, test_pixel_formats; skipped without them);
  # gdal-bin (test_formats' GDAL SPARSE_OK case) is left out: it is large, and a patched file
  # covers the same code
  libtiff-tools imagemagick graphicsmagick
  # fuzzing (scripts/test.sh): clang with libFuzzer
  clang libclang-rt-14-dev
)
# benchmarks only (optional): the scroll_to_ome.py baseline of bench/run_materialize_bench.sh
[ $bench = 1 ] && PKGS+=(python3-skimage python3-tqdm)
[ $viewers = 1 ] && PKGS+=(chromium)  # Neuroglancer's headless browser (test_neuroglancer)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
t0=$SECONDS
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  echo "install-deps: Debian packages installed in $((SECONDS - t0)) s"
else
  echo "install-deps: all packages present"
fi
[ $viewers = 1 ] && ./scripts/setup-viewer-checks.sh
exit 0
