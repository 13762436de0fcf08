"""Corruptions at severities 0 to 5: shapes, validation, growing damage, seeds, robustness table."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from supcon_utils import corruptions, data
from supcon_utils.corruptions import CORRUPTIONS, corrupt, corruption_errors, robustness_table

NAMES = list(CORRUPTIONS)
RANDOM_KINDS = ["gaussian_noise", "occlusion", "rotation", "translation"]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """60 real handwritten digits (scikit-learn's, offline) upscaled to 28x28, as Fashion-MNIST."""
    _, (x_test, y_test) = data.load_dataset("digits")
    images = tf.image.resize(x_test[:60].astype(np.float32), (28, 28)).numpy()
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), y_test[:60]


@pytest.fixture(scope="module")
def colour() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", range(1, 6))
def test_shape_and_dtype_are_kept_and_the_input_untouched(digits, colour, name, severity):
    for images in (digits[0][:4], colour):
        before = images.copy()
        out = corrupt(images, name, severity, seed=3)
        assert out.dtype == np.uint8 and out.shape == images.shape
        assert not np.shares_memory(out, images)
        np.testing.assert_array_equal(images, before)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity", [6, -1, 2.5, True, "3", None])
def test_a_severity_outside_0_to_5_is_refused(name, severity):
    images = np.zeros((2, 28, 28, 1), np.uint8)
    with pytest.raises(ValueError, match="severity must be an integer from 0 to 5"):
        corrupt(images, name, severity)


@pytest.mark.parametrize("name", NAMES)
def test_severity_0_is_the_identity(digits, colour, name):
    for images in (digits[0], colour):
        out = corrupt(images, name, 0, seed=3)
        np.testing.assert_array_equal(out, images)
        assert not np.shares_memory(out, images)
    with pytest.raises(ValueError, match="uint8"):  # the images are checked at severity 0 too
        corrupt(np.zeros((2, 28, 28, 1), np.float32), name, 0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "images",
    [np.zeros((2, 28, 28, 1), np.float32), np.zeros((28, 28, 1), np.uint8),
     np.zeros((2, 28, 28), np.uint8), [[[[0]]]]],
)  # fmt: skip
def test_images_other_than_uint8_nhwc_are_refused(name, images):
    with pytest.raises(ValueError, match=r"uint8 array of shape \(N, H, W, C\)"):
        corrupt(images, name, 1)


def test_an_unknown_corruption_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown corruption 'fog'") as error:
        corrupt(np.zeros((1, 28, 28, 1), np.uint8), "fog", 1)
    for name in NAMES:
        assert name in str(error.value)


@pytest.mark.parametrize("name", NAMES)
def test_damage_grows_with_severity(digits, name):
    images = digits[0]
    damage = [np.abs(corrupt(images, name, s).astype(int) - images).mean() for s in range(1, 6)]
    assert damage[0] > 0
    assert all(b > a for a, b in zip(damage, damage[1:], strict=False)), damage


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_corruption(digits, colour, name):
    for images in (digits[0], colour):
        first = corrupt(images, name, 3, seed=7)
        np.testing.assert_array_equal(first, corrupt(images, name, 3, seed=7))
        generator = corruptions.CORRUPTIONS[name](images, 3, np.random.default_rng(7))
        np.testing.assert_array_equal(first, generator)  # an int seed is default_rng(seed)
        other = corrupt(images, name, 3, seed=8)
        assert np.array_equal(first, other) == (name not in RANDOM_KINDS)


