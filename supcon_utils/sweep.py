"""Sweeps, resumable: training configurations in this process, or a notebook's parameters.

:func:`config_sweep` trains one recipe at several :class:`training.Config` overrides (notebook 05's
ablations), each point in its own run folder, and gathers one table.

:func:`sweep` runs a notebook with papermill at every point of a grid:

    python -m supcon_utils.sweep --notebook 03_training --name tsweep \\
        -g temperature=0.05,0.1,0.2,0.5 -g batch_size=128,256 -p preset=quick

Each point of the grid (the Cartesian product of the ``-g`` values, each parsed as JSON where it
can be) runs the notebook in a fresh kernel into ``runs/<name>/<key=value,...>/``, which is also
its ``run_dir``: the executed notebook, whatever the notebook saves, and ``point.json`` (notebook,
parameters, wall time, error) once the run has ended. A point whose ``point.json`` reports no error
is skipped, so a killed sweep resumes where it stopped: a point cut off half-way runs again (and
``training.run`` resumes its training from the last finished epoch), and so does a failed point.
Every point's ``results.json`` files are gathered into ``runs/<name>/sweep.csv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd

from supcon_utils import runner, stats

if TYPE_CHECKING:  # training imports TensorFlow: the notebook sweep's CLI starts without it
    from supcon_utils import training

POINT_FILE = "point.json"
# The metrics of each run in config_sweep's table (training.run's results; old runs of the kinds
# not scored by k-NN per epoch may lack the k-NN ones).
METRICS = ("val_accuracy", "test_accuracy", "knn_val_accuracy", "knn_test_accuracy")


def config_sweep(
    points: Sequence[dict[str, Any]],
    base: training.Config,
    run_dir: str | Path,
    *,
    kind: str = "supcon",
    table_file: str = "sweep.csv",
    records: str | Path | None = None,
    train: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Train ``kind`` at ``base`` with each point's overrides; one table.

    A point is a dict of Config fields to override, and optionally ``"kind"``. It trains into
    ``run_dir/<folder>`` through ``training.run`` (resumable; loaded when finished), where the
    folder names the settings that differ from ``base`` (``base`` when none), so points that give
    the same configuration share one run. A point that fails (diverges, runs out of memory, ...)
    is recorded with its error and the sweep goes on; calling again retries it and loads the rest.

    The table, also saved as ``run_dir/table_file``, has a row per point: every key of any point
    (with the value the run used), ``kind``, ``point`` (the folder), ``error`` (None if it
    trained), ``val_accuracy`` and ``test_accuracy`` (the run's own classifier: SupCon's linear
    probe, a classifier's logits), ``knn_val_accuracy`` and ``knn_test_accuracy`` (a k-NN vote
    of the final encoder's features, ``training.knn_scorer``, for every kind; SupCon's per-epoch
    scoring is left to the last epoch, to save time), ``wall_time_s`` (of
    training, when first trained) and ``recorded``. Choose on the validation columns; the test
    ones are reported.

    ``records`` is a folder of committed records (``results/sweeps``, made by
    ``python -m supcon_utils.results make``): a point with a record of its kind and configuration
    there (seed included, see ``training.same_run``) takes its row from the record, untrained, and
    ``recorded`` says so. A folder that does not exist holds no records: every point trains.
    With ``train=False`` nothing trains: a point without a record has the error "not recorded"
    (a larger sweep read while it is recorded in parts).
    Unknown keys or kinds, and a ``base`` that is not a Config, raise ValueError before any run.
    """
    from tqdm import tqdm

    from supcon_utils import recipes, training

    if not isinstance(base, training.Config):
        raise ValueError(f"base must be a training.Config, got {type(base).__name__}")
    fields = {f.name for f in dataclasses.fields(training.Config)}
    plans = []
    for point in points:
        unknown = set(point) - fields - {"kind"}
        if unknown:
            raise ValueError(f"point {point} sets unknown Config fields {sorted(unknown)}")
        point_kind = point.get("kind", kind)
        recipes.get(point_kind)  # an unknown kind is a ValueError listing the known ones
        cfg = dataclasses.replace(base, **{k: v for k, v in point.items() if k != "kind"})
        changed = {k: v for k, v in point.items() if k != "kind" and getattr(base, k) != v}
        if point_kind != kind:
            changed = {"kind": point_kind, **changed}
        plans.append((point_kind, cfg, point_folder(changed) if changed else "base"))
    keys = list(dict.fromkeys(k for point in points for k in point if k != "kind"))
    recorded = read_records(records) if records is not None else []

    rows = []
    for point_kind, cfg, folder in tqdm(plans, desc="sweep", unit="run", disable=not progress):
        row = {**{k: getattr(cfg, k) for k in keys}, "kind": point_kind, "point": folder,
               "error": None, **dict.fromkeys(METRICS), "wall_time_s": None,
               "recorded": False}  # fmt: skip
        record = next((r for r in recorded if r["kind"] == point_kind
                       and training.same_run(r["config"], cfg, point_kind)), None)  # fmt: skip
        if record is not None:
            row |= {k: record["metrics"].get(k) for k in METRICS}
            row |= {"wall_time_s": record["wall_time_s"], "recorded": True}
            rows.append(row)
            continue
        if not train:
            rows.append(row | {"error": "not recorded"})
            continue
        try:
            results = training.run(point_kind, cfg, Path(run_dir) / folder, verbose=0,
                                   score_every=cfg.epochs)  # fmt: skip
        except Exception as exc:  # the other points still run; the error is in the table
            row["error"] = f"{type(exc).__name__}: {exc}"
            print(f"{folder} ({point_kind}) FAILED: {row['error']}", flush=True)
        else:
            row |= {k: results["metrics"].get(k) for k in METRICS}
            row["wall_time_s"] = results["wall_time_s"]
        rows.append(row)
    table = pd.DataFrame(rows)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(run_dir) / table_file, index=False)
    return table


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """Every training run's record under ``folder``, at any depth (none if it does not exist)."""
    found = [json.loads(p.read_text()) for p in sorted(Path(folder).rglob("*.json"))]
    return [r for r in found if {"kind", "config", "metrics", "wall_time_s"} <= set(r)]


