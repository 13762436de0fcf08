"""View augmentation: shapes and ranges, randomness per view and per image, draws keyed by image,
the distributions of the Keras layers they replace, seeded determinism."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from supcon_utils import augment, data

SHAPES = {"grayscale28": (28, 28, 1), "color32": (32, 32, 3)}


def _images(augmentation: str, n: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth random images (noise blurred by upsampling), so crops and flips change them."""
    height, width, channels = SHAPES[augmentation]
    coarse = np.random.default_rng(seed).integers(0, 256, (n, 7, 8, channels), dtype=np.uint8)
    smooth = tf.image.resize(coarse, (height, width), method="bilinear")
    return tf.cast(tf.round(smooth), tf.uint8).numpy()


def _batched(images, labels, view_maker, **map_kwargs) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    return ds.map(view_maker, **map_kwargs)


@pytest.mark.parametrize("augmentation", augment.AUGMENTATIONS)
@pytest.mark.parametrize("n_views", [1, 2, 3])
def test_views_shape_dtype_and_range(augmentation, n_views):
    images = _images(augmentation)
    labels = np.arange(len(images))
    ds = _batched(
        images, labels, augment.view_maker(augmentation, SHAPES[augmentation], n_views, seed=0)
    )
    assert ds.element_spec[0].shape.as_list() == [None, n_views, *SHAPES[augmentation]]
    views, out_labels = next(iter(ds))
    assert views.dtype == tf.float32 and tuple(views.shape) == (8, n_views, *SHAPES[augmentation])
    assert 0.0 <= float(tf.reduce_min(views)) and float(tf.reduce_max(views)) <= 1.0
    np.testing.assert_array_equal(out_labels, labels[:8])


@pytest.mark.parametrize("augmentation", augment.AUGMENTATIONS)
def test_views_differ_from_each_other_and_from_the_input(augmentation):
    images = _images(augmentation)
    views = augment.make_views(
        images, augment.augmenter(augmentation, SHAPES[augmentation], seed=0)
    ).numpy()
    originals = augment.to_float(images).numpy()
    for i in range(len(images)):
        assert not np.allclose(views[i, 0], views[i, 1], atol=1e-3)
        for v in range(2):
            assert not np.allclose(views[i, v], originals[i], atol=1e-3)


@pytest.mark.parametrize("augmentation", augment.AUGMENTATIONS)
def test_identical_images_in_a_batch_get_different_views(augmentation):
    image = _images(augmentation, n=1)
    batch = np.repeat(image, 32, axis=0)
    views = augment.view_maker(augmentation, SHAPES[augmentation], seed=1)(batch).numpy()
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


def _keys(n: int, seed: int = 0, epoch: int = 0) -> tf.Tensor:
    return augment.image_keys(
        seed, tf.fill([n], tf.constant(epoch, tf.int64)), tf.range(n, dtype=tf.int64)
    )


@pytest.mark.parametrize("augmentation", augment.AUGMENTATIONS)
def test_keyed_views_depend_on_the_image_key_alone(augmentation):
    """An image's views are the same in any batch, at any position: a function of its key."""
    images = _images(augmentation, n=6)
    layers = augment.augmenter(augmentation, SHAPES[augmentation])
    keys = _keys(6)
    together = augment.make_views(images, layers, 3, keys=keys).numpy()
    picked = [4, 1]
    alone = augment.make_views(images[picked], layers, 3, keys=tf.gather(keys, picked)).numpy()
    # The draws are equal bit for bit; the pixels to float32 rounding (vectorised ops on a batch
    # of another size may round the last bit differently, and HSV round trips amplify it).
    np.testing.assert_allclose(alone, together[picked], rtol=0, atol=1e-5)
    draws = [augment.uniforms(k, 2, 6).numpy() for k in (keys, tf.gather(keys, picked))]
    np.testing.assert_array_equal(draws[1], draws[0][picked])
    # Another epoch (or seed) is another key: other views of the same images.
    other = augment.make_views(images, layers, 3, keys=_keys(6, epoch=1)).numpy()
    assert not np.allclose(other, together, atol=1e-3)
    for i in range(6):  # and the views of one image differ from each other
        assert not np.allclose(together[i, 0], together[i, 1], atol=1e-3)


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (9, 7, 3)])
def test_keyed_erasing_draws_the_pixels_of_erased_images_only_and_equals_transform(shape):
    layer = augment.RandomErasing(rate=0.5, scale=(0.1, 0.3))
    images = tf.random.stateless_uniform((64, *shape), seed=(0, 1))
    keys = _keys(64)
    keyed = layer.keyed(images, keys, 3).numpy()
    full = layer.transform(images, augment.uniforms(keys, 3, layer.n_draws(images.shape))).numpy()
    np.testing.assert_array_equal(keyed, full)
    erased = np.any(keyed != images.numpy(), axis=(1, 2, 3))
    assert 0 < erased.sum() < 64  # about half the images, each with a box of noise
    changed = keyed[erased] != images.numpy()[erased]
    assert 0.5 * 0.1 < changed.mean() < 0.3  # the boxes' share of the pixels, not whole images
    # Draws `first, ...` are the tail of draws `0, ...`.
    np.testing.assert_array_equal(augment.uniforms(keys, 3, 4, first=5).numpy(),
                                  augment.uniforms(keys, 3, 9).numpy()[:, 5:])  # fmt: skip


