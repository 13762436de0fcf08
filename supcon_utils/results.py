"""Every reported number as data: records of finished runs under ``results/``, and the README's
result tables made from them, never typed.

A record is one finished training run (one recipe, one seed) of a named set: its configuration,
validation and test metrics, seconds, the machine and TensorFlow that trained it, the commit, and
the command that made it. ::

    python -m supcon_utils.results make quick     # train notebook 03's three seeds, record them
    python -m supcon_utils.results make ablations # notebooks 05-07's sweeps, into results/sweeps
    python -m supcon_utils.results save ablations-quick  # record an interrupted make's runs
    python -m supcon_utils.results add runs/x --set x --command "<what made runs/x>"  # any runs
    python -m supcon_utils.results                       # print the tables
    python -m supcon_utils.results --write README.md docs/results.md  # fill their results blocks
    python -m supcon_utils.results --check README.md docs/results.md  # exit 1 when one differs

Each set's table gives every recipe's mean ± sd over its seeds and SupCon minus cross-entropy
paired by seed, with its 95% t interval and the verdict of :func:`supcon_utils.stats.verdict`.
A set whose runs differ in settings besides the seed (a search, e.g. of the learning rate) has a
row per setting instead, and says which one each recipe's validation accuracy chose.
It imports nothing heavy: no TensorFlow.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from supcon_utils import records, runner, stats

RESULTS_DIR = Path("results")  # relative to the project's root, where the commands run
DOCUMENTS = ("README.md", "docs/results.md")  # the documents with results blocks (tested)
# A block of the README made here: `<!-- results: SET [SET ...] -->`, tables, `<!-- /results -->`
BLOCK = re.compile(r"(<!-- results: (?P<sets>[\w\- ]+) -->)\n.*?(<!-- /results -->)", re.S)
LABELS = {  # the README's name of each recipe, in the tables' order
    "cross_entropy": "cross-entropy",
    "supcon": "SupCon + probe",
    "hybrid": "SupCon + CE (joint)",
    "finetune": "SupCon, fine-tuned",
    "moco": "SupCon, momentum queue",
}
COLUMNS = {  # metric -> column heading; a column is shown when any record of the set has it
    "val_accuracy": "validation accuracy",
    "test_accuracy": "test accuracy",
    "knn_test_accuracy": "kNN test accuracy",
}
COMPARED = ("supcon", "cross_entropy")  # the paired difference each table ends with: a - b
SETS = {  # the sets the README reports: notebook 03's parameters (its budget study trains seeds)
    "quick": {"n_seeds": 3},  # about 17 min here
    "full": {"preset": "full", "n_seeds": 3},  # about 2.5 h here
}
SWEEPS = "sweeps"  # results/sweeps/<set>: the ablations' records, read by the notebooks' sweeps
SWEEP_SETS = {  # set -> the notebooks that train it, and their parameters
    "ablations": (("05", "06", "07"), {"n_seeds": 3}),  # their defaults (three seeds)
    # Notebook 05's ablations at notebook 03's budget (the quick preset's images and epochs).
    "ablations-quick": (("05",), {"n_train": 20000, "epochs": 6, "n_seeds": 3}),
}


def make(set_name: str, results_dir: Path = RESULTS_DIR) -> list[Path]:
    """Train the set ``set_name`` of :data:`SETS` with notebook 03 into ``runs/results-<set>``
    (resumed where it stopped, finished runs loaded) and record its runs; or the ablations of a
    set of :data:`SWEEP_SETS` into ``runs/sweeps-<set>``, recorded beside its former records in
    ``results_dir/sweeps/<set>``, which the notebooks read, so that only the missing runs train."""
    if set_name in SWEEP_SETS:
        return _make_sweeps(set_name, Path(results_dir) / SWEEPS)
    if set_name not in SETS:
        raise ValueError(f"set {set_name!r}: allowed are {', '.join([*SETS, *SWEEP_SETS])}")
    name = f"results-{set_name}"
    done = runner.run_all(name, SETS[set_name], ["03"])
    if any(r.error for r in done):
        raise RuntimeError(f"notebook 03 failed; see {runner.RUNS_DIR / name}")
    command = f"python -m supcon_utils.results make {set_name}"
    return add(runner.RUNS_DIR / name, set_name, command, results_dir)


def _make_sweeps(set_name: str, sweeps_dir: Path) -> list[Path]:
    selected, parameters = SWEEP_SETS[set_name]
    recorded = (sweeps_dir / set_name).resolve()
    done = runner.run_all(f"sweeps-{set_name}", {**parameters, "records_dir": str(recorded)},
                          list(selected))  # fmt: skip
    if any(r.error for r in done):
        raise RuntimeError(f"a notebook failed; see {runner.RUNS_DIR / f'sweeps-{set_name}'}")
    return save_sweeps(set_name, sweeps_dir)


def save_sweeps(set_name: str, sweeps_dir: Path = RESULTS_DIR / SWEEPS) -> list[Path]:
    """Record the finished runs of ``make``'s run folder of the sweep set ``set_name`` beside the
    set's records, and return the files written: what ``make`` does at its end, and what saves
    the finished part of one that was interrupted."""
    if set_name not in SWEEP_SETS:
        raise ValueError(f"sweep set {set_name!r}: allowed are {', '.join(SWEEP_SETS)}")
    run_dir = runner.RUNS_DIR / f"sweeps-{set_name}"
    if not any(_is_training(p) for p in run_dir.rglob(records.RESULTS)):
        return []  # nothing trained: every run was recorded already, or none has finished
    command = f"python -m supcon_utils.results make {set_name}"
    return add(run_dir, set_name, command, sweeps_dir, keep=True)


def record(run_folder: Path, set_name: str, command: str) -> dict[str, Any]:
    """The record of the finished training run in ``run_folder`` (``<run_dir>/<kind>``)."""
    results = json.loads((run_folder / records.RESULTS).read_text())
    if "environment" not in results:
        raise ValueError(
            f"{run_folder} was trained before runs recorded their machine and commit: train it "
            "again (delete the folder) to make a record of it"
        )
    return {
        "set": set_name,
        "kind": results["kind"],
        "seed": results["config"]["seed"],
        "metrics": results["metrics"],
        "training_s": _training_seconds(run_folder),
        "wall_time_s": results["wall_time_s"],
        "resumed_after_epochs": results["resumed_after_epochs"],
        "config": results["config"],
        "environment": results["environment"],
        "command": command,
    }


def add(
    run_dir: Path,
    set_name: str,
    command: str,
    results_dir: Path = RESULTS_DIR,
    keep: bool = False,
) -> list[Path]:
    """Record every finished training run under ``run_dir`` in ``results_dir/<set_name>/``, in
    place of the set's former records (``keep``: beside them, a run of the same recipe and
    configuration replacing its old record), and return the files written."""
    if not set_name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"--set {set_name!r}: use letters, digits, '-' and '_' only")
    new = list(records_of(run_dir, set_name, command).values())
    out = Path(results_dir) / set_name
    kept = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))] if keep else []
    merged = list({(r["kind"], json.dumps(r["config"], sort_keys=True)): r
                   for r in [*kept, *new]}.values())  # fmt: skip
    fields = varying(merged)
    named = {_file_name(r, fields): r for r in merged}
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    for name, rec in named.items():
        records.write_json(out / name, rec)
    return [out / name for name in named]


def records_of(run_dir: Path, set_name: str, command: str) -> dict[str, dict[str, Any]]:
    """The records of the finished training runs under ``run_dir``, by their file's name."""
    run_dir = Path(run_dir)
    folders = sorted(p.parent for p in run_dir.rglob(records.RESULTS) if _is_training(p))
    if not folders:
        raise ValueError(f"no finished training run under {run_dir} (no results.json with a kind)")
    found = [record(folder, set_name, command) for folder in folders]
    fields = varying(found)
    keys = [(r["kind"], r["seed"], _setting(r, fields)) for r in found]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{run_dir} holds one recipe, seed and setting twice: {sorted(keys)}")
    return {_file_name(r, fields): r for r in found}


