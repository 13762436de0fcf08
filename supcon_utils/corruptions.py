"""Common corruptions of uint8 images at severities 1 to 5 (0: none), and a robustness table.

The paper (Fig. 3) measures robustness on ImageNet-C (Hendrycks & Dietterich, 2019): each test
image corrupted at five severities. Here are five of its kinds, an occlusion, and the rotation and
translation of MNIST-C (Mu & Gilmer, 2019), with parameters rescaled for 28x28 images
(Fashion-MNIST) in the way CIFAR-10-C rescaled ImageNet-C's for 32x32 ones. Pixel values are on
the [0, 1] scale; sizes in pixels are for a 28-pixel shorter side and scale with it for other
images.

=================  ===================================  =====  =====  =====  =====  =====
corruption         parameter                               1      2      3      4      5
=================  ===================================  =====  =====  =====  =====  =====
gaussian_noise     noise standard deviation              0.04   0.08   0.12   0.18   0.26
gaussian_blur      kernel standard deviation (pixels)    0.4    0.6    0.8    1.0    1.25
contrast           factor on (x - image mean)            0.75   0.5    0.4    0.3    0.15
brightness         added to every pixel                  0.1    0.2    0.3    0.4    0.5
pixelate           side of the averaged blocks (pixels)  2      3      4      5      6
occlusion          side of the grey square (fraction)    0.2    0.3    0.4    0.5    0.6
rotation           angle (degrees, random sign)          5      10     15     20     30
translation        shift (pixels, random direction)      1      2      3      4      6
=================  ===================================  =====  =====  =====  =====  =====

- ``gaussian_noise``: CIFAR-10-C's severity 1 up to ImageNet-C's severity 4 (ImageNet-C: 0.08 to
  0.38, CIFAR-10-C: 0.04 to 0.10); on a black background the noise is half clipped.
- ``gaussian_blur``: CIFAR-10-C's 0.4 to 1.0 pixels at 32x32, evenly stepped, a little stronger at
  severity 5. Edges are extended (``mode="nearest"``, as ImageNet-C's ``skimage`` blur).
- ``contrast``: CIFAR-10-C's factors; the mean is taken per image and channel, as ImageNet-C does.
- ``pixelate``: every block of k x k pixels replaced by its mean (the last row and column of
  blocks may be narrower): ImageNet-C's box resize down to 1/k of the side and back up, at whole
  block sizes. ImageNet-C keeps 0.6 to 0.25 of the side, CIFAR-10-C 0.95 to 0.65; these keep
  1/2 to 1/6, as 28x28 Fashion-MNIST items stay recognisable at 14x14. Fractional sizes were
  left out: their uneven blocks made severity 2 (17 of 28 pixels) corrupt more than severity 3
  (14 of 28, aligned 2x2 blocks).
- ``brightness``: ImageNet-C's values (it adds them to the HSV value channel; here to every
  channel), clipped at 1.
- ``rotation``: about the image centre, bilinear, the corners filled with black (0), the
  background of Fashion-MNIST; the sign is drawn per image.
- ``translation``: by whole pixels, along a direction drawn per image, black coming in.
- ``occlusion``: not in ImageNet-C; a Cutout-style square of mid-grey (128), placed uniformly at
  random per image and kept whole inside it (6, 8, 11, 14, 17 pixels at 28x28).

Each function takes ``(images, severity, seed=0)``: images uint8 ``(N, H, W, C)``, and returns a
new uint8 array of the same shape; severity 0 returns an unchanged copy. ``seed`` is an int or a
``numpy.random.Generator`` (the deterministic kinds ignore it). For one int seed all severities
share their random draws, so a higher severity is the same corruption made stronger: the same
noise scaled up, a larger square around the same spot (the square of severity s contains that of
s - 1), the same direction of rotation or translation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

Seed = int | np.random.Generator
Corruption = Callable[[np.ndarray, int, Seed], np.ndarray]

SEVERITIES = range(1, 6)  # severity 0 is the clean image
NOISE_STD = (0.04, 0.08, 0.12, 0.18, 0.26)
BLUR_SIGMA_28PX = (0.4, 0.6, 0.8, 1.0, 1.25)
CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)
PIXELATE_BLOCK_28PX = (2, 3, 4, 5, 6)
OCCLUSION_SIDE = (0.2, 0.3, 0.4, 0.5, 0.6)
OCCLUSION_VALUE = 128
BRIGHTNESS_DELTA = (0.1, 0.2, 0.3, 0.4, 0.5)
ROTATION_DEGREES = (5, 10, 15, 20, 30)
TRANSLATION_28PX = (1, 2, 3, 4, 6)


def gaussian_noise(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``NOISE_STD[severity - 1]`` (on [0, 1])."""
    if _clean(images, severity):
        return images.copy()
    x = _to_float(images, severity)
    noise = np.random.default_rng(seed).standard_normal(x.shape, dtype=np.float32)
    return _to_uint8(x + NOISE_STD[severity - 1] * noise)


