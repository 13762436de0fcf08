"""Papermill smoke runs: every notebook runs top to bottom with tiny parameters.

nbval (``pytest --nbval-lax notebooks/``) re-runs the committed notebooks at their defaults and
compares the checked cells; these runs check that the parameters cell really drives each notebook.
"""

import json

import nbformat
import papermill
import pytest

from supcon_utils import runner

TINY = {
    "01_augmentation": {"timing_images": 512, "n_show": 3},
    "02_supcon_loss": {},
    "03_training": {"n_train": 512, "batch_size": 128, "epochs": 1, "probe_epochs": 1},
}


def test_every_notebook_has_tiny_parameters():
    assert sorted(TINY) == [nb.stem for nb in runner.notebooks()]


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_parameter_is_listed_by_papermill_with_its_comment(name):
    """``papermill --help-notebook`` must list each knob of the parameters cell, with its help."""
    notebook = runner.NOTEBOOK_DIR / f"{name}.ipynb"
    cells = nbformat.read(notebook, as_version=4).cells
    source = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
    assigned = [line.split("=")[0].strip() for line in source.splitlines() if "=" in line]
    listed = papermill.inspect_notebook(str(notebook))
    assert sorted(listed) == sorted(assigned)
    assert all(listed[name]["help"] for name in assigned)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_with_tiny_parameters(tmp_path, name):
    notebook = runner.NOTEBOOK_DIR / f"{name}.ipynb"
    run = runner.run_notebook(notebook, tmp_path / f"{name}.ipynb",
                              {"run_dir": str(tmp_path), **TINY[name]})
    assert run.error is None, f"{name} failed: {run.error} (see {run.output})"
    assert "ignored_parameters" not in run.results
    results = sorted(tmp_path.rglob("results.json"))
    assert results, f"{name} wrote no results.json under run_dir"
    for path in results:
        assert json.loads(path.read_text())["metrics"]
