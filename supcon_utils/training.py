"""Training recipes: SupCon pretraining then a linear probe, the cross-entropy baseline, and two
ways of joining them.

All recipes train the same encoder with the same augmentation and epoch budget, so the comparison
is fair. Each kind of run is one entry of ``supcon_utils.recipes.RECIPES`` (its model, views,
probe, per-epoch scoring and own settings); :func:`run` orchestrates any of them. The kinds:

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

    .lock              held by the process running it (``runs.locked``)
    config.json        the configuration the run was started with
    backup/            the last finished epoch's weights while training (``runs.Backup``), kept
                       until the trained models and results.json are saved
    history.csv        one row per epoch, kept across resumptions: training loss (and accuracy),
                       validation accuracy and training seconds so far (:class:`ValAccuracy`)
    encoder.keras      the trained encoder (and projection_head.keras for SupCon)
    classifier.keras   the linear head: the CE classifier, or SupCon's linear probe
    results.json       metrics (validation and test), configuration and wall time

Choices are made on validation: ``n_val`` training images (stratified, the same for every seed
and disjoint from every ``n_train`` subset) are held out; the per-epoch curves score them, and
the test set is scored once, when the run has finished.

A run killed mid-way (a Colab disconnect) resumes from its last finished epoch when called again
with the same configuration, on the batches and views the uninterrupted run drew from there (the
pipeline is keyed by seed, epoch and image), so it ends on the same weights; killed after its
last epoch, it resumes with nothing to train. A finished run (a results.json whose configuration
matches) is loaded instead of retrained. Every file is written whole (``supcon_utils.runs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from supcon_utils import (
    augment,
    data,
    distributed,
    evaluation,
    models,
    recipes,
    records,
    runs,
    tensorboard_logs,
)

KINDS = recipes.KINDS
# Training images whose features are the k-NN reference of the per-epoch SupCon test accuracy.
KNN_REFERENCE = 10_000
KNN_K = 20
hybrid_model = recipes.hybrid_model  # the hybrid recipe's compiled model, for notebook 07


@dataclass(frozen=True)
class Config:
    """Every knob of a training run. Presets are in :data:`PRESETS`."""

    dataset: str = "fashion_mnist"
    encoder: str = "resnet_small"
    augmentation: str = "grayscale28"  # the views' augmentation: supcon_utils.augment.AUGMENTATIONS
    n_train: int | None = 20_000  # training images used (a stratified subset); None: all
    # Training images held out for validation before n_train is drawn (stratified, the same for
    # every seed): per-epoch curves and every choice are scored on them, the test set only once.
    n_val: int = 5_000
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
    learning_rate: float = 5e-3  # peak, after warm-up; cosine decay to 0 afterwards
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.0
    # XLA for the train step. Off on CPU: with oneDNN on it measured 27% slower for SupCon here.
    jit_compile: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check_config(self)


# What each knob allows, checked when a Config is made (so before a run writes anything).
_CHOICES = {
    "dataset": data.DATASETS, "encoder": tuple(models.ENCODERS),
    "augmentation": augment.AUGMENTATIONS, "variant": ("out", "in"),
    "contrast_mode": ("all", "one"), "optimizer": ("adamw", "sgd"),
}  # fmt: skip
_AT_LEAST_ONE = ("n_train", "n_val", "labels_per_class", "batch_size", "epochs", "probe_epochs",
                 "finetune_epochs", "queue_size", "n_views", "classes_per_batch")  # fmt: skip
_NON_NEGATIVE = ("supcon_weight", "finetune_lr", "learning_rate", "weight_decay", "warmup_epochs",
                 "seed")  # fmt: skip


def _check_config(cfg: Config) -> None:
    """Refuse a setting of the wrong type or out of range, naming the knob and what is allowed."""
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        name, value, hint = field.name, getattr(cfg, field.name), hints[field.name]
        optional = type(None) in typing.get_args(hint)
        kind = next(t for t in (typing.get_args(hint) or (hint,)) if t is not type(None))
        if value is None and optional:
            continue
        # bool is an int to Python, and an int is a fine float; nothing else converts silently.
        ok = (isinstance(value, bool) if kind is bool
              else isinstance(value, int) and not isinstance(value, bool) if kind is int
              else isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
              else isinstance(value, kind))  # fmt: skip
        if not ok:
            allowed = f"{kind.__name__}{' or None' if optional else ''}"
            raise TypeError(f"{name}={value!r} ({type(value).__name__}); allowed: {allowed}")
        if name in _CHOICES and value not in _CHOICES[name]:
            own = " (or data.register your own arrays)" if name == "dataset" else ""
            raise ValueError(f"{name}={value!r}; allowed: "
                             f"{', '.join(map(repr, _CHOICES[name]))}{own}")  # fmt: skip
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{name}={value!r}; allowed: a finite number")
        if name in _AT_LEAST_ONE and value < 1:
            raise ValueError(f"{name}={value!r}; allowed: 1 or more")
        if name in _NON_NEGATIVE and value < 0:
            raise ValueError(f"{name}={value!r}; allowed: 0 or more")
    if cfg.temperature <= 0:
        raise ValueError(f"temperature={cfg.temperature!r}; allowed: more than 0")
    if not 0 <= cfg.momentum <= 1:
        raise ValueError(f"momentum={cfg.momentum!r}; allowed: 0 to 1")
    if cfg.classes_per_batch is not None and cfg.batch_size % cfg.classes_per_batch:
        raise ValueError(f"batch_size={cfg.batch_size} is not a multiple of classes_per_batch="
                         f"{cfg.classes_per_batch}; allowed: a multiple")  # fmt: skip


PRESETS: dict[str, Config] = {
    # The notebooks' default: CPU, 20,000 of Fashion-MNIST's training images, minutes. Its peak
    # learning rate, 5e-3, is the one of the best mean validation accuracy of both recipes in the
    # recipe search (benchmarks/recipes.py --stage lr; results/recipes-lr, in docs/results.md).
    "quick": Config(),
    # CPU, all 55,000 training images left beside validation's 5,000, the same learning rate.
    # 15 epochs keep SupCon (two views a step) within 30 min here.
    "full": Config(n_train=None, epochs=15),
    # Colab GPU: CIFAR-10, ResNet-18, the paper's large batch, SGD with warm-up and cosine decay.
    "gpu": Config(
        dataset="cifar10",
        encoder="resnet18_cifar",
        augmentation="color32",
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
    """The preset ``preset`` with ``overrides`` applied, ``None`` included (``n_train=None``: all
    the training images). Notebook parameters that use ``None`` for "the preset's" go through
    :func:`given` first."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


