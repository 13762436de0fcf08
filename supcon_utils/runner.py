"""Run the notebooks with papermill into ``runs/<name>/`` and collect what they report.

This is the main job behind ``make reproduce``: every ``notebooks/NN_*.ipynb`` is executed in order,
in a fresh kernel, with the run's parameters (only those a notebook declares in its ``parameters``
cell), and each notebook's ``results.json`` files are gathered into one table.

    python -m supcon_utils.runner --name default            # every notebook at its defaults
    python -m supcon_utils.runner --name full -p preset=full
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supcon_utils import records, tf_noise

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
RUNS_DIR = PROJECT_ROOT / "runs"


@dataclass
class NotebookRun:
    """What happened when one notebook ran: where, how long, and whether it finished."""

    notebook: str
    output: Path
    seconds: float
    error: str | None = None
    results: dict[str, Any] = field(default_factory=dict)


def notebooks(directory: Path = NOTEBOOK_DIR) -> list[Path]:
    """The project's numbered notebooks (``NN_name.ipynb``), in reading order."""
    return sorted(directory.glob("[0-9][0-9]_*.ipynb"))


def run_notebook(
    notebook: Path, output: Path, parameters: dict[str, Any] | None = None
) -> NotebookRun:
    """Execute ``notebook`` with papermill into ``output``, passing only the parameters it declares.

    The kernel's working directory is the notebook's own folder, as in Jupyter or Colab. A failing
    cell does not raise: the error is recorded, and the partly executed notebook is kept at
    ``output`` so the traceback can be read there. TensorFlow's native log lines are stripped from
    the executed notebook (``supcon_utils.tf_noise``).
    """
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    unknown = set(parameters or {}) - set(declared)
    passed = {k: v for k, v in (parameters or {}).items() if k in declared}
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters=passed,
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=True,
        )
    except pm.PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    _strip_tf_log_lines(output)
    run = NotebookRun(notebook.stem, output, time.perf_counter() - start, error)
    if unknown:
        run.results["ignored_parameters"] = sorted(unknown)
    return run


def check_parameters(selected: list[Path], parameters: dict[str, Any]) -> None:
    """ValueError unless every parameter is declared by one of the ``selected`` notebooks, with a
    value of the type each declaring notebook gives it (``epochs: int | None = None`` takes an
    int or None; an int is a fine float). The message lists what they declare."""
    import papermill as pm

    declared = {nb.stem: pm.inspect_notebook(str(nb)) for nb in selected}
    known = sorted({name for params in declared.values() for name in params})
    for name, value in parameters.items():
        owners = {stem: params[name] for stem, params in declared.items() if name in params}
        if not owners:
            raise ValueError(f"no notebook of this run declares a parameter {name!r}; they "
                             f"declare: {', '.join(known)}")  # fmt: skip
        for stem, param in owners.items():
            allowed = _allowed_types(param["inferred_type_name"])
            if allowed is not None and not isinstance(value, allowed):
                raise ValueError(f"{name}={value!r} ({type(value).__name__}): {stem} declares "
                                 f"{name} as {param['inferred_type_name']}")  # fmt: skip
            if allowed is not None and isinstance(value, bool) and bool not in allowed:
                raise ValueError(f"{name}={value!r} (bool): {stem} declares {name} as "
                                 f"{param['inferred_type_name']}")  # fmt: skip


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,),
    "dict": (dict,),
}  # fmt: skip


def _allowed_types(inferred: str) -> tuple[type, ...] | None:
    """The Python types a parameter annotated ``inferred`` takes; None: not checked."""
    text = inferred.replace(" ", "")
    optional = text.startswith("Optional[") and text.endswith("]")
    parts = (text[len("Optional[") : -1] if optional else text).split("|")
    if "None" in parts:
        optional = True
        parts.remove("None")
    bases = [_TYPES.get(part.split("[")[0]) for part in parts]
    if not parts or any(b is None for b in bases):
        return None
    return tuple(t for b in bases for t in b) + ((type(None),) if optional else ())


