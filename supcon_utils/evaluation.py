"""What an encoder learned: accuracy, neighbours, and the geometry of its embeddings.

Every metric works on a matrix of embeddings (one row per image) and their labels, so the encoder
of the cross-entropy baseline and the SupCon encoder are measured the same way, on the same images:

- kNN accuracy: the majority label of the k nearest training embeddings by cosine similarity;
- linear-probe accuracy: multinomial logistic regression on the frozen, standardised embeddings;
- silhouette score (cosine): how much closer an image is to its own class than to the next class,
  from -1 to 1;
- mean intra-class and inter-class cosine similarity;
- alignment and uniformity (Wang and Isola, 2020) of the L2-normalised embeddings: alignment is
  the mean squared distance between two augmented views of one image (lower: more invariant to
  the augmentation); uniformity is log E[exp(-2 ||u - v||^2)] over pairs of different images
  (lower: spread more evenly over the hypersphere);
- accuracy per class and the confusion matrix of a classifier's predictions.

:func:`geometry` gives the class geometry of any embeddings (a projection head's output too),
optionally centred first.

:func:`evaluate` returns all of them as one flat dict, so a results table is one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.metrics import confusion_matrix, silhouette_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from supcon_utils import augment, data


def embeddings(
    encoder: keras.Model,
    images: np.ndarray,
    head: keras.Model | None = None,
    *,
    batch_size: int = 1024,
) -> np.ndarray:
    """Encoder outputs of ``images`` (uint8 or float in [0, 1]), or the ``head``'s outputs of them.

    With ``head`` (a SupCon projection head) the result is the projection the loss contrasts;
    without, the representation a classifier reads.
    """
    ds = data.make_dataset(images, None, batch_size=batch_size)
    model = encoder if head is None else keras.Sequential([encoder, head])
    return model.predict(ds, verbose=0)


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 20
) -> float:
    """Accuracy of a k-nearest-neighbour vote (cosine similarity) of training embeddings."""
    train_y = _check_pairs(train_x, train_y, "train")
    test_y = _check_pairs(test_x, test_y, "test")
    if not 1 <= k <= len(train_x):
        raise ValueError(f"k must be between 1 and the {len(train_x)} training points, got {k}")
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", n_jobs=-1)
    knn.fit(train_x, train_y)
    return float(np.mean(knn.predict(test_x) == test_y))


def linear_probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    """Test accuracy of logistic regression fitted on standardised training embeddings."""
    train_y = _check_pairs(train_x, train_y, "train")
    test_y = _check_pairs(test_x, test_y, "test")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    probe.fit(train_x, train_y)
    return float(probe.score(test_x, test_y))


def cosine_similarities(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean cosine similarity over pairs of different images of one class, and of two classes.

    Exact over all pairs, in O(n d): with unit vectors u, the sum of u_i . u_j over the pairs of a
    class c is |S_c|^2 - n_c, where S_c is the sum of that class's vectors.
    """
    y = _check_pairs(x, y, "")
    u = _unit(x)
    classes = np.unique(y)
    sums = np.stack([u[y == c].sum(axis=0) for c in classes])
    counts = np.array([np.sum(y == c) for c in classes], dtype=np.float64)
    within = np.sum(sums**2) - len(u)  # every same-class pair counted twice, self-pairs removed
    n_within = np.sum(counts * (counts - 1))
    between = np.sum(u.sum(axis=0) ** 2) - np.sum(sums**2)
    n_between = len(u) ** 2 - np.sum(counts**2)
    if n_within == 0 or n_between == 0:
        raise ValueError("need two classes and a class with two images for class similarities")
    return {
        "intra_class_cosine": float(within / n_within),
        "inter_class_cosine": float(between / n_between),
    }


def alignment(x_a: np.ndarray, x_b: np.ndarray, alpha: float = 2.0) -> float:
    """Wang and Isola's alignment: mean ||u_a - u_b||^alpha over rows of two views' embeddings."""
    if x_a.shape != x_b.shape:
        raise ValueError(f"the two views' embeddings differ in shape: {x_a.shape} vs {x_b.shape}")
    return float(np.mean(np.linalg.norm(_unit(x_a) - _unit(x_b), axis=1) ** alpha))


