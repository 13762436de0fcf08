"""The sweep driver: every grid point runs once into its own run_dir, results are collected, a
second call skips finished points and retries failed ones. A tiny notebook stands in for
training; each point is one papermill run in a fresh kernel (a few seconds)."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from supcon_utils import results, sweep

BODY = """\
import json, pathlib
with open("calls.log", "a") as log:  # relative: the kernel runs in the notebook's folder
    log.write(f"{value},{scale}\\n")
if value == 3:
    raise RuntimeError("boom")
out = pathlib.Path(run_dir) / "model"
out.mkdir(parents=True, exist_ok=True)
results = {"metrics": {"score": value * scale, "matrix": [[1, 0], [0, 1]]},
           "config": {"label": label}}
(out / "results.json").write_text(json.dumps(results))
"""


PARAMETERS = 'run_dir = "unset"\nvalue = 1\nscale = 1.0\nlabel = "a"'


def _notebook(folder: Path, parameters: str = PARAMETERS) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(BODY)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    path = folder / "99_fake.ipynb"
    nbformat.write(nb, path)
    return path


def _calls(folder: Path) -> list[str]:
    return (folder / "calls.log").read_text().splitlines()


@pytest.mark.slow
def test_every_point_runs_into_its_own_folder_and_a_second_call_skips_them(tmp_path):
    nb = _notebook(tmp_path)
    runs = tmp_path / "runs"
    grid = {"value": [1, 2], "scale": [0.5, 2.0]}
    table = sweep.sweep(nb, grid, "s", fixed={"label": "x"}, runs_dir=runs)

    assert sorted(_calls(tmp_path)) == ["1,0.5", "1,2.0", "2,0.5", "2,2.0"]
    assert list(table.columns) == ["value", "scale", "point", "error", "seconds",
                                   "model/metrics/score", "model/config/label"]  # fmt: skip
    assert table[["value", "scale"]].values.tolist() == [[1, 0.5], [1, 2.0], [2, 0.5], [2, 2.0]]
    assert table.point.tolist() == ["value=1,scale=0.5", "value=1,scale=2.0",
                                    "value=2,scale=0.5", "value=2,scale=2.0"]  # fmt: skip
    assert table.error.isna().all()
    assert table["model/metrics/score"].tolist() == [0.5, 2.0, 1.0, 4.0]
    assert (table["model/config/label"] == "x").all()
    for point in table.point:
        folder = runs / "s" / point
        assert (folder / "99_fake.ipynb").is_file() and (folder / "model/results.json").is_file()
        record = json.loads((folder / "point.json").read_text())
        assert record["error"] is None and record["parameters"]["label"] == "x"
    csv = pd.read_csv(runs / "s" / "sweep.csv")
    assert csv.drop(columns="error").equals(table.drop(columns="error"))

    grid["value"].append(4)  # a grown grid: only the new points run
    again = sweep.sweep(nb, grid, "s", fixed={"label": "x"}, runs_dir=runs)
    assert sorted(_calls(tmp_path)) == ["1,0.5", "1,2.0", "2,0.5", "2,2.0", "4,0.5", "4,2.0"]
    assert len(again) == 6
    pd.testing.assert_frame_equal(again.iloc[:4], table)

    with pytest.raises(ValueError, match="holds a run of 99_fake with"):
        sweep.sweep(nb, grid, "s", fixed={"label": "y"}, runs_dir=runs)  # other fixed values


@pytest.mark.slow
def test_a_failing_point_is_reported_and_retried_by_the_cli(tmp_path, capsys):
    nb = _notebook(tmp_path)
    runs = tmp_path / "runs"
    argv = ["--notebook", str(nb), "--name", "f", "-g", "value=1,3", "-p", "scale=2",
            "--runs-dir", str(runs)]  # fmt: skip
    assert sweep.main(argv) == 1
    out = capsys.readouterr().out
    assert "FAILED: RuntimeError: boom" in out and "1 of 2 points FAILED" in out
    table = pd.read_csv(runs / "f" / "sweep.csv")
    assert table.value.tolist() == [1, 3]
    assert table.error.fillna("").tolist() == ["", "RuntimeError: boom"]
    assert table["model/metrics/score"].fillna(-1).tolist() == [2, -1]
    assert (runs / "f" / "value=3" / "99_fake.ipynb").is_file()  # the traceback is kept there

    assert sweep.main(argv) == 1
    assert _calls(tmp_path) == ["1,2", "3,2", "3,2"]  # the finished point is skipped


def test_grid_points_and_their_folders():
    points = sweep.grid_points({"temperature": [0.05, 0.1], "preset": ["quick"], "n": [None]})
    assert points == [{"temperature": 0.05, "preset": "quick", "n": None},
                      {"temperature": 0.1, "preset": "quick", "n": None}]  # fmt: skip
    assert sweep.point_folder(points[0]) == "temperature=0.05,preset=quick,n=null"
    assert sweep.point_folder({"a": "x/y,z", "b": [1, 2]}) == "a=x%2Fy%2Cz,b=%5B1%2C%202%5D"
    with pytest.raises(ValueError, match="empty"):
        sweep.grid_points({})
    with pytest.raises(ValueError, match="non-empty list"):
        sweep.grid_points({"a": []})
    with pytest.raises(ValueError, match="non-empty list"):
        sweep.grid_points({"a": "0.1,0.2"})


def test_cli_values_parse_as_json_or_strings():
    assert sweep._parse_grid("temperature=0.05,0.1") == ("temperature", [0.05, 0.1])
    assert sweep._parse_grid("preset=quick,full") == ("preset", ["quick", "full"])
    assert sweep._parse_grid("jit_compile=true,null") == ("jit_compile", [True, None])
    with pytest.raises(Exception, match="key=value1,value2"):
        sweep._parse_grid("temperature")
    with pytest.raises(SystemExit):
        sweep.main(["--notebook", "x", "--name", "y", "-g", "a=1", "-g", "a=2"])


def test_bad_sweeps_are_refused_before_anything_runs(tmp_path):
    nb = _notebook(tmp_path)
    runs = tmp_path / "runs"
    cases = [
        ({"undeclared": [1]}, None, r"declares no parameters \['undeclared'\]"),
        ({"value": [1]}, {"value": 2}, r"both swept and fixed: \['value'\]"),
        ({"run_dir": ["a"]}, None, "run_dir is set by the sweep"),
        ({"value": [1, 1]}, None, "repeated points"),
    ]
    for grid, fixed, message in cases:
        with pytest.raises(ValueError, match=message):
            sweep.sweep(nb, grid, "bad", fixed=fixed, runs_dir=runs)
    with pytest.raises(ValueError, match="--name '../x': allowed is a plain folder name"):
        sweep.sweep(nb, {"value": [1]}, "../x", runs_dir=runs)
    (tmp_path / "typed").mkdir()
    typed = _notebook(tmp_path / "typed", parameters='run_dir: str = "unset"\nvalue: int = 1\n'
                      'scale: float = 1.0\nlabel: str = "a"')  # fmt: skip
    with pytest.raises(ValueError, match=r"value='abc' \(str\): 99_fake declares value as int"):
        sweep.sweep(typed, {"value": [1, "abc"]}, "bad", runs_dir=runs)
    with pytest.raises(ValueError, match=r"scale=True \(bool\)"):
        sweep.sweep(typed, {"value": [1]}, "bad", fixed={"scale": True}, runs_dir=runs)
    (tmp_path / "other").mkdir()
    no_run_dir = _notebook(tmp_path / "other", parameters="value = 1")
    with pytest.raises(ValueError, match="declares no run_dir"):
        sweep.sweep(no_run_dir, {"value": [1]}, "bad", runs_dir=runs)
    assert not runs.exists() and not (tmp_path / "calls.log").exists()


def test_notebooks_are_found_by_stem_prefix_or_path(tmp_path):
    assert sweep.notebook_path("03_training").name == "03_training.ipynb"
    assert sweep.notebook_path("03").name == "03_training.ipynb"
    with pytest.raises(ValueError, match="names 0 of the notebooks"):
        sweep.notebook_path("99_nothing")
    with pytest.raises(FileNotFoundError):
        sweep.notebook_path(tmp_path / "missing.ipynb")


# digits, as in test_training: 8x8 images, offline, a second an epoch.
TINY_CONFIG = dict(
    dataset="digits", n_val=200, n_train=256, batch_size=64, epochs=1, probe_epochs=2
)


@pytest.mark.slow
def test_config_sweep_shares_runs_records_failures_and_resumes(tmp_path, capsys):
    from supcon_utils import training

    base = training.config("quick", **TINY_CONFIG)
    points = [
        {"temperature": 0.1},  # base's own temperature: the same run as {}
        {"temperature": 0.5},
        {},
        {"kind": "cross_entropy", "use_labels": False},  # refused by training.run: recorded
        {"kind": "cross_entropy"},
    ]
    table = sweep.config_sweep(points, base, tmp_path, progress=False)

    assert "cross_entropy" in capsys.readouterr().out  # the failure is printed
    assert list(table.columns) == ["temperature", "use_labels", "kind", "point", "error",
                                   *sweep.METRICS, "wall_time_s", "recorded"]  # fmt: skip
    assert table.point.tolist() == [
        "base", "temperature=0.5", "base", "kind=cross_entropy,use_labels=false",
        "kind=cross_entropy"]  # fmt: skip
    assert table.temperature.tolist() == [0.1, 0.5, 0.1, 0.1, 0.1]
    assert table.kind.tolist() == ["supcon"] * 3 + ["cross_entropy"] * 2
    assert table.error[3].startswith("ValueError: use_labels=False")
    assert table.drop(index=3).error.isna().all()
    assert table.loc[0].equals(table.loc[2])  # one run, loaded the second time
    # The refused point made no folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "base", "kind=cross_entropy", "sweep.csv", "temperature=0.5"]  # fmt: skip
    for i in (0, 1):  # SupCon: its probe's and its encoder's k-NN accuracies, as in its record
        folder = tmp_path / table.point[i] / "supcon"
        saved = json.loads((folder / "results.json").read_text())["metrics"]
        assert table.loc[i, list(sweep.METRICS)].tolist() == [saved[m] for m in sweep.METRICS]
        assert table.knn_val_accuracy[i] == training.history(folder)[-1]["val_accuracy"]
    assert table.knn_val_accuracy[4] > 0.1 and table.val_accuracy[4] > 0.1  # cross-entropy's
    assert pd.read_csv(tmp_path / "sweep.csv").point.tolist() == table.point.tolist()

    # Again: every finished run is loaded, not trained (its files are untouched).
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("results.json")}
    again = sweep.config_sweep(points, base, tmp_path, table_file="again.csv", progress=False)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("results.json")} == stamps
    pd.testing.assert_frame_equal(again, table)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again.csv"),
                                  pd.read_csv(tmp_path / "sweep.csv"))  # fmt: skip
    assert not table.recorded.any()

    # Recorded (results.add), the runs are read from their records elsewhere, untrained; a point
    # of another configuration has no record, so it trains.
    results.add(tmp_path, "tiny", "this test", tmp_path / "records")
    elsewhere = tmp_path / "elsewhere"
    read = sweep.config_sweep([*points[:3], {"temperature": 0.3}], base, elsewhere,
                              records=tmp_path / "records", progress=False)  # fmt: skip
    assert read.recorded.tolist() == [True, True, True, False]
    assert read.error.isna().all()
    same = table.drop(columns=["recorded", "use_labels", "error"]).iloc[:3]
    pd.testing.assert_frame_equal(read.drop(columns=["recorded", "error"]).iloc[:3], same)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["sweep.csv", "temperature=0.3"]
    assert sweep.read_records(tmp_path / "no such folder") == []
    unread = sweep.config_sweep([{}, {"temperature": 0.7}], base, tmp_path / "untrained",
                                records=tmp_path / "records", train=False,
                                progress=False)  # fmt: skip
    assert pd.isna(unread.error[0]) and unread.error[1] == "not recorded"
    assert unread.recorded.tolist() == [True, False]
    assert not (tmp_path / "untrained" / "temperature=0.7").exists()


def test_config_sweep_refuses_unknown_keys_and_kinds_before_training(tmp_path):
    from supcon_utils import training

    base = training.config("quick", **TINY_CONFIG)
    with pytest.raises(ValueError, match=r"unknown Config fields \['temprature'\]"):
        sweep.config_sweep([{"temperature": 0.2}, {"temprature": 0.2}], base, tmp_path)
    with pytest.raises(ValueError, match="unknown kind 'simclr'"):
        sweep.config_sweep([{"kind": "simclr"}], base, tmp_path)
    with pytest.raises(ValueError, match="must be a training.Config"):
        sweep.config_sweep([{}], {"temperature": 0.1}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_verdicts_call_a_difference_only_beyond_its_interval():
    rows = []
    for seed, (base, hot, cold) in enumerate([(0.80, 0.84, 0.79), (0.81, 0.85, 0.82),
                                              (0.79, 0.83, 0.78)]):  # fmt: skip
        rows += [{"temperature": 0.1, "seed": seed, "val_accuracy": base},
                 {"temperature": 0.5, "seed": seed, "val_accuracy": hot},
                 {"temperature": 0.05, "seed": seed, "val_accuracy": cold}]  # fmt: skip
    rows.append({"temperature": 0.05, "seed": 3, "val_accuracy": float("nan")})  # a failed run
    got = sweep.verdicts(pd.DataFrame(rows), "temperature", 0.1)
    assert list(got.index) == [0.1, 0.5, 0.05]
    assert list(got.columns) == ["seeds", "mean", "sd", "difference", "95% low", "95% high",
                                 "verdict"]  # fmt: skip
    assert got.loc[0.5, "verdict"] == "ahead"  # +0.04 on every seed
    assert got.loc[0.5, "difference"] == pytest.approx(0.04)
    assert got.loc[0.05, "verdict"] == "not separated at this budget"  # -0.01, +0.01, -0.01
    assert got.loc[0.05, "seeds"] == 3 and np.isnan(got.loc[0.1, "difference"])
    assert got.loc[0.1, "verdict"] == "reference"
    assert got.loc[0.1, "mean"] == pytest.approx(0.80) and got.loc[0.1, "sd"] == pytest.approx(0.01)
    one = sweep.verdicts(pd.DataFrame(rows[:3]).drop(columns="seed"), "temperature", 0.1)
    assert one.loc[0.5, "verdict"] == "one seed: not separated at this budget"
    with pytest.raises(ValueError, match="reference 0.2 is not a value of column 'temperature'"):
        sweep.verdicts(pd.DataFrame(rows), "temperature", 0.2)
    for row in rows:  # a second metric: the same differences, reversed
        row["knn_val_accuracy"] = 1 - row["val_accuracy"]
    named = {"knn_val_accuracy": "20-NN", "val_accuracy": "probe"}
    both = sweep.verdicts_per_metric(pd.DataFrame(rows), "temperature", 0.1, named)
    assert list(both.index.get_level_values("metric").unique()) == ["20-NN", "probe"]
    assert both.loc[("probe", 0.5), "verdict"] == "ahead"
    assert both.loc[("20-NN", 0.5), "verdict"] == "behind"
    pd.testing.assert_frame_equal(both.loc["probe"], got)
