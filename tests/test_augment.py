"""View augmentation: shapes and ranges, randomness per view and per image, seeded determinism."""

import numpy as np
import pytest
import tensorflow as tf

from supcon_utils import augment

SHAPES = {"grayscale28": (28, 28, 1), "color32": (32, 32, 3)}


def _images(recipe: str, n: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth random images (noise blurred by upsampling), so crops and flips change them."""
    height, width, channels = SHAPES[recipe]
    coarse = np.random.default_rng(seed).integers(0, 256, (n, 7, 8, channels), dtype=np.uint8)
    smooth = tf.image.resize(coarse, (height, width), method="bilinear")
    return tf.cast(tf.round(smooth), tf.uint8).numpy()


def _batched(images, labels, view_maker, **map_kwargs) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    return ds.map(view_maker, **map_kwargs)


@pytest.mark.parametrize("recipe", augment.RECIPES)
@pytest.mark.parametrize("n_views", [1, 2, 3])
def test_views_shape_dtype_and_range(recipe, n_views):
    images = _images(recipe)
    labels = np.arange(len(images))
    ds = _batched(images, labels, augment.view_maker(recipe, SHAPES[recipe], n_views, seed=0))
    assert ds.element_spec[0].shape.as_list() == [None, n_views, *SHAPES[recipe]]
    views, out_labels = next(iter(ds))
    assert views.dtype == tf.float32 and tuple(views.shape) == (8, n_views, *SHAPES[recipe])
    assert 0.0 <= float(tf.reduce_min(views)) and float(tf.reduce_max(views)) <= 1.0
    np.testing.assert_array_equal(out_labels, labels[:8])


@pytest.mark.parametrize("recipe", augment.RECIPES)
def test_views_differ_from_each_other_and_from_the_input(recipe):
    images = _images(recipe)
    views = augment.make_views(images, augment.augmenter(recipe, SHAPES[recipe], seed=0)).numpy()
    originals = augment.to_float(images).numpy()
    for i in range(len(images)):
        assert not np.allclose(views[i, 0], views[i, 1], atol=1e-3)
        for v in range(2):
            assert not np.allclose(views[i, v], originals[i], atol=1e-3)


@pytest.mark.parametrize("recipe", augment.RECIPES)
def test_identical_images_in_a_batch_get_different_views(recipe):
    image = _images(recipe, n=1)
    batch = np.repeat(image, 32, axis=0)
    views = augment.view_maker(recipe, SHAPES[recipe], seed=1)(batch).numpy()
    flat = views.reshape(-1, views[0, 0].size)  # 64 views of one image
    distances = np.abs(flat[:, None] - flat[None, :]).max(axis=-1)
    assert np.all(distances[np.triu_indices(len(flat), k=1)] > 1e-4)


def test_seeded_sequential_map_is_deterministic():
    images = _images("grayscale28", n=32)
    labels = np.zeros(len(images), np.int64)

    def run(seed):
        maker = augment.view_maker("grayscale28", SHAPES["grayscale28"], seed=seed)
        # Two epochs: the second must continue the stream, not repeat the first.
        ds = _batched(images, labels, maker)  # a sequential map
        return np.concatenate([views for views, _ in ds.repeat(2).as_numpy_iterator()])

    first = run(seed=7)
    np.testing.assert_array_equal(first, run(seed=7))
    assert not np.allclose(first, run(seed=8))
    assert not np.allclose(first[:32], first[32:])


def test_to_float_and_errors():
    np.testing.assert_allclose(augment.to_float(np.array([0, 51, 255], np.uint8)), [0, 0.2, 1])
    assert augment.to_float(np.array([0.5], np.float64)).dtype == tf.float32
    with pytest.raises(ValueError, match="unknown augmentation recipe"):
        augment.augmenter("strong", (28, 28, 1))
    with pytest.raises(ValueError, match="3 channels"):
        augment.augmenter("color32", (28, 28, 1))
