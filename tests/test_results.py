"""Results as data: records of finished runs, and the README's tables generated from them."""

import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from supcon_utils import records, results

ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "cpu": "Test CPU",
    "cpu_count": 2,
    "tensorflow": "2.21.0",
    "commit": "abc1234",
    "dirty": False,
}
CFG = {"dataset": "digits", "n_train": 400, "n_val": 100, "epochs": 3, "batch_size": 64,
       "learning_rate": 0.002}  # fmt: skip
TEST = {"cross_entropy": [0.80, 0.82, 0.78], "supcon": [0.83, 0.84, 0.80]}


def _fake_run(folder: Path, kind: str, seed: int, test: float, **changes) -> None:
    folder.mkdir(parents=True)
    records.write_results(folder, {
        "kind": kind,
        "metrics": {"val_accuracy": test + 0.01, "test_accuracy": test},
        "config": {**CFG, "seed": seed, **changes},
        "wall_time_s": 100.0 + seed,
        "epochs_completed": 3,
        "resumed_after_epochs": 0,
        "environment": ENV,
    })  # fmt: skip
    (folder / "history.csv").write_text("epoch,loss,elapsed_s\n0,1.0,30.5\n1,0.5,61.0\n")


def _fake_run_dir(root: Path, **changes) -> Path:
    for kind, accuracies in TEST.items():
        for seed, acc in enumerate(accuracies):
            sub = root if seed == 0 else root / f"seed{seed}"
            _fake_run(sub / kind, kind, seed, acc, **changes)
    return root


def test_records_hold_the_run_and_the_tables_read_them(tmp_path):
    paths = results.add(_fake_run_dir(tmp_path / "run"), "small", "make it", tmp_path / "res")
    assert sorted(p.name for p in paths) == sorted(
        f"{kind}_seed{s}.json" for kind in TEST for s in range(3)
    )
    rec = json.loads((tmp_path / "res/small/supcon_seed1.json").read_text())
    assert rec["metrics"]["test_accuracy"] == 0.84 and rec["training_s"] == 61.0
    assert rec["environment"] == ENV and rec["command"] == "make it" and rec["config"]["seed"] == 1

    text = results.tables(results.load(tmp_path / "res"))
    assert "| cross-entropy | 3 | 81.00 ± 2.00% | 80.00 ± 2.00% | 101 ± 1 |" in text
    assert "| SupCon + probe | 3 | 83.33 ± 2.08% | 82.33 ± 2.08% | 101 ± 1 |" in text
    # SupCon - CE per seed: +3, +2, +2 points; mean +2.33, sd 0.577, t(2) = 4.303
    assert (
        "test +2.33 points, 95% interval +0.90 to +3.77 (per seed: +3.00, +2.00, +2.00): "
        "**SupCon + probe ahead**." in text
    )
    assert "2-core Test CPU, TensorFlow 2.21.0, commit abc1234. Made by `make it`." in text


def test_an_interval_holding_zero_is_not_separated(tmp_path):
    TEST_OLD = dict(TEST)
    try:
        TEST["supcon"] = [0.81, 0.80, 0.79]  # -> +1, -2, +1 points
        results.add(_fake_run_dir(tmp_path / "run"), "small", "make it", tmp_path / "res")
    finally:
        TEST.update(TEST_OLD)
    text = results.tables(results.load(tmp_path / "res"))
    assert "(per seed: +1.00, -2.00, +1.00): **not separated at this budget**." in text


def test_what_cannot_be_a_record_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no finished training run"):
        results.add(tmp_path, "small", "x", tmp_path / "res")
    _fake_run(tmp_path / "b/supcon", "supcon", 0, 0.8)
    _fake_run(tmp_path / "b/again/supcon", "supcon", 0, 0.8)
    with pytest.raises(ValueError, match="one recipe, seed and setting twice"):
        results.add(tmp_path / "b", "small", "x", tmp_path / "res")
    with pytest.raises(ValueError, match="letters, digits"):
        results.add(tmp_path / "b", "../x", "x", tmp_path / "res")
    old = tmp_path / "c/supcon"
    _fake_run(old, "supcon", 0, 0.8)
    saved = json.loads((old / records.RESULTS).read_text())
    del saved["environment"]
    records.write_json(old / records.RESULTS, saved)
    with pytest.raises(ValueError, match="train it again"):
        results.add(tmp_path / "c", "small", "x", tmp_path / "res")


