"""The models shipped with the package: each scores its recorded test accuracy, was trained at the
current preset, is the full set's seed-0 record, and is inside the built package."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from supcon_utils import evaluation, pretrained, training

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("cross_entropy", "supcon")


@pytest.mark.slow  # embeds the 10,000 test images with each encoder
@pytest.mark.parametrize("kind", KINDS)
def test_each_shipped_model_scores_its_recorded_test_accuracy(kind):
    run = pretrained.load("full", kind)
    _, _, (x_test, y_test) = training.load_data(training.saved_config(run))
    logits = run["models"]["classifier"].predict(
        evaluation.embeddings(run["models"]["encoder"], x_test), verbose=0
    )
    accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
    assert accuracy == pytest.approx(run["metrics"]["test_accuracy"], abs=5e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_the_shipped_models_were_trained_at_the_current_full_preset(kind):
    run = pretrained.load("full", kind)
    trained = dataclasses.asdict(training.saved_config(run))
    wanted = dataclasses.asdict(dataclasses.replace(training.PRESETS["full"], seed=0))
    differ = {k: (trained[k], wanted[k]) for k in wanted if trained[k] != wanted[k]}
    assert not differ, f"shipped {kind} (trained, preset now): {differ}; ship new models"
    assert run["epochs_completed"] == wanted["epochs"]


def test_an_unshipped_preset_or_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="no shipped models of preset 'gpu'"):
        pretrained.load("gpu", "supcon")
    with pytest.raises(ValueError, match="no shipped 'moco' model"):
        pretrained.load("full", "moco")


def test_a_notebook_reads_the_shipped_models_or_its_own_run_folder(tmp_path):
    assert pretrained.models_dir("shipped", tmp_path) == pretrained.run_dir("full")
    assert pretrained.models_dir("run_dir", tmp_path) == tmp_path
    with pytest.raises(ValueError, match=r"models_from must be one of \('shipped', 'run_dir'\)"):
        pretrained.models_dir("mine", tmp_path)


def test_the_built_package_contains_the_models(tmp_path):
    repo = tmp_path / "repo"  # a copy: building writes into the source tree
    shutil.copytree(ROOT / "supcon_utils", repo / "supcon_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, repo / name)
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path,
                    repo], check=True, env=env, cwd=tmp_path)  # fmt: skip
    (wheel,) = tmp_path.glob("supcon_utils-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, files in (("cross_entropy", ["encoder", "classifier"]),
                        ("supcon", ["encoder", "projection_head", "classifier"])):  # fmt: skip
        for name in [*(f"{f}.keras" for f in files), "results.json"]:
            assert f"supcon_utils/pretrained/full/{kind}/{name}" in names, (kind, name)


@pytest.mark.parametrize("kind", KINDS)
def test_each_shipped_run_is_the_seed_0_record_of_the_full_set(kind):
    """The shipped run is the one `results/full` records (and the README's table reports)."""
    record = json.loads((ROOT / "results" / "full" / f"{kind}_seed0.json").read_text())
    run = pretrained.load("full", kind)
    assert run["metrics"] == record["metrics"] and run["config"] == record["config"]
    assert run["environment"] == record["environment"]
