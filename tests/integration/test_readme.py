#!/usr/bin/python3
"""The README's option list is the output of `omezarrfs --help` (from "Pyramid options:" on), so
the documented options cannot drift from the accepted ones. To refresh the README after changing
an option: /usr/bin/python3 tests/integration/test_readme.py --update"""
import os
import subprocess
import sys

import oztest as oz

S = oz.Suite("readme")
README = os.path.join(oz.REPO, "README.md")
START = "Pyramid options:"


def help_block():
    r = subprocess.run([oz.binary(), "--help"], capture_output=True, text=True, env=dict(os.environ, COLUMNS="100"))
    oz.check(r.returncode == 0, "--help failed: %s" % r.stderr)
    text = r.stdout
    oz.check(START in text, "--help has no %r" % START)
    return text[text.index(START):].rstrip("\n") + "\n"


def readme_block(text):
    a = text.index("```\n" + START) + 4
    b = text.index("```", a)
    return a, b


@S.case
def readme_option_list_is_the_help_output():
    with open(README) as f:
        text = f.read()
    a, b = readme_block(text)
    want = help_block()
    oz.check(text[a:b] == want, "README's option list differs from omezarrfs --help; run "
             "/usr/bin/python3 tests/integration/test_readme.py --update")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        with open(README) as f:
            text = f.read()
        a, b = readme_block(text)
        with open(README, "w") as f:
            f.write(text[:a] + help_block() + text[b:])
        print("updated", README)
    else:
        S.main()