def uniformity(x: np.ndarray, t: float = 2.0) -> float:
    """Wang and Isola's uniformity: log of the mean of exp(-t ||u_i - u_j||^2) over pairs i != j."""
    u = _unit(x)
    if len(u) < 2:
        raise ValueError("uniformity needs at least two embeddings")
    sq_dist = np.maximum(2.0 - 2.0 * (u @ u.T), 0.0)  # unit vectors: ||u - v||^2 = 2 - 2 u.v
    off_diagonal = ~np.eye(len(u), dtype=bool)
    values = -t * sq_dist[off_diagonal]
    top = values.max()
    return float(top + np.log(np.mean(np.exp(values - top))))


def geometry(x: np.ndarray, y: np.ndarray, *, centre: bool = False) -> dict[str, float]:
    """How embeddings ``x`` cluster by class ``y``: cosine silhouette, intra- and inter-class
    cosine similarity, uniformity. With ``centre`` the mean embedding is taken off first: features
    after a ReLU are all >= 0, so every pair has cosine >= 0 and a shared offset can make classes
    look alike that differ in every direction around it."""
    y = _check_pairs(x, y, "")
    if centre:
        x = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    return {
        "silhouette_cosine": float(silhouette_score(x, y, metric="cosine")),
        **cosine_similarities(x, y),
        "uniformity": uniformity(x),
    }


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, accuracy per class (``accuracy/<class>``), confusion matrix (rows: true class)."""
    y_true, y_pred = labels_1d(y_true, "y_true"), labels_1d(y_pred, "y_pred")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} vs {len(y_pred)}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        outside = y[(y < 0) | (y >= len(class_names))]
        if len(outside):
            raise ValueError(f"{name} holds class {outside[0]}, but class_names names "
                             f"{len(class_names)} classes (0 to {len(class_names) - 1}); give "
                             "one name per class")  # fmt: skip
    labels = np.arange(len(class_names))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    return {
        "accuracy": float(np.mean(y_true == y_pred)),
        **{f"accuracy/{name}": float(a) for name, a in zip(class_names, per_class, strict=True)},
        "confusion_matrix": matrix.tolist(),
    }


def evaluate(
    encoder: keras.Model,
    classifier: keras.Model,
    train: data.Split,
    test: data.Split,
    class_names: Sequence[str],
    *,
    augmentation: str = "grayscale28",
    k: int = 20,
    n_geometry: int = 5000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of this module for one trained model, as a flat dict.

    ``classifier`` maps encoder outputs to logits (the cross-entropy head, or SupCon's linear
    probe). kNN and the logistic-regression probe are fitted on the embeddings of all of ``train``
    and scored on all of ``test``; the silhouette, similarities, alignment and uniformity use the
    first ``n_geometry`` test images (silhouette and uniformity cost O(n^2)), with alignment over
    two views of them made by ``augmentation``.
    """
    (x_train, y_train), (x_test, y_test) = train, test
    emb_train = embeddings(encoder, x_train)
    emb_test = embeddings(encoder, x_test)
    logits = classifier.predict(emb_test, batch_size=4096, verbose=0)
    report = classification_report(y_test, logits.argmax(axis=1), class_names)

    n = min(n_geometry, len(x_test))
    geo_x, geo_y = emb_test[:n], y_test[:n]
    views = augment.make_views(
        x_test[:n], augment.augmenter(augmentation, x_test.shape[1:], seed=seed), n_views=2
    ).numpy()
    view_emb = [embeddings(encoder, views[:, v]) for v in range(2)]
    return {
        "accuracy": report.pop("accuracy"),
        "knn_accuracy": knn_accuracy(emb_train, y_train, emb_test, y_test, k=k),
        "linear_probe_accuracy": linear_probe_accuracy(emb_train, y_train, emb_test, y_test),
        **geometry(geo_x, geo_y),
        "alignment": alignment(*view_emb),
        **report,
    }


