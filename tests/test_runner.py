"""The main job's runner: papermill execution, parameter passing, results collection."""

import json
from pathlib import Path

import nbformat
import pytest

from supcon_utils import runner


def _write_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_dir = "unset"\nvalue = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_run_notebook_passes_declared_parameters_and_collects_results(tmp_path):
    nb = _write_notebook(
        tmp_path / "01_demo.ipynb",
        (
            "import json, pathlib\n"
            "out = pathlib.Path(run_dir) / 'demo'; out.mkdir(parents=True, exist_ok=True)\n"
            "(out / 'results.json').write_text(json.dumps({'metrics': {'double': value * 2}}))\n"
        ),
    )
    run_dir = tmp_path / "runs" / "x"
    run = runner.run_notebook(
        nb, run_dir / nb.name, {"run_dir": str(run_dir), "value": 21, "undeclared": 3}
    )
    assert run.error is None
    assert run.results["ignored_parameters"] == ["undeclared"]
    assert json.loads((run_dir / "demo" / "results.json").read_text()) == {
        "metrics": {"double": 42}
    }
    table = runner.write_summary([run], run_dir)
    assert "| 01_demo | ok |" in table
    assert "| double | 42 |" in table
    assert (run_dir / "results.md").read_text() == table


@pytest.mark.slow
def test_failing_notebook_is_reported_not_raised(tmp_path):
    nb = _write_notebook(tmp_path / "02_fail.ipynb", "raise RuntimeError('boom')")
    run = runner.run_notebook(nb, tmp_path / "out.ipynb")
    assert run.error == "RuntimeError: boom"
    assert (tmp_path / "out.ipynb").exists()
    assert "FAILED (RuntimeError: boom)" in runner.summary_markdown([run], {})


def test_parameters_parse_as_json_or_plain_strings():
    assert runner._parse_parameter("epochs=3") == ("epochs", 3)
    assert runner._parse_parameter("preset=full") == ("preset", "full")
    assert runner._parse_parameter("temps=[0.1, 0.5]") == ("temps", [0.1, 0.5])
    with pytest.raises(Exception, match="key=value"):
        runner._parse_parameter("epochs")


def test_summary_keeps_notebooks_run_earlier_and_adds_the_total(tmp_path):
    first = runner.NotebookRun("01_a", tmp_path / "01_a.ipynb", 10.0)
    second = runner.NotebookRun("02_b", tmp_path / "02_b.ipynb", 5.0, error="ValueError: x")
    runner.write_summary([first, second], tmp_path)
    rerun = runner.NotebookRun("02_b", tmp_path / "02_b.ipynb", 7.0)
    table = runner.write_summary([rerun], tmp_path)  # as with `--only 02`
    assert "| 01_a | ok | 10 |" in table
    assert "| 02_b | ok | 7 |" in table
    assert "FAILED" not in table
    assert "| **total** | | 17 |" in table
    records = json.loads((tmp_path / "summary.json").read_text())
    assert [r["notebook"] for r in records] == ["01_a", "02_b"]


def test_a_comparison_of_models_becomes_one_table_with_a_column_per_model():
    results = {
        "evaluation": {
            "metrics": {
                "cross-entropy": {"knn_accuracy": 0.9, "confusion_matrix": [[1]]},
                "SupCon": {"knn_accuracy": 0.95, "silhouette_cosine": 0.5},
            }
        }
    }
    table = runner.summary_markdown([], results)
    assert "| metric | cross-entropy | SupCon |" in table
    assert "| knn_accuracy | 0.9000 | 0.9500 |" in table
    assert "| silhouette_cosine |  | 0.5000 |" in table
    assert "confusion_matrix" not in table


def _main_refuses(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        runner.main(argv)
    assert stop.value.code != 0
    assert message in capsys.readouterr().err


def test_unknown_or_mistyped_parameters_and_bad_names_stop_the_runner_before_any_notebook(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(runner, "RUNS_DIR", tmp_path)
    ran = []
    monkeypatch.setattr(runner, "run_notebook", lambda *args: ran.append(args))
    _main_refuses(["--only", "02", "-p", "temperatur=0.2"],
                  "no notebook of this run declares a parameter 'temperatur'; they declare:",
                  capsys)  # fmt: skip
    _main_refuses(
        ["--only", "03", "-p", "epochs=abc"],
        "epochs='abc' (str): 03_training declares epochs as Optional[int]",
        capsys,
    )
    _main_refuses(["--only", "03", "-p", "epochs=2.5"], "epochs=2.5 (float)", capsys)
    _main_refuses(["--name", "../x", "--only", "02"], "--name '../x': allowed is a plain folder",
                  capsys)  # fmt: skip
    _main_refuses(["--only", "99"], "--only 99: no notebook matches", capsys)
    assert ran == [] and list(tmp_path.iterdir()) == []


def test_declared_types_are_read_from_the_notebooks_annotations():
    assert runner._allowed_types("Optional[int]") == (int, type(None))
    assert runner._allowed_types("float") == (int, float)
    assert runner._allowed_types("int | None") == (int, type(None))
    assert runner._allowed_types("None") is None  # no annotation: not checked
    notebook = runner.notebooks()[2]  # 03_training
    runner.check_parameters([notebook], {"epochs": 2, "temperature": 0.2, "dataset": None})
    with pytest.raises(ValueError, match="preset=1 .int.: 03_training declares preset as str"):
        runner.check_parameters([notebook], {"preset": 1})


@pytest.mark.slow
def test_notebook_04_evaluates_the_run_03_trained_whatever_its_parameters(tmp_path):
    """A parameter that only 03 declares (temperature) carries through: 04, told to read 03's
    runs (`models_from=run_dir`, not the shipped models), evaluates them."""
    tiny = {"n_train": 512, "batch_size": 128, "epochs": 1, "probe_epochs": 1}
    done = runner.run_all(
        "t", {**tiny, "temperature": 0.3, "n_geometry": 300, "n_plot": 300,
              "models_from": "run_dir"}, ["03", "04"], runs_dir=tmp_path,
    )  # fmt: skip
    assert [r.error for r in done] == [None, None], [r.output for r in done]
    evaluated = json.loads((tmp_path / "t" / "evaluation" / "results.json").read_text())
    assert evaluated["config"]["training"]["temperature"] == 0.3
