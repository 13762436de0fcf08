"""The training recipes, one registry entry each: what a kind of run builds, trains and reads.

:data:`RECIPES` maps a kind (``supcon``, ``cross_entropy``, ``hybrid``, ``finetune``, ``moco``)
to a :class:`Recipe`: how to build and compile its Keras model from a ``training.Config``, how
many views it trains on, whether a linear probe follows, how its test accuracy is scored per
epoch, the ``Config`` fields only it reads (the rest are shared by all), and the recipe whose
finished run it starts from. ``training.run`` orchestrates any of them; ``benchmarks/bench.py``
builds its models here. Adding a recipe is one entry, its builder, and their tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from supcon_utils import losses, moco, models, runs

if TYPE_CHECKING:
    from supcon_utils.training import Config


@dataclass
class Built:
    """A recipe's compiled model, the parts saved from it, and how ``fit`` feeds it."""

    model: keras.Model  # what `fit` trains
    parts: dict[str, keras.Model]  # saved as <name>.keras: encoder, projection_head, classifier
    n_views: int  # views per image in each batch
    per_batch: Callable | None = None  # maps each (views, labels) batch to what `model` takes
    epochs: int | None = None  # None: cfg.epochs


@dataclass(frozen=True)
class Recipe:
    """One kind of training run."""

    name: str
    # build(cfg, input_shape, n_classes, n_images, pretrained): the model; `pretrained` is the
    # folder of the `starts_from` recipe's finished run (None if it has none).
    build: Callable[[Config, Sequence[int], int, int, Path | None], Built]
    contrastive: bool  # trains a projection head with SupCon (checked for collapse)
    probe: bool  # a linear probe on the frozen encoder gives its classifier and test accuracy
    knn_scored: bool  # per-epoch test accuracy: k-NN of encoder features (else: the logits)
    own_fields: tuple[str, ...] = ()  # Config fields only this recipe reads
    starts_from: str | None = None  # the recipe whose finished run (same run_dir) it starts from
    needs_labels: bool = False  # refuses use_labels=False (finetune's supcon stage reads it)
    checks: tuple[Callable[[Config], None], ...] = field(default=())


def supcon_loss(cfg: Config) -> losses.SupConLoss:
    """The SupCon loss of ``cfg`` (temperature, variant, contrast mode)."""
    return losses.SupConLoss(
        temperature=cfg.temperature, variant=cfg.variant, contrast_mode=cfg.contrast_mode
    )


def optimizer(cfg: Config, n_images: int) -> keras.optimizers.Optimizer:
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


def _cross_entropy_compile(model: keras.Model, cfg: Config, n_images: int) -> None:
    model.compile(
        optimizer=optimizer(cfg, n_images),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=cfg.jit_compile,
    )


def _views_only(cfg: Config) -> Callable | None:
    """Without labels (SimCLR) the batches are the views alone; the train steps contrast them."""
    return None if cfg.use_labels else lambda views, labels: views


def _build_supcon(cfg, input_shape, n_classes, n_images, pretrained) -> Built:
    encoder = models.build_encoder(cfg.encoder, input_shape)
    head = models.projection_head(encoder.output_shape[-1])
    model = models.SupConModel(encoder, head)
    model.compile(optimizer=optimizer(cfg, n_images), loss=supcon_loss(cfg),
                  jit_compile=cfg.jit_compile)  # fmt: skip
    return Built(model, {"encoder": encoder, "projection_head": head}, cfg.n_views,
                 _views_only(cfg))  # fmt: skip


def _build_moco(cfg, input_shape, n_classes, n_images, pretrained) -> Built:
    encoder = models.build_encoder(cfg.encoder, input_shape)
    head = models.projection_head(encoder.output_shape[-1])
    model = moco.MoCoSupConModel(
        encoder, head, queue_size=cfg.queue_size, momentum=cfg.momentum,
        temperature=cfg.temperature, variant=cfg.variant,
    )  # fmt: skip
    model.compile(optimizer=optimizer(cfg, n_images), jit_compile=cfg.jit_compile)
    return Built(model, {"encoder": encoder, "projection_head": head}, cfg.n_views,
                 _views_only(cfg))  # fmt: skip


def _build_cross_entropy(cfg, input_shape, n_classes, n_images, pretrained) -> Built:
    encoder = models.build_encoder(cfg.encoder, input_shape)
    classifier = models.linear_classifier(encoder.output_shape[-1], n_classes)
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, classifier(encoder(inputs)))
    _cross_entropy_compile(model, cfg, n_images)
    return Built(model, {"encoder": encoder, "classifier": classifier}, 1)


