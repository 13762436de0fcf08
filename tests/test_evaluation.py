"""Evaluation metrics against brute-force definitions, and `evaluate` end to end on a tiny model."""

import itertools

import keras
import numpy as np
import pytest

from supcon_utils import evaluation, models

rng = np.random.default_rng(0)


def clusters(n_per_class=30, n_classes=3, dim=8, spread=0.1, seed=0):
    """Points around one random unit centre per class."""
    r = np.random.default_rng(seed)
    centres = r.normal(size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return centres[y] + spread * r.normal(size=(len(y), dim)), y


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_class_similarities_equal_the_mean_over_all_pairs():
    x, y = clusters(n_per_class=7, spread=1.0)
    x, y = x[:-3], y[:-3]  # unequal class sizes
    within, between = [], []
    for i, j in itertools.permutations(range(len(x)), 2):
        (within if y[i] == y[j] else between).append(cosine(x[i], x[j]))
    got = evaluation.cosine_similarities(x, y)
    assert got["intra_class_cosine"] == pytest.approx(np.mean(within), rel=1e-9)
    assert got["inter_class_cosine"] == pytest.approx(np.mean(between), rel=1e-9)


def test_tight_clusters_are_more_similar_within_than_between():
    got = evaluation.cosine_similarities(*clusters(spread=0.05))
    assert got["intra_class_cosine"] > 0.95 > got["inter_class_cosine"]


def test_uniformity_equals_its_definition():
    x = rng.normal(size=(12, 5))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = [np.exp(-2 * np.sum((u[i] - u[j]) ** 2))
             for i, j in itertools.permutations(range(len(u)), 2)]  # fmt: skip
    assert evaluation.uniformity(x) == pytest.approx(np.log(np.mean(pairs)), rel=1e-9)


def test_uniformity_is_lower_for_spread_points_than_for_a_clump():
    spread = rng.normal(size=(200, 16))
    clump = np.ones((200, 16)) + 0.01 * rng.normal(size=(200, 16))
    assert evaluation.uniformity(spread) < evaluation.uniformity(clump) < -0.0
    assert evaluation.uniformity(clump) == pytest.approx(0.0, abs=1e-2)


def test_alignment_of_identical_and_opposite_views():
    x = rng.normal(size=(10, 4))
    assert evaluation.alignment(x, 3 * x) == pytest.approx(0.0, abs=1e-12)
    assert evaluation.alignment(x, -x) == pytest.approx(4.0)
    assert evaluation.alignment(x, -x, alpha=1) == pytest.approx(2.0)


def test_knn_matches_a_brute_force_cosine_vote():
    train_x, train_y = clusters(n_per_class=20, spread=1.5, seed=1)
    test_x, test_y = clusters(n_per_class=10, spread=1.5, seed=2)
    k = 5
    correct = 0
    for x, y in zip(test_x, test_y, strict=True):
        sims = np.array([cosine(x, t) for t in train_x])
        votes = np.bincount(train_y[np.argsort(-sims)[:k]], minlength=3)
        correct += int(np.argmax(votes) == y)
    got = evaluation.knn_accuracy(train_x, train_y, test_x, test_y, k=k)
    assert got == pytest.approx(correct / len(test_y))
    assert 0.3 < got < 1.0  # overlapping clusters: neither trivial nor hopeless


def test_separable_classes_are_found_by_knn_and_the_linear_probe():
    train, test = clusters(seed=3, spread=0.05), clusters(seed=3, spread=0.05)
    assert evaluation.knn_accuracy(*train, *test) == 1.0
    assert evaluation.linear_probe_accuracy(*train, *test) == 1.0


def test_labels_shaped_n_by_1_as_keras_loads_cifar_give_the_same_answers():
    (x, y), (tx, ty) = clusters(seed=3, spread=0.05), clusters(seed=3, spread=0.05)
    column = (y[:, None], ty[:, None])
    assert evaluation.knn_accuracy(x, column[0], tx, column[1]) == 1.0
    assert evaluation.linear_probe_accuracy(x, column[0], tx, column[1]) == 1.0
    assert evaluation.cosine_similarities(x, column[0]) == evaluation.cosine_similarities(x, y)
    report = evaluation.classification_report(column[1], ty, ["a", "b", "c"])
    assert report == evaluation.classification_report(ty, ty, ["a", "b", "c"])
    assert report["accuracy"] == 1.0
    np.testing.assert_array_equal(evaluation.few_label_subset(column[0], 2, seed=1),
                                  evaluation.few_label_subset(y, 2, seed=1))  # fmt: skip
    with pytest.raises(ValueError, match=r"test labels must have shape \(n,\) or \(n, 1\), "
                       r"got \(90, 2\)"):  # fmt: skip
        evaluation.knn_accuracy(x, y, tx, np.stack([ty, ty], axis=1))


def test_classification_report_needs_one_name_per_class():
    with pytest.raises(ValueError, match=r"y_true holds class 2, but class_names names 2 classes "
                       r"\(0 to 1\); give one name per class"):  # fmt: skip
        evaluation.classification_report(np.array([0, 1, 2]), np.array([0, 1, 1]), ["a", "b"])
    with pytest.raises(ValueError, match="y_pred holds class -1"):
        evaluation.classification_report(np.array([0, 1]), np.array([0, -1]), ["a", "b"])


def test_classification_report_counts_per_class():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    got = evaluation.classification_report(y_true, y_pred, ["a", "b", "c"])
    assert got["accuracy"] == pytest.approx(4 / 6)
    assert got["accuracy/a"] == pytest.approx(2 / 3)
    assert got["accuracy/b"] == pytest.approx(1 / 2)
    assert got["accuracy/c"] == 1.0
    assert got["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_project_2d_keeps_one_point_per_embedding(method):
    x, _ = clusters(n_per_class=20)
    xy = evaluation.project_2d(x, method)
    assert xy.shape == (60, 2)
    assert np.all(np.isfinite(xy))


def test_pca_variance_is_the_share_along_the_axes_of_the_pca_picture():
    r = np.random.default_rng(1)
    flat = np.column_stack([r.normal(0, 3, 500), r.normal(0, 1, 500), r.normal(0, 0.01, 500)])
    shares = evaluation.pca_variance(flat + [0, 0, 100])  # unit vectors: nearly flat there
    assert shares.shape == (2,)
    assert shares[0] > shares[1] > 0 and shares.sum() == pytest.approx(1.0, abs=1e-3)
    expected = flat.var(axis=0) / flat.var(axis=0).sum()  # about 9 : 1 : 0, axes uncorrelated
    np.testing.assert_allclose(shares, expected[:2], atol=0.01)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: evaluation.cosine_similarities(np.full((4, 3), np.nan), np.arange(4)), "NaN"),
        (lambda: evaluation.uniformity(np.zeros((4, 3))), "zero vector"),
        (lambda: evaluation.alignment(np.ones((4, 3)), np.ones((5, 3))), "differ in shape"),
        (
            lambda: evaluation.knn_accuracy(
                np.ones((4, 3)), np.arange(3), np.ones((2, 3)), np.arange(2)
            ),
            "differ in length",
        ),  # fmt: skip
        (
            lambda: evaluation.knn_accuracy(
                np.ones((4, 3)), np.arange(4), np.ones((2, 3)), np.arange(2), k=5
            ),
            "k must be",
        ),  # fmt: skip
        (lambda: evaluation.uniformity(np.ones(3)), "2-d"),
        (lambda: evaluation.project_2d(np.ones((4, 3)), "umap"), "unknown projection"),
        (lambda: evaluation.cosine_similarities(np.ones((3, 2)), np.zeros(3)), "two classes"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_evaluate_returns_every_metric_as_one_flat_dict():
    keras.utils.set_random_seed(0)
    r = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    masks = np.zeros((3, 28, 28, 1))
    masks[0, :, :14], masks[1, :14], masks[2, 7:21, 7:21] = 1, 1, 1  # left, top, centre
    images = (r.uniform(size=(120, 28, 28, 1)) * 40 + 200 * masks[y]).astype(np.uint8)
    encoder = models.resnet_small((28, 28, 1), widths=(8, 8, 16))
    classifier = models.linear_classifier(16, 3)
    got = evaluation.evaluate(encoder, classifier, (images, y), (images, y), ["a", "b", "c"],
                              k=5, n_geometry=60)  # fmt: skip
    scalar_keys = {"accuracy", "knn_accuracy", "linear_probe_accuracy", "silhouette_cosine",
                   "intra_class_cosine", "inter_class_cosine", "alignment", "uniformity",
                   "accuracy/a", "accuracy/b", "accuracy/c"}  # fmt: skip
    assert set(got) == scalar_keys | {"confusion_matrix"}
    assert all(np.isfinite(got[k]) for k in scalar_keys)
    assert np.sum(got["confusion_matrix"]) == 120
    # Where the bright region is separates these classes, even through a random encoder.
    assert got["knn_accuracy"] > 0.9
    assert -1 <= got["silhouette_cosine"] <= 1
    assert 0 <= got["alignment"] <= 4


def test_few_label_subset_picks_k_of_each_class_anew_per_seed():
    labels = np.repeat(np.arange(4), 30)
    subsets = [evaluation.few_label_subset(labels, 5, seed) for seed in range(3)]
    for subset in subsets:
        assert np.bincount(labels[subset]).tolist() == [5, 5, 5, 5]
        assert len(np.unique(subset)) == 20
    assert not np.array_equal(subsets[0], subsets[1])
    np.testing.assert_array_equal(evaluation.few_label_subset(labels, 5, 1), subsets[1])
    assert len(evaluation.few_label_subset(labels, None, 0)) == len(labels)
    with pytest.raises(ValueError, match="between 1 and 30"):
        evaluation.few_label_subset(labels, 31)


def test_label_efficiency_grows_with_labels_on_separable_features():
    rng = np.random.default_rng(0)
    train_y, test_y = np.repeat(np.arange(3), 100), np.repeat(np.arange(3), 50)
    centres = rng.normal(size=(3, 8)) * 2
    good = [centres[y] + rng.normal(size=(len(y), 8)) for y in (train_y, test_y)]
    noise = [rng.normal(size=(len(y), 8)) for y in (train_y, test_y)]
    table = evaluation.label_efficiency(
        {"good": tuple(good), "noise": tuple(noise)}, train_y, test_y, per_class=(1, 10, None),
        seeds=(0, 1),
    )  # fmt: skip
    assert len(table) == 2 * (2 + 2 + 1)
    assert table.groupby("per_class").n_labels.first().to_dict() == {1: 3, 10: 30, 100: 300}
    mean = table.groupby(["encoder", "per_class"]).accuracy.mean()
    assert mean["good", 100] > 0.9 and mean["noise", 100] < 0.5
    assert mean["good", 100] >= mean["good", 1]


def test_geometry_centred_sees_classes_that_a_shared_offset_hides():
    """Clusters on the far side of a large common offset: every cosine is near 1 until the mean
    is taken off, after which the classes separate (the post-ReLU case of notebook 04)."""
    x, y = clusters(dim=8, spread=0.1)
    shifted = x + 50.0
    raw = evaluation.geometry(shifted, y)
    centred = evaluation.geometry(shifted, y, centre=True)
    assert raw["inter_class_cosine"] > 0.99
    assert centred["inter_class_cosine"] < 0.5 < centred["intra_class_cosine"]
    assert centred["silhouette_cosine"] > raw["silhouette_cosine"]
    assert evaluation.geometry(x - x.mean(axis=0), y) == evaluation.geometry(x, y, centre=True)
    assert set(raw) == {"silhouette_cosine", "intra_class_cosine", "inter_class_cosine",
                        "uniformity"}  # fmt: skip
