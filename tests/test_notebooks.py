"""Papermill smoke runs: every notebook runs top to bottom with tiny parameters.

nbval (``pytest --nbval notebooks/``) re-runs the committed notebooks at their defaults and
compares every output not marked NBVAL_IGNORE_OUTPUT; these runs check that the parameters cell
really drives each notebook.
"""

import json
import re

import nbformat
import papermill
import pytest

from supcon_utils import runner

TINY = {
    "01_augmentation": {"timing_images": 512, "n_show": 3},
    "02_supcon_loss": {},
    "03_training": {"n_train": 512, "batch_size": 128, "epochs": 1, "probe_epochs": 1},
    "04_evaluation": {
        "n_train": 512,
        "batch_size": 128,
        "epochs": 1,
        "probe_epochs": 1,
        "n_geometry": 300,
        "n_plot": 300,
    },
    "05_sweeps": {
        "n_train": 512,
        "epochs": 1,
        "batch_size": 64,
        "probe_epochs": 1,
        "temperatures": "0.1,0.5",
        "batch_sizes": "64",
        "classes_per_batch": 4,
    },
    "06_momentum_queue": {
        "n_train": 512,
        "epochs": 1,
        "probe_epochs": 1,
        "small_batch": 32,
        "large_batch": 128,
        "queue_sizes": "256",
    },
    "07_joint_and_finetune": {
        "n_train": 512,
        "epochs": 2,
        "batch_size": 64,
        "probe_epochs": 1,
        "weights": "0.5",
    },
    "08_transfer_and_robustness": {
        "n_train": 512,
        "batch_size": 128,
        "epochs": 1,
        "probe_epochs": 1,
        "per_class": "1,all",
        "n_seeds": 2,
        "scratch_per_class": "1",
        "n_robust": 100,
    },
}


def test_every_notebook_has_tiny_parameters():
    assert sorted(TINY) == [nb.stem for nb in runner.notebooks()]


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_parameter_is_listed_by_papermill_with_its_type_and_comment(name):
    """``papermill --help-notebook`` lists each knob of the parameters cell, typed, with help."""
    notebook = runner.NOTEBOOK_DIR / f"{name}.ipynb"
    cells = nbformat.read(notebook, as_version=4).cells
    source = next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))
    assigned = re.findall(r"^(\w+)\s*(?::[^=]*)?=", source, flags=re.MULTILINE)
    listed = papermill.inspect_notebook(str(notebook))
    assert assigned and sorted(listed) == sorted(assigned)
    for knob in assigned:
        assert listed[knob]["help"], f"{knob} has no comment"
        assert listed[knob]["inferred_type_name"] != "None", f"{knob} has no type annotation"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_with_tiny_parameters(tmp_path, name):
    notebook = runner.NOTEBOOK_DIR / f"{name}.ipynb"
    run = runner.run_notebook(
        notebook, tmp_path / f"{name}.ipynb", {"run_dir": str(tmp_path), **TINY[name]}
    )
    assert run.error is None, f"{name} failed: {run.error} (see {run.output})"
    assert "ignored_parameters" not in run.results
    results = sorted(tmp_path.rglob("results.json"))
    assert results, f"{name} wrote no results.json under run_dir"
    for path in results:
        assert json.loads(path.read_text())["metrics"]
