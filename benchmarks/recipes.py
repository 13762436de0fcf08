"""Recipe search (issue 15): both recipes at several settings, one table of what was tried.

    python benchmarks/recipes.py --stage lr       # learning rates at the quick preset (~20 min)
    python benchmarks/recipes.py --stage full     # cross-entropy, 30 epochs at full (~26 min)
    python benchmarks/recipes.py --stage lr --tiny  # a check that it runs (about 2 min)

Each stage trains its points through ``sweep.config_sweep`` into ``runs/recipes/<stage>/``
(resumable: a finished run is loaded, an interrupted one resumes from its last epoch), records
them as the set ``recipes-<stage>`` under ``results/`` (not with ``--tiny``), and prints the set's
table (``supcon_utils.results.set_table``): the settings searched, the validation and test
accuracy of each run's classifier (cross-entropy: its own; SupCon: the linear probe on the
frozen encoder), SupCon's k-NN test accuracy and the wall time of training (SupCon's includes its
probe; the per-epoch scoring is left to the last epoch, so it is not counted), and for each
recipe the setting its validation accuracy chose (``results.chosen``: the test set chooses
nothing). The sweep's own table is ``runs/recipes/<stage>/recipes.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

import supcon_utils

supcon_utils.setup_tensorflow()  # before `training` loads TensorFlow (oneDNN, quiet logs)
from supcon_utils import results, runner, sweep, training  # noqa: E402

KINDS = ("cross_entropy", "supcon")  # the two recipes notebook 03 compares
# stage -> (preset, points). A point is Config overrides plus its kind.
STAGES: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # The quick preset (20,000 images, 6 epochs) as a cheap proxy for the learning rate.
    "lr": ("quick", [{"kind": k, "learning_rate": lr} for k in KINDS for lr in (2e-3, 5e-3, 1e-2)]),
    # All 60,000 images: cross-entropy at its own 30 minutes (twice SupCon's 15 epochs), beside
    # the preset's equal-epoch runs of notebook 03.
    "full": ("full", [{"kind": "cross_entropy", "epochs": 30}]),
}  # fmt: skip
TINY = {"n_train": 500, "epochs": 1, "probe_epochs": 1, "batch_size": 64}


def run_stage(stage: str, runs_dir: Path = runner.RUNS_DIR, tiny: bool = False) -> pd.DataFrame:
    """Train the points of ``stage`` (resumable) and return their table."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGES)}")
    preset, points = STAGES[stage]
    base = training.config(preset, **(TINY if tiny else {}))
    run_dir = runs_dir / "recipes" / (f"{stage}-tiny" if tiny else stage)
    table = sweep.config_sweep(points, base, run_dir, kind="supcon", table_file="recipes.csv")
    table.insert(0, "preset", preset)
    for key in ("epochs", "n_train"):  # the budget of every row, even where a point keeps it
        if key not in table:
            table.insert(1, key, getattr(base, key))
    table.to_csv(run_dir / "recipes.csv", index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=sorted(STAGES))
    parser.add_argument("--tiny", action="store_true", help="500 images, 1 epoch: a smoke run")
    parser.add_argument("--runs-dir", type=Path, default=runner.RUNS_DIR)
    args = parser.parse_args(argv)
    table = run_stage(args.stage, args.runs_dir, tiny=args.tiny)
    run_dir = args.runs_dir / "recipes" / (f"{args.stage}-tiny" if args.tiny else args.stage)
    name, command = f"recipes-{args.stage}", f"python benchmarks/recipes.py --stage {args.stage}"
    if not args.tiny:
        results.add(run_dir, name, command)
    print(results.set_table(name, list(results.records_of(run_dir, name, command).values())))
    for row in table[table["error"].notna()].itertuples():
        print(f"{row.point} ({row.kind}) failed: {row.error}")
    return int(table["error"].notna().any())


if __name__ == "__main__":
    raise SystemExit(main())