def given(**parameters: Any) -> dict[str, Any]:
    """The ``parameters`` that are not ``None``: ``config(preset, **given(n_train=n_train))``
    keeps the preset's ``n_train`` when the notebook parameter ``n_train`` is ``None``."""
    return {name: value for name, value in parameters.items() if value is not None}


class Splits(NamedTuple):
    """A run's images: what it trains on, what it is chosen on, what it is reported on."""

    train: data.Split
    val: data.Split
    test: data.Split


# The validation split is drawn with this seed, not the run's, so that it is the same images for
# every seed and a choice made on it compares like with like.
VAL_SEED = 0


def load_data(cfg: Config) -> Splits:
    """The configured dataset in three: ``n_val`` training images held out for validation
    (stratified, drawn with :data:`VAL_SEED`), then a stratified ``n_train`` of the rest (drawn
    with ``cfg.seed``), then, if ``labels_per_class`` is set, that many images of each class; and
    the test split."""
    from sklearn.model_selection import train_test_split

    (x_train, y_train), test = data.load_dataset(cfg.dataset)
    n_classes = len(np.unique(y_train))
    if not n_classes <= cfg.n_val <= len(x_train) - n_classes:
        raise ValueError(f"n_val={cfg.n_val} does not fit the {len(x_train):,} training images "
                         f"of {cfg.dataset}; allowed: {n_classes} (one per class) to "
                         f"{len(x_train) - n_classes}")  # fmt: skip
    x_train, x_val, y_train, y_val = train_test_split(
        x_train, y_train, test_size=cfg.n_val, stratify=y_train, random_state=VAL_SEED
    )
    if cfg.n_train is not None and cfg.n_train > len(x_train):
        raise ValueError(f"n_train={cfg.n_train} is more than the {len(x_train):,} training "
                         f"images of {cfg.dataset} left after the n_val={cfg.n_val} validation "
                         f"images; allowed: 1 to {len(x_train)}, or None for all")  # fmt: skip
    if cfg.n_train is not None and cfg.n_train < len(x_train):
        x_train, _, y_train, _ = train_test_split(
            x_train, y_train, train_size=cfg.n_train, stratify=y_train, random_state=cfg.seed
        )
    if cfg.labels_per_class is not None:
        keep = evaluation.few_label_subset(y_train, cfg.labels_per_class, cfg.seed)
        x_train, y_train = x_train[keep], y_train[keep]
    return Splits((x_train, y_train), (x_val, y_val), test)


