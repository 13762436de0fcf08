"""Training recipes: resumable runs, loading finished runs, presets."""

import dataclasses
import json
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest

from supcon_utils import data, evaluation, models, recipes, records, runs, training

# digits: 8x8 images, always offline; small enough that an epoch takes a second.
TINY = dict(
    dataset="digits",
    n_val=200,
    n_train=256,
    batch_size=64,
    epochs=3,
    probe_epochs=2,
    finetune_epochs=3,
    jit_compile=False,
)


class _Crash(keras.callbacks.Callback):
    """Raises at the end of one epoch, as a Colab disconnect would stop a run."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"killed after epoch {epoch}")


@pytest.mark.slow
# hybrid and finetune resume through the same BackupAndRestore as cross_entropy; moco has a queue.
@pytest.mark.parametrize("kind", ["supcon", "cross_entropy", "moco"])
def test_interrupted_run_resumes_from_its_last_epoch(tmp_path, kind, epoch_starts):
    cfg = training.config("quick", **TINY)
    with pytest.raises(KeyboardInterrupt):
        training.run(kind, cfg, tmp_path, callbacks=[_Crash(epoch=1)], verbose=0)
    assert len(training.history(tmp_path / kind)) == 2
    assert (tmp_path / kind / "backup").exists()

    epochs = epoch_starts
    began = time.perf_counter()
    results = training.run(kind, cfg, tmp_path, callbacks=[epochs], verbose=0)
    took = time.perf_counter() - began
    assert epochs.started == [2], "the resumed run must start after the last saved epoch"
    assert results["epochs_completed"] == cfg.epochs
    rows = training.history(tmp_path / kind)
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    # Per-epoch validation accuracy, and training seconds counted on across the interruption.
    assert all(0.0 <= row["val_accuracy"] <= 1.0 for row in rows)
    assert all("test_accuracy" not in row for row in rows)  # the test set is scored once
    elapsed = [row["elapsed_s"] for row in rows]
    assert 0 < elapsed[0] < elapsed[1] < elapsed[2]
    # Its wall time adds the epochs trained before the interruption to the resumption's own.
    assert results["resumed_after_epochs"] == 2
    assert took < results["wall_time_s"] <= elapsed[1] + took + 0.05
    assert not (tmp_path / kind / "backup").exists()
    assert 0.0 <= results["metrics"]["test_accuracy"] <= 1.0
    # The resumed epochs drew the uninterrupted run's batches and views: the same model.
    whole = training.run(kind, cfg, tmp_path / "whole", verbose=0)
    assert whole["metrics"] == results["metrics"]
    for name, model in whole["models"].items():
        for a, b in zip(model.get_weights(), results["models"][name].get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


# A training process that can be killed mid-epoch: it reports the start of epoch `kill_in` (after
# its second batch), then waits for the kill; with kill_in = -1 it trains to the end. It prints a
# digest of every final weight and the metrics.
_CHILD = r"""
import hashlib, json, sys, time
import supcon_utils
supcon_utils.setup_tensorflow()
import keras
from supcon_utils import training

kind, run_dir, kill_in, tiny = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])


class WaitForKill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == kill_in and batch == 1:
            print("killable", flush=True)
            time.sleep(600)


cfg = training.config("quick", **tiny)
result = training.run(kind, cfg, run_dir, callbacks=[WaitForKill()], verbose=0)
digest = hashlib.sha256()
for name in sorted(result["models"]):
    for weight in result["models"][name].get_weights():
        digest.update(weight.tobytes())
print(json.dumps({"weights": digest.hexdigest(), "metrics": result["metrics"],
                  "resumed_after_epochs": result["resumed_after_epochs"]}))
