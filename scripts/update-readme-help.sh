#!/usr/bin/env bash
# Rewrites the README's option block (the fenced block after "This is the output of
# `omezarrfs --help`") from the built binary's --help, from "Pyramid options:" on.
#   scripts/update-readme-help.sh [--check]    (--check: exit 1 if the README is out of date)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BUILD_DIR:-build}/fs/omezarrfs"
[ -x "$BIN" ] || { echo "build first: $BIN is missing" >&2; exit 2; }
"$BIN" --help | /usr/bin/python3 -c '
import sys
check = sys.argv[1:] == ["--check"]
help_text = sys.stdin.read()
block = help_text[help_text.index("Pyramid options:"):]
readme = open("README.md").read()
start = readme.index("```\n", readme.index("This is the output of `omezarrfs --help`")) + 4
end = readme.index("```\n", start)
new = readme[:start] + block + readme[end:]
if check:
    if new != readme:
        sys.exit("README.md: the --help block is out of date; run scripts/update-readme-help.sh")
    sys.exit(0)
if new != readme:
    open("README.md", "w").write(new)
    print("README.md: --help block updated")
' "$@"