def test_a_sweep_recorded_in_parts_keeps_its_earlier_records(tmp_path):
    # Part one: two temperatures; a notebook's own results.json beside them is no training run.
    _fake_run(tmp_path / "one/t1/supcon", "supcon", 0, 0.80, temperature=0.1)
    _fake_run(tmp_path / "one/t5/supcon", "supcon", 0, 0.70, temperature=0.5)
    records.write_results(tmp_path / "one", {"kind": "sweeps", "metrics": {}, "config": {}})
    results.add(tmp_path / "one", "sw", "part one", tmp_path / "res")
    # Part two, kept beside it: one new point and the 0.5 run trained again (it replaces the old).
    _fake_run(tmp_path / "two/t5/supcon", "supcon", 0, 0.75, temperature=0.5)
    _fake_run(tmp_path / "two/t1s1/supcon", "supcon", 1, 0.81, temperature=0.1)
    paths = results.add(tmp_path / "two", "sw", "part two", tmp_path / "res", keep=True)
    recs = results.load(tmp_path / "res")["sw"]
    assert sorted(p.name for p in paths) == sorted(p.name for p in (tmp_path / "res/sw").iterdir())
    assert sorted((r["config"]["temperature"], r["seed"], r["command"]) for r in recs) == [
        (0.1, 0, "part one"), (0.1, 1, "part two"), (0.5, 0, "part two")]  # fmt: skip
    # Without keep, the set is replaced.
    results.add(tmp_path / "two", "sw", "part two", tmp_path / "res")
    assert len(results.load(tmp_path / "res")["sw"]) == 2


def test_a_search_gets_a_row_per_setting_and_validation_alone_chooses(tmp_path):
    run_dir = tmp_path / "run"
    # validation prefers 5e-3 for SupCon and 1e-2 for cross-entropy; the test set says otherwise
    for kind, lr, val, test in [
        ("supcon", 2e-3, 0.70, 0.90),
        ("supcon", 5e-3, 0.80, 0.60),
        ("cross_entropy", 5e-3, 0.75, 0.95),
        ("cross_entropy", 1e-2, 0.76, 0.5),
    ]:
        _fake_run(run_dir / f"learning_rate={lr}" / kind, kind, 0, test, learning_rate=lr)
        path = run_dir / f"learning_rate={lr}" / kind / records.RESULTS
        saved = json.loads(path.read_text())
        saved["metrics"]["val_accuracy"] = val
        records.write_json(path, saved)  # fmt: skip
    paths = results.add(run_dir, "search", "search it", tmp_path / "res")
    assert "supcon_learning_rate-0.005_seed0.json" in [p.name for p in paths]
    recs = results.load(tmp_path / "res")["search"]
    assert results.varying(recs) == ["learning_rate"]
    assert results.chosen(recs) == {"supcon": (5e-3,), "cross_entropy": (1e-2,)}
    for rec in recs:  # any test accuracies: the same choice
        rec["metrics"]["test_accuracy"] = 1 - rec["metrics"]["test_accuracy"]
    assert results.chosen(recs) == {"supcon": (5e-3,), "cross_entropy": (1e-2,)}
    # per recipe 5e-3 and 1e-2; together (means 0.775 at 5e-3; 2e-3 and 1e-2 not run by both)
    assert results.chosen_for_all(recs) == (5e-3,)
    text = results.set_table("search", recs)
    assert (
        "One setting for all recipes (the best mean of their validation accuracies): "
        "**learning_rate 0.005**." in text
    )
    assert "| recipe | learning_rate | seeds | validation accuracy | test accuracy |" in text
    assert "| SupCon + probe | 0.005 | 1 | 80.00% | 40.00% | 100 | yes |" in text
    assert "| SupCon + probe | 0.002 | 1 | 70.00% | 10.00% | 100 |  |" in text
    assert "peak learning rate" not in text and "paired by seed" not in text


