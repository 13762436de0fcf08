"""benchmarks/recipes.py: its stages, the table it prints, and a tiny stage end to end."""

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location(
    "recipes", Path(__file__).resolve().parents[1] / "benchmarks" / "recipes.py"
)
recipes = importlib.util.module_from_spec(_spec)
sys.modules["recipes"] = recipes
_spec.loader.exec_module(recipes)


def test_unknown_stage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown stage 'nope'"):
        recipes.run_stage("nope", tmp_path)


def test_every_stage_point_is_a_known_kind_and_config_field():
    from supcon_utils import training

    fields = set(training.Config.__dataclass_fields__)
    for preset, points in recipes.STAGES.values():
        assert preset in training.PRESETS
        for point in points:
            assert point["kind"] in training.KINDS
            assert set(point) - {"kind"} <= fields


@pytest.mark.slow
def test_tiny_stage_trains_each_point_and_loads_it_the_second_time(tmp_path, monkeypatch, capsys):
    points = [{"kind": "cross_entropy", "learning_rate": lr} for lr in (1e-3, 3e-3)]
    monkeypatch.setitem(recipes.STAGES, "one", ("quick", points))
    monkeypatch.setitem(recipes.TINY, "n_train", 200)
    table = recipes.run_stage("one", tmp_path, tiny=True)
    assert list(table[["preset", "epochs", "n_train"]].iloc[0]) == ["quick", 1, 200]
    assert table["error"].isna().all() and 0 <= table["test_accuracy"][0] <= 1
    saved = pd.read_csv(tmp_path / "recipes" / "one-tiny" / "recipes.csv")
    assert list(saved.columns) == list(table.columns)
    again = recipes.run_stage("one", tmp_path, tiny=True)
    assert again["wall_time_s"][0] == table["wall_time_s"][0]  # loaded, not trained again

    monkeypatch.chdir(tmp_path)  # a tiny stage records nothing under results/
    assert recipes.main(["--stage", "one", "--tiny", "--runs-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    best = table["learning_rate"][table["val_accuracy"].idxmax()]  # chosen on validation
    chosen = [line for line in printed.splitlines() if line.endswith("| yes |")]
    assert len(chosen) == 1 and chosen[0].startswith(f"| cross-entropy | {best:g} | 1 |")
    assert not (tmp_path / "results").exists()
