"""Encoders, heads and the SupCon model (Khosla et al., 2020, Sec. 3 and App. B).

An encoder maps float images in [0, 1] to a representation vector; the projection head maps that
to the L2-normalised vector the SupCon loss contrasts; a linear classifier on the frozen encoder
measures the representation. `SupConModel` joins encoder and head for `model.fit`.

Design of `SupConModel`: it overrides `call`, which folds the views of a batch
`(batch, n_views, H, W, C)` into the batch axis, runs the encoder and head once on all
`batch * n_views` images (so batch norm sees every view, as in the reference code) and unfolds the
projections to `(batch, n_views, dim)`. Keras' own `train_step`/`test_step` then apply the compiled
`SupConLoss` to `(labels, projections)`, so `fit`, `evaluate`, callbacks, the loss metric,
`jit_compile` and `tf.distribute` strategies work unchanged. The views normally come from the
`tf.data` pipeline (`data.make_dataset`), outside the XLA-compiled step: on a CPU that overlaps
augmentation with training, and random erasing has no static shape for XLA. Given an `augmenter`,
the model instead takes plain `(images, labels)` and makes the views in the step itself, without
XLA.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf
from keras import layers, ops

from supcon_utils import augment, losses

# PyTorch's default (its momentum 0.1): Keras' 0.99 leaves the inference statistics far behind
# the weights in the few hundred steps of a CPU run.
BN_MOMENTUM = 0.9


def resnet_small(
    input_shape: Sequence[int] = (28, 28, 1),
    widths: Sequence[int] = (32, 64, 128),
    blocks_per_stage: int = 1,
) -> keras.Model:
    """A small residual encoder for 28x28 images on a CPU: ~10 MMAC and 0.3 M parameters.

    A 3x3 stem at full resolution (cheap with one input channel), then one stage per width, each
    starting with a stride-2 basic block (28 -> 14 -> 7 -> 4), then global average pooling to a
    `widths[-1]`-d vector. Only XLA-compatible layers.
    """
    return _resnet(input_shape, widths, [blocks_per_stage] * len(widths),
                   strides=[2] * len(widths), name="resnet_small")  # fmt: skip


def resnet18_cifar(input_shape: Sequence[int] = (32, 32, 3)) -> keras.Model:
    """ResNet-18 as used for CIFAR by the paper's code: 3x3 stem, no max-pool, 512-d output."""
    return _resnet(input_shape, (64, 128, 256, 512), (2, 2, 2, 2), strides=(1, 2, 2, 2),
                   name="resnet18_cifar")  # fmt: skip


def resnet50v2(input_shape: Sequence[int] = (32, 32, 3)) -> keras.Model:
    """Keras' ResNet-50 v2, randomly initialised, average-pooled to a 2048-d output."""
    height, width = int(input_shape[0]), int(input_shape[1])
    if min(height, width) < 32:
        # Its five stride-2 stages would shrink smaller images to nothing.
        raise ValueError(f"resnet50v2 needs images of at least 32x32, got {tuple(input_shape)}")
    return keras.applications.ResNet50V2(
        include_top=False, weights=None, input_shape=tuple(input_shape), pooling="avg"
    )


ENCODERS: dict[str, Callable[[Sequence[int]], keras.Model]] = {
    "resnet_small": resnet_small,
    "resnet18_cifar": resnet18_cifar,
    "resnet50v2": resnet50v2,
}


