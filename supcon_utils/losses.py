"""Supervised contrastive loss (Khosla et al., NeurIPS 2020): L_out (eq. 2) and L_in (eq. 3).

Without labels it is the self-supervised SimCLR / NT-Xent loss (eq. 1): an anchor's only positives
are the other views of its own image. Under a ``tf.distribute`` strategy the contrast set is the
global batch, so every replica contrasts its anchors against all images, as on one device.
Optional extra, gradient-free contrast entries (a memory bank or a queue of momentum-encoder keys,
see ``supcon_utils.moco``) can be appended to the contrast set.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

VARIANTS = ("out", "in")
CONTRAST_MODES = ("all", "one")


def supcon_loss(
    features: tf.Tensor,
    labels: tf.Tensor | None = None,
    *,
    temperature: float = 0.1,
    variant: str = "out",
    contrast_mode: str = "all",
    base_temperature: float | None = None,
    contrast_features: tf.Tensor | None = None,
    contrast_labels: tf.Tensor | None = None,
) -> tf.Tensor:
    """Mean SupCon loss over the anchors that have at least one positive (0 if none has one).

    With z the L2-normalised features, A(i) every view but anchor i (plus the extra entries, if
    any), P(i) those of i's class:

    - ``variant="out"``, eq. 2:
      ``-1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t))``
    - ``variant="in"``, eq. 3:
      ``-log(1/|P(i)| sum_{p in P(i)} exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t))``

    Args:
        features: ``(batch, n_views, dim)`` floats; float64 is computed in float64, the rest in
            float32 (the result has that dtype).
        labels: ``(batch,)`` integer classes, or None for SimCLR.
        temperature: t > 0.
        variant: ``"out"`` or ``"in"``.
        contrast_mode: ``"all"`` (every view is an anchor) or ``"one"`` (only view 0 is).
        base_temperature: if given, the value is multiplied by ``temperature / base_temperature``
            as in the authors' PyTorch code.
        contrast_features: optional ``(n_extra, dim)`` floats appended to every anchor's contrast
            set A(i) (L2-normalised too), e.g. a memory bank or a queue of keys. They are constants
            (no gradient) and never anchors. ``n_extra = 0`` gives the loss without them. Under a
            ``tf.distribute`` strategy each replica passes the same extra entries (they are not
            gathered).
        contrast_labels: ``(n_extra,)`` integer classes of ``contrast_features``: required with
            ``labels`` (an extra entry of i's class is in P(i)), not allowed without (SimCLR: the
            extra entries are negatives of every anchor).

    Raises:
        ValueError: wrong rank or dtype, labels/batch length mismatch, temperature <= 0, unknown
            variant or contrast_mode, NaN or inf features; for the extra entries: a wrong rank or
            dtype, a dim other than the features', contrast_labels missing with labels (or given
            without labels or without contrast_features), a labels/rows length mismatch. Inside a
            traced graph the checks on values (NaN/inf, and the lengths when the batch size is
            unknown) can only fail when it runs, as ``InvalidArgumentError``; XLA
            (``jit_compile``) drops them.
    """
    _check_options(temperature, variant, contrast_mode, base_temperature)
    features, labels = _check_inputs(features, labels)
    contrast_features, contrast_labels = _check_extra(
        features, labels, contrast_features, contrast_labels
    )
    z = unit_rows(features)
    global_z, global_ids, local_ids, offset = _global_batch(z, labels)
    contrast, contrast_ids, extra_ids = _contrast_set(
        global_z, global_ids, contrast_features, contrast_labels
    )
    anchors, anchor_ids, anchor_index, anchor_views = _anchor_set(
        z, local_ids, contrast_mode, tf.shape(global_z)[0], offset
    )
    losses, valid = _anchor_losses(
        anchors, anchor_ids, anchor_index, contrast, contrast_ids, temperature, variant
    )
    loss = _mean_over_anchors(losses, valid, global_ids, extra_ids, tf.shape(z)[1], anchor_views)
    if base_temperature is not None:
        loss = loss * (temperature / base_temperature)
    return loss


class SupConLoss(keras.losses.Loss):
    """Keras wrapper of :func:`supcon_loss`: ``y_true`` are the labels, ``y_pred`` the features.

    ``y_true`` may come as ``(batch,)`` or ``(batch, 1)``; None gives the SimCLR loss. Unlike
    other Keras losses it does not cast the targets to the loss dtype, so integer labels stay
    exact (above 2**24 too). Float labels (Keras hands some over as floats, e.g. under a
    distribution strategy) must be whole numbers: a fractional one (``0.7``) raises ValueError
    when eager, InvalidArgumentError when the graph runs, rather than being truncated to a class.

    The value is a mean over anchors, not over images, so Keras' per-image ``sample_weight`` (and
    ``class_weight``, which Keras turns into one) has no meaning here: either raises
    ``ValueError``. To weight classes, draw class-balanced batches instead
    (``data.make_dataset(balanced=...)``).
    """

    def __init__(
        self,
        *,
        temperature: float = 0.1,
        variant: str = "out",
        contrast_mode: str = "all",
        base_temperature: float | None = None,
        name: str = "supcon_loss",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        _check_options(temperature, variant, contrast_mode, base_temperature)
        self.temperature = temperature
        self.variant = variant
        self.contrast_mode = contrast_mode
        self.base_temperature = base_temperature

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras' Loss.__call__ would cast the labels to float and weight a per-image vector;
        # the value here is already a scalar mean over anchors, so only the dtype is left to set.
        if sample_weight is not None:
            raise ValueError(
                "SupConLoss takes no sample_weight or class_weight: its value is a mean over "
                "anchors and their positives, not over images. Use class-balanced batches "
                "(data.make_dataset(balanced=...)) to weight classes."
            )
        with tf.name_scope(self.name):
            return tf.cast(self.call(y_true, y_pred), self.dtype)

    def call(self, y_true: tf.Tensor | None, y_pred: tf.Tensor) -> tf.Tensor:
        labels = None
        if y_true is not None:
            labels = tf.convert_to_tensor(y_true)
            if labels.shape.rank == 2 and labels.shape[-1] == 1:
                labels = tf.squeeze(labels, axis=-1)
            if not labels.dtype.is_integer:
                labels = _whole_number_labels(labels)
        loss = supcon_loss(
            y_pred,
            labels,
            temperature=self.temperature,
            variant=self.variant,
            contrast_mode=self.contrast_mode,
            base_temperature=self.base_temperature,
        )
        # Keras divides a loss by the number of replicas (then sums their gradients) only when
        # it reduces a vector of losses itself; it returns a scalar like this one untouched.
        ctx = tf.distribute.get_replica_context()
        return loss / (ctx.num_replicas_in_sync if ctx is not None else 1)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "variant": self.variant,
            "contrast_mode": self.contrast_mode,
            "base_temperature": self.base_temperature,
        }


def _global_batch(
    z: tf.Tensor, labels: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Stage 1: the batch every anchor is contrasted with (all replicas' under a strategy).

    Returns its unit features ``(global_batch, n_views, dim)``, each image's class there and in
    the local batch (the labels; for SimCLR, each image's index in the global batch, so an image
    is its own class), and where the local batch starts in the global one.
    """
    batch = tf.shape(z)[0]
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        global_z, global_labels, offset = _gather_batch(ctx, z, labels)
    else:
        global_z, global_labels, offset = z, labels, tf.constant(0)
    if labels is None:
        local_ids = tf.cast(offset + tf.range(batch), tf.int64)
        global_ids = tf.range(tf.cast(tf.shape(global_z)[0], tf.int64))
        return global_z, global_ids, local_ids, offset
    return global_z, global_labels, labels, offset