def verdicts(
    table: pd.DataFrame,
    by: str,
    reference: Any,
    metric: str = "val_accuracy",
    seed: str = "seed",
) -> pd.DataFrame:
    """Each setting of column ``by`` against the ``reference`` setting, over seeds.

    A row per setting (in the table's order): the seeds, the mean and sd of ``metric``, and its
    difference from the reference paired by seed (the seeds both have), with the 95% t interval
    and the verdict of :func:`stats.verdict`: "ahead" or "behind" only when the interval excludes
    zero, else "not separated at this budget" (always so with one seed). Failed runs (NaN) are
    left out. The reference's own row has no difference, and the verdict "reference". A table
    without a ``seed`` column is one seed.
    """
    if seed not in table:
        table = table.assign(**{seed: 0})
    if reference not in set(table[by]):
        raise ValueError(f"reference {reference!r} is not a value of column {by!r}: "
                         f"{list(dict.fromkeys(table[by]))}")  # fmt: skip
    scores = table.dropna(subset=[metric]).groupby([by, seed])[metric].mean()
    ref = scores.loc[reference]
    rows = []
    scored = set(scores.index.get_level_values(0))
    for setting in (s for s in dict.fromkeys(table[by]) if s in scored):
        values = scores.loc[setting]
        mean, sd = stats.mean_sd(values.tolist())
        row = {by: setting, "seeds": len(values), "mean": mean, "sd": sd}
        if setting == reference:
            row["verdict"] = "reference"
        else:
            both = values.index.intersection(ref.index)
            diff = stats.paired_difference(values[both].tolist(), ref[both].tolist())
            row |= {"difference": diff.mean, "95% low": diff.low, "95% high": diff.high,
                    "verdict": stats.verdict(diff, "ahead", "behind")}  # fmt: skip
        rows.append(row)
    columns = [by, "seeds", "mean", "sd", "difference", "95% low", "95% high", "verdict"]
    return pd.DataFrame(rows, columns=columns).set_index(by)


def verdicts_per_metric(
    table: pd.DataFrame, by: str, reference: Any, metrics: dict[str, str], seed: str = "seed"
) -> pd.DataFrame:
    """:func:`verdicts` for each metric of ``metrics`` (column -> the name shown), one table whose
    outer index level ``metric`` holds the names, in their order."""
    tables = {
        name: verdicts(table, by, reference, metric, seed) for metric, name in metrics.items()
    }
    return pd.concat(tables, names=["metric"])


