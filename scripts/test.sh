#!/usr/bin/env bash
# The README's second command: set up and run every test — unit, FUSE-ops, real-mount
# integration tests (Release build, the robustness tests among them), the clang-format check, the
# unit and FUSE-ops tests again under AddressSanitizer + UndefinedBehaviorSanitizer, a build of
# core, cli and the unit tests without FUSE under ThreadSanitizer with the concurrency tests run
# there, and a short libFuzzer run of every fuzz target (FUZZ_SECONDS per target, default 30).
# Each sanitizer build compiles only the targets its stage runs (CI's time: 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
stage() { echo "== $* (at $(( $(date +%s) - T0 )) s)"; }
./scripts/install-deps.sh
stage "build"
./scripts/build.sh -DOMEZARRFS_WERROR=ON
stage "tests"
(cd build && ctest --output-on-failure --timeout 900 -j2)
stage "format"
./scripts/check-format.sh
stage "ASan+UBSan build (unit_tests, fs_tests) and the unit and FUSE-ops tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$(nproc)" --target unit_tests fs_tests
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure --timeout 900 -j2 -L 'unit|fs')
stage "core, cli and the unit tests without FUSE (-DOMEZARRFS_FUSE=OFF), under ThreadSanitizer;"
echo "   the concurrency tests"
# (No -Werror here: the release build compiles the same files with it; sanitizers make g++ warn
# falsely, e.g. -Wmaybe-uninitialized.)
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSANITIZE=thread -DOMEZARRFS_FUSE=OFF >/dev/null
cmake --build build-tsan -j"$(nproc)" --target unit_tests omezarr-materialize omezarr-surface-to-obj
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/unit_tests "[concurrency],*oncurrent*"
stage "clang -Wthread-safety: the locking rules (OZ_GUARDED_BY, core/sync/mutex.h) are checked"
if clang++ -std=c++20 -I. -fsyntax-only -Wthread-safety -Werror=thread-safety tests/tsa/violation.cc 2>/dev/null; then
  echo "thread-safety analysis is not live: tests/tsa/violation.cc compiled"; exit 1
fi
stage "fuzzing: libFuzzer + ASan + UBSan (clang, every core file built with -Werror=thread-safety);"
echo "   replay the corpus and past crashes, then fuzz"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOMEZARRFS_FUZZ=ON \
  -DCMAKE_CXX_FLAGS="-Wthread-safety -Werror=thread-safety" \
  -DSANITIZE=address,undefined -DOMEZARRFS_FUSE=OFF -DOMEZARRFS_TESTS=OFF >/dev/null
FUZZ_TARGETS=(fuzz_mount_options fuzz_tiff_slice fuzz_codec fuzz_cache_entry fuzz_zarr_metadata
              fuzz_zarr3_metadata fuzz_zarr3_shard fuzz_ppm fuzz_stats_text fuzz_vcps fuzz_obj)
cmake --build build-fuzz -j"$(nproc)" --target "${FUZZ_TARGETS[@]}"
for t in "${FUZZ_TARGETS[@]}"; do
  inputs=(fuzz/corpus/$t)
  [ -d fuzz/regressions/$t ] && inputs+=(fuzz/regressions/$t)
  build-fuzz/fuzz/$t -runs=0 "${inputs[@]}" 2>&1 | tail -1
  work=$(mktemp -d)
  cp fuzz/corpus/$t/* "$work"/
  rc=0
  build-fuzz/fuzz/$t -max_total_time="${FUZZ_SECONDS:-30}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="build-fuzz/crash-$t-" -print_final_stats=1 "$work" >"$work.log" 2>&1 || rc=$?
  grep -E "^(stat::number_of_executed_units|Done)" "$work.log" || true
  if [ $rc -ne 0 ]; then
    tail -40 "$work.log"
    echo "fuzz: $t failed; its input is build-fuzz/crash-$t-*: fix the bug and add it to fuzz/regressions/$t"
    exit 1
  fi
  rm -rf "$work" "$work.log"
done
stage "all tests passed"