def load(results_dir: Path = RESULTS_DIR) -> dict[str, list[dict[str, Any]]]:
    """The records under ``results_dir``, by set, each sorted by recipe, setting, then seed."""
    sets: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(results_dir).glob("*/*.json")):
        rec = json.loads(path.read_text())
        if rec.get("set") != path.parent.name:
            raise ValueError(f"{path} says set {rec.get('set')!r}; it lies in {path.parent.name!r}")
        sets.setdefault(rec["set"], []).append(rec)
    for recs in sets.values():
        fields = varying(recs)
        recs.sort(key=lambda r: (_order(r["kind"]), repr(_setting(r, fields)), r["seed"]))
    return sets


def varying(recs: Sequence[dict[str, Any]]) -> list[str]:
    """The configuration fields, seed aside, that take more than one value in ``recs``."""
    fields = sorted({k for r in recs for k in r["config"]} - {"seed"})
    return [f for f in fields if len({repr(r["config"].get(f)) for r in recs}) > 1]


def chosen(recs: Sequence[dict[str, Any]]) -> dict[str, tuple]:
    """Each recipe's setting (values of :func:`varying`) of highest mean validation accuracy.

    It reads ``val_accuracy`` and nothing else: the test set chooses nothing."""
    fields = varying(recs)
    scores: dict[tuple[str, tuple], list[float]] = {}
    for r in recs:
        scores.setdefault((r["kind"], _setting(r, fields)), []).append(r["metrics"]["val_accuracy"])
    best: dict[str, tuple] = {}
    for (kind, setting), values in sorted(scores.items(), key=lambda kv: repr(kv[0])):
        mean = sum(values) / len(values)
        if kind not in best or mean > best[kind][1]:
            best[kind] = (setting, mean)
    return {kind: setting for kind, (setting, _) in best.items()}