def sweep(
    notebook: str | Path,
    grid: dict[str, list[Any]],
    name: str,
    fixed: dict[str, Any] | None = None,
    runs_dir: Path = runner.RUNS_DIR,
) -> pd.DataFrame:
    """Run ``notebook`` at every point of ``grid`` (with ``fixed`` parameters) into
    ``runs_dir/name``; return the table also written to ``runs_dir/name/sweep.csv``.

    ``notebook`` is a path, or a stem (or unique stem prefix) of the project's notebooks. The table
    has a row per point: the grid values, ``point`` (its folder), ``error`` (None when the run
    finished), ``seconds`` (notebook wall time), then every scalar of the point's ``results.json``
    files as ``<folder>/<key>/...``, e.g. ``supcon/metrics/test_accuracy``; lists such as confusion
    matrices stay in the files. A failing point does not stop the sweep: its error is in the table
    and printed. Folders of this sweep that were run with other parameters raise ValueError before
    anything runs.
    """
    runner.check_name(name, Path(runs_dir))
    path = notebook_path(notebook)
    fixed = dict(fixed or {})
    points = grid_points(grid)
    _check_parameters(path, grid, fixed)
    sweep_dir = (Path(runs_dir) / name).resolve()
    folders = [point_folder(point) for point in points]
    if len(set(folders)) < len(folders):
        raise ValueError(f"the grid has repeated points: {folders}")
    plans = [(point, sweep_dir / folder, {**fixed, **point}) for point, folder in
             zip(points, folders, strict=True)]  # fmt: skip
    for _, point_dir, parameters in plans:
        _check_not_stale(point_dir, path.stem, parameters)

    rows = []
    for i, (point, point_dir, parameters) in enumerate(plans, start=1):
        record = _finished(point_dir)
        if record is None:
            print(f"== [{i}/{len(plans)}] {point_dir}", flush=True)
            record = _run_point(path, point_dir, parameters)
        else:
            print(f"== [{i}/{len(plans)}] {point_dir}: finished earlier, skipped", flush=True)
        if record["error"]:
            print(f"   FAILED: {record['error']}", flush=True)
        row = {**point, "point": point_dir.name, "error": record["error"],
               "seconds": record["seconds"]}  # fmt: skip
        results = _flatten_results(runner.collect_results(point_dir))
        rows.append({**row, **{k: v for k, v in results.items() if k not in row}})
    table = pd.DataFrame(rows)
    table.to_csv(sweep_dir / "sweep.csv", index=False)
    return table


def notebook_path(notebook: str | Path) -> Path:
    """A notebook given as a path (``.ipynb`` or with a folder) or a project notebook's stem."""
    text = str(notebook)
    if text.endswith(".ipynb") or "/" in text:
        path = Path(notebook).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no notebook at {path}")
        return path
    known = runner.notebooks()
    matches = [nb for nb in known if nb.stem == text] or [
        nb for nb in known if nb.stem.startswith(text)
    ]
    if len(matches) != 1:
        raise ValueError(f"{text!r} names {len(matches)} of the notebooks "
                         f"{[nb.stem for nb in known]}; give one stem or a path")  # fmt: skip
    return matches[0]


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The Cartesian product of ``grid``'s values, as one parameter dict per point."""
    if not grid:
        raise ValueError("the grid is empty: give at least one parameter and its values")
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def point_folder(point: dict[str, Any]) -> str:
    """``key=value,...``: strings as they are, other values as JSON, unsafe characters %-quoted."""

    def label(value: Any) -> str:
        return quote(value if isinstance(value, str) else json.dumps(value), safe="")

    return ",".join(f"{label(key)}={label(value)}" for key, value in point.items())


def _check_parameters(path: Path, grid: dict[str, Any], fixed: dict[str, Any]) -> None:
    """ValueError unless every grid and fixed key is a parameter the notebook declares."""
    import papermill as pm

    declared = set(pm.inspect_notebook(str(path)))
    if "run_dir" not in declared:
        raise ValueError(f"{path.name} declares no run_dir parameter for the sweep to set")
    if "run_dir" in grid or "run_dir" in fixed:
        raise ValueError("run_dir is set by the sweep (runs_dir/name/point); do not give it")
    both = set(grid) & set(fixed)
    if both:
        raise ValueError(f"parameters both swept and fixed: {sorted(both)}")
    unknown = (set(grid) | set(fixed)) - declared
    if unknown:
        raise ValueError(f"{path.name} declares no parameters {sorted(unknown)}; it declares "
                         f"{sorted(declared)}")  # fmt: skip
    for point in grid_points({**grid, **{k: [v] for k, v in fixed.items()}}):
        runner.check_parameters([path], point)