def test_write_then_check_and_an_edited_number_fails_the_check(tmp_path):
    results.add(_fake_run_dir(tmp_path / "run"), "small", "make it", tmp_path / "res")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n<!-- results: small -->\nold\n<!-- /results -->\n\nbetween\n\n"
        "<!-- results: other -->\n<!-- /results -->\n\nafter\n"
    )  # two blocks, one of them empty: each filled, the text around them kept
    res = ["--results", str(tmp_path / "res")]
    assert results.main([*res, "--write", str(readme)]) == 0
    written = readme.read_text()
    assert written.endswith("<!-- /results -->\n\nafter\n") and "old" not in written
    assert (
        "<!-- /results -->\n\nbetween\n\n<!-- results: other -->\n\nNo records of `other`"
        in written
    )
    assert results.set_table("small", results.load(tmp_path / "res")["small"]) in written
    assert results.main([*res, "--check", str(readme)]) == 0
    other = tmp_path / "results.md"  # several documents: each is written, any one can fail
    other.write_text("<!-- results: small -->\n<!-- /results -->\n")
    assert results.main([*res, "--write", str(readme), str(other)]) == 0
    assert results.main([*res, "--check", str(readme), str(other)]) == 0
    other.write_text(other.read_text().replace("80.00 ± 2.00%", "80.10 ± 2.00%"))
    assert results.main([*res, "--check", str(readme), str(other)]) == 1
    readme.write_text(readme.read_text().replace("80.00 ± 2.00%", "80.10 ± 2.00%"))
    assert results.main([*res, "--check", str(readme)]) == 1


def test_environment_names_this_machine_and_this_checkouts_commit():
    env = records.environment()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                          capture_output=True, text=True)  # fmt: skip
    assert env["commit"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert env["cpu_count"] == os.cpu_count() and env["cpu"]
    assert env["tensorflow"] == metadata.version("tensorflow")
    assert env["python"] == platform.python_version()
    assert env["dirty"] in ((True, False) if head.returncode == 0 else (None,))


@pytest.mark.parametrize("doc", results.DOCUMENTS)
def test_the_documents_result_tables_are_made_from_the_committed_records(doc):
    text = (ROOT / doc).read_text()
    made = results.readme_with_tables(text, results.load(ROOT / "results"))
    assert made == text, (
        f"{doc}'s tables differ from results/: python -m supcon_utils.results --write {doc}"
    )
    if doc == "README.md":
        blocks = "".join(m[0] for m in results.BLOCK.finditer(text))
        assert re.search(r"\d+\.\d\d ± \d+\.\d\d%", blocks), "the README shows no seeded result"


def test_the_presets_learning_rate_is_the_one_the_recorded_search_chose():
    from supcon_utils import training

    (rate,) = results.chosen_for_all(results.load(ROOT / "results")["recipes-lr"])
    assert training.PRESETS["quick"].learning_rate == rate == training.PRESETS["full"].learning_rate


def test_every_sweep_set_is_made_by_notebooks_that_read_records():
    from supcon_utils import runner

    assert not set(results.SETS) & set(results.SWEEP_SETS)  # one `make` name, one set
    for selected, parameters in results.SWEEP_SETS.values():
        for stem in selected:
            (notebook,) = [nb for nb in runner.notebooks() if nb.stem.startswith(stem)]
            runner.check_parameters([notebook], {"records_dir": "x", "n_seeds": 3})
        runner.check_parameters(
            [nb for nb in runner.notebooks() if nb.stem[:2] in selected], parameters
        )


def test_save_records_the_finished_runs_of_an_interrupted_sweep_make(tmp_path, monkeypatch):
    monkeypatch.setattr(results.runner, "RUNS_DIR", tmp_path / "runs")
    run_dir = tmp_path / "runs/sweeps-ablations/sweeps"
    assert results.save_sweeps("ablations", tmp_path / "res") == []  # nothing has finished
    _fake_run(run_dir / "base/supcon", "supcon", 0, 0.80, temperature=0.1)
    _fake_run(run_dir / "temperature=0.5/supcon", "supcon", 0, 0.70, temperature=0.5)
    (run_dir / "seed=1/supcon").mkdir(parents=True)  # started, unfinished: no results.json
    paths = results.save_sweeps("ablations", tmp_path / "res")
    recs = results.load(tmp_path / "res")["ablations"]
    assert len(paths) == 2 and {r["command"] for r in recs} == {
        "python -m supcon_utils.results make ablations"
    }
    with pytest.raises(ValueError, match="allowed are ablations"):
        results.save_sweeps("quick", tmp_path / "res")