def chosen_for_all(recs: Sequence[dict[str, Any]]) -> tuple:
    """The setting, among those every recipe ran, of the highest mean over recipes of each
    recipe's mean validation accuracy: one setting for a preset that trains them all."""
    fields = varying(recs)
    kinds = {r["kind"] for r in recs}
    scores: dict[tuple, dict[str, list[float]]] = {}
    for r in recs:
        by_kind = scores.setdefault(_setting(r, fields), {})
        by_kind.setdefault(r["kind"], []).append(r["metrics"]["val_accuracy"])
    shared = {k: v for k, v in scores.items() if set(v) == kinds}
    if not shared:
        raise ValueError("no setting was run by every recipe of the set")

    def score(setting: tuple) -> float:
        return sum(sum(v) / len(v) for v in shared[setting].values()) / len(kinds)

    return max(sorted(shared, key=repr), key=score)


def tables(sets: dict[str, list[dict[str, Any]]]) -> str:
    """The markdown of every set, smallest training budget first."""
    if not sets:
        return "No records yet: `python -m supcon_utils.results add` makes them.\n"

    def budget(name: str) -> tuple[float, int, str]:
        cfg = sets[name][0]["config"]
        return (math.inf if cfg["n_train"] is None else cfg["n_train"], cfg["epochs"], name)

    return "\n".join(set_table(name, sets[name]) for name in sorted(sets, key=budget))