def test_erasing_fills_each_pixel_from_its_own_draw():
    shape = (6, 5, 3)
    n = int(np.prod(shape))
    images = tf.fill((2, *shape), 2.0)  # outside [0, 1], so every erased pixel shows
    u = np.zeros((2, 5 + n), np.float32)
    u[:, :4] = 0.5  # a box of 30% of each side, centred; the coin (column 4) says erase
    u[:, 5:] = np.linspace(0.5, 0.9, n)  # pixel p (row-major y, x, channel) draws u[:, 5 + p]
    out = augment.RandomErasing(rate=1.0, scale=(0.3, 0.3)).transform(images, u).numpy()
    erased = out != 2.0
    assert 0 < erased.mean() < 0.5
    expected = np.clip(tf.math.ndtri(u[:, 5:]).numpy().reshape(out.shape), 0, 1)
    np.testing.assert_allclose(out[erased], expected[erased], rtol=1e-6)


@pytest.mark.parametrize("shape", [(5, 6, 1), (4, 7, 3)])
def test_flip_mirrors_left_right_exactly(shape):
    images = tf.random.stateless_uniform((6, *shape), seed=(0, 2))
    coins = tf.constant([[0.2], [0.7], [0.5], [0.9], [0.0], [0.51]])  # flip when <= 0.5
    flipped = augment.RandomFlip().transform(images, coins).numpy()
    expected = np.where(coins.numpy()[:, :, None, None] <= 0.5, images.numpy()[:, :, ::-1], images)
    np.testing.assert_array_equal(flipped, expected)


def test_uniforms_are_uniform_and_independent_across_keys_and_draws():
    u = augment.uniforms(_keys(20_000), stream=3, count=4).numpy()
    assert u.dtype == np.float32 and 0.0 <= u.min() and u.max() < 1.0
    for column in u.T:
        assert stats.kstest(column, "uniform").pvalue > 1e-3
    assert np.abs(np.corrcoef(u.T) - np.eye(4)).max() < 0.03
    # consecutive image indices and neighbouring streams are not correlated either
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.03
    v = augment.uniforms(_keys(20_000), stream=4, count=1).numpy()
    assert abs(np.corrcoef(u[:, 0], v[:, 0])[0, 1]) < 0.03


