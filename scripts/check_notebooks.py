"""Check that every notebook pair is in step (`make check` runs this; so can you, before a commit).

For each ``notebooks/NN_name.py`` (the jupytext source) there must be ``NN_name.ipynb`` with the
same cells (type and source), a kernelspec (papermill needs it), every code cell executed once, in
order, and no TensorFlow native log line in any output; and no ``.ipynb`` without its ``.py``.

    python scripts/check_notebooks.py [NOTEBOOK_DIR]      # default: notebooks/; exit 1 on a problem
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

from supcon_utils.tf_noise import TF_LOG_LINE

ROOT = Path(__file__).resolve().parents[1]

FIX = "edit the .py, then `make sync` (pairs and re-executes)"


def problems(directory: Path) -> list[str]:
    """Every problem found in the notebook pairs of ``directory``, one sentence each."""
    sources = {p.stem: p for p in directory.glob("[0-9][0-9]_*.py")}
    executed = {p.stem: p for p in directory.glob("[0-9][0-9]_*.ipynb")}
    found = [
        f"{executed[s].name} has no {s}.py source" for s in sorted(set(executed) - set(sources))
    ]
    found += [
        f"{sources[s].name} has no {s}.ipynb: {FIX}" for s in sorted(set(sources) - set(executed))
    ]
    for stem in sorted(set(sources) & set(executed)):
        found += [f"{stem}.ipynb: {p}" for p in _pair_problems(sources[stem], executed[stem])]
    return found


def _pair_problems(source: Path, executed: Path) -> list[str]:
    expected = jupytext.read(source)
    nb = nbformat.read(executed, as_version=4)
    found = []
    want = [(c.cell_type, c.source) for c in expected.cells]
    have = [(c.cell_type, c.source) for c in nb.cells]
    if want != have:
        first = next((i for i, (w, h) in enumerate(zip(want, have, strict=False)) if w != h), None)
        where = f"cell {first}" if first is not None else f"{len(have)} cells, not {len(want)}"
        found.append(f"cells differ from {source.name} ({where}): {FIX}")
    if not nb.metadata.get("kernelspec", {}).get("name"):
        found.append("no kernelspec in its metadata (papermill: 'No language found')")
    counts = [c.get("execution_count") for c in nb.cells if c.cell_type == "code"]
    if None in counts:
        found.append(f"code cell {counts.index(None)} (of {len(counts)}) not executed: {FIX}")
    elif counts != list(range(1, len(counts) + 1)):
        found.append(f"code cells not executed once, in order (execution counts {counts}): {FIX}")
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            lines = out.get("text", "").splitlines() if out.get("output_type") == "stream" else []
            if any(TF_LOG_LINE.match(line) for line in lines):
                found.append(f"cell {i} shows TensorFlow log lines: {FIX}")
                break
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path, default=ROOT / "notebooks")
    args = parser.parse_args(argv)
    found = problems(args.directory)
    for problem in found:
        print(problem, file=sys.stderr)
    n_pairs = len(list(args.directory.glob("[0-9][0-9]_*.py")))
    print(f"{n_pairs} notebook pairs checked: {len(found) or 'no'} problems")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
