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


def test_markdown_shows_percent_and_seconds_and_errors_only_when_any():
    table = pd.DataFrame({
        "learning_rate": [0.002, 0.005], "kind": ["supcon", "cross_entropy"],
        "point": ["base", "x"], "error": [None, None], "val_accuracy": [0.93, 0.91],
        "test_accuracy": [0.93456, 0.9], "knn_val_accuracy": [0.92, None],
        "knn_test_accuracy": [0.9312, None], "wall_time_s": [1234.4, 56.0],
    })  # fmt: skip
    lines = recipes.markdown(table).splitlines()
    assert lines[0] == ("| learning_rate | kind | val_accuracy | test_accuracy | knn_val_accuracy "
                        "| knn_test_accuracy | wall_time_s |")  # fmt: skip
    assert lines[2] == "| 0.002 | supcon | 93.00 | 93.46 | 92.00 | 93.12 | 1,234 |"
    assert lines[3] == "| 0.005 | cross_entropy | 91.00 | 90.00 |  |  | 56 |"
    table.loc[1, ["error", "val_accuracy", "test_accuracy", "wall_time_s"]] = [
        "ValueError: diverged", None, None, None]  # fmt: skip
    lines = recipes.markdown(table).splitlines()
    assert "error" in lines[0]
    assert lines[3] == "| 0.005 | cross_entropy | ValueError: diverged |  |  |  |  |  |"


@pytest.mark.slow
def test_tiny_stage_trains_each_point_and_loads_it_the_second_time(tmp_path, monkeypatch):
    points = [{"kind": "cross_entropy", "learning_rate": 1e-3}]
    monkeypatch.setitem(recipes.STAGES, "one", ("quick", points))
    monkeypatch.setitem(recipes.TINY, "n_train", 200)
    table = recipes.run_stage("one", tmp_path, tiny=True)
    assert list(table[["preset", "epochs", "n_train"]].iloc[0]) == ["quick", 1, 200]
    assert table["error"].isna().all() and 0 <= table["test_accuracy"][0] <= 1
    saved = pd.read_csv(tmp_path / "recipes" / "one-tiny" / "recipes.csv")
    assert list(saved.columns) == list(table.columns)
    again = recipes.run_stage("one", tmp_path, tiny=True)
    assert again["wall_time_s"][0] == table["wall_time_s"][0]  # loaded, not trained again
