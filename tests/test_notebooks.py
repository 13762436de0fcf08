"""Papermill smoke runs: every notebook runs top to bottom with tiny parameters.

nbval (``pytest --nbval notebooks/``) re-runs the committed notebooks at their defaults and
compares every output not marked NBVAL_IGNORE_OUTPUT; these runs check that the parameters cell
really drives each notebook.
"""

import base64
import json
import re
import struct

import nbformat
import papermill
import pytest

from supcon_utils import runner

TINY = {
    "01_augmentation": {"timing_images": 512, "n_show": 3},
    "02_supcon_loss": {},
    "03_training": {"n_train": 512, "batch_size": 128, "epochs": 1, "probe_epochs": 1},
    "04_evaluation": {
        "models_from": "run_dir",  # trains tiny models; the defaults (nbval) read the shipped ones
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
        "models_from": "run_dir",
        "n_train": 512,
        "batch_size": 128,
        "epochs": 1,
        "probe_epochs": 1,
        "per_class": "1,all",
        "n_seeds": 2,
        "scratch_per_class": "1",
        "scratch_steps": 3,
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


@pytest.mark.parametrize("name", sorted(TINY))
def test_no_committed_figure_is_wider_than_16_inches(name):
    """A figure wider than ~16 inches (1,650 pixels at the notebooks' 100 dpi) shrinks to
    unreadable fonts at a notebook's width."""
    cells = nbformat.read(runner.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4).cells
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                width, height = struct.unpack(">II", base64.b64decode(png)[16:24])
                assert width <= 1650, f"{name} cell {index}: a figure {width} pixels wide"


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_notebook_ends_with_exercises(name):
    """A "Try it" section: parameters to change and what to look for."""
    cells = nbformat.read(runner.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4).cells
    tries = [c for c in cells if c.cell_type == "markdown" and "## Try it" in c.source]
    assert len(tries) == 1, f"{name} has {len(tries)} 'Try it' sections"
    assert tries[0].source.count("\n- **") >= 2, f"{name}: at least two exercises"