def set_table(name: str, recs: Sequence[dict[str, Any]]) -> str:
    """One set: what it trained, and where; a row per recipe and setting; for a set of one
    setting, the paired difference; for several, the one each recipe's validation chose."""
    cfg, env = recs[0]["config"], recs[0]["environment"]
    fields = varying(recs)
    shown = [m for m in COLUMNS if any(m in r["metrics"] for r in recs)]
    facts = {
        "n_train": f"{'all' if cfg['n_train'] is None else format(cfg['n_train'], ',')} training "
        f"images ({cfg['n_val']:,} more held out for validation)",
        "epochs": f"{cfg['epochs']} epochs",
        "batch_size": f"batch {cfg['batch_size']}",
        "learning_rate": f"peak learning rate {cfg['learning_rate']:g}",
    }
    told = [text for field, text in facts.items() if field not in fields]
    seeds = sorted({r["seed"] for r in recs})
    lines = [
        f"**`{name}`**: {cfg['dataset']}, {', '.join(told)}; seeds {', '.join(map(str, seeds))}. "
        f"{env['cpu_count']}-core {env['cpu']}, TensorFlow {env['tensorflow']}, commit "
        f"{_commits(recs)}. Made by `{recs[0]['command']}`.",
        "",
        "| recipe | " + "".join(f"{f} | " for f in fields) + "seeds | "
        + " | ".join(COLUMNS[m] for m in shown) + " | wall time (s) |"
        + (" chosen on validation |" if fields else ""),
        "|---|" + "---:|" * (len(fields) + 1 + len(shown) + 1) + ("---|" if fields else ""),
    ]  # fmt: skip
    best = chosen(recs) if fields else {}
    groups: dict[tuple[str, tuple], list[dict[str, Any]]] = {}
    for r in recs:
        groups.setdefault((r["kind"], _setting(r, fields)), []).append(r)
    for (kind, setting), rows in groups.items():
        cells = [f"{v:g}" if isinstance(v, float) else str(v) for v in setting]
        cells += [str(len(rows))] + [_percent(r["metrics"].get(m) for r in rows) for m in shown]
        cells.append(_mean_sd_text([r["wall_time_s"] for r in rows], "{:,.0f}"))
        if fields:
            cells.append("yes" if best.get(kind) == setting else "")
        lines.append(f"| {LABELS.get(kind, kind)} | {' | '.join(cells)} |")
    if not fields:
        lines += ["", _difference(recs)]
    elif len(groups) > 1 and len({r["kind"] for r in recs}) > 1:
        both = ", ".join(f"{f} {v:g}" if isinstance(v, float) else f"{f} {v}"
                         for f, v in zip(fields, chosen_for_all(recs), strict=True))  # fmt: skip
        lines += ["", f"One setting for all recipes (the best mean of their validation "
                      f"accuracies): **{both}**."]  # fmt: skip
    return "\n".join([*lines, ""])


def readme_with_tables(readme: str, sets: dict[str, list[dict[str, Any]]]) -> str:
    """``readme`` with each :data:`BLOCK` holding the tables of the sets it names."""
    if not BLOCK.search(readme):
        raise ValueError("the document has no block '<!-- results: SET ... -->' ... "
                         "'<!-- /results -->' to write the tables into")  # fmt: skip

    def fill(block: re.Match) -> str:
        text = "\n".join(
            set_table(name, sets[name]) if name in sets
            else f"No records of `{name}` yet: `python -m supcon_utils.results make {name}`.\n"
            for name in block["sets"].split()
        )  # fmt: skip
        return f"{block[1]}\n\n{text.strip()}\n\n{block[3]}"

    return BLOCK.sub(fill, readme)


def _difference(recs: Sequence[dict[str, Any]]) -> str:
    a, b = COMPARED
    by = {(r["kind"], r["seed"]): r["metrics"] for r in recs}
    seeds = sorted(s for k, s in by if k == a and (b, s) in by)
    if not seeds:
        return f"No seed has both {LABELS[a]} and {LABELS[b]}: no paired difference."
    parts = []
    for split, metric in (("validation", "val_accuracy"), ("test", "test_accuracy")):
        diff = stats.paired_difference(
            [100 * by[a, s][metric] for s in seeds], [100 * by[b, s][metric] for s in seeds]
        )
        interval = "" if diff.n < 2 else f", 95% interval {diff.low:+.2f} to {diff.high:+.2f}"
        per_seed = ", ".join(f"{100 * (by[a, s][metric] - by[b, s][metric]):+.2f}" for s in seeds)
        verdict = stats.verdict(diff, f"{LABELS[a]} ahead", f"{LABELS[b]} ahead")
        parts.append(f"{split} {diff.mean:+.2f} points{interval} (per seed: {per_seed}): "
                     f"**{verdict}**")  # fmt: skip
    return (
        f"{LABELS[a]} minus {LABELS[b]}, paired by seed (t interval over {len(seeds)} seeds): "
        f"{'; '.join(parts)}."
    )


def _percent(values: Iterable[float | None]) -> str:
    present = [100 * v for v in values if v is not None]
    return _mean_sd_text(present, "{:.2f}", "%") if present else ""