def _check_not_stale(point_dir: Path, notebook: str, parameters: dict[str, Any]) -> None:
    """ValueError if ``point_dir`` holds a run of another notebook or with other parameters."""
    path = point_dir / POINT_FILE
    if not path.exists():
        return
    old = json.loads(path.read_text())
    new = {"notebook": notebook, "parameters": json.loads(json.dumps(parameters))}
    if {key: old[key] for key in new} != new:
        raise ValueError(
            f"{point_dir} holds a run of {old['notebook']} with {old['parameters']}, not of "
            f"{notebook} with {new['parameters']}: sweep under another name, or delete the folder"
        )


def _finished(point_dir: Path) -> dict[str, Any] | None:
    """The record of a point that ran to the end without error, else None."""
    path = point_dir / POINT_FILE
    record = json.loads(path.read_text()) if path.exists() else None
    return record if record is not None and record["error"] is None else None


def _run_point(path: Path, point_dir: Path, parameters: dict[str, Any]) -> dict[str, Any]:
    """Run the notebook for one point and write its ``point.json``."""
    point_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        run = runner.run_notebook(path, point_dir / path.name,
                                  {**parameters, "run_dir": str(point_dir)})  # fmt: skip
        error = run.error
    except Exception as exc:  # e.g. the kernel died (out of memory): the other points still run
        error = f"{type(exc).__name__}: {exc}"
    record = {"notebook": path.stem, "parameters": parameters,
              "seconds": round(time.perf_counter() - start, 1), "error": error}  # fmt: skip
    (point_dir / POINT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _flatten_results(collected: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Scalars of ``runner.collect_results`` as ``folder/key/...`` columns."""

    def flatten(tree: dict[str, Any], prefix: str) -> dict[str, Any]:
        flat = {}
        for key, value in tree.items():
            if isinstance(value, dict):
                flat.update(flatten(value, f"{prefix}{key}/"))
            elif value is None or isinstance(value, (int, float, str, bool)):
                flat[f"{prefix}{key}"] = value
        return flat

    columns = {}
    for folder, results in collected.items():
        columns.update(flatten(results, "" if folder == "." else f"{folder}/"))
    return columns


def _parse_grid(text: str) -> tuple[str, list[Any]]:
    """``key=v1,v2,...`` as ``(key, [v1, v2, ...])``, each value JSON where it parses."""
    key, sep, raw = text.partition("=")
    if not sep or not raw:
        raise argparse.ArgumentTypeError(f"grid {text!r} is not of the form key=value1,value2,...")
    return key, [runner._parse_parameter(f"{key}={value}")[1] for value in raw.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", required=True, help="stem (e.g. 03_training) or path")
    parser.add_argument("--name", required=True, help="sweep folder under the runs folder")
    parser.add_argument(
        "-g",
        "--grid",
        action="append",
        type=_parse_grid,
        required=True,
        help="swept parameter key=v1,v2,... (JSON values), e.g. -g epochs=2,4",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        action="append",
        type=runner._parse_parameter,
        default=[],
        help="fixed parameter key=value (JSON value)",
    )
    parser.add_argument("--runs-dir", type=Path, default=runner.RUNS_DIR,
                        help=f"runs folder (default {runner.RUNS_DIR})")  # fmt: skip
    args = parser.parse_args(argv)
    for option, pairs in (("-g", args.grid), ("-p", args.parameter)):
        keys = [key for key, _ in pairs]
        if len(set(keys)) < len(keys):
            parser.error(f"a parameter is given twice with {option}: {keys}")
    try:
        table = sweep(args.notebook, dict(args.grid), args.name, dict(args.parameter),
                      args.runs_dir)  # fmt: skip
    except ValueError as error:  # a bad name, notebook or parameter: nothing was run
        parser.error(str(error))
    shown = [*dict(args.grid), "error", *[c for c in table.columns if "/metrics/" in c]]
    print()
    print(table[shown].fillna({"error": ""}).to_string(index=False))
    print(f"\nall columns: {args.runs_dir / args.name / 'sweep.csv'}")
    failed = int(table.error.notna().sum())
    if failed:
        print(f"{failed} of {len(table)} points FAILED; run the same command again to retry them")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
