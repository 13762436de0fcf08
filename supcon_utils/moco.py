"""SupCon with a momentum encoder and a queue of keys (MoCo-style updates).

MoCo (He et al., CVPR 2020) decouples the number of contrasted samples from the batch size: a *key*
encoder, an exponential moving average (EMA) of the trained *query* encoder, embeds every batch
once more, and those keys go into a first-in first-out queue that later batches contrast against.
The EMA keeps the keys of recent batches consistent with each other although the query encoder
changes at every step. Khosla et al. (2020) tried this memory-based variant of SupCon too: with a
memory bank of 8192 keys at batch size 256 it reached 79.1% top-1 on ImageNet.

This module's version, :class:`MoCoSupConModel`:

- The anchors are the query projections of every view of the batch. Their contrast set is the
  batch's query projections, with gradients, exactly as in plain SupCon, plus the queue's keys
  as extra, gradient-free entries (``supcon_loss(..., contrast_features=, contrast_labels=)``).
  Positives are the entries of the anchor's class, in the batch and in the queue alike. So with an
  empty queue the loss *is* ``supcon_loss``, and the queue only adds entries to A(i) and P(i).
  Without labels, queue entries are negatives only (the MoCo case; the positive is the other view).
- After the gradient step, the key encoder and head move towards the query ones,
  ``key = m * key + (1 - m) * query``, in every variable, batch-norm moving statistics included;
  then they embed the batch's views, whose keys and labels are enqueued, oldest overwritten. The
  current batch's keys thus only meet later batches.
- As MoCo's key encoder, the key networks run their batch norm on batch statistics; their own
  moving-statistic updates are discarded (``keras.StatelessScope``), so the EMA alone sets them.
  MoCo shuffles batch norm across GPUs so that a query cannot find its own key through batch
  statistics; here no key of the current batch is in its loss, so there is nothing to hide.

The default momentum is 0.99 rather than MoCo's 0.999: the EMA remembers about ``1 / (1 - m)``
steps, and this project's CPU runs last a few hundred to a few thousand steps, during which a key
encoder at 0.999 would stay close to its random initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from supcon_utils import losses, models


class KeyQueue(keras.Layer):
    """First-in first-out queue of the last ``size`` keys (``dim``-d vectors) and their labels.

    Three non-trainable variables, saved with the model: ``keys`` ``(size, dim)``, ``labels``
    ``(size,)`` and ``n_enqueued``, the number of keys ever enqueued. Key number ``j`` sits in slot
    ``j % size``; the filled slots are ``min(n_enqueued, size)``.
    """

    def __init__(self, size: int, dim: int, **kwargs) -> None:
        if not size > 0:
            raise ValueError(f"queue_size must be > 0, got {size}")
        super().__init__(**kwargs)
        self.size = int(size)
        self.dim = int(dim)
        self.keys = self.add_weight(
            shape=(self.size, self.dim), dtype="float32", initializer="zeros", trainable=False,
            name="keys",
        )  # fmt: skip
        self.labels = self.add_weight(
            shape=(self.size,), dtype="int64", initializer="zeros", trainable=False, name="labels"
        )
        self.n_enqueued = self.add_weight(
            shape=(), dtype="int64", initializer="zeros", trainable=False, name="n_enqueued"
        )
        self.built = True

    def filled(self) -> tf.Tensor:
        """How many slots hold a key: ``min(n_enqueued, size)``."""
        return tf.minimum(self.n_enqueued.value, self.size)

    def contents(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The filled slots' keys ``(filled, dim)`` and labels ``(filled,)``, oldest first."""
        filled = self.filled()
        slots = (self.n_enqueued.value - filled + tf.range(filled)) % self.size
        return tf.gather(self.keys.value, slots), tf.gather(self.labels.value, slots)

    def enqueue(self, keys: tf.Tensor, labels: tf.Tensor) -> None:
        """Append ``keys`` ``(n, dim)`` and ``labels`` ``(n,)`` in order, overwriting the oldest.

        With ``n > size`` only the last ``size`` remain, as if enqueued one by one.
        """
        keys = tf.cast(keys, tf.float32)
        labels = tf.cast(labels, tf.int64)
        if keys.shape.rank != 2 or keys.shape[-1] != self.dim:
            raise ValueError(f"keys must have shape (n, {self.dim}), got {keys.shape}")
        if labels.shape.rank != 1:
            raise ValueError(f"labels must have rank 1 (n,), got shape {labels.shape}")
        if None not in (keys.shape[0], labels.shape[0]) and keys.shape[0] != labels.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {keys.shape[0]} keys")
        n = tf.shape(keys, out_type=tf.int64)[0]
        kept = tf.minimum(n, self.size)
        # Key j of the n goes to slot (n_enqueued + j) % size; the last `kept` are distinct slots.
        slots = ((self.n_enqueued.value + n - kept + tf.range(kept)) % self.size)[:, None]
        self.keys.assign(tf.tensor_scatter_nd_update(self.keys.value, slots, keys[n - kept :]))
        self.labels.assign(
            tf.tensor_scatter_nd_update(self.labels.value, slots, labels[n - kept :])
        )
        self.n_enqueued.assign_add(n)


