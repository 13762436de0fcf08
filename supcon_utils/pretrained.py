"""Trained models that come with the package: evaluate without training first.

``supcon_utils/pretrained/<preset>/<kind>/`` is a finished run folder of ``training.run``, as
notebook 03 leaves it in its ``run_dir`` (the models as ``.keras``, ``results.json`` with the
configuration, metrics and machine that trained them, ``history.csv``), shipped as package data,
so ``pip install`` (Colab's included) brings it. :func:`load` reads one as
``training.load_run`` does; ``tests/test_pretrained.py`` checks that each still scores its
recorded test accuracy and was trained at the current preset. To make them again (about 2.5 h
here for three seeds)::

    python -m supcon_utils.results make full                       # trains runs/results-full
    python -m supcon_utils.pretrained runs/results-full --preset full  # ships seed 0's runs
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
SHIPPED = ("results.json", "history.csv")  # beside the models (*.keras)


def presets() -> list[str]:
    """The presets whose models are shipped."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if p.is_dir())


def run_dir(preset: str = "full") -> Path:
    """The shipped run folder of ``preset``: a ``run_dir`` for ``training.load_run``."""
    if preset not in presets():
        raise ValueError(f"no shipped models of preset {preset!r}; shipped: {presets() or 'none'}")
    return PRETRAINED_DIR / preset


MODELS_FROM = ("shipped", "run_dir")  # where notebooks 04 and 08 take their models from


def models_dir(models_from: str, own: str | Path, preset: str = "full") -> Path:
    """The run folder a notebook reads its two models from: the shipped ones of ``preset`` for
    ``models_from="shipped"``, or notebook 03's in the notebook's run folder ``own`` for
    ``"run_dir"``."""
    if models_from == "shipped":
        return run_dir(preset)
    if models_from == "run_dir":
        return Path(own)
    raise ValueError(f"models_from must be one of {MODELS_FROM}, not {models_from!r}")


def load(preset: str, kind: str) -> dict[str, Any]:
    """The shipped finished run of ``kind`` at ``preset``, as ``training.load_run`` returns it:
    its results (metrics, ``config``, wall time, machine) and its trained ``models``."""
    from supcon_utils import training  # TensorFlow: loaded when models are asked for

    folder = run_dir(preset)
    if not (folder / kind).is_dir():
        shipped = sorted(p.name for p in folder.iterdir() if p.is_dir())
        raise ValueError(f"no shipped {kind!r} model of preset {preset!r}; shipped: {shipped}")
    return training.load_run(folder, kind)


def ship(finished: Path, preset: str) -> Path:
    """Copy the finished run folder ``finished`` (``<run_dir>/<kind>``) into the package as the
    shipped model of its kind at ``preset``; only its models and :data:`SHIPPED` files."""
    if not (finished / "results.json").exists():
        raise ValueError(f"{finished} holds no finished run (no results.json)")
    out = PRETRAINED_DIR / preset / finished.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for path in [*sorted(finished.glob("[!.]*.keras")), *(finished / n for n in SHIPPED)]:
        shutil.copy2(path, out / path.name)
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line: ship the finished runs of a run folder."""
    parser = argparse.ArgumentParser(
        prog="python -m supcon_utils.pretrained",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, help="a run folder holding finished runs (seed 0)")
    parser.add_argument("--preset", required=True, help="the preset they were trained at")
    parser.add_argument("--kinds", nargs="+", default=["cross_entropy", "supcon"])
    args = parser.parse_args(argv)
    try:
        for kind in args.kinds:
            print(ship(args.run_dir / kind, args.preset))
    except ValueError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