def build_encoder(name: str, input_shape: Sequence[int]) -> keras.Model:
    """The encoder called `name` (a key of `ENCODERS`) for images of `input_shape` `(H, W, C)`."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}")
    return ENCODERS[name](tuple(int(d) for d in input_shape))


def projection_head(
    input_dim: int, hidden_dim: int | None = None, output_dim: int = 128
) -> keras.Model:
    """The MLP of the paper: Dense-ReLU-Dense, output L2-normalised onto the unit hypersphere.

    `hidden_dim` defaults to `input_dim`, as in the reference code (2048 for ResNet-50).
    """
    inputs = keras.Input((input_dim,))
    x = layers.Dense(hidden_dim or input_dim, activation="relu")(inputs)
    x = layers.Dense(output_dim)(x)
    return keras.Model(inputs, layers.UnitNormalization()(x), name="projection_head")


def linear_classifier(input_dim: int, n_classes: int) -> keras.Model:
    """One Dense layer from features to class logits (use a `from_logits=True` loss)."""
    inputs = keras.Input((input_dim,))
    return keras.Model(inputs, layers.Dense(n_classes)(inputs), name="linear_classifier")


def count_macs(model: keras.Model, types: tuple[type, ...] = (layers.Conv2D, layers.Dense)) -> int:
    """Multiply-accumulates of one forward pass for one input, from Conv2D and Dense shapes.

    Batch norm, activations, additions and pooling are left out (a few percent of a ResNet).
    Works on functional models, nested ones included; FLOPs are about twice the MACs. `types`
    narrows the count, e.g. to `(keras.layers.Conv2D,)` for the convolutions alone.
    """
    total = 0
    for layer in _flatten(model):
        if isinstance(layer, types):
            # kernel: (kh, kw, in/groups, out) or (in, out); once per output position.
            positions = math.prod(layer.output.shape[1:-1])
            total += positions * math.prod(layer.kernel.shape)
    return total


class SupConModel(keras.Model):
    """Encoder + projection head, trained by `fit` on `(views, labels)` with `SupConLoss`.

    `views` are `(batch, n_views, H, W, C)` floats, made by the `tf.data` pipeline. Given an
    `augmenter` (e.g. `augment.augmenter(...)`), the model also accepts plain images
    `(batch, H, W, C)` and makes `n_views` views of them itself, in `fit` and `evaluate` alike
    (the loss needs views). That puts augmentation in the train step: `jit_compile=True` is then
    refused unless every augmenter layer supports XLA (this package's `RandomErasing` does
    not), and under a `tf.distribute` strategy every replica draws the same random numbers.
    Labels `None` (a dataset of views only) gives the self-supervised SimCLR loss.
    """

    def __init__(
        self,
        encoder: keras.Model,
        head: keras.Model,
        *,
        augmenter: keras.Layer | None = None,
        n_views: int = 2,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head
        self.augmenter = augmenter
        self.n_views = n_views
        # No weights of its own, and encoder and head come built: built now, as BackupAndRestore
        # requires before `fit`.
        self.built = encoder.built and head.built

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Projections `(batch, n_views, dim)` of views `(batch, n_views, H, W, C)`."""
        images, n_views = self._fold_views(inputs)
        projections = self.head(self.encoder(images, training=training), training=training)
        return _unfold(projections, n_views)

    def _fold_views(self, inputs: tf.Tensor) -> tuple[tf.Tensor, int | tf.Tensor]:
        """The views of `inputs` as one batch `(batch * n_views, H, W, C)`, and `n_views`."""
        rank = len(inputs.shape)
        if rank == 4 and self.augmenter is not None:
            inputs = augment.make_views(inputs, self.augmenter, self.n_views)
        elif rank != 5:
            raise ValueError(
                f"{type(self).__name__} takes views (batch, n_views, H, W, C), or images "
                f"(batch, H, W, C) when given an augmenter; got shape {tuple(inputs.shape)}"
            )
        n_views = inputs.shape[1] or ops.shape(inputs)[1]
        return ops.reshape(inputs, (-1, *inputs.shape[2:])), n_views

    def compile(
        self, optimizer="adam", loss=None, *, jit_compile: bool | str = "auto", **kwargs
    ) -> None:
        """`keras.Model.compile` with `loss` defaulting to `SupConLoss()` (L_out, t = 0.1).

        Refuses `jit_compile=True` with an augmenter that XLA can't run, rather than letting Keras
        quietly fall back to no XLA.
        """
        if jit_compile is True and self.augmenter is not None:
            refusing = [layer.name for layer in _flatten(self.augmenter) if not layer.supports_jit]
            if refusing:
                raise ValueError(
                    f"jit_compile=True: augmenter layers {refusing} do not support XLA. Make the "
                    "views in the tf.data pipeline (data.make_dataset) or use jit_compile=False."
                )
        super().compile(
            optimizer,
            loss if loss is not None else losses.SupConLoss(),
            jit_compile=jit_compile,
            **kwargs,
        )


