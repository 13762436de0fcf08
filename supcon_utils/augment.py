"""Contrastive view augmentation: two (or more) random views of every image.

The paper (Sec. 3 and App. B) and its reference code use SimCLR's augmentation: random resized crop,
horizontal flip, colour jitter applied with probability 0.8, grayscale with probability 0.2.
`augmenter("color32", ...)` is that augmentation for 32x32 colour images; `augmenter("grayscale28",
...)` is a milder variant for 28x28 grayscale clothing (Fashion-MNIST), whose items are centred
and scale-normalised, so that crops keep most of the garment and colour jitter reduces to
brightness and contrast, plus random erasing as a second occlusion-like cue.

Every random choice is a pure function of a key. In the training pipeline (`data.make_dataset`)
an image's key is `(seed, epoch, image index)` and each view adds its number, so the views of an
image are the same whatever batch it lands in, whatever order parallel `map` calls run in, and
whether the run was resumed. The draws come from a counter-based hash of the key (SplitMix64),
computed for the whole batch at once: each op still runs once per batch, on every image with its
own parameters. The layers keep the distributions of the Keras layers they replace
(`RandomFlip`, `RandomColorJitter`, `RandomErasing`, `RandomGrayscale`; tests/test_augment.py
compares them), and each is an ordinary Keras layer: called without keys it draws fresh keys from
its seeded generator, as any Keras preprocessing layer does.

Images are float32 in [0, 1] (uint8 inputs are scaled on the way in) and keep their shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

AUGMENTATIONS = ("grayscale28", "color32")


def augmenter(
    augmentation: str, image_shape: Sequence[int], *, seed: int | None = None
) -> keras.Sequential:
    """Build the view augmenter `augmentation` (one of :data:`AUGMENTATIONS`) for images of
    `image_shape` `(H, W, C)`.

    Its layers are `KeyedLayer`s. Called as a Keras model (`augmenter(images)`), each layer draws
    from its own generator, seeded `seed, seed + 1, ...`; `make_views(..., keys=)` drives them by
    per-image keys instead.
    """
    height, width, channels = (int(d) for d in image_shape)
    # One shared seed would make the layers' streams identical (flip exactly when the crop is
    # small), hence seed, seed + 1, ...
    seeds = itertools.count(seed) if seed is not None else itertools.repeat(None)
    if augmentation == "grayscale28":
        layers = [
            RandomResizedCrop(scale=(0.6, 1.0), ratio=(0.8, 1.25), seed=next(seeds)),
            RandomFlip(seed=next(seeds)),
            RandomColorJitter(brightness=0.2, contrast=(1.0, 1.4), rate=0.8, seed=next(seeds)),
            RandomErasing(rate=0.25, scale=(0.02, 0.15), seed=next(seeds)),
        ]
    elif augmentation == "color32":
        if channels != 3:
            raise ValueError(
                f"augmentation 'color32' needs 3 channels, got image_shape={image_shape}"
            )
        layers = [
            RandomResizedCrop(scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), seed=next(seeds)),
            RandomFlip(seed=next(seeds)),
            # torchvision's ColorJitter(0.4, 0.4, 0.4, 0.1) in Keras' units: brightness is
            # additive here (multiplicative there), so +-0.2 matches x[0.6, 1.4] at mid-grey;
            # saturation f maps to a multiplier f / (1 - f), so (0.375, 0.583) is x[0.6, 1.4];
            # Keras halves the hue factor, so (0, 0.2) shifts hue by up to +-0.1. Contrast: these
            # augmentations were made with Keras' RandomColorJitter(contrast_factor=0.4), which
            # draws x U(1, 1.4), not torchvision's x U(0.6, 1.4) (Keras clips the factor's lower
            # bound at 0); they keep the distribution they were trained and tuned with.
            RandomColorJitter(
                brightness=0.2,
                contrast=(1.0, 1.4),
                saturation=(0.375, 0.583),
                hue=(0.0, 0.2),
                rate=0.8,
                seed=next(seeds),
            ),
            RandomGrayscale(rate=0.2, seed=next(seeds)),
        ]
    else:
        raise ValueError(f"unknown augmentation {augmentation!r}; expected one of {AUGMENTATIONS}")
    model = keras.Sequential(layers, name=f"augment_{augmentation}")
    model.build((None, height, width, channels))
    return model


def image_keys(seed: int, epoch: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """The key of each image of a batch: a uint64 hash of `(seed, epoch, image index)`."""
    key = _mix(tf.fill(tf.shape(index), tf.constant(int(seed) % 2**64, tf.uint64)))
    key = _mix(tf.bitwise.bitwise_xor(key, tf.cast(epoch, tf.uint64)))
    return _mix(tf.bitwise.bitwise_xor(key, tf.cast(index, tf.uint64)))


def make_views(
    images: tf.Tensor, augment: keras.Sequential, n_views: int = 2, *, keys: tf.Tensor | None = None
) -> tf.Tensor:
    """Turn a batch `(B, H, W, C)` into `n_views` independent views `(B, n_views, H, W, C)`.

    The views of all images go through the layers as one batch of `n_views * B` images. With
    `keys` (`(B,)` uint64, e.g. from `image_keys`) view `v` of image `b` is a function of
    `(keys[b], v)` alone; without, the layers draw from their generators.
    """
    images = to_float(images)
    batch = tf.shape(images)[0]
    if keys is not None:  # each image's views side by side; the order of the batch is free
        stacked = images if n_views == 1 else tf.repeat(images, n_views, axis=0)
        views = apply_keyed(augment, stacked, tf.reshape(view_keys(keys, n_views), [-1]))
        return tf.reshape(views, tf.concat([[batch, n_views], tf.shape(images)[1:]], axis=0))
    views = augment(tf.concat([images] * n_views, axis=0), training=True)
    views = tf.reshape(views, tf.concat([[n_views, batch], tf.shape(images)[1:]], axis=0))
    perm = [1, 0] + list(range(2, images.shape.rank + 1))
    return tf.transpose(views, perm)


def view_keys(keys: tf.Tensor, n_views: int) -> tf.Tensor:
    """The keys of `n_views` views of each image: `(B, n_views)`."""
    return tf.stack(
        [_mix(tf.bitwise.bitwise_xor(keys, tf.constant(v + 1, tf.uint64))) for v in range(n_views)],
        axis=1,
    )


def apply_keyed(augment: keras.Sequential, images: tf.Tensor, keys: tf.Tensor) -> tf.Tensor:
    """Run the layers of `augment` on `images`, each image's draws a function of its key."""
    images = to_float(images)
    for position, layer in enumerate(augment.layers):
        images = layer.keyed(images, keys, position)
    return images