def _contrast_set(
    global_z: tf.Tensor,
    global_ids: tf.Tensor,
    contrast_features: tf.Tensor | None,
    contrast_labels: tf.Tensor | None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """Stage 2: every view of the global batch, view-major (all images' view 0, then view 1, ...,
    as the reference code), then the extra entries (unit, no gradient): the contrast set's rows,
    their classes, and the extra entries' classes (None without extra entries)."""
    dim = tf.shape(global_z)[2]
    contrast = tf.reshape(tf.transpose(global_z, [1, 0, 2]), [-1, dim])
    contrast_ids = tf.tile(global_ids, [tf.shape(global_z)[1]])
    if contrast_features is None:
        return contrast, contrast_ids, None
    if contrast_labels is None:  # SimCLR: -1 is no image's index, so every extra is a negative
        contrast_labels = tf.fill(tf.shape(contrast_features)[:1], tf.constant(-1, tf.int64))
    extra = tf.stop_gradient(unit_rows(contrast_features))
    contrast = tf.concat([contrast, extra], axis=0)
    return contrast, tf.concat([contrast_ids, contrast_labels], axis=0), contrast_labels


def _anchor_set(
    z: tf.Tensor, local_ids: tf.Tensor, contrast_mode: str, global_batch: tf.Tensor, offset
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | int]:
    """Stage 3: the anchors (every local view, or view 0 of each image), view-major, their
    classes, each one's own row in the contrast set (which is left out of its A(i)), and the
    anchor views per image."""
    batch, n_views, dim = tf.unstack(tf.shape(z))
    if contrast_mode == "all":
        anchors = tf.reshape(tf.transpose(z, [1, 0, 2]), [-1, dim])
        anchor_views = n_views
    else:
        anchors = z[:, 0]
        anchor_views = 1
    anchor_ids = tf.tile(local_ids, [anchor_views])
    anchor_index = tf.reshape(
        tf.range(anchor_views)[:, None] * global_batch + offset + tf.range(batch)[None, :], [-1]
    )
    return anchors, anchor_ids, anchor_index, anchor_views


def _mean_over_anchors(
    losses: tf.Tensor,
    valid: tf.Tensor,
    global_ids: tf.Tensor,
    extra_ids: tf.Tensor | None,
    n_views: tf.Tensor,
    anchor_views: tf.Tensor | int,
) -> tf.Tensor:
    """Stage 5: the mean of the anchors' losses over the anchors that have a positive.

    The convention for the others: an anchor with no positive (the only view of its class in the
    batch, with one view per image or ``contrast_mode="one"``) is left out of the mean, not
    counted as 0; a batch where no anchor has one has loss 0. Under a strategy the count is of
    the global batch's anchors, and the sum is scaled by the replicas, so that the mean over
    replicas Keras takes is the one-device value on the global batch.
    """
    total = tf.reduce_sum(losses)
    ctx = tf.distribute.get_replica_context()
    n_replicas = ctx.num_replicas_in_sync if ctx is not None else 1
    if n_replicas == 1:
        return total / tf.maximum(tf.reduce_sum(tf.cast(valid, total.dtype)), 1.0)
    # Anchors with a positive across all replicas: an image's anchor views have one iff its class
    # holds more than one view of the global batch (or an extra entry). Counted from the gathered
    # labels, so no second collective is needed.
    same = tf.equal(global_ids[:, None], global_ids[None, :])
    class_views = tf.reduce_sum(tf.cast(same, tf.int32), axis=1) * n_views
    has_positive = class_views > 1
    if extra_ids is not None:
        has_positive |= tf.reduce_any(global_ids[:, None] == extra_ids[None, :], axis=1)
    count = tf.cast(anchor_views * tf.reduce_sum(tf.cast(has_positive, tf.int32)), total.dtype)
    return total * n_replicas / tf.maximum(count, 1.0)


def _anchor_losses(
    anchors: tf.Tensor,
    anchor_ids: tf.Tensor,
    anchor_index: tf.Tensor,
    contrast: tf.Tensor,
    contrast_ids: tf.Tensor,
    temperature: float,
    variant: str,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Stage 4: per-anchor L_out (eq. 2) or L_in (eq. 3) terms from already-normalised vectors.

    ``anchor_index[k]`` is anchor k's own row in ``contrast`` (left out of A(k)). Returns the
    losses, 0 where an anchor has no positive, and the mask of anchors that have one.
    """
    logits = tf.matmul(anchors, contrast, transpose_b=True) / temperature
    others, positives = _contrast_masks(anchor_ids, anchor_index, contrast_ids)
    n_positives = tf.reduce_sum(tf.cast(positives, logits.dtype), axis=1)
    valid = n_positives > 0
    n_safe = tf.maximum(n_positives, 1.0)

    log_denominator = _masked_logsumexp(logits, others)
    if variant == "out":
        mean_positive_logit = tf.reduce_sum(tf.where(positives, logits, 0.0), axis=1) / n_safe
        losses = log_denominator - mean_positive_logit
    else:
        losses = log_denominator - _masked_logsumexp(logits, positives) + tf.math.log(n_safe)
    return tf.where(valid, losses, 0.0), valid


def positive_mask(labels: tf.Tensor, n_views: int) -> tf.Tensor:
    """P(i) of every view of a batch, as the loss builds it: ``(n_views * B, n_views * B)`` bool.

    Rows are anchors, columns the views they are contrasted with, both view-major (every image's
    view 0, then every image's view 1, ...): entry (i, j) is True when view j is a positive of
    anchor i, another view (never i itself) of the same class. ``labels`` are the B images'
    classes; for SimCLR pass ``range(B)``: without labels each image is its own class.
    """
    labels = tf.convert_to_tensor(labels)
    ids = tf.tile(labels, [n_views])
    return _contrast_masks(ids, tf.range(tf.shape(ids)[0]), ids)[1]


def positive_floor(labels: np.ndarray | Sequence[int], n_views: int = 2) -> float:
    """The lowest L_out a batch with these ``labels`` can reach: the mean over anchors of
    ``log |P(i)|``. At best every positive takes an equal share of the anchor's softmax and every
    other view none; so with labels the loss stays above 0 (without, every anchor has one
    positive and the floor is 0). An anchor with no positive (its class alone in the batch,
    one view) is left out, as the loss leaves it out."""
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    positives = n_views * counts - 1  # the other views of each class's images
    valid = positives > 0
    if not valid.any():
        raise ValueError("no anchor in this batch has a positive: the loss is undefined")
    return float(np.sum(counts[valid] * np.log(positives[valid])) / np.sum(counts[valid]))


def _contrast_masks(
    anchor_ids: tf.Tensor, anchor_index: tf.Tensor, contrast_ids: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """A(i) and P(i) of each anchor as ``(n_anchors, n_contrast)`` masks: every contrast entry
    but the anchor's own row ``anchor_index[i]``, and those of them with the anchor's class."""
    others = tf.range(tf.shape(contrast_ids)[0])[None, :] != anchor_index[:, None]  # A(i)
    positives = others & (anchor_ids[:, None] == contrast_ids[None, :])  # P(i)
    return others, positives


def _gather_batch(
    ctx: tf.distribute.ReplicaContext, z: tf.Tensor, labels: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor | None, tf.Tensor]:
    """The global batch's features and labels, and where the local shard starts in it.

    One ``all_gather`` of a packed tensor (features, then replica id and label bit-cast to the
    features' dtype): replicas match collectives by launch order, and separate gathers inside
    Keras' traced step were seen to launch in different orders on different replicas. The gather
    is differentiable: its gradient sums every replica's contribution back onto the local slice.
    Shards may differ in size (a last partial batch), so the offset is counted, not assumed.
    """
    batch, n_views, dim = tf.unstack(tf.shape(z))
    replica = ctx.replica_id_in_sync_group
    ids = tf.zeros([batch], tf.int64) if labels is None else labels
    # The replica id and the int64 label as words of the features' width: one word each for
    # float64, one and two for float32, so a label never wraps (2**32 stays apart from 0).
    if z.dtype == tf.float64:
        meta = tf.stack([tf.fill([batch], tf.cast(replica, tf.int64)), ids], axis=1)
    else:
        meta = tf.concat([tf.fill([batch, 1], tf.cast(replica, tf.int32)),
                          tf.bitcast(ids, tf.int32)], axis=1)  # fmt: skip
    width = meta.shape[-1]
    packed = tf.concat([tf.reshape(z, [batch, -1]), tf.bitcast(meta, z.dtype)], axis=1)
    gathered = ctx.all_gather(packed, axis=0)
    global_z = tf.reshape(gathered[:, :-width], [-1, n_views, dim])
    global_meta = tf.bitcast(tf.stop_gradient(gathered[:, -width:]), meta.dtype)
    offset = tf.reduce_sum(tf.cast(global_meta[:, 0] < tf.cast(replica, meta.dtype), tf.int32))
    if labels is None:
        return global_z, None, offset
    words = global_meta[:, 1:]
    global_labels = words[:, 0] if z.dtype == tf.float64 else tf.bitcast(words, tf.int64)
    return global_z, global_labels, offset


def _masked_logsumexp(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Row-wise log sum_{mask} exp(x), and 0 for rows with an empty mask.

    The max is taken over the masked entries only: subtracting a max that includes the anchor
    itself (logit 1/t) would underflow every term to 0 at t = 0.01 when the anchor is far from
    all others. Masking before exp keeps exp(2/t) from overflowing to inf (and inf * 0 = NaN).
    """
    any_entry = tf.reduce_any(mask, axis=1)
    x = tf.where(mask, x, x.dtype.min)
    row_max = tf.stop_gradient(tf.where(any_entry, tf.reduce_max(x, axis=1), 0.0))
    total = tf.reduce_sum(tf.exp(x - row_max[:, None]), axis=1)
    return tf.math.log(tf.where(any_entry, total, 1.0)) + row_max


def _check_options(
    temperature: float, variant: str, contrast_mode: str, base_temperature: float | None
) -> None:
    if not _positive_number(temperature):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if base_temperature is not None and not _positive_number(base_temperature):
        raise ValueError(
            f"base_temperature must be a finite number > 0 or None, got {base_temperature!r}"
        )
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    if contrast_mode not in CONTRAST_MODES:
        raise ValueError(
            f"unknown contrast_mode {contrast_mode!r}; expected one of {CONTRAST_MODES}"
        )


def _positive_number(value: object) -> bool:
    """A real, finite number > 0 (a Python or numpy scalar; not a bool, a string or a tensor)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(value) and value > 0


def unit_rows(x: tf.Tensor) -> tf.Tensor:
    """``x / ||x||`` along the last axis, for features of any finite scale.

    ``tf.math.l2_normalize`` squares the entries: in float32 the sum overflows above ~1e19 and
    its floor (1e-12 under the square root) takes over below ~1e-6, and either way the loss sits
    at ln(2N-1) with a zero gradient. Each row is first divided by its largest magnitude (held
    constant for the gradient: the direction does not depend on it), so the squares lie in
    [0, 1]. An all-zero row has no direction: it stays the zero vector, similarity 0 to every
    view, with a finite gradient. The gradient with respect to the features scales as 1 / their
    norm and takes their dtype: for float16 features of norm below about 1e-5 it is beyond
    float16's largest value (65504) and comes out infinite, as the exact value would; keep such
    features in float32 (Keras' mixed precision computes losses in float32).
    """
    largest = tf.stop_gradient(tf.reduce_max(tf.abs(x), axis=-1, keepdims=True))
    return tf.math.l2_normalize(x / tf.where(largest > 0, largest, tf.ones_like(largest)), axis=-1)


def _check_inputs(
    features: tf.Tensor, labels: tf.Tensor | None
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """Validate shapes and values; cast features to the compute dtype and labels to int64."""
    features = tf.convert_to_tensor(features)
    if not features.dtype.is_floating:
        raise ValueError(f"features must be floating point, got {features.dtype.name}")
    if features.shape.rank != 3:
        raise ValueError(
            f"features must have rank 3 (batch, n_views, dim), got shape {features.shape}"
        )
    # Half precision would overflow exp(1/t) at small t; float64 stays float64 for reference use.
    features = tf.cast(features, tf.float64 if features.dtype == tf.float64 else tf.float32)
    features = _assert_finite(features, "features contain NaN or inf")

    if labels is None:
        return features, None
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank != 1:
        raise ValueError(f"labels must have rank 1 (batch,), got shape {labels.shape}")
    if not labels.dtype.is_integer:
        raise ValueError(
            f"labels must be integers, got {labels.dtype.name}: cast them (a float label such "
            "as 0.7 has no class; truncating it would silently give class 0)"
        )
    labels = _assert_same_length(
        labels,
        features,
        "labels have length {} but features have batch {}",
        "labels length differs from the features' batch size",
    )
    return features, tf.cast(labels, tf.int64)


def _check_extra(
    features: tf.Tensor,
    labels: tf.Tensor | None,
    contrast_features: tf.Tensor | None,
    contrast_labels: tf.Tensor | None,
) -> tuple[tf.Tensor | None, tf.Tensor | None]:
    """Validate the extra contrast entries; cast them to the features' dtype and int64."""
    if contrast_features is None:
        if contrast_labels is not None:
            raise ValueError("contrast_labels given without contrast_features")
        return None, None
    contrast_features = tf.convert_to_tensor(contrast_features)
    if not contrast_features.dtype.is_floating:
        raise ValueError(
            f"contrast_features must be floating point, got {contrast_features.dtype.name}"
        )
    if contrast_features.shape.rank != 2:
        raise ValueError(f"contrast_features must have rank 2 (n_extra, dim), got shape "
                         f"{contrast_features.shape}")  # fmt: skip
    dim, extra_dim = features.shape[-1], contrast_features.shape[-1]
    if dim is not None and extra_dim is not None and dim != extra_dim:
        raise ValueError(f"contrast_features have dim {extra_dim} but features have dim {dim}")
    contrast_features = _assert_finite(
        tf.cast(contrast_features, features.dtype), "contrast_features contain NaN or inf"
    )

    if labels is None:
        if contrast_labels is not None:
            raise ValueError(
                "contrast_labels given without labels: without labels (SimCLR) every extra entry "
                "is a negative"
            )
        return contrast_features, None
    if contrast_labels is None:
        raise ValueError("contrast_labels are required with labels and contrast_features")
    contrast_labels = tf.convert_to_tensor(contrast_labels)
    if contrast_labels.shape.rank != 1:
        raise ValueError(
            f"contrast_labels must have rank 1 (n_extra,), got shape {contrast_labels.shape}"
        )
    if not contrast_labels.dtype.is_integer:
        raise ValueError(f"contrast_labels must be integers, got {contrast_labels.dtype.name}")
    contrast_labels = _assert_same_length(
        contrast_labels,
        contrast_features,
        "contrast_labels have length {} but contrast_features have {} rows",
        "contrast_labels length differs from the number of contrast_features",
    )
    return contrast_features, tf.cast(contrast_labels, tf.int64)


def _assert_finite(x: tf.Tensor, message: str) -> tf.Tensor:
    """``x``, checked for NaN and inf: a ValueError now when eager, else when the graph runs."""
    return _assert_all(tf.reduce_all(tf.math.is_finite(x)), x, message)


def _whole_number_labels(labels: tf.Tensor) -> tf.Tensor:
    """Float labels as int64 classes, checked to be whole numbers (0.7 is no class id)."""
    if not labels.dtype.is_floating:
        raise ValueError(f"labels must be integers, got {labels.dtype.name}")
    whole = tf.reduce_all(tf.equal(labels, tf.round(labels)))
    message = "labels must be whole numbers (class ids), got a fractional float label"
    return tf.cast(_assert_all(whole, labels, message), tf.int64)


def _assert_all(condition: tf.Tensor, x: tf.Tensor, message: str) -> tf.Tensor:
    """``x`` if ``condition`` holds: a ValueError now when eager, else when the graph runs."""
    if tf.executing_eagerly():
        if not bool(condition):
            raise ValueError(message)
        return x
    # A graph can only fail at run time (InvalidArgumentError; XLA drops the check). Assert,
    # unlike check_numerics, adds nothing to the backward pass, where a mixed-precision loss
    # scale may legitimately overflow.
    with tf.control_dependencies([tf.debugging.Assert(condition, [message])]):
        return tf.identity(x)


def _assert_same_length(
    x: tf.Tensor, reference: tf.Tensor, message: str, run_time_message: str
) -> tf.Tensor:
    """``x``, checked to have as many rows as ``reference``.

    A ValueError (``message`` formatted with both lengths) when both are known now, else an
    assertion (``run_time_message``) when the graph runs.
    """
    n, expected = x.shape[0], reference.shape[0]
    if n is not None and expected is not None:
        if n != expected:
            raise ValueError(message.format(n, expected))
        return x
    # Keras traces with an unknown batch size: check when the graph runs.
    check = tf.debugging.assert_equal(tf.shape(x)[0], tf.shape(reference)[0], run_time_message)
    with tf.control_dependencies([check]):
        return tf.identity(x)