def _strip_tf_log_lines(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if tf_noise.strip_notebook(nb):
        nbformat.write(nb, path)


def run_all(
    name: str = "default",
    parameters: dict[str, Any] | None = None,
    selected: list[str] | None = None,
    runs_dir: Path = RUNS_DIR,
) -> list[NotebookRun]:
    """Run every notebook (or those whose stems start with ``selected``) into ``runs/<name>``.

    Each notebook gets ``run_dir=<runs_dir>/<name>`` so that later notebooks find the models earlier
    ones saved. Stops at the first failing notebook, since later ones build on it.
    """
    check_name(name, runs_dir)
    chosen = _selected(selected)
    check_parameters(chosen, parameters or {})
    run_dir = (runs_dir / name).resolve()
    params = {"run_dir": str(run_dir), **(parameters or {})}
    done = []
    for nb in chosen:
        print(f"== {nb.name} -> {run_dir / nb.name}", flush=True)
        run = run_notebook(nb, run_dir / nb.name, params)
        done.append(run)
        if run.error:
            break
    write_summary(done, run_dir)
    return done


def check_name(name: str, runs_dir: Path) -> None:
    """ValueError unless ``name`` is a plain folder name, so that a run stays in ``runs_dir``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"--name {name!r}: allowed is a plain folder name under {runs_dir} "
                         "(letters, digits and . _ -, not starting with a dot)")  # fmt: skip


def _selected(selected: list[str] | None) -> list[Path]:
    """The notebooks whose stems start with one of ``selected`` (all of them for None)."""
    chosen = [nb for nb in notebooks()
              if not selected or any(nb.stem.startswith(s) for s in selected)]  # fmt: skip
    if not chosen:
        raise ValueError(f"--only {' '.join(selected or [])}: no notebook matches; they are "
                         f"{', '.join(nb.stem for nb in notebooks())}")  # fmt: skip
    return chosen


def execute_in_place(
    selected: list[str] | None = None, parameters: dict[str, Any] | None = None
) -> int:
    """Re-execute the selected notebooks into themselves, so their outputs come from their code.

    Returns 1 at the first failing notebook (left as executed, to read the traceback), else 0.
    """
    chosen = _selected(selected)
    check_parameters(chosen, parameters or {})
    for nb in chosen:
        print(f"== {nb.name} (in place)", flush=True)
        run = run_notebook(nb, nb, parameters)
        print(f"   {run.seconds:.0f} s", flush=True)
        if run.error:
            print(f"   FAILED: {run.error}", flush=True)
            return 1
    return 0


def collect_results(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The ``results.json`` of ``run_dir`` and of its sub-folders, keyed by the sub-folder's name.

    Only one level down: a notebook's own training runs nested deeper (notebook 05's recipes) are
    summarised by the notebook's ``results.json``.
    """
    found = {}
    for path in sorted([*run_dir.glob(records.RESULTS), *run_dir.glob(f"*/{records.RESULTS}")]):
        key = str(path.parent.relative_to(run_dir)) or "."
        found[key] = json.loads(path.read_text())
    return found


def summary_markdown(runs: list[NotebookRun], results: dict[str, dict[str, Any]]) -> str:
    """The results table the main job prints and writes to ``runs/<name>/results.md``.

    A ``results.json`` whose ``metrics`` map model names to metric dicts (notebook 04's comparison)
    becomes one table with a column per model; any other becomes a two-column metric table.
    """
    lines = ["| notebook | status | wall time (s) |", "|---|---|---:|"]
    for run in runs:
        status = "ok" if run.error is None else f"FAILED ({run.error})"
        lines.append(f"| {run.notebook} | {status} | {run.seconds:.0f} |")
    if runs:
        lines.append(f"| **total** | | {sum(r.seconds for r in runs):.0f} |")
    for key, res in results.items():
        metrics = res.get("metrics", res)
        if metrics and all(isinstance(v, dict) for v in metrics.values()):
            columns = list(metrics)
            names = list(dict.fromkeys(k for m in metrics.values() for k in m if _is_scalar(m[k])))
            lines += ["", f"**{key}**", "", f"| metric | {' | '.join(columns)} |",
                      "|---|" + "---:|" * len(columns)]  # fmt: skip
            lines += [f"| {n} | " + " | ".join(_fmt(metrics[c].get(n, "")) for c in columns) + " |"
                      for n in names]  # fmt: skip
            continue
        rows = [(k, v) for k, v in metrics.items() if _is_scalar(v)]
        if not rows:
            continue
        lines += ["", f"**{key}**", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def write_summary(runs: list[NotebookRun], run_dir: Path) -> str:
    """Write ``results.md`` and ``summary.json`` into ``run_dir`` and return the markdown.

    Notebooks run earlier into the same ``run_dir`` and not re-run now (``--only``, or a main job
    resumed after a crash) keep their records, so the table always covers every notebook run there.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    merged = {r.notebook: r for r in _previous_runs(run_dir)}
    merged.update({r.notebook: r for r in runs})
    ordered = [merged[name] for name in sorted(merged)]
    table = summary_markdown(ordered, collect_results(run_dir))
    (run_dir / "results.md").write_text(table)
    summary = [
        {
            "notebook": r.notebook,
            "output": str(r.output),
            "seconds": round(r.seconds, 1),
            "error": r.error,
            **r.results,
        }
        for r in ordered
    ]
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return table


def _previous_runs(run_dir: Path) -> list[NotebookRun]:
    path = run_dir / "summary.json"
    if not path.exists():
        return []
    runs = []
    for record in json.loads(path.read_text()):
        record = dict(record)
        runs.append(NotebookRun(record.pop("notebook"), Path(record.pop("output")),
                                record.pop("seconds"), record.pop("error"), record))  # fmt: skip
    return runs


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool))


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def _parse_parameter(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"parameter {text!r} is not of the form key=value")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string such as preset=full
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="run folder under runs/")
    parser.add_argument(
        "-p",
        "--parameter",
        action="append",
        type=_parse_parameter,
        default=[],
        help="notebook parameter key=value (JSON value), e.g. -p preset=full",
    )
    parser.add_argument("--only", nargs="*", help="notebook stems or prefixes to run, e.g. 02 03")
    parser.add_argument("--in-place", action="store_true",
                        help="re-execute the committed notebooks in place at their defaults "
                        "(make sync), instead of into runs/<name>")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.in_place:
            return execute_in_place(args.only, dict(args.parameter))
        runs = run_all(args.name, dict(args.parameter), args.only)
    except ValueError as error:  # a bad --name, --only or parameter: nothing was run
        parser.error(str(error))
    print()
    print((RUNS_DIR / args.name / "results.md").read_text())
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