def gaussian_blur(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Gaussian blur of ``BLUR_SIGMA_28PX[severity - 1]`` pixels per 28 of the shorter side."""
    if _clean(images, severity):
        return images.copy()
    x = _to_float(images, severity)
    sigma = BLUR_SIGMA_28PX[severity - 1] * min(x.shape[1:3]) / 28
    rows, cols = (_gaussian_matrix(n, sigma) for n in x.shape[1:3])
    return _to_uint8(_separable(x, rows, cols))


def contrast(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Shrink each image's values towards its mean by ``CONTRAST_FACTOR[severity - 1]``."""
    if _clean(images, severity):
        return images.copy()
    x = _to_float(images, severity)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return _to_uint8((x - mean) * CONTRAST_FACTOR[severity - 1] + mean)


def pixelate(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Average blocks of ``PIXELATE_BLOCK_28PX[severity - 1]`` pixels per 28 of the shorter side."""
    if _clean(images, severity):
        return images.copy()
    x = _to_float(images, severity)
    block = max(1, round(PIXELATE_BLOCK_28PX[severity - 1] * min(x.shape[1:3]) / 28))
    rows, cols = (_block_mean_matrix(n, block) for n in x.shape[1:3])
    return _to_uint8(_separable(x, rows, cols))


def occlusion(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Set a random square, ``OCCLUSION_SIDE[severity - 1]`` of the shorter side, to mid-grey."""
    if _clean(images, severity):
        return images.copy()
    n, height, width = images.shape[:3]
    side = max(1, round(min(height, width) * OCCLUSION_SIDE[severity - 1]))
    # The same uniform draws at every severity put the larger squares around the smaller ones.
    where = np.random.default_rng(seed).random((n, 2))
    tops = np.floor(where[:, 0] * (height - side + 1)).astype(int)
    lefts = np.floor(where[:, 1] * (width - side + 1)).astype(int)
    out = images.copy()
    for image, top, left in zip(out, tops, lefts, strict=True):
        image[top : top + side, left : left + side] = OCCLUSION_VALUE
    return out


def brightness(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Add ``BRIGHTNESS_DELTA[severity - 1]`` (on [0, 1]) to every pixel, clipped at 1."""
    if _clean(images, severity):
        return images.copy()
    return _to_uint8(_to_float(images, severity) + BRIGHTNESS_DELTA[severity - 1])


def rotation(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Rotate each image by ``ROTATION_DEGREES[severity - 1]``, clockwise or not at random."""
    from scipy import ndimage

    if _clean(images, severity):
        return images.copy()
    x = _to_float(images, severity)
    signs = np.where(np.random.default_rng(seed).random(len(x)) < 0.5, -1, 1)
    angle = ROTATION_DEGREES[severity - 1]
    out = [ndimage.rotate(image, sign * angle, axes=(0, 1), reshape=False, order=1, cval=0.0)
           for image, sign in zip(x, signs, strict=True)]  # fmt: skip
    return _to_uint8(np.stack(out) if out else x)


def translation(images: np.ndarray, severity: int, seed: Seed = 0) -> np.ndarray:
    """Shift each image ``TRANSLATION_28PX[severity - 1]`` pixels per 28 in a random direction."""
    if _clean(images, severity):
        return images.copy()
    n, height, width = images.shape[:3]
    distance = TRANSLATION_28PX[severity - 1] * min(height, width) / 28
    angles = np.random.default_rng(seed).random(n) * 2 * np.pi
    rows = np.rint(distance * np.sin(angles)).astype(int)
    cols = np.rint(distance * np.cos(angles)).astype(int)
    out = np.zeros_like(images)
    for image, src, dy, dx in zip(out, images, rows, cols, strict=True):
        image[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = src[
            max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
        ]
    return out


CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "contrast": contrast,
    "brightness": brightness,
    "pixelate": pixelate,
    "occlusion": occlusion,
    "rotation": rotation,
    "translation": translation,
}


def corrupt(images: np.ndarray, name: str, severity: int, seed: Seed = 0) -> np.ndarray:
    """``images`` corrupted by ``CORRUPTIONS[name]`` at ``severity`` (1 to 5)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; expected one of {list(CORRUPTIONS)}")
    return CORRUPTIONS[name](images, severity, seed)


def robustness_table(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    severities: Iterable[int] = SEVERITIES,
    seed: int = 0,
    corruptions: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Accuracy of ``predict_fn`` (uint8 images -> predicted labels) under each corruption.

    Long format, one row per (corruption, severity), columns ``corruption``, ``severity``,
    ``accuracy``; the first row is the clean images (``corruption="clean"``, ``severity=0``).
    ``table.pivot(index="corruption", columns="severity", values="accuracy")`` gives the wide
    table, ``table[table.severity > 0].groupby("severity").accuracy.mean()`` the paper's Fig. 3
    curve. ``corruptions`` picks some of :data:`CORRUPTIONS` (default: all).
    """
    severities = list(severities)
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    _check_images(images)
    for severity in severities:
        _check_severity(severity)
        if severity == 0:
            raise ValueError("the table's severity must be 1 to 5; its first row is the clean one")
    for name in names:
        if name not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {name!r}; expected one of {list(CORRUPTIONS)}")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")

    def accuracy(batch: np.ndarray) -> float:
        predicted = np.asarray(predict_fn(batch)).reshape(-1)
        if predicted.shape != labels.shape:
            raise ValueError(f"predict_fn returned {predicted.shape} labels, expected "
                             f"{labels.shape}")  # fmt: skip
        return float(np.mean(predicted == labels))

    rows = [{"corruption": "clean", "severity": 0, "accuracy": accuracy(images)}]
    for name in names:
        for severity in severities:
            corrupted = corrupt(images, name, severity, seed)
            rows.append({"corruption": name, "severity": severity,
                         "accuracy": accuracy(corrupted)})  # fmt: skip
    return pd.DataFrame(rows)


def corruption_errors(tables: Mapping[str, pd.DataFrame], baseline: str) -> pd.DataFrame:
    """Corruption error of each model relative to ``baseline``, per corruption and their mean.

    ``tables`` maps a model's name to its :func:`robustness_table`. As ImageNet-C reports it, a
    model's corruption error on ``c`` is its error summed over severities divided by the
    baseline's (``CE``; the mean over corruptions is the ``mCE``, 1.0 for the baseline itself),
    and the relative corruption error divides the errors' rise above each model's clean error
    (``relative CE``, ``relative mCE``; NaN for a corruption that does not raise the
    baseline's error, and the mean is then over the others). Rows: corruptions then ``"mean"``;
    columns: (model, ``"CE"`` or ``"relative CE"``). Lower is more robust.
    """
    if baseline not in tables:
        raise ValueError(f"baseline {baseline!r} is not one of the models {list(tables)}")

    def errors(table: pd.DataFrame) -> tuple[pd.Series, float]:
        corrupted = table[table.corruption != "clean"]
        clean = 1.0 - float(table.loc[table.corruption == "clean", "accuracy"].iloc[0])
        summed = (1.0 - corrupted.accuracy).groupby(corrupted.corruption, sort=False).sum()
        counts = corrupted.groupby("corruption", sort=False).size()
        return summed, clean * counts

    base, base_clean = errors(tables[baseline])
    columns = {}
    for name, table in tables.items():
        summed, clean = errors(table)
        ce = summed / base
        rise = (base - base_clean).where(base - base_clean > 0)
        relative = (summed - clean) / rise
        columns[(name, "CE")] = pd.concat([ce, pd.Series({"mean": ce.mean()})])
        columns[(name, "relative CE")] = pd.concat([relative, pd.Series({"mean": relative.mean()})])
    return pd.DataFrame(columns)


def _check_severity(severity: int) -> None:
    if (
        isinstance(severity, bool)
        or not isinstance(severity, numbers.Integral)
        or not (0 <= severity < SEVERITIES.stop)
    ):
        raise ValueError(f"severity must be an integer from 0 to 5, got {severity!r}")


def _clean(images: np.ndarray, severity: int) -> bool:
    """Check the arguments; True for severity 0, the clean images."""
    _check_images(images)
    _check_severity(severity)
    return severity == 0


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        got = (f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray)
               else type(images).__name__)  # fmt: skip
        raise ValueError(f"images must be a uint8 array of shape (N, H, W, C), got {got}")


def _to_float(images: np.ndarray, severity: int) -> np.ndarray:
    """``images`` checked and scaled to float32 in [0, 1]; ``severity`` checked."""
    _check_images(images)
    _check_severity(severity)
    return images.astype(np.float32) / 255


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _separable(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Apply the linear maps ``rows`` (H x H) down each column and ``cols`` (W x W) along rows."""
    return np.einsum("hi,nijc,wj->nhwc", rows, x, cols, optimize=True).astype(np.float32)


def _gaussian_matrix(n: int, sigma: float) -> np.ndarray:
    """1-D Gaussian blur of ``n`` pixels as a matrix: truncated at 4 sigma, edges extended."""
    radius = max(1, math.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    matrix = np.zeros((n, n))
    for offset, weight in zip(offsets, weights / weights.sum(), strict=True):
        np.add.at(matrix, (np.arange(n), np.clip(np.arange(n) + offset, 0, n - 1)), weight)
    return matrix


def _block_mean_matrix(n: int, block: int) -> np.ndarray:
    """Each of ``n`` pixels replaced by the mean of its run of ``block`` pixels, as a matrix."""
    runs = np.arange(n) // block
    same = (runs[:, None] == runs[None, :]).astype(float)
    return same / same.sum(axis=1, keepdims=True)
