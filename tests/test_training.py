"""Training recipes: resumable runs, loading finished runs, presets."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from supcon_utils import models, training

# digits: 8x8 images, always offline; small enough that an epoch takes a second.
TINY = dict(dataset="digits", n_train=256, batch_size=64, epochs=3, probe_epochs=2,
            finetune_epochs=3, jit_compile=False)


class _Crash(keras.callbacks.Callback):
    """Raises at the end of one epoch, as a Colab disconnect would stop a run."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"killed after epoch {epoch}")


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.started = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch)


@pytest.mark.slow
# hybrid and finetune resume through the same BackupAndRestore as cross_entropy; moco has a queue.
@pytest.mark.parametrize("kind", ["supcon", "cross_entropy", "moco"])
def test_interrupted_run_resumes_from_its_last_epoch(tmp_path, kind):
    cfg = training.config("quick", **TINY)
    with pytest.raises(KeyboardInterrupt):
        training.run(kind, cfg, tmp_path, callbacks=[_Crash(epoch=1)], verbose=0)
    assert len(training.history(tmp_path / kind)) == 2
    assert (tmp_path / kind / "backup").exists()

    epochs = _Epochs()
    results = training.run(kind, cfg, tmp_path, callbacks=[epochs], verbose=0)
    assert epochs.started == [2], "the resumed run must start after the last saved epoch"
    assert results["epochs_completed"] == cfg.epochs
    assert [row["epoch"] for row in training.history(tmp_path / kind)] == [0, 1, 2]
    assert not (tmp_path / kind / "backup").exists()
    assert 0.0 <= results["metrics"]["test_accuracy"] <= 1.0


@pytest.mark.slow
def test_finished_run_is_loaded_and_a_changed_config_retrains(tmp_path):
    cfg = training.config("quick", **TINY)
    first = training.run("cross_entropy", cfg, tmp_path, verbose=0)
    saved = json.loads((tmp_path / "cross_entropy" / "results.json").read_text())
    assert saved["metrics"] == first["metrics"]

    epochs = _Epochs()
    again = training.run("cross_entropy", cfg, tmp_path, callbacks=[epochs], verbose=0)
    assert epochs.started == []
    assert again["metrics"] == first["metrics"]
    assert set(again["models"]) == {"encoder", "classifier"}

    changed = training.run("cross_entropy", training.config("quick", **{**TINY, "epochs": 1}),
                           tmp_path, callbacks=[epochs], verbose=0)
    assert epochs.started == [0]
    assert changed["config"]["epochs"] == 1


def test_config_overrides_and_errors():
    cfg = training.config("full", epochs=None, temperature=0.5)
    assert cfg.n_train is None and cfg.temperature == 0.5
    assert cfg.epochs == training.PRESETS["full"].epochs
    with pytest.raises(ValueError, match="unknown preset"):
        training.config("huge")
    with pytest.raises(ValueError, match="unknown config keys"):
        training.config("quick", temprature=0.5)


def test_collapsed_embeddings_are_refused():
    images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    encoder = models.resnet_small((8, 8, 1))
    head = models.projection_head(128)
    training._check_not_collapsed(encoder, head, images)  # a random network has not collapsed
    constant = keras.Sequential([keras.Input((128,)), keras.layers.Dense(
        128, kernel_initializer="zeros", bias_initializer="ones")])
    with pytest.raises(RuntimeError, match="collapsed"):
        training._check_not_collapsed(encoder, constant, images)


@pytest.mark.slow
def test_diverging_run_fails_loudly(tmp_path):
    cfg = training.config("quick", **{**TINY, "epochs": 1, "learning_rate": 1e12})
    with pytest.raises(RuntimeError, match="diverged"):
        training.run("cross_entropy", cfg, tmp_path, verbose=0)
    assert not (tmp_path / "cross_entropy" / "results.json").exists()


def test_a_knob_added_later_at_its_default_keeps_a_saved_run():
    wanted = dataclasses.asdict(training.Config())
    saved = {k: v for k, v in wanted.items() if k != "variant"}  # saved before `variant` existed
    assert training._same_config(saved, wanted)
    assert not training._same_config(saved, wanted | {"variant": "in"})
    assert not training._same_config(saved | {"epochs": 99}, wanted)
    assert not training._same_config(saved | {"removed_knob": 1}, wanted)


@pytest.mark.slow
@pytest.mark.parametrize("stop_gradient", [False, True])
def test_hybrid_run_trains_both_heads(tmp_path, stop_gradient):
    # 12 steps: a learning rate high enough for the online linear head to learn in them.
    cfg = training.config("quick", **TINY, stop_gradient=stop_gradient, ce_weight=0.5,
                          learning_rate=1e-2)  # fmt: skip
    results = training.run("hybrid", cfg, tmp_path, verbose=0)
    assert set(results["models"]) == {"encoder", "projection_head", "classifier"}
    assert results["epochs_completed"] == cfg.epochs
    rows = training.history(tmp_path / "hybrid")
    assert {"loss", "logits_accuracy"} <= set(rows[0])
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert results["metrics"]["test_accuracy"] > 0.3  # digits: far above chance (0.1)


@pytest.mark.slow
def test_finetune_starts_from_the_supcon_run_and_keeps_it(tmp_path):
    cfg = training.config("quick", **{**TINY, "finetune_epochs": 1})
    tuned = training.run("finetune", cfg, tmp_path, verbose=0)
    supcon = json.loads((tmp_path / "supcon" / "results.json").read_text())
    assert tuned["metrics"]["pretrained_test_accuracy"] == supcon["metrics"]["test_accuracy"]
    assert tuned["epochs_completed"] == 1
    # Another fine-tuning learning rate re-tunes, but does not retrain SupCon.
    epochs = _Epochs()
    retuned = training.config("quick", **{**TINY, "finetune_epochs": 1, "finetune_lr": 1e-3})
    training.run("finetune", retuned, tmp_path, callbacks=[epochs], verbose=0)
    assert epochs.started == [0]
    assert json.loads((tmp_path / "supcon" / "results.json").read_text()) == supcon


@pytest.mark.slow
def test_class_balanced_batches_train_and_bad_sizes_are_refused(tmp_path):
    cfg = training.config("quick", **{**TINY, "epochs": 1}, classes_per_batch=4)  # 4 x 16
    results = training.run("supcon", cfg, tmp_path, verbose=0)
    assert results["epochs_completed"] == 1
    with pytest.raises(ValueError, match="not a multiple of classes_per_batch"):
        training.run("supcon", training.config("quick", **TINY, classes_per_batch=5),
                     tmp_path / "bad", verbose=0)  # fmt: skip
