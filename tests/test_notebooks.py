"""Papermill smoke runs: every notebook runs top to bottom with tiny parameters.

nbval (``pytest --nbval-lax notebooks/``) re-runs the committed notebooks at their defaults and
compares the checked cells; these runs check that the parameters cell really drives each notebook.
"""

import json

import pytest

from supcon_utils import runner

TINY = {
    "01_augmentation": {"timing_images": 512, "n_show": 3},
    "02_supcon_loss": {},
    "03_training": {"n_train": 512, "batch_size": 128, "epochs": 1, "probe_epochs": 1},
}


def test_every_notebook_has_tiny_parameters():
    assert sorted(TINY) == [nb.stem for nb in runner.notebooks()]


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
