"""Write constraints.txt: the exact version of every package `make env` installs (and of the
other extras), as pip resolves them against the current environment.

    python scripts/pin_versions.py        # after changing pyproject.toml's dependencies

`make` and CI install with ``-c constraints.txt``, so a fresh clone gets the versions that made
the committed notebook outputs; tests/test_packaging.py checks that every requirement is pinned
there within its range. It asks the package index only for what is not installed here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "constraints.txt"
HEADER = """\
# The exact versions that made the committed outputs (Python 3.11, Linux x86-64): `make env` and
# CI install with `pip install -c constraints.txt -e ".[dev,site]"`. Written by
# scripts/pin_versions.py; edit pyproject.toml's ranges, then run it again.
"""


def pins() -> list[str]:
    """``name==version`` for every package the project and all its extras need, installed ones
    kept at their version."""
    extras = ",".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                      ["optional-dependencies"])  # fmt: skip
    pip = [sys.executable, "-m", "pip"]
    frozen = subprocess.run([*pip, "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "installed.txt").write_text(frozen)
        report = Path(tmp) / "report.json"
        subprocess.run([*pip, "install", "--quiet", "--dry-run", "--ignore-installed", "--report",
                        report, "-c", Path(tmp) / "installed.txt", "-e", f"{ROOT}[{extras}]"],
                       check=True, cwd=ROOT)  # fmt: skip
        resolved = json.loads(report.read_text())["install"]
    named = {(p["metadata"]["name"], p["metadata"]["version"]) for p in resolved}
    return sorted((f"{n}=={v}" for n, v in named if n != "supcon-utils"), key=str.lower)


def main() -> None:
    lines = pins()
    OUT.write_text(HEADER + "\n".join(lines) + "\n")
    print(f"{OUT.name}: {len(lines)} packages")


if __name__ == "__main__":
    main()
