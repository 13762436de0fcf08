"""Training recipes: SupCon pretraining then a linear probe, the cross-entropy baseline, and two
ways of joining them.

All recipes train the same encoder with the same augmentation and epoch budget, so the comparison
is fair. The kinds of run:

- ``supcon``: SupCon pretraining of encoder + projection head, then a linear probe on the frozen
  encoder (the paper's two stages);
- ``cross_entropy``: encoder + linear classifier trained end to end with cross-entropy;
- ``hybrid``: one stage, cross-entropy on a linear classifier of the encoder's features (of both
  views) plus ``supcon_weight`` times SupCon on the projection head; ``supcon_weight=0`` is the
  cross-entropy recipe on two views; with ``stop_gradient`` the cross-entropy trains the
  classifier only, not the encoder (SupCon pretraining with a probe fitted in the same pass);
- ``finetune``: the finished ``supcon`` run of the same ``run_dir`` (trained first if missing),
  then encoder and probe trained end to end with cross-entropy for ``finetune_epochs`` epochs at
  the low learning rate ``finetune_lr``;
- ``moco``: SupCon with a momentum key encoder and a queue of ``queue_size`` keys
  (``supcon_utils.moco``), then a linear probe, as ``supcon``.

Every run lives in ``<run_dir>/<kind>/``:

    config.json        the configuration the run was started with
    backup/            keras.callbacks.BackupAndRestore state while training (gone when done)
    history.csv        one row per epoch, kept across resumptions: training loss (and accuracy),
                       test accuracy and training seconds so far (:class:`TestAccuracy`)
    encoder.keras      the trained encoder (and projection_head.keras for SupCon)
    classifier.keras   the linear head: the CE classifier, or SupCon's linear probe
    results.json       metrics, configuration and wall time

A run killed mid-way (a Colab disconnect) resumes from its last finished epoch when called again
with the same configuration, on the batches and views the uninterrupted run drew from there (the
pipeline is keyed by seed, epoch and image), so it ends on the same weights; a finished run is
loaded instead of retrained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from supcon_utils import data, evaluation, losses, moco, models

KINDS = ("supcon", "cross_entropy", "hybrid", "finetune", "moco")
# Training images whose features are the k-NN reference of the per-epoch SupCon test accuracy.
KNN_REFERENCE = 10_000
KNN_K = 20
# Knobs of the joint and momentum recipes: they do not change a supcon or cross_entropy run.
_JOINT_KNOBS = (
    "supcon_weight",
    "ce_weight",  # the hybrid's weight before supcon_weight replaced it, in older runs' configs
    "stop_gradient",
    "finetune_epochs",
    "finetune_lr",
    "queue_size",
    "momentum",
)


@dataclass(frozen=True)
class Config:
    """Every knob of a training run. Presets are in :data:`PRESETS`."""

    dataset: str = "fashion_mnist"
    encoder: str = "resnet_small"
    recipe: str = "grayscale28"  # augmentation recipe of supcon_utils.augment
    n_train: int | None = 20_000  # training images used (a stratified subset); None: all
    # Few-label runs: this many images of each class out of the n_train ones, picked as the
    # linear probes of evaluation.label_efficiency pick them (evaluation.few_label_subset under
    # `seed`). None: all n_train images.
    labels_per_class: int | None = None
    batch_size: int = 256
    epochs: int = 6  # epochs of SupCon pretraining and of the CE baseline: the same budget
    probe_epochs: int = 40  # epochs of the linear probe on frozen, precomputed features
    temperature: float = 0.1
    variant: str = "out"  # SupCon loss: "out" (eq. 2) or "in" (eq. 3)
    contrast_mode: str = "all"  # SupCon loss: every view is an anchor ("all") or view 0 ("one")
    # False: SimCLR (the paper's eq. 1): the loss ignores the labels, the other view of an image is
    # its one positive. The linear probe still reads labels. supcon, moco and finetune kinds only.
    use_labels: bool = True
    supcon_weight: float = 1.0  # hybrid: lambda in loss = cross-entropy + lambda * SupCon
    stop_gradient: bool = False  # hybrid: keep the cross-entropy gradient out of the encoder
    finetune_epochs: int = 2  # finetune: epochs of end-to-end cross-entropy after SupCon
    finetune_lr: float = 1e-4  # finetune: its peak learning rate (cosine decay to 0)
    queue_size: int = 4096  # moco: keys kept in the queue
    momentum: float = 0.99  # moco: EMA momentum of the key encoder
    n_views: int = 2
    # Class-balanced batches: batch_size / classes_per_batch images of each of this many classes
    # (data.balanced_batches); None: batches drawn at random.
    classes_per_batch: int | None = None
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, the paper's)
    learning_rate: float = 2e-3  # peak, after warm-up; cosine decay to 0 afterwards
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.0
    # XLA for the train step. Off on CPU: with oneDNN on it measured 27% slower for SupCon here.
    jit_compile: bool = False
    seed: int = 0


PRESETS: dict[str, Config] = {
    # The notebooks' default: CPU, a third of Fashion-MNIST, minutes.
    "quick": Config(),
    # CPU, all 60,000 training images. 15 epochs keep SupCon (two views a step) within 30 min
    # here; 5e-3 was the better learning rate of both recipes at `quick` (benchmarks/recipes.py).
    "full": Config(n_train=None, epochs=15, learning_rate=5e-3),
    # Colab GPU: CIFAR-10, ResNet-18, the paper's large batch, SGD with warm-up and cosine decay.
    "gpu": Config(
        dataset="cifar10",
        encoder="resnet18_cifar",
        recipe="color32",
        n_train=None,
        batch_size=1024,
        epochs=200,
        probe_epochs=100,
        optimizer="sgd",
        learning_rate=0.5,
        weight_decay=1e-4,
        warmup_epochs=10,
        temperature=0.1,
        jit_compile=True,
    ),  # fmt: skip
}


def config(preset: str = "quick", **overrides: Any) -> Config:
    """The preset ``preset`` with ``overrides`` applied; a ``None`` value keeps the preset's."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
    return dataclasses.replace(
        PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}
    )


