#!/usr/bin/env bash
# Sets up the real web-client checks (called by install-deps.sh; idempotent; needs root for apt):
#  - node and npm (Debian packages) if missing;
#  - tests/js: `npm ci` installs zarrita.js as pinned by package-lock.json (test_zarrita.py);
#  - Neuroglancer in headless Chromium (test_neuroglancer.py): the ngcheck tool, found at
#    $NGCHECK_DIR or else ../shared/tools/ngcheck beside the repository, is copied to .deps/ngcheck
#    and set up there (its setup.sh installs Debian chromium, runs npm install and vite build).
#    Without ngcheck this step is skipped, and so is test_neuroglancer (it says why).
# Prints the time each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
step() { local t0=$SECONDS; "$@"; echo "setup-viewer-checks: $1 ... done in $((SECONDS - t0)) s"; }

node_npm() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm
  fi
}

zarrita() {
  local stamp=tests/js/node_modules/.package-lock.sha256
  local want
  want="$(sha256sum tests/js/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
}

neuroglancer() {
  local src="${NGCHECK_DIR:-$(dirname "$repo")/shared/tools/ngcheck}"
  if [ ! -x "$src/setup.sh" ]; then
    echo "setup-viewer-checks: no ngcheck at $src (set NGCHECK_DIR): the Neuroglancer check will be skipped"
    return 0
  fi
  mkdir -p .deps/ngcheck
  # The tool's own files only (its node_modules/dist/vendor stay in the copy between runs).
  find "$src" -maxdepth 1 -type f -exec cp -f {} .deps/ngcheck/ \;
  chmod -R u+w .deps/ngcheck
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .deps/ngcheck/setup.sh
}

step node_npm
step zarrita
step neuroglancer
