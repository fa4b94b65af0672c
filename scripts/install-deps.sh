#!/usr/bin/env bash
# Installs every Debian package omezarrfs needs to build, test and run (idempotent, needs root).
set -euo pipefail
PKGS=(
  build-essential cmake pkg-config clang-format
  fuse3 libfuse3-dev libtiff-dev libblosc-dev zlib1g-dev libcurl4-openssl-dev nlohmann-json3-dev catch2
  python3 python3-zarr python3-tifffile python3-numpy python3-numcodecs
  attr procps util-linux
  clang libclang-rt-14-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