class HybridModel(SupConModel):
    """SupCon on the projection head plus cross-entropy on a classifier of the same features.

    `call` returns `{"projection": (batch, n_views, dim), "logits": (batch, n_views, classes)}`;
    compile it with a loss per output and `loss_weights` (see `training`), and feed labels as
    `{"projection": labels, "logits": labels repeated per view}`. With `stop_gradient=True` the
    cross-entropy trains the classifier only, not the encoder: SupCon pretraining with a linear
    probe fitted online, in the same pass.
    """

    def __init__(
        self,
        encoder: keras.Model,
        head: keras.Model,
        classifier: keras.Model,
        *,
        stop_gradient: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(encoder, head, **kwargs)
        self.classifier = classifier
        self.stop_gradient = stop_gradient
        self.built = self.built and classifier.built

    def call(self, inputs: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Projections and class logits of every view."""
        images, n_views = self._fold_views(inputs)
        features = self.encoder(images, training=training)
        projections = self.head(features, training=training)
        if self.stop_gradient:
            features = ops.stop_gradient(features)
        logits = self.classifier(features, training=training)
        return {"projection": _unfold(projections, n_views), "logits": _unfold(logits, n_views)}


def _unfold(x: tf.Tensor, n_views: int | tf.Tensor) -> tf.Tensor:
    """`(batch * n_views, dim)` back to `(batch, n_views, dim)`."""
    return ops.reshape(x, (-1, n_views, x.shape[-1]))


def _resnet(
    input_shape: Sequence[int],
    widths: Sequence[int],
    blocks: Sequence[int],
    strides: Sequence[int],
    name: str,
) -> keras.Model:
    """A ResNet (v1, basic blocks) with a 3x3 stem and no max-pool, for small images."""
    inputs = keras.Input(tuple(input_shape))
    x = _conv_bn(inputs, widths[0], 3, 1, relu=True)
    for width, n_blocks, stride in zip(widths, blocks, strides, strict=True):
        for i in range(n_blocks):
            x = _basic_block(x, width, stride if i == 0 else 1)
    outputs = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name=name)


def _basic_block(x: keras.KerasTensor, width: int, stride: int) -> keras.KerasTensor:
    """Two 3x3 convolutions plus a shortcut, a 1x1 projection when the shape changes."""
    shortcut = x
    if stride != 1 or x.shape[-1] != width:
        shortcut = _conv_bn(x, width, 1, stride, relu=False)
    y = _conv_bn(x, width, 3, stride, relu=True)
    y = _conv_bn(y, width, 3, 1, relu=False)
    return layers.ReLU()(layers.Add()([shortcut, y]))


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, stride: int, *, relu: bool
) -> keras.KerasTensor:
    # No conv bias: batch norm's offset replaces it. He init suits the ReLUs. Built under a
    # strategy of several replicas, batch norm takes its statistics over the global batch, as on
    # one device (and as SupCon's loss contrasts the global batch); on one device it is unchanged.
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_initializer="he_normal")(x)  # fmt: skip
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    x = FusedBatchNormalization(momentum=BN_MOMENTUM, synchronized=replicas > 1)(x)
    return layers.ReLU()(x) if relu else x


@keras.saving.register_keras_serializable(package="supcon_utils")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' `BatchNormalization`, trained through TensorFlow's fused kernel.

    Keras 3 normalises a batch with about ten separate ops (moments, then scale and shift, and as
    many in the gradient); `make bench`'s breakdown found them 29% of a SupCon step's op time.
    The fused op computes the same thing in one pass (2.4x faster forward and backward, measured
    here). Same statistics, update rule and inference path as Keras' (the moving variance takes
    the biased batch variance; tests/test_models.py compares them to float32 round-off). Keras'
    own path runs when synchronised across replicas, masked, renormalised, without scale or
    offset, or not NHWC.
    """

    def call(self, inputs, training=None, mask=None):
        if (not (training and self.trainable) or self.synchronized or mask is not None
                or self.renorm or not (self.scale and self.center) or len(inputs.shape) != 4
                or self.axis not in (3, -1)):  # fmt: skip
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        # The op returns the unbiased variance (for TensorFlow's own moving average); Keras
        # averages the biased one.
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
        variance = variance * (n - 1.0) / n
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(y, self.compute_dtype)


def _flatten(layer: keras.Layer) -> list[keras.Layer]:
    """`layer` and every layer nested in it (models in models, layers wrapping layers)."""
    # Keras' own walk (its jit_compile="auto" check uses it); `.layers` misses wrapped layers.
    return list(layer._flatten_layers(include_self=True, recursive=True))
