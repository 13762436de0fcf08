"""Records written whole: a run's JSON files and each notebook's ``results.json``.

Everything here is written to a temporary file beside its target, flushed to disk, then renamed
over it, so a process killed while writing leaves the old file or the new one, never half of one.
It imports nothing heavy, so that the runner and the sweep can use it without TensorFlow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULTS = "results.json"  # a notebook's or a run's record; supcon_utils.runner collects them


def temporary(path: Path, suffix: str = "") -> Path:
    """A temporary name beside ``path`` (hidden, so never taken for a run's file)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def replace(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk, then rename it over ``path``."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, record: Any) -> None:
    """Write ``record`` to ``path`` as indented JSON, whole or not at all."""
    tmp = temporary(path)
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    replace(tmp, path)


def write_results(folder: str | Path, results: dict[str, Any]) -> Path:
    """Write ``results`` (its ``metrics`` first of all) to ``folder/results.json``, creating the
    folder, and return the file's path: what ``supcon_utils.runner`` gathers into its table."""
    if not isinstance(results.get("metrics"), dict):
        raise ValueError("results need a 'metrics' dict: the runner's table is made from it")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / RESULTS, results)
    return folder / RESULTS