def view_maker(
    augmentation: str, image_shape: Sequence[int], n_views: int = 2, *, seed: int | None = None
) -> Callable:
    """A function for `Dataset.map`: `(images, labels) -> (views, labels)` on batched data.

    Its draws come from the layers' generators, in the order batches are augmented: repeatable
    under `seed` only with a sequential `map`. `data.make_dataset` keys the views by image
    instead, which a parallel `map` keeps.
    """
    augment = augmenter(augmentation, image_shape, seed=seed)

    def views_and_labels(images: tf.Tensor, labels: tf.Tensor | None = None):
        views = make_views(images, augment, n_views)
        return views if labels is None else (views, labels)

    views_and_labels.augment = augment
    return views_and_labels


def to_float(images: tf.Tensor) -> tf.Tensor:
    """Images as float32 in [0, 1]: integer images are divided by 255, floats are kept."""
    images = tf.convert_to_tensor(images)
    if images.dtype.is_integer:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def uniforms(keys: tf.Tensor, stream: int, count: int, first: int = 0) -> tf.Tensor:
    """`(B, count)` float32 uniforms in [0, 1): draws `first, ..., first + count - 1` of `stream`
    for each key."""
    return _draws(keys[:, None], _counters(stream, first, count)[None, :])


def _counters(stream: int, first: int, count: int) -> tf.Tensor:
    """The hashed counters of draws `first, ..., first + count - 1` of `stream` (distinct across
    streams), a constant."""
    return _mix(tf.constant([(stream << 32) + j for j in range(first, first + count)], tf.uint64))