def few_label_subset(labels: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` random images of every class (None: every image), sorted.

    The pick is ``numpy.random.default_rng((seed, per_class))``'s: one seed, one subset, so a
    probe and a model trained from scratch (``training.Config.labels_per_class``) with the same
    seed see the same labelled images.
    """
    labels = labels_1d(labels)
    if per_class is None:
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    if not 1 <= per_class <= counts.min():
        raise ValueError(f"per_class must be between 1 and {counts.min()} (the smallest class), "
                         f"got {per_class}")  # fmt: skip
    rng = np.random.default_rng((seed, per_class))
    picked = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes]
    return np.sort(np.concatenate(picked))


def label_efficiency(
    features: dict[str, tuple[np.ndarray, np.ndarray]],
    train_y: np.ndarray,
    test_y: np.ndarray,
    per_class: Sequence[int | None] = (1, 5, 10, 50, 100, 500, None),
    seeds: Sequence[int] = (0, 1, 2),
) -> pd.DataFrame:
    """Linear-probe test accuracy with few labels, on frozen features of several encoders.

    ``features`` maps an encoder's name to its ``(train_features, test_features)``. For each
    ``per_class`` (None: every training label) and seed (one random pick of labelled images,
    :func:`few_label_subset`; every label is picked once), every encoder's probe
    (:func:`linear_probe_accuracy`) is fitted on the same labelled images. One row per encoder,
    labels per class (``per_class``, the largest class's count for None) and seed, with
    ``n_labels`` and ``accuracy``.
    """
    rows = []
    for k in per_class:
        for seed in seeds if k is not None else seeds[:1]:
            subset = few_label_subset(train_y, k, seed)
            n = int(np.bincount(train_y[subset]).max())
            for name, (train_x, test_x) in features.items():
                accuracy = linear_probe_accuracy(train_x[subset], train_y[subset], test_x, test_y)
                rows.append({"encoder": name, "per_class": n, "seed": seed,
                             "n_labels": len(subset), "accuracy": accuracy})  # fmt: skip
    return pd.DataFrame(rows)


def project_2d(x: np.ndarray, method: str = "tsne", *, seed: int = 0) -> np.ndarray:
    """2-d coordinates of embeddings for a scatter plot: ``"tsne"`` (cosine) or ``"pca"``."""
    u = _unit(x)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(u)
    if method == "tsne":
        perplexity = min(30.0, (len(u) - 1) / 3)
        tsne = TSNE(metric="cosine", init="pca", perplexity=perplexity, random_state=seed)
        return tsne.fit_transform(u)
    raise ValueError(f"unknown projection {method!r}; expected 'tsne' or 'pca'")


def pca_variance(x: np.ndarray, n: int = 2) -> np.ndarray:
    """The share of the variance of the unit-length embeddings along each of their first ``n``
    principal axes: how much of them a PCA picture (:func:`project_2d`) shows."""
    return PCA(n_components=n).fit(_unit(x)).explained_variance_ratio_


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d array (images, dims), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or infinity")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("an embedding is the zero vector: its direction (cosine) is undefined")
    return x / norms


def labels_1d(y: np.ndarray, name: str = "labels") -> np.ndarray:
    """Integer class labels as a vector: shape ``(n,)``, or ``(n, 1)`` as Keras loads CIFAR-10's."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1), got {y.shape}")
    return y


def _check_pairs(x: np.ndarray, y: np.ndarray, which: str) -> np.ndarray:
    """Check embeddings ``x`` against their labels ``y``; the labels as a vector."""
    _unit(x)  # shape and finiteness
    name = f"{which} " if which else ""
    y = labels_1d(y, f"{name}labels")
    if len(x) != len(y):
        raise ValueError(f"{name}embeddings and labels differ in length: {len(x)} vs {len(y)}")
    return y
