"""Contrastive view augmentation: two (or more) random views of every image.

The paper (Sec. 3 and App. B) and its reference code use SimCLR's recipe: random resized crop,
horizontal flip, colour jitter applied with probability 0.8, grayscale with probability 0.2.
`augmenter("color32", ...)` is that recipe for 32x32 colour images; `augmenter("grayscale28",
...)` is a milder variant for 28x28 grayscale clothing (Fashion-MNIST), whose items are centred
and scale-normalised, so that crops keep most of the garment and colour jitter reduces to
brightness and contrast, plus random erasing as a second occlusion-like cue.

Everything is a Keras preprocessing layer and runs in a `tf.data` pipeline on whole batches
(`Dataset.batch(...).map(view_maker(...))`, as `data.make_dataset` does): every layer used here
draws its random parameters per image, not per batch (tests/test_augment.py checks it). Keras'
`RandomCrop` draws one crop window per batch and Keras has no resized crop, hence the small
`RandomResizedCrop` layer below; nor does it have torchvision's `RandomApply`, hence `RandomApply`.

Images are float32 in [0, 1] (uint8 inputs are scaled on the way in) and keep their shape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

RECIPES = ("grayscale28", "color32")


def augmenter(
    recipe: str, image_shape: Sequence[int], *, seed: int | None = None
) -> keras.Sequential:
    """Build the view augmenter of `recipe` for images of `image_shape` `(H, W, C)`.

    With an integer `seed` the layers get seeds `seed, seed + 1, ...` (one shared seed would make
    their random streams identical, e.g. flip exactly when the crop is small); the stream is then
    reproducible when batches are augmented in a fixed order (see `view_maker`).
    """
    height, width, channels = (int(d) for d in image_shape)
    seeds = itertools.count(seed) if seed is not None else itertools.repeat(None)
    if recipe == "grayscale28":
        layers = [
            RandomResizedCrop(scale=(0.6, 1.0), ratio=(0.8, 1.25), seed=next(seeds)),
            keras.layers.RandomFlip("horizontal", seed=next(seeds)),
            RandomApply(
                keras.layers.RandomColorJitter(
                    value_range=(0, 1),
                    brightness_factor=0.2,
                    contrast_factor=0.4,
                    seed=next(seeds),
                ),
                rate=0.8,
                seed=next(seeds),
            ),
            # (p, p): Keras draws each image's erasing probability from this range.
            keras.layers.RandomErasing(
                factor=(0.25, 0.25), scale=(0.02, 0.15), value_range=(0, 1), seed=next(seeds)
            ),
        ]
    elif recipe == "color32":
        if channels != 3:
            raise ValueError(f"recipe 'color32' needs 3 channels, got image_shape={image_shape}")
        layers = [
            RandomResizedCrop(scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), seed=next(seeds)),
            keras.layers.RandomFlip("horizontal", seed=next(seeds)),
            RandomApply(
                # torchvision's ColorJitter(0.4, 0.4, 0.4, 0.1) in Keras' units: brightness is
                # additive here (multiplicative there), so +-0.2 matches x[0.6, 1.4] at mid-grey;
                # saturation f maps to a multiplier f / (1 - f), so (0.375, 0.583) is x[0.6, 1.4];
                # Keras halves the hue factor, so (0, 0.2) shifts hue by up to +-0.1.
                keras.layers.RandomColorJitter(
                    value_range=(0, 1),
                    brightness_factor=0.2,
                    contrast_factor=0.4,
                    saturation_factor=(0.375, 0.583),
                    hue_factor=(0.0, 0.2),
                    seed=next(seeds),
                ),
                rate=0.8,
                seed=next(seeds),
            ),
            keras.layers.RandomGrayscale(factor=0.2, seed=next(seeds)),
        ]
    else:
        raise ValueError(f"unknown augmentation recipe {recipe!r}; expected one of {RECIPES}")
    model = keras.Sequential(layers, name=f"augment_{recipe}")
    model.build((None, height, width, channels))
    return model


def make_views(images: tf.Tensor, augment: Callable, n_views: int = 2) -> tf.Tensor:
    """Turn a batch `(B, H, W, C)` into `n_views` independent views `(B, n_views, H, W, C)`.

    The views of all images go through `augment` as one batch of `n_views * B` images, so each
    view of each image gets its own random parameters at the cost of a single call.
    """
    images = to_float(images)
    batch = tf.shape(images)[0]
    views = augment(tf.concat([images] * n_views, axis=0), training=True)
    views = tf.reshape(views, tf.concat([[n_views, batch], tf.shape(images)[1:]], axis=0))
    perm = [1, 0] + list(range(2, images.shape.rank + 1))
    return tf.transpose(views, perm)


def view_maker(
    recipe: str, image_shape: Sequence[int], n_views: int = 2, *, seed: int | None = None
) -> Callable:
    """A function for `Dataset.map`: `(images, labels) -> (views, labels)` on batched data.

    The Keras layers keep their random state in variables, so parallel `map` calls (AUTOTUNE)
    interleave draws in no fixed order: results are reproducible under `seed` only with a
    sequential `map` (no `num_parallel_calls`). Parallel calls can also read a state before
    another call has advanced it, so now and then (about 1 batch in 100 measured) a batch reuses
    another batch's random parameters, on other images; every view within a batch stays distinct.
    """
    augment = augmenter(recipe, image_shape, seed=seed)

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


class RandomResizedCrop(keras.layers.Layer):
    """Crop a random box of each image and resize it back to the image size (torchvision's op).

    Per image: area fraction ~ U(scale), log aspect ratio (width / height) ~ U(log ratio), box
    position uniform inside the image. A box that would overflow is clipped to the image instead
    of redrawn (torchvision retries 10 times), so the largest scales come out a little squarer.
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.generator = keras.random.SeedGenerator(seed)
        # tf.image.crop_and_resize has no XLA kernel; this layer is for tf.data.
        self.supports_jit = False

    def call(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        if not training:
            return images
        batch = tf.shape(images)[0]

        def uniform(low: float, high: float) -> tf.Tensor:
            return keras.random.uniform((batch,), low, high, seed=self.generator)

        area = uniform(*self.scale)
        aspect = tf.exp(uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
        height = tf.minimum(tf.sqrt(area / aspect), 1.0)
        width = tf.minimum(tf.sqrt(area * aspect), 1.0)
        top = uniform(0.0, 1.0) * (1.0 - height)
        left = uniform(0.0, 1.0) * (1.0 - width)
        boxes = tf.stack([top, left, top + height, left + width], axis=1)
        size = images.shape[1:3] if images.shape[1:3].is_fully_defined() else tf.shape(images)[1:3]
        crops = tf.image.crop_and_resize(images, boxes, tf.range(batch), size)
        return tf.cast(crops, images.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


class RandomApply(keras.layers.Layer):
    """Apply `layer` to each image independently with probability `rate` (torchvision's op)."""

    def __init__(self, layer: keras.layers.Layer, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.rate = float(rate)
        self.generator = keras.random.SeedGenerator(seed)
        self.supports_jit = layer.supports_jit

    def build(self, input_shape):
        self.layer.build(input_shape)

    def call(self, images: tf.Tensor, training: bool = True) -> tf.Tensor:
        if not training:
            return images
        applied = tf.cast(self.layer(images, training=True), images.dtype)
        draw = keras.random.uniform((tf.shape(images)[0], 1, 1, 1), seed=self.generator)
        return tf.where(draw < self.rate, applied, images)

    def compute_output_shape(self, input_shape):
        return input_shape