def _draws(keys: tf.Tensor, counters: tf.Tensor) -> tf.Tensor:
    """The uniform in [0, 1) of each (key, hashed counter) pair, elementwise (broadcasting)."""
    bits = _mix(tf.bitwise.bitwise_xor(keys, counters))
    # The top 24 bits: every value a float32 holds exactly, so 1.0 is never reached.
    return tf.cast(tf.bitwise.right_shift(bits, tf.constant(40, tf.uint64)), tf.float32) * 2.0**-24


def _mix(z: tf.Tensor) -> tf.Tensor:
    """SplitMix64's output function: a bijective hash of uint64 with good avalanche."""
    z = z + tf.constant(0x9E3779B97F4A7C15, tf.uint64)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(30, tf.uint64)))
    z = z * tf.constant(0xBF58476D1CE4E5B9, tf.uint64)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(27, tf.uint64)))
    z = z * tf.constant(0x94D049BB133111EB, tf.uint64)
    return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, tf.constant(31, tf.uint64)))


class KeyedLayer(keras.layers.Layer):
    """An augmentation op whose random parameters come in as uniforms, one row per image.

    `transform(images, u)` is the op given `u` of shape `(B, n_draws)`; `call` draws `u` from the
    layer's `generator`, so the layer also works alone, as any Keras preprocessing layer.
    """

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = True

    def n_draws(self, image_shape: Sequence[int]) -> int:
        raise NotImplementedError

    def transform(self, images: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def keyed(self, images: tf.Tensor, keys: tf.Tensor, stream: int) -> tf.Tensor:
        """`transform` with the draws of `stream` for each image's key (`apply_keyed`)."""
        return self.transform(images, uniforms(keys, stream, self.n_draws(images.shape)))

    def call(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        if not training:
            return images
        u = keras.random.uniform(
            (tf.shape(images)[0], self.n_draws(images.shape)), seed=self.generator
        )
        return self.transform(to_float(images), u)

    def compute_output_shape(self, input_shape):
        return input_shape


class RandomResizedCrop(KeyedLayer):
    """Crop a random box of each image and resize it back to the image size (torchvision's op).

    Per image: area fraction ~ U(scale), log aspect ratio (width / height) ~ U(log ratio), box
    position uniform inside the image. A box that would overflow is clipped to the image instead
    of redrawn (torchvision retries 10 times), so the largest scales come out a little squarer.
    The box is sampled bilinearly at `tf.image.crop_and_resize`'s points (its corners on the
    corner pixels), as two small matrix products per image, one along each axis
    (`bilinear_weights`): about half the CPU time of `crop_and_resize`, and XLA compiles it.
    """

    def __init__(self, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)

    def n_draws(self, image_shape):
        return 4

    def box(self, u: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """`(top, left, height, width)` of each image's box, fractions of the image, from its
        draws `u` (B, 4)."""
        area = self.scale[0] + u[:, 0] * (self.scale[1] - self.scale[0])
        low, high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = tf.exp(low + u[:, 1] * (high - low))
        height = tf.minimum(tf.sqrt(area / aspect), 1.0)
        width = tf.minimum(tf.sqrt(area * aspect), 1.0)
        return u[:, 2] * (1.0 - height), u[:, 3] * (1.0 - width), height, width

    def transform(self, images, u):
        top, left, height, width = self.box(u)
        rows = bilinear_weights(top, height, images.shape[1])  # (B, H, H)
        columns = bilinear_weights(left, width, images.shape[2])  # (B, W, W)
        if images.shape[3] == 1:
            return tf.matmul(tf.matmul(rows, images[..., 0]), columns, transpose_b=True)[..., None]
        out = tf.einsum("bih,bhwc->biwc", rows, images)
        return tf.einsum("bjw,biwc->bijc", columns, out)


def bilinear_weights(start: tf.Tensor, size: tf.Tensor, n: int) -> tf.Tensor:
    """`(B, n, n)`: row `i` of image `b` weighs the `n` input pixels to sample the point
    `start + size * i / (n - 1)` (fractions of the image, 0 and 1 at its first and last pixel)
    by linear interpolation: the two nearest pixels, `1 - d` each at distance `d`."""
    point = (n - 1) * start[:, None] + tf.range(n, dtype=tf.float32)[None, :] * size[:, None]
    pixel = tf.range(n, dtype=tf.float32)[None, None, :]
    return tf.maximum(1.0 - tf.abs(point[:, :, None] - pixel), 0.0)


class RandomFlip(KeyedLayer):
    """Mirror each image left-right with probability 1/2 (Keras' `RandomFlip("horizontal")`)."""

    def n_draws(self, image_shape):
        return 1

    def transform(self, images, u):
        return tf.where(u[:, 0, None, None, None] <= 0.5, _mirror(images), images)


def _mirror(images: tf.Tensor) -> tf.Tensor:
    """`tf.reverse(images, axis=[2])`, as the reverse of a 2-D or 3-D view: a third of the time."""
    shape = tf.shape(images)
    inner = [shape[2]] if images.shape[-1] == 1 else [shape[2], shape[3]]
    rows = tf.reshape(images, tf.concat([[-1], inner], axis=0))
    return tf.reshape(tf.reverse(rows, axis=[1]), shape)


class RandomColorJitter(KeyedLayer):
    """With probability `rate`, Keras' `RandomColorJitter` on each image, in its order.

    Brightness adds `U(-b, b)`, contrast scales the deviation from each channel's mean by
    `U(contrast)` (both clipped to [0, 1]); saturation multiplies S by `f / (1 - f)`,
    `f ~ U(saturation)`; hue shifts H by `+-U(hue) / 2`, the sign a coin flip.
    """

    def __init__(self, brightness=0.0, contrast=(1.0, 1.0), saturation=None, hue=None, rate=1.0,
                 seed=None, **kwargs):  # fmt: skip
        super().__init__(seed, **kwargs)
        self.brightness, self.contrast, self.rate = float(brightness), tuple(contrast), rate
        self.saturation = None if saturation is None else tuple(saturation)
        self.hue = None if hue is None else tuple(hue)

    def n_draws(self, image_shape):
        return 6

    def transform(self, images, u):
        def per_image(column, low, high):
            return (low + u[:, column] * (high - low))[:, None, None, None]

        out = tf.clip_by_value(images + per_image(1, -self.brightness, self.brightness), 0, 1)
        mean = tf.reduce_mean(out, axis=[1, 2], keepdims=True)
        factor = per_image(2, *self.contrast)
        out = tf.clip_by_value((out - mean) * factor + mean, 0, 1)
        if self.saturation is not None or self.hue is not None:
            h, s, v = tf.unstack(tf.image.rgb_to_hsv(out), axis=-1)
            if self.saturation is not None:
                f = per_image(3, *self.saturation)[..., 0]
                s = tf.clip_by_value(s * f / (1 - f + keras.config.epsilon()), 0, 1)
            if self.hue is not None:
                sign = tf.where(u[:, 4] > 0.5, -1.0, 1.0)[:, None, None]
                h = h + sign * per_image(5, *self.hue)[..., 0] * 0.5
                h = tf.where(h > 1.0, h - 1.0, tf.where(h < 0.0, h + 1.0, h))
            out = tf.clip_by_value(tf.image.hsv_to_rgb(tf.stack([h, s, v], axis=-1)), 0, 1)
        return tf.where(u[:, 0, None, None, None] < self.rate, out, images)


class RandomErasing(KeyedLayer):
    """With probability `rate`, fill a random box of each image with clipped Gaussian noise.

    Keras' `RandomErasing(factor=(rate, rate), scale=scale)`: the box's width and height are
    `sqrt(U(scale))` of the image's each, its position uniform, its pixels `clip(N(0, 1), 0, 1)`.
    """

    def __init__(self, rate=0.5, scale=(0.02, 0.33), seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.rate, self.scale = float(rate), tuple(scale)
        # The erased pixels are a data-dependent number of coordinates: no static shape for XLA.
        self.supports_jit = False

    def n_draws(self, image_shape):
        return 5 + int(np.prod(image_shape[1:]))  # the box, the coin, one draw per pixel

    def transform(self, images, u):
        pixels = u[:, 5:]
        return self._erase(images, u[:, :5], lambda image, pixel: tf.gather_nd(
            pixels, tf.stack([image, pixel], axis=1)))  # fmt: skip

    def keyed(self, images, keys, stream):
        # The same draws as `transform`'s, hashed only for the pixels erased (the images whose
        # coin says so, inside their box): about a twelfth of the erased images' pixels at
        # grayscale28's scale.
        counters = _counters(stream, 5, int(np.prod(images.shape[1:])))
        return self._erase(
            images,
            uniforms(keys, stream, 5),
            lambda image, pixel: _draws(tf.gather(keys, image), tf.gather(counters, pixel)),
        )

    def _erase(self, images, u, pixel_draws):
        """Erase the boxes drawn by `u` (B, 5) of the images whose coin says so, each pixel
        filled from its draw, `pixel_draws(image, pixel)` (image index, flat pixel index)."""
        height, width, channels = images.shape[1], images.shape[2], images.shape[3]
        grid_y = tf.range(height, dtype=tf.float32)[None, :, None, None]
        grid_x = tf.range(width, dtype=tf.float32)[None, None, :, None]

        def bounds(column, length, grid):
            size = tf.sqrt(self.scale[0] + u[:, column] * (self.scale[1] - self.scale[0])) * length
            start = (u[:, column + 2] * (length - size))[:, None, None, None]
            return (grid >= start) & (grid < start + size[:, None, None, None])

        box = bounds(0, width, grid_x) & bounds(1, height, grid_y)  # (B, H, W, 1)
        rows = tf.where(u[:, 4] < self.rate)[:, 0]
        box = tf.gather(box, rows)
        at = tf.where(tf.broadcast_to(box, tf.concat([tf.shape(box)[:3], [channels]], 0)))
        at = tf.concat([tf.gather(rows, at[:, :1]), at[:, 1:]], axis=1)  # (image, y, x, channel)
        pixel = (at[:, 1] * width + at[:, 2]) * channels + at[:, 3]
        fill = tf.clip_by_value(_probit(pixel_draws(at[:, 0], pixel)), 0, 1)
        return tf.tensor_scatter_nd_update(images, at, fill)


def _probit(u: tf.Tensor) -> tf.Tensor:
    """`ndtri(u)` of a vector, each value a function of its `u` alone, kept off 0 so that it stays
    finite. ndtri's vector code and its scalar code (for a tail shorter than a vector) differ in
    the last bit; padded to whole vectors, every value takes the vector code."""
    padded = tf.pad(u, [[0, -tf.size(u) % 64]], constant_values=0.5)
    return tf.math.ndtri(tf.maximum(padded, 2.0**-25))[: tf.size(u)]


class RandomGrayscale(KeyedLayer):
    """Turn each image to grayscale (kept as 3 channels) with probability `rate`."""

    def __init__(self, rate=0.2, seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.rate = float(rate)

    def n_draws(self, image_shape):
        return 1

    def transform(self, images, u):
        gray = tf.broadcast_to(tf.image.rgb_to_grayscale(images), tf.shape(images))
        return tf.where(u[:, 0, None, None, None] < self.rate, gray, images)