def test_occlusion_is_a_whole_grey_square_that_grows_around_the_same_spot():
    images = np.zeros((50, 28, 28, 1), np.uint8)
    masks = [corrupt(images, "occlusion", s, seed=0)[..., 0] == 128 for s in range(1, 6)]
    for severity, mask in enumerate(masks, start=1):
        side = round(28 * corruptions.OCCLUSION_SIDE[severity - 1])
        rows, cols = mask.any(axis=2), mask.any(axis=1)
        assert np.all(mask.sum(axis=(1, 2)) == side * side)  # whole, never cut by the border
        assert np.all(rows.sum(axis=1) == side) and np.all(cols.sum(axis=1) == side)  # square
    for smaller, larger in zip(masks, masks[1:], strict=False):
        assert np.all(larger | ~smaller)  # each square contains the previous severity's
    tops = np.argmax(masks[0].any(axis=2), axis=1)
    assert len(set(tops.tolist())) > 5  # placed anew for each image


def test_noise_is_the_same_draw_scaled_up():
    images = np.full((4, 28, 28, 1), 128, np.uint8)
    shifts = [corrupt(images, "gaussian_noise", s).astype(int) - 128 for s in (1, 5)]
    ratio = corruptions.NOISE_STD[4] / corruptions.NOISE_STD[0]
    np.testing.assert_allclose(shifts[1], np.clip(shifts[0] * ratio, -128, 127), atol=1.5 * ratio)
    np.testing.assert_allclose(shifts[1].std() / 255, corruptions.NOISE_STD[4], rtol=0.1)


def test_contrast_keeps_each_images_mean_and_a_flat_image_unchanged(digits):
    images = digits[0]
    low = corrupt(images, "contrast", 5)
    np.testing.assert_allclose(low.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)), atol=0.6)
    assert low.std() < 0.2 * images.std()
    flat = np.full((2, 28, 28, 3), 90, np.uint8)
    for name in ("contrast", "gaussian_blur", "pixelate"):
        np.testing.assert_array_equal(corrupt(flat, name, 5), flat)


def test_pixelate_averages_aligned_blocks():
    images = np.arange(28 * 28, dtype=np.uint8).reshape(1, 28, 28, 1)  # values wrap: any content
    out = corrupt(images, "pixelate", 1)[0, ..., 0]  # 2x2 blocks
    blocks = images[0, ..., 0].reshape(14, 2, 14, 2).astype(float).mean(axis=(1, 3))
    np.testing.assert_allclose(out[::2, ::2], blocks, atol=0.501)  # rounded to uint8
    np.testing.assert_array_equal(out, np.repeat(np.repeat(out[::2, ::2], 2, 0), 2, 1))


def _oracle(images: np.ndarray, labels: np.ndarray):
    """Knows the label of every clean image exactly and nothing else (-1)."""
    known = {image.tobytes(): label for image, label in zip(images, labels, strict=True)}
    return lambda batch: np.array([known.get(image.tobytes(), -1) for image in batch])


def test_robustness_table_with_an_oracle_and_a_constant_predictor(digits):
    images, labels = digits
    table = robustness_table(_oracle(images, labels), images, labels)
    assert list(table.columns) == ["corruption", "severity", "accuracy"]
    assert len(table) == 1 + len(NAMES) * 5
    assert table.iloc[0].to_dict() == {"corruption": "clean", "severity": 0, "accuracy": 1.0}
    rest = table.iloc[1:]
    assert rest.groupby("corruption").severity.apply(list).to_dict() == {
        name: [1, 2, 3, 4, 5] for name in NAMES
    }
    assert (rest.accuracy < 1).all()  # every corrupted image is new to the oracle

    constant = robustness_table(
        lambda batch: np.zeros(len(batch), int),
        images,
        labels,
        severities=[2, 5],
        corruptions=["contrast", "occlusion"],
    )
    assert constant.corruption.tolist() == ["clean", "contrast", "contrast", "occlusion",
                                            "occlusion"]  # fmt: skip
    assert constant.severity.tolist() == [0, 2, 5, 2, 5]
    assert np.allclose(constant.accuracy, np.mean(labels == 0))
    wide = constant.pivot(index="corruption", columns="severity", values="accuracy")
    assert wide.shape == (3, 3)