"""


def _train_in_a_process(kind: str, run_dir, kill_in: int = -1) -> dict | None:
    """Train in a fresh process; SIGKILL it in epoch ``kill_in`` (then None), else its digest."""
    args = [sys.executable, "-c", _CHILD, kind, str(run_dir), str(kill_in), json.dumps(TINY)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.strip() == "killable":
                child.kill()  # SIGKILL: no callback, no cleanup runs
                child.wait()
                return None
            last = line
        assert child.wait() == 0, f"the {kind} training process failed"
    return json.loads(last)


@pytest.mark.slow  # six short training processes
@pytest.mark.parametrize("kind", ["supcon", "cross_entropy"])
def test_a_run_killed_mid_epoch_and_resumed_ends_on_the_uninterrupted_weights(tmp_path, kind):
    assert _train_in_a_process(kind, tmp_path / "killed", kill_in=2) is None
    assert len(training.history(tmp_path / "killed" / kind)) == 2  # epochs 0 and 1 were saved
    resumed = _train_in_a_process(kind, tmp_path / "killed")
    whole = _train_in_a_process(kind, tmp_path / "whole")
    assert resumed["resumed_after_epochs"] == 2 and whole["resumed_after_epochs"] == 0
    assert resumed["weights"] == whole["weights"]
    assert resumed["metrics"] == whole["metrics"]


@pytest.mark.slow
def test_finished_run_is_loaded_and_a_changed_config_keeps_it(tmp_path, epoch_starts):
    cfg = training.config("quick", **TINY)
    first = training.run("cross_entropy", cfg, tmp_path, verbose=0)
    out = tmp_path / "cross_entropy"
    saved = json.loads((out / "results.json").read_text())
    assert saved["metrics"] == first["metrics"]
    assert saved["resumed_after_epochs"] == 0
    assert saved["environment"] == records.environment()  # the record's machine and commit
    files = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    epochs = epoch_starts
    again = training.run("cross_entropy", cfg, tmp_path, callbacks=[epochs], verbose=0)
    assert epochs.started == []
    assert again["metrics"] == first["metrics"]
    assert set(again["models"]) == {"encoder", "classifier"}

    # Another configuration in the same run_dir: refused, and the first run is left as it was.
    other = training.config("quick", **{**TINY, "epochs": 1, "temperature": 0.2})
    with pytest.raises(ValueError, match=r"another configuration \(epochs: 3 there, 1 asked; "
                       r"temperature: 0.1 there, 0.2 asked\); it is kept"):  # fmt: skip
        training.run("cross_entropy", other, tmp_path, callbacks=[epochs], verbose=0)
    assert epochs.started == []
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == files

    changed = training.run("cross_entropy", other, tmp_path / "tau0.2", callbacks=[epochs],
                           verbose=0)  # fmt: skip
    assert epochs.started == [0]
    assert changed["config"]["epochs"] == 1
    assert json.loads((out / "results.json").read_text()) == saved


@pytest.mark.slow
def test_load_run_reads_the_finished_run_whatever_its_config_and_trains_only_if_missing(tmp_path):
    with pytest.raises(runs.RunFolderError, match="holds no finished run of supcon .no results"):
        training.load_run(tmp_path, "supcon")
    trained = training.config("quick", **{**TINY, "epochs": 1, "temperature": 0.3})
    first = training.load_run(tmp_path, "supcon", train_if_missing=trained)
    assert first["config"]["temperature"] == 0.3

    # A reader with other settings (here the defaults) gets the run that is there, untrained.
    loaded = training.load_run(
        tmp_path, "supcon", train_if_missing=training.config("quick", **TINY)
    )
    assert loaded["metrics"] == first["metrics"]
    assert training.saved_config(loaded) == trained
    assert set(loaded["models"]) == {"encoder", "projection_head", "classifier"}
    x = np.zeros((2, 8, 8, 1), np.float32)
    np.testing.assert_array_equal(
        loaded["models"]["encoder"].predict(x, verbose=0),
        first["models"]["encoder"].predict(x, verbose=0),
    )
    with pytest.raises(ValueError, match="unknown kind 'supcom'"):
        training.load_run(tmp_path, "supcom")


def _draws() -> list[float]:
    """One draw from each global generator a notebook may use after a run."""
    import random

    import tensorflow as tf

    return [
        random.random(),
        float(np.random.rand()),
        float(keras.random.uniform(())),
        float(tf.random.uniform(())),
        float(keras.initializers.GlorotUniform()((1,))[0]),
    ]


@pytest.mark.slow
def test_a_run_leaves_the_global_generators_as_it_found_them_trained_or_loaded(tmp_path):
    cfg = training.config("quick", **{**TINY, "epochs": 1})
    after = {}
    for case in ("no run", "trained", "loaded"):
        keras.utils.set_random_seed(7)
        _draws()  # the reader's own draws before the run
        if case != "no run":
            training.run("cross_entropy", cfg, tmp_path, verbose=0)
        after[case] = _draws()
    assert after["trained"] == after["no run"] == after["loaded"]
    # The run itself is seeded by cfg.seed whatever the state it was called in.
    keras.utils.set_random_seed(123)
    again = training.run("cross_entropy", cfg, tmp_path / "again", verbose=0)
    assert again["metrics"] == training.load_run(tmp_path, "cross_entropy")["metrics"]


@pytest.mark.slow
def test_a_run_trains_on_your_own_registered_arrays_as_on_a_named_dataset(tmp_path,
                                                                        own_datasets):  # fmt: skip
    with pytest.raises(ValueError, match="dataset='my_digits'; allowed: 'fashion_mnist'"):
        training.config("quick", **{**TINY, "dataset": "my_digits"})
    train, test = data.load_dataset("digits")
    data.register("my_digits", (train[0][..., 0], train[1]), test, list("0123456789"))
    cfg = training.config("quick", **{**TINY, "dataset": "my_digits", "epochs": 1})
    ours = training.run("supcon", cfg, tmp_path, verbose=0)
    theirs = training.run("supcon", dataclasses.replace(cfg, dataset="digits"), tmp_path / "d",
                          verbose=0)  # fmt: skip
    assert ours["metrics"] == theirs["metrics"]  # the same arrays, the same seeded run
    with pytest.raises(ValueError, match="n_train=2000 is more than the 1,237 training images"):
        training.run("supcon", dataclasses.replace(cfg, n_train=2000), tmp_path, verbose=0)


def test_saved_config_and_shared_data():
    cfg = training.config("quick", **TINY)
    record = {"config": dataclasses.asdict(cfg) | {"ce_weight": 1.0}}  # a retired knob is dropped
    assert training.saved_config(record) == cfg
    with pytest.raises(
        ValueError, match=r"knobs this version does not know: \['from_the_future'\]"
    ):
        training.saved_config({"config": dataclasses.asdict(cfg) | {"from_the_future": 1}})
    other_model = {"config": dataclasses.asdict(dataclasses.replace(cfg, temperature=0.5))}
    assert training.shared_data([record, other_model]) == cfg
    other_images = {"config": dataclasses.asdict(dataclasses.replace(cfg, n_train=128, seed=1))}
    with pytest.raises(ValueError, match="different images .n_train: 256 and 128; seed: 0 and 1"):
        training.shared_data([record, other_images])


def test_config_overrides_and_errors():
    cfg = training.config("full", **training.given(epochs=None, temperature=0.5))
    assert cfg.n_train is None and cfg.temperature == 0.5
    assert cfg.epochs == training.PRESETS["full"].epochs
    everything = training.config("quick", n_train=None, labels_per_class=None)
    assert everything.n_train is None and training.PRESETS["quick"].n_train is not None
    with pytest.raises(TypeError, match="epochs=None .NoneType.; allowed: int$"):
        training.config("quick", epochs=None)
    with pytest.raises(ValueError, match="unknown preset"):
        training.config("huge")
    with pytest.raises(ValueError, match="unknown config keys"):
        training.config("quick", temprature=0.5)


def test_collapsed_embeddings_are_refused():
    images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    encoder = models.resnet_small((8, 8, 1))
    head = models.projection_head(128)
    training._check_not_collapsed(encoder, head, images)  # a random network has not collapsed
    constant = keras.Sequential(
        [
            keras.Input((128,)),
            keras.layers.Dense(128, kernel_initializer="zeros", bias_initializer="ones"),
        ]
    )
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
    assert training._config_differences(saved, wanted) == ""
    assert training._config_differences(saved, wanted | {"variant": "in"}) == (
        "variant: 'out' there, 'in' asked"
    )
    assert "epochs: 99 there, 6 asked" in training._config_differences(
        saved | {"epochs": 99}, wanted
    )
    assert "removed_knob: 1 there" in training._config_differences(
        saved | {"removed_knob": 1}, wanted
    )
    assert (
        training._config_differences(saved | {"supcon_weight": 2.0}, wanted, ("supcon_weight",))
        == ""
    )
    # A supcon or cross_entropy run saved when the hybrid's knob was ce_weight still loads.
    old = saved | {"ce_weight": 1.0}
    assert "ce_weight: 1.0 there" in training._config_differences(old, wanted)
    assert training._config_differences(old, wanted, recipes.ignored_fields("supcon")) == ""


@pytest.mark.slow
def test_a_run_saved_under_a_knobs_old_name_is_still_that_run(tmp_path, epoch_starts):
    cfg = training.config("quick", **{**TINY, "epochs": 1})
    first = training.run("cross_entropy", cfg, tmp_path, verbose=0)
    record = tmp_path / "cross_entropy" / "results.json"
    saved = json.loads(record.read_text())
    saved["config"]["recipe"] = saved["config"].pop("augmentation")  # as runs before the rename
    record.write_text(json.dumps(saved))

    again = training.run("cross_entropy", cfg, tmp_path, callbacks=[epoch_starts], verbose=0)
    assert epoch_starts.started == []  # found, not trained again
    assert again["metrics"] == first["metrics"]
    assert again["config"]["augmentation"] == cfg.augmentation and "recipe" not in again["config"]
    loaded = training.load_run(tmp_path, "cross_entropy")
    assert training.saved_config(loaded) == cfg


@pytest.mark.slow
@pytest.mark.parametrize("stop_gradient", [False, True])
def test_hybrid_run_trains_both_heads(tmp_path, stop_gradient):
    # 12 steps: a learning rate high enough for the online linear head to learn in them.
    cfg = training.config("quick", **TINY, stop_gradient=stop_gradient, supcon_weight=0.5,
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
    # Another fine-tuning learning rate in the same run_dir is refused; both runs are kept.
    retuned = training.config("quick", **{**TINY, "finetune_epochs": 1, "finetune_lr": 1e-3})
    with pytest.raises(ValueError, match="finetune_lr: 0.0001 there, 0.001 asked"):
        training.run("finetune", retuned, tmp_path, verbose=0)
    assert json.loads((tmp_path / "supcon" / "results.json").read_text()) == supcon
    assert (
        json.loads((tmp_path / "finetune" / "results.json").read_text())["metrics"]
        == (tuned["metrics"])
    )


@pytest.mark.slow
def test_class_balanced_batches_train_and_bad_sizes_are_refused(tmp_path):
    cfg = training.config("quick", **{**TINY, "epochs": 1}, classes_per_batch=4)  # 4 x 16
    results = training.run("supcon", cfg, tmp_path, verbose=0)
    assert results["epochs_completed"] == 1
    with pytest.raises(ValueError, match="not a multiple of classes_per_batch"):
        training.run("supcon", training.config("quick", **TINY, classes_per_batch=5),
                     tmp_path / "bad", verbose=0)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cross_entropy", "supcon"])
def test_a_seeded_run_repeats_bit_for_bit_augmentation_included(tmp_path, kind):
    cfg = training.config("quick", **TINY)
    assert cfg.augmentation is not None  # the views are augmented, so their draws must repeat too
    first = training.run(kind, cfg, tmp_path / "a", verbose=0)
    second = training.run(kind, cfg, tmp_path / "b", verbose=0)
    histories = [
        pd.DataFrame(training.history(tmp_path / run / kind)).drop(columns="elapsed_s")
        for run in ("a", "b")
    ]
    pd.testing.assert_frame_equal(*histories)  # NaN equals NaN here (no validation loss)
    assert first["metrics"] == second["metrics"]
    for name, model in first["models"].items():
        for a, b in zip(model.get_weights(), second["models"][name].get_weights(), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)


def _batch_norms(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


@pytest.mark.slow  # two short runs, one of them on two replicas
@pytest.mark.parametrize("kind", ["supcon", "cross_entropy"])
def test_two_replicas_train_the_one_device_weights(tmp_path, two_replicas, kind):
    """The same global batches on 2 CPU replicas (MirroredStrategy) train the same model.

    SupCon's loss gathers the replicas' features, so every view is contrasted against the global
    batch, and batch norm is synchronised across replicas. Both runs read the real pipeline, whose
    batches and views are a function of (seed, epoch, image): the replicas' parts of each batch
    are the one-device batch, bit for bit (checked first), whatever Keras reads beforehand to
    build the model under a strategy. The model is compared after one epoch of 4 steps: the
    weights then agree to float32 round-off (measured here: 4e-7 at most); with batch norm per
    replica they differed by up to 0.57 after 8 steps (an earlier version of this test). Over
    more steps the round-off grows (after 8 steps, to 3.7e-3 of cross-entropy's encoder weights at
    learning rate 0.05, while the same two-replica run on pre-made batches was bit-identical to
    it), so a longer run would test that growth, not the step.
    """
    # SGD: Adam divides each gradient by its running size, so a float32 difference in a near-zero
    # gradient can turn into a step of the full learning rate.
    cfg = training.config("quick", **{**TINY, "epochs": 1}, optimizer="sgd", learning_rate=0.05)
    batches = training._train_dataset(cfg, training.load_data(cfg).train, 2, range(2))
    for whole, parts in zip(
        batches, two_replicas.experimental_distribute_dataset(batches), strict=True
    ):
        for a, b in zip(whole, parts, strict=True):  # views, labels
            joined = np.concatenate([t.numpy() for t in two_replicas.experimental_local_results(b)])
            np.testing.assert_array_equal(joined, a.numpy())
    one = training.run(kind, cfg, tmp_path / "one", verbose=0)
    two = training.run(kind, cfg, tmp_path / "two", verbose=0, strategy=two_replicas)
    assert not any(bn.synchronized for bn in _batch_norms(one["models"]["encoder"]))
    assert all(bn.synchronized for bn in _batch_norms(two["models"]["encoder"]))
    rows = [training.history(tmp_path / run / kind) for run in ("one", "two")]
    np.testing.assert_allclose(
        [r["loss"] for r in rows[1]], [r["loss"] for r in rows[0]], rtol=1e-4
    )
    for name, model in one["models"].items():
        weights = zip(model.get_weights(), two["models"][name].get_weights(), strict=True)
        for i, (a, b) in enumerate(weights):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"{name} weight {i}")
    assert two["metrics"]["test_accuracy"] == pytest.approx(one["metrics"]["test_accuracy"])


@pytest.mark.slow  # two short runs
@pytest.mark.parametrize("kind", ["cross_entropy", "supcon"])
def test_the_last_epochs_validation_accuracy_is_the_final_models(tmp_path, kind):
    """history.csv's last validation accuracy is the finished model's: the classifier's accuracy
    for cross-entropy, the k-NN vote of the encoder's features for SupCon, and the test set is
    scored the same way once, at the end; every kind's encoder gets the k-NN vote (computed
    again here), so that routes compare on their features too."""
    cfg = training.config("quick", **TINY)
    results = training.run(kind, cfg, tmp_path, verbose=0)
    metrics = results["metrics"]
    last = training.history(tmp_path / kind)[-1]["val_accuracy"]
    train, val, test = training.load_data(cfg)
    encoder = results["models"]["encoder"]
    reference = evaluation.embeddings(encoder, train[0])
    for split, (x, y) in (("val", val), ("test", test)):
        features = evaluation.embeddings(encoder, x)
        expected = evaluation.knn_accuracy(reference, train[1], features, y, k=20)
        assert metrics[f"knn_{split}_accuracy"] == pytest.approx(expected)
    scored_per_epoch = "val_accuracy" if kind == "cross_entropy" else "knn_val_accuracy"
    assert last == pytest.approx(metrics[scored_per_epoch])
    # digits: far above chance (0.1); SupCon's k-NN (its 2-epoch probe is barely trained here)
    scored = "knn_test_accuracy" if kind == "supcon" else "test_accuracy"
    assert last > 0.3 and metrics[scored] > 0.3


@pytest.mark.slow  # four short runs
def test_budget_study_gathers_every_epoch_of_every_seed_and_resumes(tmp_path):
    cfg = training.config("quick", **TINY)
    table = training.budget_study(cfg, tmp_path, seeds=[0, 1])
    assert len(table) == 2 * 2 * cfg.epochs
    assert sorted(table.groupby(["kind", "seed"]).size().index) == [
        ("cross_entropy", 0), ("cross_entropy", 1), ("supcon", 0), ("supcon", 1)
    ]  # fmt: skip
    assert (tmp_path / "supcon" / "results.json").exists()  # the base seed: run_dir itself
    assert (tmp_path / "seed1" / "cross_entropy" / "results.json").exists()
    for _, run in table.groupby(["kind", "seed"]):
        assert run["elapsed_s"].is_monotonic_increasing
        assert run["val_accuracy"].between(0, 1).all()
        assert run["final_test_accuracy"].between(0, 1).all()
    seeds = table.groupby(["kind", "seed"])["val_accuracy"].last().unstack()
    assert (seeds[0] != seeds[1]).all(), "another seed must train another model"
    files = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.keras")}
    again = training.budget_study(cfg, tmp_path, seeds=[0, 1])  # loaded, not trained again
    pd.testing.assert_frame_equal(again, table)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.keras")} == files


def test_the_validation_split_is_held_out_stratified_and_the_same_for_every_seed():
    cfg = training.config("quick", **TINY)
    splits = training.load_data(cfg)
    other_seed = training.load_data(dataclasses.replace(cfg, seed=3, n_train=512))
    np.testing.assert_array_equal(splits.val[0], other_seed.val[0])
    assert len(splits.val[1]) == TINY["n_val"] and len(splits.train[1]) == TINY["n_train"]
    assert np.bincount(splits.val[1]).min() >= 19  # 200 of 10 classes, stratified
    (x_all, _), _ = data.load_dataset("digits")
    rows = {row.tobytes(): i for i, row in enumerate(x_all)}
    val_rows = {rows[x.tobytes()] for x in splits.val[0]}
    for train in (splits.train, other_seed.train):  # disjoint from every n_train subset
        assert not val_rows & {rows[x.tobytes()] for x in train[0]}
    with pytest.raises(ValueError, match="n_val=1437 does not fit the 1,437 training images"):
        training.load_data(dataclasses.replace(cfg, n_val=1437))
    with pytest.raises(ValueError, match="n_val=0; allowed: 1 or more"):
        training.config("quick", n_val=0)


def test_a_run_from_before_the_validation_split_is_not_taken_for_one_after():
    now = dataclasses.asdict(training.config("quick", **TINY))
    before = {k: v for k, v in now.items() if k != "n_val"}
    assert "n_val: 0 there, 200 asked" in training._config_differences(before, now)
    with pytest.raises(ValueError, match="trained before n_val existed"):
        training.saved_config({"config": before})


def test_few_label_runs_see_the_probes_images():
    cfg = training.config("quick", **TINY, labels_per_class=3, seed=2)
    x, y = training.load_data(cfg).train
    x_all, y_all = training.load_data(dataclasses.replace(cfg, labels_per_class=None)).train
    assert len(x_all) == TINY["n_train"]  # the few labels are picked out of the n_train images
    keep = evaluation.few_label_subset(y_all, 3, seed=2)
    np.testing.assert_array_equal(x, x_all[keep])
    assert np.bincount(y).tolist() == [3] * 10


def test_steps_per_epoch_drop_the_partial_batch_and_epochs_for_steps_reach_the_count():
    cfg = training.config("quick", **TINY)  # 256 images in batches of 64
    assert training.steps_per_epoch(cfg) == 4
    assert training.steps_per_epoch(dataclasses.replace(cfg, batch_size=100)) == 2  # 56 dropped
    assert training.epochs_for_steps(cfg, 4) == 1
    assert training.epochs_for_steps(cfg, 5) == 2
    few = dataclasses.replace(cfg, labels_per_class=3, batch_size=30)  # one step an epoch
    assert training.epochs_for_steps(few, 500) == 500
    with pytest.raises(ValueError, match="steps must be at least 1"):
        training.epochs_for_steps(cfg, 0)


@pytest.mark.slow
def test_simclr_and_one_anchor_view_change_the_loss_and_cross_entropy_refuses_no_labels(tmp_path):
    """The same seed, images and views: only the loss differs, so its first-epoch value must."""
    # 20 probe epochs: TINY's 2 leave the probe itself untrained (9% training accuracy measured
    # here), so its test accuracy would say nothing of the run; with 20 it reads the features.
    base = training.config("quick", **{**TINY, "epochs": 1, "probe_epochs": 20})
    losses = {}
    for name, overrides in {"supcon": {}, "simclr": {"use_labels": False},
                            "one": {"contrast_mode": "one"}}.items():  # fmt: skip
        cfg = dataclasses.replace(base, **overrides)
        result = training.run("supcon", cfg, tmp_path / name, verbose=0)
        assert result["metrics"]["test_accuracy"] > 0.1
        losses[name] = training.history(tmp_path / name / "supcon")[0]["loss"]
    # SimCLR's one positive per anchor is the easiest: its loss sits below SupCon's many.
    assert losses["simclr"] < losses["supcon"] - 0.1
    assert abs(losses["one"] - losses["supcon"]) > 1e-3
    for kind in ("cross_entropy", "hybrid"):
        with pytest.raises(ValueError, match="use_labels=False"):
            training.run(kind, dataclasses.replace(base, use_labels=False), tmp_path / kind)
    with pytest.raises(ValueError, match="contrast_mode must be 'all'"):
        training.run("moco", dataclasses.replace(base, contrast_mode="one"), tmp_path / "moco")


def test_hybrid_at_supcon_weight_0_takes_the_cross_entropy_step():
    """lambda = 0: the hybrid loss is the cross-entropy of every view, and one SGD step moves the
    encoder and classifier exactly as the cross-entropy model's step on the same views does."""
    rng = np.random.default_rng(0)
    views = rng.random((16, 2, 8, 8, 1)).astype("float32")
    labels = np.arange(16) % 4
    targets = {"projection": labels, "logits": np.repeat(labels[:, None], 2, axis=1)}
    images, image_labels = views.reshape(32, 8, 8, 1), np.repeat(labels, 2)  # image-major
    sgd = dict(optimizer="sgd", learning_rate=0.1, weight_decay=0.0)
    losses = {}
    for weight in (0.0, 0.5):
        cfg = training.config("quick", **TINY, supcon_weight=weight, **sgd)
        keras.utils.set_random_seed(0)
        hybrid = recipes.hybrid_model(cfg, (8, 8, 1), 4, 256)
        copies = [keras.models.clone_model(m) for m in (hybrid.encoder, hybrid.classifier)]
        for copy, original in zip(copies, (hybrid.encoder, hybrid.classifier), strict=True):
            copy.set_weights(original.get_weights())
        inputs = keras.Input((8, 8, 1))
        ce = keras.Model(inputs, copies[1](copies[0](inputs)))
        ce.compile(optimizer=recipes.optimizer(cfg, 256),
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
        losses[weight] = (hybrid.train_on_batch(views, targets, return_dict=True)["loss"],
                          ce.train_on_batch(images, image_labels))  # fmt: skip
        if weight == 0.0:
            for copy, original in zip(copies, (hybrid.encoder, hybrid.classifier), strict=True):
                for a, b in zip(original.get_weights(), copy.get_weights(), strict=True):
                    np.testing.assert_allclose(a, b, atol=1e-6)
    assert losses[0.0][0] == pytest.approx(losses[0.0][1], rel=1e-6)
    assert losses[0.5][0] > losses[0.5][1] + 0.5  # SupCon's term (about ln 31) counts now
    with pytest.raises(ValueError, match="supcon_weight=-1.0; allowed: 0 or more"):
        recipes.hybrid_model(
            training.config("quick", **TINY, supcon_weight=-1.0), (8, 8, 1), 4, 256
        )


def test_validation_accuracy_every_k_epochs_and_after_the_last():
    scored = []
    callback = training.ValAccuracy(lambda model: len(scored.append(1) or scored) / 10, every=2)
    callback.set_params({"epochs": 5})
    logged = []
    for epoch in range(5):
        logs = {}
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["val_accuracy"])
    assert np.isnan(logged[0]) and np.isnan(logged[2])
    assert [logged[1], logged[3], logged[4]] == [0.1, 0.2, 0.3]  # epochs 2, 4 and the last, 5
    with pytest.raises(ValueError, match="every must be at least 1"):
        training.ValAccuracy(lambda model: 0.0, every=0)