def load_data(cfg: Config) -> tuple[data.Split, data.Split]:
    """The configured dataset, its training split cut to a stratified subset of ``n_train`` and
    then, if ``labels_per_class`` is set, to that many images of each class."""
    (x_train, y_train), test = data.load_dataset(cfg.dataset)
    if cfg.n_train is not None and cfg.n_train < len(x_train):
        from sklearn.model_selection import train_test_split

        x_train, _, y_train, _ = train_test_split(
            x_train, y_train, train_size=cfg.n_train, stratify=y_train, random_state=cfg.seed
        )
    if cfg.labels_per_class is not None:
        keep = evaluation.few_label_subset(y_train, cfg.labels_per_class, cfg.seed)
        x_train, y_train = x_train[keep], y_train[keep]
    return (x_train, y_train), test


def run(
    kind: str,
    cfg: Config,
    run_dir: str | Path,
    *,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
    test_every: int = 1,
) -> dict[str, Any]:
    """Train ``kind`` (one of :data:`KINDS`) into ``run_dir/kind``, or load it if done.

    Returns the results (metrics, config, wall time) and, under ``"models"``, the encoder and
    classifier (and SupCon's projection head). A run interrupted with the same configuration
    resumes; its ``wall_time_s`` then adds the training seconds of the epochs done before
    (``elapsed_s`` in ``history.csv``; their test scoring and an epoch cut short are not counted)
    and ``resumed_after_epochs`` says how many there were. A run of another configuration in
    ``run_dir/kind`` is never deleted nor reused: that is a ``ValueError`` naming the settings that
    differ (use another ``run_dir``, or delete it).

    ``strategy`` (a ``tf.distribute`` strategy; default: the current one, one device) builds and
    trains the models in its scope. ``cfg.batch_size`` is then the global batch, split across the
    replicas: SupCon contrasts each view against the whole global batch (the loss gathers the
    replicas' features) and batch norm uses the global batch's statistics, so the training step
    is the one-device step (``tests/test_training.py`` checks it on two CPU replicas). The
    learning rate is not rescaled: scale ``cfg.learning_rate`` with the global batch if you grow it.

    ``test_every``: the test accuracy of :class:`TestAccuracy` is measured every this many epochs
    and after the last one (NaN in ``history.csv`` between); ``cfg.epochs`` scores the last only.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if not cfg.use_labels and kind in ("cross_entropy", "hybrid"):
        raise ValueError(f"use_labels=False (SimCLR) needs a contrastive kind; {kind} trains on "
                         "labels by cross-entropy")  # fmt: skip
    if cfg.contrast_mode != "all" and kind == "moco":
        raise ValueError("moco contrasts every view with the queue: contrast_mode must be 'all'")
    out = Path(run_dir) / kind
    wanted = dataclasses.asdict(cfg)
    config_file = out / "config.json"
    ignored = _JOINT_KNOBS if kind in ("supcon", "cross_entropy") else ()
    if config_file.exists():
        differ = _config_differences(json.loads(config_file.read_text()), wanted, ignored)
        if differ:
            raise ValueError(
                f"{out} holds a run of another configuration ({differ}); it is kept. Pass "
                f"another run_dir to train this one beside it, or delete {out} to replace it."
            )
    if (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())
        results["models"] = _load_models(out)
        return results

    pretrained = None
    if kind == "finetune":
        pretrained = run("supcon", cfg, run_dir, verbose=verbose, strategy=strategy)
    out.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(wanted, indent=2) + "\n")
    if not (out / "backup").exists():  # no epoch to resume from: training starts at epoch 0
        (out / "history.csv").unlink(missing_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    train, test = load_data(cfg)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    previous = history(out)  # the epochs of an interrupted run, if any
    first_epoch = _resume_epoch(out / "backup")
    start = time.perf_counter()
    fit_callbacks = [
        keras.callbacks.BackupAndRestore(str(out / "backup")),
        TestAccuracy(_test_scorer(kind, cfg, train, test), previous, every=test_every),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        keras.callbacks.TerminateOnNaN(),
        *(callbacks or []),
    ]
    fit = _Fitter(cfg, train, fit_callbacks, verbose, first_epoch)
    with scope:
        if kind in ("supcon", "moco"):
            moco_kind = kind == "moco"
            trained = _train_supcon(cfg, train, fit, momentum_queue=moco_kind)
            _check_finite(history(out))
            _check_not_collapsed(trained["encoder"], trained["projection_head"], train[0])
            probe, metrics = linear_probe(trained["encoder"], train, test, cfg, verbose=verbose)
            trained["classifier"] = probe
        elif kind == "cross_entropy":
            trained = _train_cross_entropy(cfg, train, fit)
            _check_finite(history(out))
            metrics = _classifier_metrics(trained["encoder"], trained["classifier"], test, cfg)
        elif kind == "hybrid":
            trained = _train_hybrid(cfg, train, fit)
            _check_finite(history(out))
            _check_not_collapsed(trained["encoder"], trained["projection_head"], train[0])
            metrics = _classifier_metrics(trained["encoder"], trained["classifier"], test, cfg)
        else:
            trained = _finetune(cfg, Path(run_dir) / "supcon", train, fit)
            _check_finite(history(out))
            metrics = _classifier_metrics(trained["encoder"], trained["classifier"], test, cfg)
            metrics["pretrained_test_accuracy"] = pretrained["metrics"]["test_accuracy"]
    for name, model in trained.items():
        model.save(out / f"{name}.keras")
    results = {
        "kind": kind,
        "metrics": metrics,
        "config": wanted,
        "wall_time_s": round(_elapsed(previous) + time.perf_counter() - start, 1),
        "epochs_completed": len(history(out)),
        "resumed_after_epochs": len(previous),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return {**results, "models": trained}


class TestAccuracy(keras.callbacks.Callback):
    """Adds ``test_accuracy`` and ``elapsed_s`` to each epoch's logs, so ``history.csv`` has them.

    ``score(model)`` gives the test accuracy of the model being trained (see :func:`_test_scorer`:
    the classifier's for cross-entropy, a k-NN vote of the frozen encoder's features for SupCon).
    ``elapsed_s`` counts the seconds spent in training epochs since the run started, resumptions
    included (``previous``: the rows already in ``history.csv``) and scoring excluded, so that
    accuracy can be read against a training budget in wall time. With ``every`` above 1 the test
    accuracy is measured every ``every`` epochs and after the last one, NaN in between. It must
    come before the ``CSVLogger`` in the callbacks, so that the log has both columns.
    """

    def __init__(
        self,
        score: Callable[[keras.Model], float],
        previous: Sequence[dict[str, float]] = (),
        every: int = 1,
    ) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.score = score
        self.every = every
        self.elapsed = _elapsed(previous)
        self.epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.elapsed += time.perf_counter() - self.epoch_start
        if logs is not None:
            logs["elapsed_s"] = round(self.elapsed, 2)
            last = epoch + 1 == self.params.get("epochs")
            due = (epoch + 1) % self.every == 0 or last
            logs["test_accuracy"] = self.score(self.model) if due else float("nan")


def _test_scorer(
    kind: str, cfg: Config, train: data.Split, test: data.Split
) -> Callable[[keras.Model], float]:
    """How :class:`TestAccuracy` scores a model of ``kind`` on the test images.

    Cross-entropy and fine-tuning: the accuracy of the model's logits. SupCon, MoCo and hybrid
    (models with an ``encoder``): a k-NN vote (``KNN_K`` neighbours, cosine) of the encoder's
    features, against the features of a stratified ``KNN_REFERENCE`` training images; seconds
    per epoch on a CPU, against the minutes a linear probe would take.
    """
    batch = cfg.batch_size * 4
    if kind in ("cross_entropy", "finetune"):
        test_ds = data.make_dataset(test[0], None, batch_size=batch)
        return lambda model: float(np.mean(model.predict(test_ds, verbose=0).argmax(1) == test[1]))
    ref_x, ref_y = train
    if len(ref_x) > KNN_REFERENCE:
        from sklearn.model_selection import train_test_split

        ref_x, _, ref_y, _ = train_test_split(
            ref_x, ref_y, train_size=KNN_REFERENCE, stratify=ref_y, random_state=cfg.seed
        )

    def knn(model: keras.Model) -> float:
        features = [embed(model.encoder, x, batch) for x in (ref_x, test[0])]
        k = min(KNN_K, len(ref_x))
        return evaluation.knn_accuracy(features[0], ref_y, features[1], test[1], k=k)

    return knn


def budget_study(
    cfg: Config,
    run_dir: str | Path,
    seeds: Sequence[int],
    kinds: Sequence[str] = ("cross_entropy", "supcon"),
    *,
    verbose: int = 0,
) -> pd.DataFrame:
    """Train each of ``kinds`` at each seed; test accuracy against epochs and training seconds.

    The run of ``cfg.seed`` is the one in ``run_dir`` (notebook 03's); another seed ``s`` trains
    into ``run_dir/seed<s>``. Every run is resumable and loaded when finished, so an interrupted
    study goes on where it stopped. Returns one row per kind, seed and epoch (``epoch``,
    ``elapsed_s``, ``test_accuracy`` from ``history.csv``), plus the run's final
    ``final_test_accuracy`` (SupCon's: the linear probe's) and ``wall_time_s``.
    """
    rows = []
    for seed in seeds:
        folder = Path(run_dir) if seed == cfg.seed else Path(run_dir) / f"seed{seed}"
        for kind in kinds:
            started = time.perf_counter()
            results = run(kind, dataclasses.replace(cfg, seed=seed), folder, verbose=verbose)
            if verbose:
                print(f"seed {seed} {kind}: test accuracy {results['metrics']['test_accuracy']:.4f}"
                      f" ({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
            for row in history(folder / kind):
                if "test_accuracy" not in row:
                    raise ValueError(
                        f"{folder / kind} was trained before test accuracy was logged per epoch; "
                        "train it again in another run_dir"
                    )
                rows.append({
                    "kind": kind, "seed": seed, "epoch": int(row["epoch"]),
                    "elapsed_s": row["elapsed_s"], "test_accuracy": row["test_accuracy"],
                    "final_test_accuracy": results["metrics"]["test_accuracy"],
                    "wall_time_s": results["wall_time_s"],
                })  # fmt: skip
    return pd.DataFrame(rows)


def linear_probe(
    encoder: keras.Model,
    train: data.Split,
    test: data.Split,
    cfg: Config,
    *,
    verbose: int = 0,
) -> tuple[keras.Model, dict[str, float]]:
    """Fit a linear classifier on the frozen encoder's features and report test accuracy.

    The features of the un-augmented images are computed once, so the probe costs seconds on a CPU
    (the paper trains it with augmentation, which costs a forward pass per step).
    """
    feats_train = embed(encoder, train[0], cfg.batch_size * 4)
    feats_test = embed(encoder, test[0], cfg.batch_size * 4)
    n_classes = int(train[1].max()) + 1
    probe = models.linear_classifier(feats_train.shape[1], n_classes)
    probe.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    probe.fit(
        feats_train, train[1], batch_size=cfg.batch_size, epochs=cfg.probe_epochs,
        verbose=0, shuffle=True,
    )  # fmt: skip
    _, train_acc = probe.evaluate(feats_train, train[1], verbose=0)
    _, test_acc = probe.evaluate(feats_test, test[1], verbose=0)
    if verbose:
        print(f"linear probe: train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f}")
    return probe, {"train_accuracy": float(train_acc), "test_accuracy": float(test_acc)}


def embed(encoder: keras.Model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Encoder features of ``images`` (uint8 or float in [0, 1]), computed in batches."""
    ds = data.make_dataset(images, None, batch_size=batch_size)
    return encoder.predict(ds, verbose=0)


def _elapsed(rows: Sequence[dict[str, float]]) -> float:
    """The training seconds logged by the last of a run's ``history.csv`` rows (0 if none)."""
    return float(rows[-1].get("elapsed_s", 0.0)) if rows else 0.0


def history(out: str | Path) -> list[dict[str, float]]:
    """The per-epoch log of a run folder (``run_dir/kind``), across resumptions."""
    path = Path(out) / "history.csv"
    if not path.exists():
        return []
    rows = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return [{name: float(row[name]) for name in rows.dtype.names} for row in rows]


def _config_differences(
    saved: dict[str, Any], wanted: dict[str, Any], ignored: tuple[str, ...] = ()
) -> str:
    """The settings in which a saved run differs from ``wanted``, as text ("" if none).

    The ``ignored`` knobs are left out. A knob added to :class:`Config` after the run was saved
    counts as its default, the behaviour the run had, so adding a knob does not orphan old runs.
    """
    defaults = dataclasses.asdict(Config())
    keys = [k for k in dict.fromkeys([*wanted, *saved]) if k not in ignored]
    differ = [
        f"{k}: {saved.get(k, defaults.get(k))!r} there, {wanted.get(k)!r} asked"
        for k in keys
        if saved.get(k, defaults.get(k)) != wanted.get(k)
    ]
    return "; ".join(differ)


def _check_finite(rows: list[dict[str, float]]) -> None:
    """Fail loudly rather than save a model whose training loss went NaN."""
    if not rows or not np.isfinite(rows[-1]["loss"]):
        raise RuntimeError("training diverged (NaN or no finished epoch); lower the learning rate")


def _check_not_collapsed(encoder: keras.Model, head: keras.Model, images: np.ndarray) -> None:
    """Fail loudly if SupCon mapped every image to (nearly) one point of the hypersphere."""
    z = head.predict(embed(encoder, images[:512]), verbose=0)
    mean_cosine = float(np.mean(z @ z.T))
    if mean_cosine > 0.99:
        raise RuntimeError(
            f"SupCon collapsed: mean cosine similarity {mean_cosine:.3f} between embeddings of "
            "different images (the loss sits at ln(2N-1)). Lower the learning rate."
        )


def _train_supcon(cfg, train, fit, momentum_queue: bool = False) -> dict[str, keras.Model]:
    input_shape = train[0].shape[1:]
    encoder = models.build_encoder(cfg.encoder, input_shape)
    head = models.projection_head(encoder.output_shape[-1])
    if momentum_queue:
        model = moco.MoCoSupConModel(
            encoder, head, queue_size=cfg.queue_size, momentum=cfg.momentum,
            temperature=cfg.temperature, variant=cfg.variant,
        )  # fmt: skip
        model.compile(optimizer=_optimizer(cfg, len(train[0])), jit_compile=cfg.jit_compile)
    else:
        model = models.SupConModel(encoder, head)
        model.compile(optimizer=_optimizer(cfg, len(train[0])), loss=_supcon_loss(cfg),
                      jit_compile=cfg.jit_compile)  # fmt: skip
    # Without labels the models' train steps contrast the views alone (SimCLR).
    fit(model, cfg.n_views, None if cfg.use_labels else lambda views, labels: views)
    return {"encoder": encoder, "projection_head": head}


def _supcon_loss(cfg: Config) -> losses.SupConLoss:
    return losses.SupConLoss(
        temperature=cfg.temperature, variant=cfg.variant, contrast_mode=cfg.contrast_mode
    )


def _train_cross_entropy(cfg, train, fit) -> dict[str, keras.Model]:
    input_shape = train[0].shape[1:]
    encoder = models.build_encoder(cfg.encoder, input_shape)
    classifier = models.linear_classifier(encoder.output_shape[-1], int(train[1].max()) + 1)
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, classifier(encoder(inputs)))
    model.compile(
        optimizer=_optimizer(cfg, len(train[0])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=cfg.jit_compile,
    )
    fit(model, 1)
    return {"encoder": encoder, "classifier": classifier}


def hybrid_model(
    cfg: Config, input_shape: Sequence[int], n_classes: int, n_images: int
) -> models.HybridModel:
    """The hybrid recipe's model, compiled: cross-entropy + ``cfg.supcon_weight`` x SupCon.

    Fed ``(views, {"projection": labels, "logits": labels repeated per view})``; ``n_images``
    sets the learning-rate schedule's length.
    """
    if cfg.supcon_weight < 0:
        raise ValueError(f"supcon_weight must be >= 0, got {cfg.supcon_weight}")
    encoder = models.build_encoder(cfg.encoder, input_shape)
    head = models.projection_head(encoder.output_shape[-1])
    classifier = models.linear_classifier(encoder.output_shape[-1], n_classes)
    model = models.HybridModel(encoder, head, classifier, stop_gradient=cfg.stop_gradient)
    model.compile(
        optimizer=_optimizer(cfg, n_images),
        loss={"projection": _supcon_loss(cfg),
              "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        loss_weights={"projection": cfg.supcon_weight, "logits": 1.0},
        metrics={"logits": ["accuracy"]},
        jit_compile=cfg.jit_compile,
    )  # fmt: skip
    return model


def _train_hybrid(cfg, train, fit) -> dict[str, keras.Model]:
    model = hybrid_model(cfg, train[0].shape[1:], int(train[1].max()) + 1, len(train[0]))
    encoder, head, classifier = model.encoder, model.head, model.classifier

    def per_output(views, y):  # SupCon takes one label per image, cross-entropy one per view
        return views, {"projection": y, "logits": tf.repeat(y[:, None], cfg.n_views, axis=1)}

    fit(model, cfg.n_views, per_output)
    return {"encoder": encoder, "projection_head": head, "classifier": classifier}


def _finetune(cfg, pretrained: Path, train, fit) -> dict[str, keras.Model]:
    encoder = keras.saving.load_model(pretrained / "encoder.keras")  # fresh copies from disk
    classifier = keras.saving.load_model(pretrained / "classifier.keras")
    inputs = keras.Input(train[0].shape[1:])
    model = keras.Model(inputs, classifier(encoder(inputs)))
    tuned = dataclasses.replace(
        cfg, epochs=cfg.finetune_epochs, learning_rate=cfg.finetune_lr, warmup_epochs=0.0
    )
    model.compile(
        optimizer=_optimizer(tuned, len(train[0])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=cfg.jit_compile,
    )
    fit(model, 1, epochs=tuned.epochs)
    return {"encoder": encoder, "classifier": classifier}


@dataclass
class _Fitter:
    """``model.fit`` on the training pipeline of ``cfg`` from ``first_epoch`` on.

    The pipeline holds the epochs ``first_epoch, ..., epochs - 1`` back to back, each drawn from
    ``(seed, epoch)``, and ``fit`` reads ``steps_per_epoch`` batches an epoch from one iterator:
    a run resumed at epoch k sees the batches and views the uninterrupted run saw from k on.
    """

    cfg: Config
    train: data.Split
    callbacks: list[keras.callbacks.Callback]
    verbose: int
    first_epoch: int

    def __call__(
        self, model: keras.Model, n_views: int, per_batch: Callable | None = None, *,
        epochs: int | None = None,
    ) -> None:  # fmt: skip
        epochs = self.cfg.epochs if epochs is None else epochs
        ds = _train_dataset(self.cfg, self.train, n_views, range(self.first_epoch, epochs))
        model.fit(
            ds if per_batch is None else ds.map(per_batch), epochs=epochs,
            steps_per_epoch=_batches_per_epoch(self.cfg, self.train), callbacks=self.callbacks,
            verbose=self.verbose, shuffle=False,
        )  # fmt: skip


def _resume_epoch(backup: Path) -> int:
    """The epoch ``BackupAndRestore(backup)`` will resume at: 0 when there is nothing to resume.

    Keras keeps it in ``training_metadata.json`` beside the weights it restores and sets the
    model's first epoch from it; the pipeline must start at the same epoch.
    """
    record = backup / "training_metadata.json"
    return int(json.loads(record.read_text())["epoch"]) if record.exists() else 0


def _batches_per_epoch(cfg: Config, train: data.Split) -> int:
    """The number of batches in every epoch of the training pipeline of ``cfg``."""
    balanced = _balanced(cfg)
    order, _ = data.epoch_orders(len(train[0]), train[1], cfg.batch_size, range(1),
                                 shuffle=True, seed=cfg.seed, balanced=balanced)  # fmt: skip
    return len(order) // cfg.batch_size


def _balanced(cfg: Config) -> tuple[int, int] | None:
    """``(classes, images per class)`` of a batch for class-balanced batches, else None."""
    if cfg.classes_per_batch is None:
        return None
    if cfg.batch_size % cfg.classes_per_batch:
        raise ValueError(f"batch_size={cfg.batch_size} is not a multiple of "
                         f"classes_per_batch={cfg.classes_per_batch}")  # fmt: skip
    return cfg.classes_per_batch, cfg.batch_size // cfg.classes_per_batch


def _train_dataset(cfg: Config, train: data.Split, n_views: int, epochs: range):
    """The augmented, shuffled (or class-balanced) training pipeline of ``cfg`` over ``epochs``."""
    return data.make_dataset(
        *train, batch_size=cfg.batch_size, n_views=n_views, recipe=cfg.recipe, shuffle=True,
        seed=cfg.seed, balanced=_balanced(cfg), epochs=epochs,
    )  # fmt: skip


def _classifier_metrics(encoder, classifier, test, cfg) -> dict[str, float]:
    logits = classifier.predict(embed(encoder, test[0], cfg.batch_size * 4), verbose=0)
    return {"test_accuracy": float(np.mean(logits.argmax(axis=1) == test[1]))}


def _optimizer(cfg: Config, n_images: int) -> keras.optimizers.Optimizer:
    """The configured optimizer with linear warm-up then cosine decay, counted in steps."""
    steps_per_epoch = n_images // cfg.batch_size  # the pipelines drop the last partial batch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else cfg.learning_rate,
        decay_steps=max(cfg.epochs * steps_per_epoch - warmup, 1),
        warmup_target=cfg.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=0.9, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; expected 'adamw' or 'sgd'")


def _load_models(out: Path) -> dict[str, keras.Model]:
    return {path.stem: keras.saving.load_model(path) for path in sorted(out.glob("*.keras"))}