def test_robustness_table_checks_its_arguments_before_predicting(digits):
    images, labels = digits
    calls = []

    def predict(batch):
        calls.append(len(batch))
        return np.zeros(len(batch), int)

    with pytest.raises(ValueError, match="severity"):
        robustness_table(predict, images, labels, severities=[1, 0])
    with pytest.raises(ValueError, match="unknown corruption"):
        robustness_table(predict, images, labels, corruptions=["snow"])
    with pytest.raises(ValueError, match="59 labels for 60 images"):
        robustness_table(predict, images, labels[:-1])
    with pytest.raises(ValueError, match="uint8"):
        robustness_table(predict, images / 255, labels)
    assert calls == []
    with pytest.raises(ValueError, match="predict_fn returned"):
        robustness_table(lambda batch: np.zeros(3), images, labels)


def test_brightness_adds_its_delta_and_clips_at_white():
    images = np.array([0, 100, 250], np.uint8).reshape(1, 1, 3, 1)
    out = corrupt(images, "brightness", 2)  # + 0.2 of 255 = 51
    assert out.reshape(-1).tolist() == [51, 151, 255]


def test_translation_moves_the_whole_image_by_the_severity_distance():
    images = np.zeros((50, 28, 28, 1), np.uint8)
    images[:, 14, 14] = 255
    for severity in (1, 5):
        out = corrupt(images, "translation", severity, seed=0)
        distance = corruptions.TRANSLATION_28PX[severity - 1]
        for image in out:
            (row,), (col,) = np.nonzero(image[..., 0] == 255)
            moved = np.hypot(row - 14, col - 14)
            assert abs(moved - distance) <= 0.75, (severity, row, col)  # whole-pixel rounding


def test_rotation_turns_about_the_centre_by_the_severity_angle():
    # A bright bar from the centre to the right edge; its far end moves along a circle.
    images = np.zeros((20, 29, 29, 1), np.uint8)
    images[:, 14, 14:] = 255
    out = corrupt(images, "rotation", 5, seed=0).astype(float)[..., 0]
    for image in out:
        rows, cols = np.nonzero(image > 127)
        angle = np.degrees(np.arctan2(-(rows - 14), cols - 14))
        far = np.hypot(rows - 14, cols - 14) > 8
        assert abs(abs(np.median(angle[far])) - 30) < 3


def _table(clean: float, accuracies: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"corruption": "clean", "severity": 0, "accuracy": clean}]
    rows += [{"corruption": c, "severity": s, "accuracy": a}
             for c, values in accuracies.items() for s, a in enumerate(values, 1)]  # fmt: skip
    return pd.DataFrame(rows)


def test_corruption_errors_follow_imagenet_c():
    base = _table(0.9, {"noise": [0.8, 0.6], "blur": [0.9, 0.9]})  # errors .2+.4, .1+.1
    other = _table(0.8, {"noise": [0.8, 0.8], "blur": [0.7, 0.5]})  # errors .2+.2, .3+.5
    table = corruption_errors({"base": base, "other": other}, baseline="base")
    assert table.loc["noise", ("base", "CE")] == pytest.approx(1.0)
    assert table.loc["noise", ("other", "CE")] == pytest.approx(0.4 / 0.6)
    assert table.loc["blur", ("other", "CE")] == pytest.approx(0.8 / 0.2)
    assert table.loc["mean", ("other", "CE")] == pytest.approx((0.4 / 0.6 + 4.0) / 2)
    # Relative: the rise above each model's clean error (.1 for base, .2 for other), summed.
    assert table.loc["noise", ("other", "relative CE")] == pytest.approx(0.0 / 0.4)
    assert np.isnan(table.loc["blur", ("other", "relative CE")])  # base's error does not rise
    assert table.loc["mean", ("other", "relative CE")] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="baseline 'ce' is not one of the models"):
        corruption_errors({"base": base}, baseline="ce")
