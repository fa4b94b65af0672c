#!/usr/bin/env bash
# Fails if any C++ file differs from clang-format's output (.clang-format at the top level).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h' '*.h.in' | grep -v '\.in$' || true)
bad=0
for f in $files; do
  if ! diff -q <(clang-format --style=file "$f") "$f" >/dev/null; then
    echo "not clang-formatted: $f   (fix: clang-format -i $f)"; bad=1
  fi
done
[ $bad = 0 ] && echo "format: ok ($(echo "$files" | wc -w) files)"
exit $bad