def hybrid_model(
    cfg: Config, input_shape: Sequence[int], n_classes: int, n_images: int
) -> models.HybridModel:
    """The hybrid recipe's model, compiled: cross-entropy + ``cfg.supcon_weight`` x SupCon.

    Fed ``(views, {"projection": labels, "logits": labels repeated per view})``; ``n_images``
    sets the learning-rate schedule's length.
    """
    encoder = models.build_encoder(cfg.encoder, input_shape)
    head = models.projection_head(encoder.output_shape[-1])
    classifier = models.linear_classifier(encoder.output_shape[-1], n_classes)
    model = models.HybridModel(encoder, head, classifier, stop_gradient=cfg.stop_gradient)
    model.compile(
        optimizer=optimizer(cfg, n_images),
        loss={"projection": supcon_loss(cfg),
              "logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        loss_weights={"projection": cfg.supcon_weight, "logits": 1.0},
        metrics={"logits": ["accuracy"]},
        jit_compile=cfg.jit_compile,
    )  # fmt: skip
    return model


def _build_hybrid(cfg, input_shape, n_classes, n_images, pretrained) -> Built:
    model = hybrid_model(cfg, input_shape, n_classes, n_images)

    def per_output(views, y):  # SupCon takes one label per image, cross-entropy one per view
        return views, {"projection": y, "logits": tf.repeat(y[:, None], cfg.n_views, axis=1)}

    parts = {"encoder": model.encoder, "projection_head": model.head,
             "classifier": model.classifier}  # fmt: skip
    return Built(model, parts, cfg.n_views, per_output)


def _build_finetune(cfg, input_shape, n_classes, n_images, pretrained) -> Built:
    remedy = f"delete the folder {pretrained} to train the supcon run again"
    encoder = runs.load_model(pretrained / "encoder.keras", remedy)  # fresh copies from disk
    classifier = runs.load_model(pretrained / "classifier.keras", remedy)
    inputs = keras.Input(input_shape)
    model = keras.Model(inputs, classifier(encoder(inputs)))
    tuned = dataclasses.replace(
        cfg, epochs=cfg.finetune_epochs, learning_rate=cfg.finetune_lr, warmup_epochs=0.0
    )
    _cross_entropy_compile(model, tuned, n_images)
    return Built(model, {"encoder": encoder, "classifier": classifier}, 1, epochs=tuned.epochs)


def _all_anchors(cfg: Config) -> None:
    if cfg.contrast_mode != "all":
        raise ValueError("moco contrasts every view with the queue: contrast_mode must be 'all'")


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("supcon", _build_supcon, contrastive=True, probe=True, knn_scored=True),
        Recipe("cross_entropy", _build_cross_entropy, contrastive=False, probe=False,
               knn_scored=False, needs_labels=True),
        Recipe("hybrid", _build_hybrid, contrastive=True, probe=False, knn_scored=True,
               own_fields=("supcon_weight", "stop_gradient"), needs_labels=True),
        Recipe("finetune", _build_finetune, contrastive=False, probe=False, knn_scored=False,
               own_fields=("finetune_epochs", "finetune_lr"), starts_from="supcon"),
        Recipe("moco", _build_moco, contrastive=True, probe=True, knn_scored=True,
               own_fields=("queue_size", "momentum"), checks=(_all_anchors,)),
    )
}  # fmt: skip
KINDS = tuple(RECIPES)
# Knobs no recipe reads any more; saved configurations of older runs may still hold them.
RETIRED_FIELDS = ("ce_weight",)
# Knobs renamed since: their old name in saved configurations -> their name now.
RENAMED_FIELDS = {"recipe": "augmentation"}
# Knobs added since whose default is not what older runs did: the value those runs had. (A knob
# whose default keeps the old behaviour needs no entry: a saved run without it counts as that.)
ADDED_FIELDS = {"n_val": 0}  # runs before the validation split held no images out


def current_names(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved configuration with every renamed knob under its name now (:data:`RENAMED_FIELDS`)."""
    return {RENAMED_FIELDS.get(name, name): value for name, value in saved.items()}


def get(kind: str) -> Recipe:
    """The recipe of ``kind``; an unknown kind is a ValueError listing the known ones."""
    if kind not in RECIPES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    return RECIPES[kind]


def ignored_fields(kind: str) -> tuple[str, ...]:
    """The ``Config`` fields that do not change a run of ``kind``: other recipes' own fields
    (and retired knobs). A run's identity is every other field."""
    own = set(get(kind).own_fields)
    others = [f for r in RECIPES.values() for f in r.own_fields if f not in own]
    return (*dict.fromkeys(others), *RETIRED_FIELDS)


def check(kind: str, cfg: Config) -> None:
    """Refuse a configuration that ``kind`` cannot train."""
    recipe = get(kind)
    if not cfg.use_labels and recipe.needs_labels:
        raise ValueError(f"use_labels=False (SimCLR) needs a contrastive kind; {kind} trains on "
                         "labels by cross-entropy")  # fmt: skip
    for rule in recipe.checks:
        rule(cfg)