def _mean_sd_text(values: Sequence[float], fmt: str, unit: str = "") -> str:
    mean, sd = stats.mean_sd(values)
    if math.isnan(sd):
        return fmt.format(mean) + unit
    return f"{fmt.format(mean)} ± {fmt.format(sd)}{unit}"


def _commits(recs: Sequence[dict[str, Any]]) -> str:
    commits = sorted({r["environment"]["commit"] or "unknown" for r in recs})
    dirty = any(r["environment"]["dirty"] for r in recs)
    return ", ".join(commits) + (" (with uncommitted changes)" if dirty else "")


def _order(kind: str) -> int:
    return list(LABELS).index(kind) if kind in LABELS else len(LABELS)


def _is_training(path: Path) -> bool:
    """A training run's results.json (training.run's), not a notebook's."""
    content = json.loads(path.read_text())
    return {"kind", "config", "resumed_after_epochs"} <= set(content)


def _training_seconds(run_folder: Path) -> float | None:
    """The last ``elapsed_s`` of the run's ``history.csv``: training alone, no scoring."""
    path = run_folder / "history.csv"
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return float(rows[-1]["elapsed_s"]) if rows and "elapsed_s" in rows[-1] else None


def _setting(rec: dict[str, Any], fields: Sequence[str]) -> tuple:
    return tuple(rec["config"].get(f) for f in fields)


def _file_name(rec: dict[str, Any], fields: Sequence[str]) -> str:
    """``supcon_seed1.json``; in a search, ``supcon_learning_rate-0.005_seed0.json``."""
    settings = "".join(f"_{f}-{v:g}" if isinstance(v, float) else f"_{f}-{v}"
                       for f, v in zip(fields, _setting(rec, fields), strict=True))  # fmt: skip
    return f"{rec['kind']}{settings}_seed{rec['seed']}.json"


def main(argv: list[str] | None = None) -> int:
    """The command line: ``add``, or print / write / check the tables."""
    parser = argparse.ArgumentParser(
        prog="python -m supcon_utils.results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the records' folder")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", type=Path, nargs="+", metavar="DOC",
                        help="put the tables into these documents")  # fmt: skip
    action.add_argument("--check", type=Path, nargs="+", metavar="DOC",
                        help="exit 1 if one's tables differ")  # fmt: skip
    sub = parser.add_subparsers(dest="verb")
    making = sub.add_parser("make", help="train a set of SETS (resumable) and record it")
    making.add_argument("set", choices=[*SETS, *SWEEP_SETS])
    saving = sub.add_parser("save", help="record the finished runs of an interrupted sweep make")
    saving.add_argument("set", choices=list(SWEEP_SETS))
    adding = sub.add_parser("add", help="record the finished runs of a run folder")
    adding.add_argument("run_dir", type=Path)
    adding.add_argument("--set", required=True, help="the set's name, e.g. quick or full")
    adding.add_argument("--command", required=True, help="the command that made run_dir")
    adding.add_argument("--keep", action="store_true", help="keep the set's other records")
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except ValueError as error:  # a bad set, run folder or README: nothing was written
        parser.error(str(error))


def _main(args: argparse.Namespace) -> int:
    if args.verb in ("add", "make", "save"):
        if args.verb == "add":
            paths = add(args.run_dir, args.set, args.command, args.results, args.keep)
        elif args.verb == "save":
            paths = save_sweeps(args.set, args.results / SWEEPS)
        else:
            paths = make(args.set, args.results)
        print("\n".join(map(str, paths)))
        return 0
    sets = load(args.results)
    if args.write is None and args.check is None:
        print(tables(sets))
        return 0
    docs = args.write or args.check
    wanted = {doc: readme_with_tables(doc.read_text(), sets) for doc in docs}  # all, or none
    if args.write is not None:
        for doc, text in wanted.items():
            doc.write_text(text)
        return 0
    differ = [str(doc) for doc, text in wanted.items() if text != doc.read_text()]
    if differ:
        names = " ".join(differ)
        print(f"{names}: result tables differ from the records under {args.results}: "
              f"python -m supcon_utils.results --write {names}", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