def run(
    kind: str,
    cfg: Config,
    run_dir: str | Path,
    *,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
    score_every: int = 1,
    log_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``kind`` (one of :data:`KINDS`) into ``run_dir/kind``, or load it if done.

    Returns the results (metrics, config, wall time) and, under ``"models"``, the encoder and
    classifier (and SupCon's projection head). A run interrupted with the same configuration
    resumes; its ``wall_time_s`` then adds the training seconds of the epochs done before
    (``elapsed_s`` in ``history.csv``; their test scoring and an epoch cut short are not counted)
    and ``resumed_after_epochs`` says how many there were. A run of another configuration in
    ``run_dir/kind`` is never deleted nor reused: that is a ``ValueError`` naming the settings that
    differ (use another ``run_dir``, or delete it). A folder in use by another process, or holding
    a damaged file or trained models without their results, is a :class:`runs.RunFolderError`
    naming it. Settings that do not fit the data (``n_train`` above the dataset's size, a batch
    larger than the training images) are a ``ValueError`` before anything is written.

    ``strategy`` (a ``tf.distribute`` strategy; default: the current one, one device) builds and
    trains the models in its scope. ``cfg.batch_size`` is then the global batch, split across the
    replicas: SupCon contrasts each view against the whole global batch (the loss gathers the
    replicas' features) and batch norm uses the global batch's statistics, so the training step
    is the one-device step (``tests/test_training.py`` checks it on two CPU replicas). The
    learning rate is not rescaled: scale ``cfg.learning_rate`` with the global batch if you grow it.
    Under a ``MultiWorkerMirroredStrategy`` of several processes (:mod:`supcon_utils.distributed`)
    the chief writes ``run_dir/kind`` and worker ``i`` the folder ``run_dir/workertemp_i``,
    removed at the end; every worker resumes from the chief's backup and returns the results.

    ``score_every``: the validation accuracy of :class:`ValAccuracy` is measured every this many
    epochs and after the last one (NaN in ``history.csv`` between); ``cfg.epochs`` scores the
    last only. The test split is scored once, by the finished models.

    ``log_dir``: TensorBoard logs in ``log_dir/kind`` (:mod:`supcon_utils.tensorboard_logs`): each
    epoch's logged values, one per epoch across resumptions, and the finished encoder's test
    embeddings for the projector. ``tensorboard --logdir <log_dir>`` shows them.
    """
    recipe = recipes.get(kind)
    recipes.check(kind, cfg)
    home = Path(run_dir) / kind  # the run folder; the chief's under several workers
    splits = load_data(cfg)  # checks the dataset's name and sizes before anything is written
    _check_fits_data(cfg, splits.train)
    if distributed.is_multi_worker(strategy):
        distributed.mend_keras()
    with distributed.worker_folder(home, strategy) as out, runs.locked(out):
        done = _finished_here(home, out, cfg, kind, strategy)
        if done is not None:
            return done
        pretrained = None
        if recipe.starts_from is not None:
            pretrained = run(recipe.starts_from, cfg, run_dir, verbose=verbose, strategy=strategy,
                             log_dir=log_dir)  # fmt: skip
        logs = None if log_dir is None or out != home else Path(log_dir) / kind
        if logs is not None:  # after the run's backup, which _train puts first
            scalars = tensorboard_logs.EpochScalars(logs, out / "history.csv")
            callbacks = [*(callbacks or []), scalars]
        first_epoch = _restore(home, out, strategy)
        with isolated_generators(cfg.seed):
            results, trained = _train(recipe, cfg, home, out, splits, callbacks, verbose,
                                      strategy, score_every, pretrained, first_epoch)  # fmt: skip
        for name, model in trained.items():
            runs.save_model(model, out / f"{name}.keras")
        if logs is not None:  # before the results: a kill before them exports again
            vectors = evaluation.embeddings(trained["encoder"], splits.test[0])
            names = data.DATASETS[cfg.dataset].class_names
            tensorboard_logs.export_embeddings(logs, vectors, splits.test[1], names)
        records.write_results(out, results)
        runs.remove_backup(out / "backup")  # only now: a kill before resumes with nothing to train
    return {**results, "models": trained}


def _finished_here(
    home: Path, out: Path, cfg: Config, kind: str, strategy: tf.distribute.Strategy | None
) -> dict[str, Any] | None:
    """:func:`_finished` in this process's folder ``out``. Under several workers the chief's
    folder decides: when its run is finished, the other workers load it too."""
    done = _finished(out, cfg, kind)
    if not distributed.is_multi_worker(strategy):
        return done
    if distributed.chief_value(strategy, int(done is not None)) and out != home:
        return _finished(home, cfg, kind)  # finished: read only
    return done


def _restore(home: Path, out: Path, strategy: tf.distribute.Strategy | None) -> int:
    """Restore the run's backup into ``out`` and return the epoch training resumes at. Under
    several workers the chief restores its own; the others, once it has (agreeing on the epoch
    is a barrier), copy it and the history into their folders."""
    if not distributed.is_multi_worker(strategy):
        return runs.restore_backup(out / "backup")
    chief = out == home
    epoch = distributed.chief_value(strategy, runs.restore_backup(home / "backup") if chief else 0)
    if not chief and epoch:
        runs.copy_backup(home, out)
    return epoch


def load_run(
    run_dir: str | Path, kind: str, *, train_if_missing: Config | None = None, verbose: int = 0
) -> dict[str, Any]:
    """The finished run of ``kind`` in ``run_dir/kind``, whatever configuration trained it, as
    :func:`run` returns it: metrics, ``config`` (a dict; :func:`saved_config` makes it a
    :class:`Config`), wall time, and the trained ``models``.

    This is how a notebook evaluates the run that another one trained (04 and 08 read 03's), so
    every parameter given to the trainer carries through. With no finished run there, it trains
    ``train_if_missing`` into ``run_dir`` (:func:`run`, which also resumes an interrupted run of
    that configuration), or without it is a :class:`runs.RunFolderError` saying so.
    """
    recipes.get(kind)
    out = Path(run_dir) / kind
    if not (out / records.RESULTS).exists():
        if train_if_missing is None:
            raise runs.RunFolderError(
                f"{out} holds no finished run of {kind} (no results.json): train it first, with "
                f"notebook 03 or training.run({kind!r}, cfg, {str(run_dir)!r})."
            )
        return run(kind, train_if_missing, run_dir, verbose=verbose)
    # No lock: a finished run's files are written whole and never again.
    results = runs.read_json(out / records.RESULTS, f"delete it, or the folder {out}, to train "
                             "this run again")  # fmt: skip
    results["config"] = recipes.current_names(results["config"])
    saved_config(results)  # a configuration this version cannot read is an error here, not later
    return {**results, "models": _load_models(out)}


def saved_config(results: dict[str, Any]) -> Config:
    """The :class:`Config` of a run's results (:func:`run`, :func:`load_run`); a knob added to
    :class:`Config` since counts as its default, one no recipe reads any more is left out."""
    saved = recipes.current_names(results["config"])
    saved = {k: v for k, v in saved.items() if k not in recipes.RETIRED_FIELDS}
    older = sorted(set(recipes.ADDED_FIELDS) - set(saved))
    if older:
        raise ValueError(f"the run was trained before {', '.join(older)} existed (its images "
                         "and scores differ from this version's); train it again")  # fmt: skip
    unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise ValueError(f"the run's configuration has knobs this version does not know: "
                         f"{unknown}; it was saved by another version of supcon_utils")  # fmt: skip
    return Config(**saved)


# The knobs that choose a run's training images (load_data).
DATA_FIELDS = ("dataset", "n_val", "n_train", "labels_per_class", "seed")


def shared_data(results: Iterable[dict[str, Any]]) -> Config:
    """The :class:`Config` of the first of several runs, after checking that they all trained on
    the same images (the :data:`DATA_FIELDS`), so that comparing them on its data is fair."""
    configs = [saved_config(r) for r in results]
    for other in configs[1:]:
        differ = [f"{k}: {getattr(configs[0], k)!r} and {getattr(other, k)!r}"
                  for k in DATA_FIELDS if getattr(configs[0], k) != getattr(other, k)]  # fmt: skip
        if differ:
            raise ValueError(f"the runs trained on different images ({'; '.join(differ)}); "
                             "train them with the same data settings to compare them")  # fmt: skip
    return configs[0]


def _check_fits_data(cfg: Config, train: data.Split) -> None:
    """A batch must fit in the training images (the pipelines drop a partial last batch)."""
    if cfg.batch_size > len(train[0]):
        raise ValueError(f"batch_size={cfg.batch_size} is more than the {len(train[0]):,} "
                         "training images; allowed: at most the training images")  # fmt: skip


def _finished(out: Path, cfg: Config, kind: str) -> dict[str, Any] | None:
    """The results (and models) of the finished run of ``cfg`` in ``out``, None if it has none.

    Writes ``config.json`` for the run about to start. A run of another configuration, or files
    that cannot belong to an unfinished run of this one, are a ``ValueError`` or a
    :class:`runs.RunFolderError` naming them; nothing trained is deleted or trained over.
    """
    wanted = dataclasses.asdict(cfg)
    ignored = recipes.ignored_fields(kind)
    remedy = f"delete it, or the folder {out}, to train this run again"
    if (out / records.RESULTS).exists():
        results = runs.read_json(out / records.RESULTS, remedy)
        results["config"] = recipes.current_names(results.get("config", {}))
        _refuse_other_config(out, results["config"], wanted, ignored)
        results["models"] = _load_models(out)
        return results
    models = sorted(p.name for p in out.glob("[!.]*.keras"))
    backup = (out / "backup").exists()
    if models and not backup:
        raise runs.RunFolderError(
            f"{out} holds trained models ({', '.join(models)}) but no results.json; they are kept. "
            f"Delete them (or the folder {out}) to train this run again."
        )
    config_file = out / "config.json"
    if config_file.exists():
        saved = recipes.current_names(
            runs.read_json(config_file, f"delete the folder {out} to start this run afresh")
        )
        if backup or (out / "history.csv").exists():  # unfinished: resumed with its own config
            _refuse_other_config(out, saved, wanted, ignored)
    elif backup:
        raise runs.RunFolderError(
            f"{out} holds a training backup but no config.json, so it cannot tell which run it "
            f"belongs to; delete {out / 'backup'} (or the folder) to train this run from epoch 0."
        )
    records.write_json(config_file, wanted)
    return None


def same_run(saved_config: dict[str, Any], cfg: Config, kind: str) -> bool:
    """Whether the run saved with ``saved_config`` (a run's ``results.json`` or a record under
    ``results/``) is the run of ``kind`` at ``cfg``: the test :func:`run` makes before it loads
    a finished run instead of training it."""
    saved = recipes.current_names(saved_config)
    return not _config_differences(saved, dataclasses.asdict(cfg), recipes.ignored_fields(kind))


def _refuse_other_config(out: Path, saved: dict, wanted: dict, ignored: tuple[str, ...]) -> None:
    differ = _config_differences(saved, wanted, ignored)
    if differ:
        raise ValueError(
            f"{out} holds a run of another configuration ({differ}); it is kept. Pass "
            f"another run_dir to train this one beside it, or delete {out} to replace it."
        )


@contextlib.contextmanager
def isolated_generators(seed: int | None = None) -> Iterator[None]:
    """Run the block with the global generators seeded by ``seed``
    (``keras.utils.set_random_seed``; None: as they are), then put them back as they were:
    Python's, NumPy's, Keras' global seed and seed generator, TensorFlow's global seed and its
    op-seed sequence. A run trains and loads its models inside, so what a caller draws afterwards
    does not depend on whether the run was trained here or loaded from disk."""
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils
    from tensorflow.python.eager import context

    keras_keys = (rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR)
    keras_state = {k: global_state.get_global_attribute(k) for k in keras_keys}
    generator = keras_state[seed_generator.GLOBAL_SEED_GENERATOR]
    generator_state = None if generator is None else generator.state.numpy()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    tf_context = context.context()
    # Private attributes: what tf.random.set_seed replaces (_rng exists once a seed was set).
    tf_seed, tf_rng = tf_context._seed, getattr(tf_context, "_rng", None)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        tf_context._seed = tf_seed
        if tf_rng is None:
            vars(tf_context).pop("_rng", None)
        else:
            tf_context._rng = tf_rng
        for key, value in keras_state.items():
            global_state.set_global_attribute(key, value)
        if generator is not None:
            generator.state.assign(generator_state)


def _train(
    recipe,
    cfg,
    home,
    out,
    splits,
    callbacks,
    verbose,
    strategy,
    score_every,
    pretrained,
    first_epoch,
):
    """Train ``recipe`` in ``out`` (``home``, or another worker's folder) from its restored
    backup's ``first_epoch`` on: its results record and models."""
    if first_epoch == 0:
        (out / "history.csv").unlink(missing_ok=True)
    runs.trim_history(out / "history.csv", first_epoch)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    previous = history(out)  # the epochs of an interrupted run, if any
    start = time.perf_counter()
    train = splits.train
    val_score = _scorer(recipe.name, cfg, train, splits.val)
    fit_callbacks = [  # the log before the backup: a kill between leaves a row that is trimmed
        ValAccuracy(val_score, previous, every=score_every),
        keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        runs.Backup(out / "backup"),
        keras.callbacks.TerminateOnNaN(),
        *(callbacks or []),
    ]
    before = None if pretrained is None else home.parent / recipe.starts_from  # its run folder
    with scope:
        built = recipe.build(cfg, train[0].shape[1:], int(train[1].max()) + 1, len(train[0]),
                             before)  # fmt: skip
        _Fitter(cfg, train, fit_callbacks, verbose, first_epoch)(
            built.model, built.n_views, built.per_batch, epochs=built.epochs
        )
        trained = dict(built.parts)
        _check_finite(history(out))
        if recipe.contrastive:
            _check_not_collapsed(trained["encoder"], trained["projection_head"], train[0])
        if recipe.probe:
            trained["classifier"], metrics = linear_probe(trained["encoder"], splits, cfg,
                                                          verbose=verbose)  # fmt: skip
        else:
            metrics = _classifier_metrics(trained["encoder"], trained["classifier"], splits, cfg)
        for name, split in (("val", splits.val), ("test", splits.test)):  # every kind's encoder
            metrics[f"knn_{name}_accuracy"] = knn_scorer(cfg, train, split)(trained["encoder"])
        if pretrained is not None:
            for split in ("val", "test"):
                metrics[f"pretrained_{split}_accuracy"] = pretrained["metrics"][f"{split}_accuracy"]
    results = {
        "kind": recipe.name,
        "metrics": metrics,
        "config": dataclasses.asdict(cfg),
        "wall_time_s": round(_elapsed(previous) + time.perf_counter() - start, 1),
        "epochs_completed": len(history(out)),
        "resumed_after_epochs": len(previous),
        "environment": records.environment(),
    }
    return results, trained


class ValAccuracy(keras.callbacks.Callback):
    """Adds ``val_accuracy`` and ``elapsed_s`` to each epoch's logs, so ``history.csv`` has them.

    ``score(model)`` gives the validation accuracy of the model being trained (see
    :func:`_scorer`: the classifier's for cross-entropy, a k-NN vote of the frozen encoder's
    features for SupCon). ``elapsed_s`` counts the seconds spent in training epochs since the run
    started, resumptions included (``previous``: the rows already in ``history.csv``) and
    scoring excluded, so that accuracy can be read against a training budget in wall time. With
    ``every`` above 1 the accuracy is measured every ``every`` epochs and after the last one, NaN
    in between. It must come before the ``CSVLogger`` in the callbacks, so that the log has both
    columns.
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
            logs["val_accuracy"] = self.score(self.model) if due else float("nan")


def _scorer(
    kind: str, cfg: Config, train: data.Split, split: data.Split
) -> Callable[[keras.Model], float]:
    """How a model of ``kind`` is scored on ``split`` (validation per epoch, :class:`ValAccuracy`).

    Cross-entropy and fine-tuning: the accuracy of the model's logits. SupCon, MoCo and hybrid
    (models with an ``encoder``): a k-NN vote (``KNN_K`` neighbours, cosine) of the encoder's
    features, against the features of a stratified ``KNN_REFERENCE`` training images; seconds
    per epoch on a CPU, against the minutes a linear probe would take.
    """
    if not recipes.get(kind).knn_scored:
        split_ds = data.make_dataset(split[0], None, batch_size=cfg.batch_size * 4)
        return lambda model: float(
            np.mean(model.predict(split_ds, verbose=0).argmax(1) == split[1])
        )
    knn = knn_scorer(cfg, train, split)
    return lambda model: knn(model.encoder)


def knn_scorer(cfg: Config, train: data.Split, split: data.Split) -> Callable[[keras.Model], float]:
    """The accuracy on ``split`` of a k-NN vote (``KNN_K`` neighbours, cosine) of an encoder's
    features, against those of a stratified ``KNN_REFERENCE`` of the ``train`` images."""
    batch = cfg.batch_size * 4
    ref_x, ref_y = train
    if len(ref_x) > KNN_REFERENCE:
        from sklearn.model_selection import train_test_split

        ref_x, _, ref_y, _ = train_test_split(
            ref_x, ref_y, train_size=KNN_REFERENCE, stratify=ref_y, random_state=cfg.seed
        )

    def knn(encoder: keras.Model) -> float:
        features = [evaluation.embeddings(encoder, x, batch_size=batch) for x in (ref_x, split[0])]
        k = min(KNN_K, len(ref_x))
        return evaluation.knn_accuracy(features[0], ref_y, features[1], split[1], k=k)

    return knn


def budget_study(
    cfg: Config,
    run_dir: str | Path,
    seeds: Sequence[int],
    kinds: Sequence[str] = ("cross_entropy", "supcon"),
    *,
    verbose: int = 0,
) -> pd.DataFrame:
    """Train each of ``kinds`` at each seed; validation accuracy against epochs and seconds.

    The run of ``cfg.seed`` is the one in ``run_dir`` (notebook 03's); another seed ``s`` trains
    into ``run_dir/seed<s>``. Every run is resumable and loaded when finished, so an interrupted
    study goes on where it stopped. Returns one row per kind, seed and epoch (``epoch``,
    ``elapsed_s``, ``val_accuracy`` from ``history.csv``), plus the finished run's
    ``final_val_accuracy`` and ``final_test_accuracy`` (SupCon's: the linear probe's) and
    ``wall_time_s``.
    """
    rows = []
    for seed in seeds:
        folder = Path(run_dir) if seed == cfg.seed else Path(run_dir) / f"seed{seed}"
        for kind in kinds:
            started = time.perf_counter()
            results = run(kind, dataclasses.replace(cfg, seed=seed), folder, verbose=verbose)
            if verbose:
                print(f"seed {seed} {kind}: validation accuracy "
                      f"{results['metrics']['val_accuracy']:.4f} "
                      f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
            for row in history(folder / kind):
                rows.append({
                    "kind": kind, "seed": seed, "epoch": int(row["epoch"]),
                    "elapsed_s": row["elapsed_s"], "val_accuracy": row["val_accuracy"],
                    "final_val_accuracy": results["metrics"]["val_accuracy"],
                    "final_test_accuracy": results["metrics"]["test_accuracy"],
                    "wall_time_s": results["wall_time_s"],
                })  # fmt: skip
    return pd.DataFrame(rows)


def linear_probe(
    encoder: keras.Model, splits: Splits, cfg: Config, *, verbose: int = 0
) -> tuple[keras.Model, dict[str, float]]:
    """Fit a linear classifier on the frozen encoder's features of ``splits.train`` for
    ``cfg.probe_epochs`` epochs; its train, validation and test accuracy.

    The features of the un-augmented images are computed once, so the probe costs seconds on a CPU
    (the paper trains it with augmentation, which costs a forward pass per step).
    """
    batch = cfg.batch_size * 4
    feats = {name: evaluation.embeddings(encoder, split[0], batch_size=batch)
             for name, split in splits._asdict().items()}  # fmt: skip
    n_classes = int(splits.train[1].max()) + 1
    probe = models.linear_classifier(feats["train"].shape[1], n_classes)
    probe.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    probe.fit(
        feats["train"], splits.train[1], batch_size=cfg.batch_size, epochs=cfg.probe_epochs,
        verbose=0, shuffle=True,
    )  # fmt: skip
    metrics = {f"{name}_accuracy": float(probe.evaluate(feats[name], split[1], verbose=0)[1])
               for name, split in splits._asdict().items()}  # fmt: skip
    if verbose:
        print("linear probe: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return probe, metrics


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
    counts as its default, the behaviour the run had, so adding a knob does not orphan old runs;
    unless :data:`recipes.ADDED_FIELDS` gives the value older runs had instead.
    """
    defaults = dataclasses.asdict(Config()) | recipes.ADDED_FIELDS
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
    z = head.predict(evaluation.embeddings(encoder, images[:512]), verbose=0)
    mean_cosine = float(np.mean(z @ z.T))
    if mean_cosine > 0.99:
        raise RuntimeError(
            f"SupCon collapsed: mean cosine similarity {mean_cosine:.3f} between embeddings of "
            "different images (the loss sits at ln(2N-1)). Lower the learning rate."
        )


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


def steps_per_epoch(cfg: Config) -> int:
    """Optimizer steps in one epoch of ``cfg``'s training (its images over the batch size, the
    last partial batch dropped): what an equal-steps comparison counts."""
    return _batches_per_epoch(cfg, load_data(cfg).train)


def epochs_for_steps(cfg: Config, steps: int) -> int:
    """The fewest epochs of ``cfg`` that make at least ``steps`` optimizer steps."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    return math.ceil(steps / steps_per_epoch(cfg))


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
    return cfg.classes_per_batch, cfg.batch_size // cfg.classes_per_batch


def _train_dataset(cfg: Config, train: data.Split, n_views: int, epochs: range):
    """The augmented, shuffled (or class-balanced) training pipeline of ``cfg`` over ``epochs``."""
    return data.make_dataset(
        *train, batch_size=cfg.batch_size, n_views=n_views, augmentation=cfg.augmentation,
        shuffle=True, seed=cfg.seed, balanced=_balanced(cfg), epochs=epochs,
    )  # fmt: skip


def _classifier_metrics(encoder, classifier, splits: Splits, cfg: Config) -> dict[str, float]:
    """The validation and test accuracy of a trained encoder and its classifier."""
    metrics = {}
    for name, (x, y) in (("val", splits.val), ("test", splits.test)):
        features = evaluation.embeddings(encoder, x, batch_size=cfg.batch_size * 4)
        logits = classifier.predict(features, verbose=0)
        metrics[f"{name}_accuracy"] = float(np.mean(logits.argmax(axis=1) == y))
    return metrics


def _load_models(out: Path) -> dict[str, keras.Model]:
    """The trained models in ``out`` by name (building a layer draws initial weights: the global
    generators are left as they were)."""
    remedy = f"delete the folder {out} to train the run again"
    with isolated_generators():
        return {path.stem: runs.load_model(path, remedy)
                for path in sorted(out.glob("[!.]*.keras"))}  # fmt: skip