def _summary(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image statistics whose distributions the two implementations must share."""
    flat = images.reshape(len(images), -1, images.shape[-1])
    return {
        "mean": flat.mean(axis=(1, 2)),
        "std": flat.std(axis=(1, 2)),
        "channel_spread": np.ptp(flat.mean(axis=1), axis=1),
        "left_minus_right": (images[:, :, : images.shape[2] // 2] .mean(axis=(1, 2, 3))
                             - images[:, :, images.shape[2] // 2 :].mean(axis=(1, 2, 3))),
        "at_0_or_1": ((flat == 0) | (flat == 1)).mean(axis=(1, 2)),
    }  # fmt: skip


def _same_distributions(ours: np.ndarray, theirs: np.ndarray) -> None:
    for name, a in _summary(ours).items():
        b = _summary(theirs)[name]
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            assert a[0] == pytest.approx(b[0], abs=1e-6), name
            continue
        assert stats.ks_2samp(a, b).pvalue > 1e-3, name


KERAS_TWINS = {
    "flip": (augment.RandomFlip(seed=1), keras.layers.RandomFlip("horizontal", seed=1), 1),
    "jitter_gray": (
        augment.RandomColorJitter(brightness=0.2, contrast=(1, 1.4), rate=1.0, seed=1),
        keras.layers.RandomColorJitter((0, 1), brightness_factor=0.2, contrast_factor=0.4, seed=1),
        1,
    ),
    "jitter_colour": (
        augment.RandomColorJitter(brightness=0.2, contrast=(1, 1.4), saturation=(0.375, 0.583),
                                  hue=(0.0, 0.2), rate=1.0, seed=1),
        keras.layers.RandomColorJitter((0, 1), brightness_factor=0.2, contrast_factor=0.4,
                                       saturation_factor=(0.375, 0.583), hue_factor=(0.0, 0.2),
                                       seed=1),
        3,
    ),
    "erasing": (
        augment.RandomErasing(rate=0.25, scale=(0.02, 0.15), seed=1),
        keras.layers.RandomErasing(factor=(0.25, 0.25), scale=(0.02, 0.15), value_range=(0, 1),
                                   seed=1),
        1,
    ),
    "grayscale": (augment.RandomGrayscale(rate=0.2, seed=1),
                  keras.layers.RandomGrayscale(factor=0.2, seed=1), 3),
}  # fmt: skip


@pytest.mark.parametrize("name", KERAS_TWINS)
def test_each_layer_draws_as_the_keras_layer_it_replaces(name):
    ours, theirs, channels = KERAS_TWINS[name]
    augmentation = "grayscale28" if channels == 1 else "color32"
    image = augment.to_float(_images(augmentation, n=1)).numpy()
    batch = tf.constant(np.repeat(image, 3000, axis=0))
    _same_distributions(ours(batch).numpy(), np.asarray(theirs(batch, training=True)))


def test_the_crop_box_follows_its_draws_of_area_and_aspect():
    """On ramps along x and along y, the output's first and last pixels are the box's edges."""
    layer = augment.RandomResizedCrop(scale=(0.6, 1.0), ratio=(0.8, 1.25))
    # (area, log aspect, top, left) draws: area 0.6 square; area 1 square; area 0.8 at aspect 0.8
    u = tf.constant([[0.0, 0.5, 0.5, 0.5], [1.0, 0.5, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    ramp = tf.linspace(0.0, 1.0, 28)
    along_x = tf.tile(ramp[None, None, :, None], [3, 28, 1, 1])
    along_y = tf.tile(ramp[None, :, None, None], [3, 1, 28, 1])
    x = layer.transform(along_x, u).numpy()[:, 0, :, 0]
    y = layer.transform(along_y, u).numpy()[:, :, 0, 0]
    np.testing.assert_allclose(x[:, -1] - x[:, 0], [0.6**0.5, 1.0, 0.8], atol=1e-5)  # widths
    np.testing.assert_allclose(y[:, -1] - y[:, 0], [0.6**0.5, 1.0, 1.0], atol=1e-5)  # heights
    np.testing.assert_allclose(x[0, 0], (1 - 0.6**0.5) / 2, atol=1e-5)  # centred at draws 0.5


@pytest.mark.parametrize("augmentation", ["grayscale28", "color32"])
def test_the_crop_samples_the_points_of_crop_and_resize(augmentation):
    images = augment.to_float(_images(augmentation, n=64))
    layer = augment.augmenter(augmentation, images.shape[1:]).layers[0]
    u = tf.random.stateless_uniform((64, 4), seed=(1, 2))
    top, left, height, width = layer.box(u)
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    expected = tf.image.crop_and_resize(images, boxes, tf.range(64), images.shape[1:3])
    crops = layer.transform(images, u)
    np.testing.assert_allclose(crops.numpy(), expected.numpy(), atol=1e-5)
    np.testing.assert_allclose(tf.function(layer.transform, jit_compile=True)(images, u).numpy(),
                               crops.numpy(), atol=1e-6)  # fmt: skip


def test_the_keyed_pipeline_repeats_and_maps_in_parallel():
    images = _images("grayscale28", n=96)
    labels = np.arange(96) % 4

    def epochs(seed, which):
        ds = data.make_dataset(images, labels, batch_size=16, n_views=2, augmentation="grayscale28",
                               shuffle=True, seed=seed, epochs=which)  # fmt: skip
        return np.concatenate([views for views, _ in ds.as_numpy_iterator()])

    both = epochs(7, 2)
    np.testing.assert_array_equal(both, epochs(7, 2))
    np.testing.assert_array_equal(both[96:], epochs(7, range(1, 2)))  # epoch 1 alone
    assert not np.allclose(both[:96], both[96:])
    assert not np.allclose(both, epochs(8, 2))


def test_to_float_and_errors():
    np.testing.assert_allclose(augment.to_float(np.array([0, 51, 255], np.uint8)), [0, 0.2, 1])
    assert augment.to_float(np.array([0.5], np.float64)).dtype == tf.float32
    with pytest.raises(ValueError, match="unknown augmentation .strong"):
        augment.augmenter("strong", (28, 28, 1))
    with pytest.raises(ValueError, match="3 channels"):
        augment.augmenter("color32", (28, 28, 1))