class MoCoSupConModel(keras.Model):
    """SupCon with a momentum (EMA) key encoder and a queue of keys; see the module docstring.

    Trained by ``fit`` on ``(views, labels)`` with views ``(batch, n_views, H, W, C)``, as
    ``models.SupConModel`` is (``data.make_dataset(..., n_views=2)``); labels ``None`` give the
    self-supervised variant. The loss is built in: ``compile`` needs only the optimizer.
    ``evaluate`` reports the loss with the current queue and changes nothing. Calling the model
    gives the query projections. ``queue_size`` counts key vectors: a step enqueues
    ``batch * n_views``. One device only: the queue is not synchronised across replicas.
    ``jit_compile=True`` works (XLA bounds the queue's filled size by ``queue_size``), but
    compiling the step takes minutes on a CPU.

    Args:
        encoder, head: the query networks, trained by the optimizer. The key networks are clones
            (``key_encoder``, ``key_head``) starting with the same weights; their variables are
            non-trainable, while their layers stay trainable so batch norm uses batch statistics.
        queue_size: K > 0, the number of keys kept.
        momentum: m in [0, 1); 0 copies the query networks at every step.
        temperature, variant: as in :func:`losses.supcon_loss`.
    """

    def __init__(
        self,
        encoder: keras.Model,
        head: keras.Model,
        *,
        queue_size: int = 4096,
        momentum: float = 0.99,
        temperature: float = 0.1,
        variant: str = "out",
        **kwargs,
    ) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        losses._check_options(temperature, variant, "all", None)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            raise ValueError(
                f"MoCoSupConModel runs on one device, but the strategy has {replicas} replicas: "
                "its queue and key networks are not synchronised across replicas"
            )
        queue = KeyQueue(queue_size, head.output_shape[-1], name="queue")  # checks queue_size
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = head
        self.key_encoder = _momentum_copy(encoder)
        self.key_head = _momentum_copy(head)
        self.queue = queue
        self.momentum = float(momentum)
        self.temperature = temperature
        self.variant = variant
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.built = encoder.built and head.built  # BackupAndRestore needs it before fit

    def call(self, views: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Query projections ``(batch, n_views, dim)`` of views ``(batch, n_views, H, W, C)``."""
        return _project(self.encoder, self.head, views, training)

    def key_projections(self, views: tf.Tensor) -> tf.Tensor:
        """Key projections of views, without gradient and leaving every variable unchanged."""
        with keras.StatelessScope():  # drops batch norm's moving-statistic updates
            keys = _project(self.key_encoder, self.key_head, views, training=True)
        return tf.stop_gradient(keys)

    def loss_with_queue(self, projections: tf.Tensor, labels: tf.Tensor | None) -> tf.Tensor:
        """SupCon loss of ``projections`` ``(batch, n_views, dim)`` against batch and queue.

        The queue contributes its filled entries only; without labels they are negatives.
        """
        keys, key_labels = self.queue.contents()
        return losses.supcon_loss(
            projections,
            labels,
            temperature=self.temperature,
            variant=self.variant,
            contrast_features=keys,
            contrast_labels=None if labels is None else key_labels,
        )

    def update_key_networks(self) -> None:
        """``key = m * key + (1 - m) * query`` for every variable, moving statistics included."""
        query = self.encoder.weights + self.head.weights
        key = self.key_encoder.weights + self.key_head.weights
        for q, k in zip(query, key, strict=True):
            k.assign(self.momentum * k.value + (1.0 - self.momentum) * q.value)

    def train_step(self, data) -> dict[str, tf.Tensor]:
        views, labels = _unpack(data)
        query_variables = self.encoder.trainable_variables + self.head.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.loss_with_queue(self(views, training=True), labels)
        self.optimizer.apply(tape.gradient(loss, query_variables), query_variables)
        self.update_key_networks()
        keys = self.key_projections(views)
        if labels is None:  # self-supervised: the queue's labels are never read
            labels = tf.fill(tf.shape(keys)[:1], tf.constant(-1, tf.int64))
        n_views = tf.shape(keys)[1]
        self.queue.enqueue(tf.reshape(keys, [-1, keys.shape[-1]]), tf.repeat(labels, n_views))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data) -> dict[str, tf.Tensor]:
        views, labels = _unpack(data)
        self.loss_tracker.update_state(self.loss_with_queue(self(views), labels))
        return {"loss": self.loss_tracker.result()}

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker]


def moco_supcon_model(
    encoder: str, input_shape: Sequence[int], *, projection_dim: int = 128, **options: Any
) -> MoCoSupConModel:
    """A :class:`MoCoSupConModel` on ``models.build_encoder(encoder, input_shape)``.

    The head is the paper's projection head; ``options`` go to the model (``queue_size``,
    ``momentum``, ``temperature``, ``variant``).
    """
    query_encoder = models.build_encoder(encoder, input_shape)
    head = models.projection_head(query_encoder.output_shape[-1], output_dim=projection_dim)
    return MoCoSupConModel(query_encoder, head, **options)


def _momentum_copy(model: keras.Model) -> keras.Model:
    """A clone of ``model`` with its weights, every variable marked non-trainable."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for variable in copy.weights:
        variable.trainable = False
    return copy


def _project(
    encoder: keras.Model, head: keras.Model, views: tf.Tensor, training: bool
) -> tf.Tensor:
    """Projections ``(batch, n_views, dim)``: all views through the networks as one batch."""
    if len(views.shape) != 5:
        raise ValueError(
            f"MoCoSupConModel takes views (batch, n_views, H, W, C), got shape {tuple(views.shape)}"
        )
    n_views = views.shape[1] or ops.shape(views)[1]
    images = ops.reshape(views, (-1, *views.shape[2:]))
    projections = head(encoder(images, training=training), training=training)
    return ops.reshape(projections, (-1, n_views, projections.shape[-1]))


def _unpack(data) -> tuple[tf.Tensor, tf.Tensor | None]:
    views, labels, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if sample_weight is not None:
        raise ValueError("MoCoSupConModel does not support sample weights")
    return views, labels
