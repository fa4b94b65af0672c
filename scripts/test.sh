#!/usr/bin/env bash
# The README's second command: set up and run every test — unit, FUSE-ops, real-mount
# integration tests (Release build), the clang-format check, a build of core without FUSE with
# its tests, then the unit and FUSE-ops tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
echo "== build"
./scripts/build.sh -DOMEZARRFS_WERROR=ON
echo "== tests"
(cd build && ctest --output-on-failure --timeout 900 -j2)
echo "== format"
./scripts/check-format.sh
echo "== core and its tests without FUSE (-DOMEZARRFS_FUSE=OFF)"
BUILD_DIR=build-nofuse ./scripts/build.sh -DOMEZARRFS_FUSE=OFF -DOMEZARRFS_WERROR=ON
(cd build-nofuse && ctest --output-on-failure --timeout 900 -j2 -L unit)
echo "== ASan+UBSan build and tests"
BUILD_DIR=build-asan ./scripts/build.sh -DSANITIZE=address,undefined
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure --timeout 900 -j2 -L 'unit|fs')
echo "== all tests passed"
