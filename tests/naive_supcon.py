"""The one naive reference of the SupCon loss that every test compares the library with.

Eq. 2 ("out") or eq. 3 ("in") of Khosla et al. by explicit loops in float64, built independently
of ``supcon_utils.losses``: views image-major, A(i) and P(i) as lists, no log-sum-exp trick
(float64 holds exp(+-200), far beyond what t >= 0.01 produces).
"""

import math

import numpy as np


def naive_supcon(
    features,
    labels,
    temperature,
    variant,
    contrast_mode="all",
    base_temperature=None,
    extra=None,
    extra_labels=None,
):
    """The loss of ``features`` ``(batch, n_views, dim)``.

    ``labels`` ``(batch,)`` or None (SimCLR: each image is its own class). Anchors: every view, or
    view 0 of each image with ``contrast_mode="one"``. A(i): every other view, and every row of
    ``extra`` (classes ``extra_labels``; without labels an extra row is never a positive). The
    mean is over the anchors with a positive, 0 if there is none.
    """
    features = np.asarray(features, np.float64)
    batch, n_views, _ = features.shape

    def unit(v):
        return np.asarray(v, np.float64) / np.linalg.norm(v)

    def label(image):
        return image if labels is None else labels[image]

    # (vector, class, view number): the batch's views, then the extra rows (never anchors).
    entries = [(unit(features[i, v]), label(i), v) for i in range(batch) for v in range(n_views)]
    n_views_total = len(entries)
    for k, row in enumerate([] if extra is None else extra):
        entries.append((unit(row), None if labels is None else extra_labels[k], None))

    per_anchor = []
    for a in range(n_views_total):
        z, cls, view = entries[a]
        if contrast_mode == "one" and view != 0:
            continue
        others = [entry for k, entry in enumerate(entries) if k != a]  # A(i)
        positives = [w for w, c, _ in others if c == cls]  # P(i)
        if not positives:
            continue
        denominator = sum(math.exp(z @ w / temperature) for w, _, _ in others)
        ratios = [math.exp(z @ p / temperature) / denominator for p in positives]
        if variant == "out":
            per_anchor.append(-sum(math.log(r) for r in ratios) / len(ratios))
        else:
            per_anchor.append(-math.log(sum(ratios) / len(ratios)))
    loss = sum(per_anchor) / len(per_anchor) if per_anchor else 0.0
    if base_temperature is not None:
        loss *= temperature / base_temperature
    return loss
