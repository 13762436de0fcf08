"""Records written whole: a run's JSON files and each notebook's ``results.json``; and where a
run was made (:func:`environment`).

Everything here is written to a temporary file beside its target, flushed to disk, then renamed
over it, so a process killed while writing leaves the old file or the new one, never half of one.
It imports nothing heavy, so that the runner and the sweep can use it without TensorFlow.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
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


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, whole or not at all."""
    tmp = temporary(path)
    tmp.write_text(text)
    replace(tmp, path)


def write_json(path: Path, record: Any) -> None:
    """Write ``record`` to ``path`` as indented JSON, whole or not at all."""
    write_text(path, json.dumps(record, indent=2) + "\n")


def write_results(folder: str | Path, results: dict[str, Any]) -> Path:
    """Write ``results`` (its ``metrics`` first of all) to ``folder/results.json``, creating the
    folder, and return the file's path: what ``supcon_utils.runner`` gathers into its table."""
    if not isinstance(results.get("metrics"), dict):
        raise ValueError("results need a 'metrics' dict: the runner's table is made from it")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / RESULTS, results)
    return folder / RESULTS


def environment() -> dict[str, Any]:
    """Where a run was made: the CPU model and core count, Python, TensorFlow and Keras versions,
    and this checkout's commit (None outside git; ``dirty`` when tracked files differ from it)."""
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        **_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    git = ["git", "-C", str(here)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10)  # fmt: skip
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
