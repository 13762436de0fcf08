"""MoCo-style SupCon: the key queue, the EMA update, the loss with a queue, and training by fit.

The loss with a queue is checked against a naive float64 loop written without the library's code;
the queue and the EMA against their definitions on small tensors.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from keras import layers
from naive_supcon import naive_supcon

from supcon_utils import data, moco, models
from supcon_utils.losses import supcon_loss


def _tiny_model(**options) -> moco.MoCoSupConModel:
    """Conv-BN-ReLU-pool encoder on 8x8x1 images and the paper's head (128-d output)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    encoder = keras.Model(inputs, layers.GlobalAveragePooling2D()(x))
    return moco.MoCoSupConModel(encoder, models.projection_head(4, hidden_dim=8), **options)


def _values(variables) -> list[np.ndarray]:
    return [v.numpy().copy() for v in variables]


@pytest.fixture(scope="module")
def batch():
    """16 noise images of 4 classes, two fixed views each."""
    rng = np.random.default_rng(0)
    return rng.random((16, 2, 8, 8, 1), np.float32), np.repeat(np.arange(4), 4)


# 1. The queue --------------------------------------------------------------------------------


def test_queue_is_first_in_first_out_across_the_end():
    rng = np.random.default_rng(1)
    keys = rng.normal(size=(13, 3)).astype(np.float32)
    labels = 100 + np.arange(13)
    queue = moco.KeyQueue(5, 3)

    def check(first, last):  # the queue holds keys first..last-1, oldest first
        contents, content_labels = queue.contents()
        np.testing.assert_array_equal(contents.numpy(), keys[first:last])
        np.testing.assert_array_equal(content_labels.numpy(), labels[first:last])
        assert int(queue.filled()) == last - first

    check(0, 0)
    queue.enqueue(keys[:2], labels[:2])
    check(0, 2)  # partly filled: only the filled slots
    queue.enqueue(keys[2:6], labels[2:6])  # fills the last 3 slots, then overwrites slot 0
    check(1, 6)
    np.testing.assert_array_equal(queue.labels.numpy(), [105, 101, 102, 103, 104])  # the slots
    # More keys than slots, in a graph: only the last 5 remain, in order.
    tf.function(queue.enqueue)(tf.constant(keys[6:13]), tf.constant(labels[6:13]))
    check(8, 13)
    assert int(queue.n_enqueued.value) == 13


def test_partly_filled_queue_contributes_only_its_filled_entries(batch):
    views, labels = batch
    model = _tiny_model(queue_size=10)
    rng = np.random.default_rng(2)
    keys = rng.normal(size=(4, 128)).astype(np.float32)
    key_labels = np.array([0, 3, 7, 1])
    model.queue.enqueue(keys, key_labels)
    z = model(views)
    value = float(model.loss_with_queue(z, labels))
    expected = supcon_loss(z, labels, contrast_features=keys, contrast_labels=key_labels)
    np.testing.assert_allclose(value, float(expected), rtol=1e-6)
    # The 6 empty (zero) slots would have changed the value.
    padded = supcon_loss(
        z,
        labels,
        contrast_features=model.queue.keys.value,
        contrast_labels=model.queue.labels.value,
    )
    assert not np.isclose(value, float(padded), rtol=1e-3)


# 2. The loss with extra contrast entries -------------------------------------------------------


@pytest.mark.parametrize("with_labels", [True, False], ids=["labels", "simclr"])
def test_empty_queue_gives_plain_supcon_loss(batch, with_labels):
    views, labels = batch
    labels = labels if with_labels else None
    model = _tiny_model()
    z = model(views, training=True)
    expected = float(supcon_loss(z, labels))
    np.testing.assert_allclose(float(model.loss_with_queue(z, labels)), expected, rtol=1e-6)
    no_rows = dict(contrast_features=tf.zeros((0, 128)))
    if with_labels:
        no_rows["contrast_labels"] = tf.zeros((0,), tf.int64)
    np.testing.assert_allclose(float(supcon_loss(z, labels, **no_rows)), expected, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 6),
    n_views=st.integers(1, 2),
    queue=st.integers(0, 256),
    variant=st.sampled_from(["out", "in"]),
    with_labels=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_loss_with_a_contrast_set_of_0_to_256_entries_matches_the_naive_loop(
    batch, n_views, queue, variant, with_labels, seed
):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(batch, n_views, 4))
    labels = rng.integers(0, 4, batch) if with_labels else None
    keys, key_labels = rng.normal(size=(queue, 4)), rng.integers(0, 4, queue)
    options = dict(temperature=float(rng.uniform(0.05, 1.0)), variant=variant)
    value = supcon_loss(features, labels, contrast_features=keys,
                        contrast_labels=key_labels if with_labels else None, **options)  # fmt: skip
    expected = naive_supcon(features, labels, **options, extra=keys, extra_labels=key_labels)
    np.testing.assert_allclose(float(value), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_views", [1, 2])
@pytest.mark.parametrize("variant", ["out", "in"])
@pytest.mark.parametrize("with_labels", [True, False], ids=["labels", "simclr"])
def test_loss_with_queue_matches_naive_loop(with_labels, variant, n_views):
    rng = np.random.default_rng(3)
    features = rng.normal(size=(6, n_views, 5)) * rng.uniform(0.5, 2.0, size=(6, n_views, 1))
    # With one view, class 1's only positive is in the queue and class 2 has none anywhere.
    labels = np.array([0, 0, 1, 2, 3, 3])
    extra = rng.normal(size=(7, 5))
    contrast_labels = np.array([1, 0, 7, 1, 3, 7, 0])
    options = dict(temperature=0.2, variant=variant)
    y = labels if with_labels else None
    value = supcon_loss(
        features,
        y,
        contrast_features=extra,
        contrast_labels=contrast_labels if with_labels else None,
        **options,
    )
    expected = naive_supcon(features, y, **options, extra=extra, extra_labels=contrast_labels)
    np.testing.assert_allclose(float(value), expected, rtol=1e-10)
    if with_labels or n_views > 1:  # else no anchor has a positive (the extras are negatives)
        assert not np.isclose(float(value), float(supcon_loss(features, y, **options)))
    else:
        assert float(value) == 0.0


def test_queue_entries_get_no_gradient():
    rng = np.random.default_rng(4)
    features, extra = tf.constant(rng.normal(size=(4, 2, 3))), tf.constant(rng.normal(size=(5, 3)))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([features, extra])
        loss = supcon_loss(features, [0, 1, 0, 1], contrast_features=extra, contrast_labels=[1] * 5)
    assert tape.gradient(loss, extra) is None
    assert np.isfinite(tape.gradient(loss, features).numpy()).all()


def test_queue_under_mirrored_strategy_matches_single_device(two_replicas):
    # Each replica contrasts its anchors with the global batch and the same extra entries. Class
    # 2's single view has its only positive among the extras: it must count on both replicas.
    strategy = two_replicas
    rng = np.random.default_rng(5)
    features, labels = rng.normal(size=(4, 1, 3)), np.array([0, 1, 0, 2])
    extra, contrast_labels = rng.normal(size=(3, 3)), np.array([2, 5, 0])
    options = dict(temperature=0.5, contrast_features=extra, contrast_labels=contrast_labels)

    def shard(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(array[2 * ctx.replica_id_in_sync_group :][:2])
        )

    run = tf.function(
        lambda x, y: strategy.run(lambda a, b: supcon_loss(a, b, **options), args=(x, y))
    )
    per_replica = strategy.experimental_local_results(run(shard(features), shard(labels)))
    expected = naive_supcon(features, labels, 0.5, "out", extra=extra, extra_labels=contrast_labels)
    np.testing.assert_allclose(np.mean([float(v) for v in per_replica]), expected, rtol=1e-10)
    np.testing.assert_allclose(
        float(supcon_loss(features, labels, **options)), expected, rtol=1e-10
    )


# 3. The momentum (EMA) update ----------------------------------------------------------------


def test_key_networks_are_an_exact_moving_average_of_the_query_networks(batch):
    views, _ = batch
    model = _tiny_model(momentum=0.75)
    query = model.encoder.weights + model.head.weights
    key = model.key_encoder.weights + model.key_head.weights
    assert any("moving_variance" in v.path for v in key)  # batch norm statistics included
    # Only the query networks are trained; the key networks are not the optimizer's business.
    assert {id(v) for v in model.trainable_variables} == {
        id(v) for v in model.encoder.trainable_variables + model.head.trainable_variables
    }
    assert not any(v.trainable for v in key)
    for k, q in zip(_values(key), _values(query), strict=True):  # a copy at first
        np.testing.assert_array_equal(k, q)

    rng = np.random.default_rng(6)
    for variable in query:  # positive values, so moving variances stay valid
        variable.assign(rng.uniform(0.5, 1.5, size=variable.shape).astype(np.float32))
    old_key, new_query = _values(key), _values(query)
    model.key_projections(views)  # runs batch norm on batch statistics, but changes nothing
    for k, old in zip(_values(key), old_key, strict=True):
        np.testing.assert_array_equal(k, old)

    model.update_key_networks()
    for k, old, q in zip(_values(key), old_key, new_query, strict=True):
        np.testing.assert_allclose(k, 0.75 * old + 0.25 * q, rtol=1e-6, atol=1e-7)
    for q, new in zip(_values(query), new_query, strict=True):
        np.testing.assert_array_equal(q, new)


# 4. Training ----------------------------------------------------------------------------------


def test_first_step_is_plain_supcon_then_enqueues_the_keys(batch):
    views, labels = batch
    model = _tiny_model(queue_size=48, momentum=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    # Key networks equal to the query ones give the same projections (both on batch statistics).
    np.testing.assert_allclose(model.key_projections(views), model(views, training=True), atol=1e-6)
    expected = float(supcon_loss(model(views, training=True), labels))
    history = model.fit(views, labels, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)

    keys, key_labels = model.queue.contents()
    np.testing.assert_array_equal(key_labels.numpy(), np.repeat(labels, 2))  # image-major
    after = model.key_projections(views).numpy().reshape(32, 128)  # keys of the updated networks
    np.testing.assert_allclose(keys.numpy(), after, atol=1e-6)


def test_fit_on_the_data_pipeline_with_and_without_labels():
    rng = np.random.default_rng(7)
    images, labels = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8), np.arange(16) % 4
    for with_labels in (True, False):
        model = _tiny_model(queue_size=24)
        model.compile(optimizer="adam")
        ds = data.make_dataset(
            images, labels if with_labels else None, batch_size=8, n_views=2,
            augmentation="grayscale28", shuffle=True,
        )  # fmt: skip
        history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
        assert np.isfinite(history.history["loss"]).all()
        assert int(model.queue.n_enqueued.value) == 32 and int(model.queue.filled()) == 24
        queue_labels = model.queue.contents()[1].numpy()
        assert set(queue_labels) <= (set(labels) if with_labels else {-1})
        assert np.isfinite(model.evaluate(ds, verbose=0))


def test_each_step_enqueues_each_of_its_keys_once(batch):
    views, labels = batch
    model = _tiny_model(queue_size=64)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.fit(views, labels, batch_size=8, epochs=1, shuffle=False, verbose=0)  # 2 steps
    keys, key_labels = (t.numpy() for t in model.queue.contents())
    assert len(keys) == int(model.queue.n_enqueued.value) == 16 * 2  # every view of both steps
    assert len(np.unique(keys.round(5), axis=0)) == len(keys)  # no key twice
    np.testing.assert_array_equal(key_labels, np.repeat(labels, 2))  # in order, image-major


@pytest.mark.slow  # 10 training steps
def test_fit_lowers_the_loss(batch):
    views, labels = batch
    keras.utils.set_random_seed(0)
    model = moco.moco_supcon_model("resnet_small", (8, 8, 1), queue_size=32, momentum=0.9)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    one_batch = tf.data.Dataset.from_tensors((views, labels))
    losses = model.fit(one_batch, epochs=10, verbose=0, shuffle=False).history["loss"]
    assert np.isfinite(losses).all()
    # From the second step on the queue holds 32 keys, so the contrast set keeps its size.
    assert losses[-1] < losses[1] - 0.5, f"loss did not fall: {np.round(losses, 3)}"


def test_weights_and_queue_survive_save_and_load(batch, tmp_path):
    views, labels = batch
    model = _tiny_model(queue_size=40)
    model.compile(optimizer="adam")
    model.fit(views, labels, batch_size=16, epochs=2, verbose=0)
    model.save_weights(tmp_path / "moco.weights.h5")
    restored = _tiny_model(queue_size=40)
    restored.load_weights(tmp_path / "moco.weights.h5")
    assert int(restored.queue.n_enqueued.value) == 64
    for a, b in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


# 5. Bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (dict(queue_size=0), "queue_size must be > 0, got 0"),
        (dict(queue_size=-5), "queue_size must be > 0"),
        (dict(momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
        (dict(momentum=-0.1), "momentum must be in"),
        (dict(momentum=float("nan")), "momentum must be in"),
        (dict(temperature=0.0), "temperature must be a finite number > 0"),
        (dict(variant="both"), "unknown variant"),
    ],
)
def test_bad_options_raise_value_error(options, match):
    with pytest.raises(ValueError, match=match):
        _tiny_model(**options)


_FEATURES, _LABELS = np.ones((4, 2, 3), np.float32), np.arange(4)
_NAN = np.ones((5, 3), np.float32)
_NAN[2, 1] = np.nan


@pytest.mark.parametrize(
    ("labels", "extra", "match"),
    [
        (_LABELS, dict(contrast_features=np.ones((5, 3)), contrast_labels=np.arange(4)),
         "contrast_labels have length 4 but contrast_features have 5 rows"),
        (_LABELS, dict(contrast_features=np.ones((5, 4)), contrast_labels=np.arange(5)),
         "contrast_features have dim 4 but features have dim 3"),
        (_LABELS, dict(contrast_features=np.ones((5, 1, 3)), contrast_labels=np.arange(5)),
         r"contrast_features must have rank 2 .*\(5, 1, 3\)"),
        (_LABELS, dict(contrast_features=np.ones((5, 3), np.int32), contrast_labels=np.arange(5)),
         "contrast_features must be floating point"),
        (_LABELS, dict(contrast_features=_NAN, contrast_labels=np.arange(5)),
         "contrast_features .*NaN"),
        (_LABELS, dict(contrast_features=np.ones((5, 3)), contrast_labels=np.ones(5)),
         "contrast_labels must be integers"),
        (_LABELS, dict(contrast_features=np.ones((5, 3)), contrast_labels=np.ones((5, 1), int)),
         "contrast_labels must have rank 1"),
        (_LABELS, dict(contrast_features=np.ones((5, 3))),
         "contrast_labels are required with labels"),
        (None, dict(contrast_features=np.ones((5, 3)), contrast_labels=np.arange(5)),
         "contrast_labels given without labels"),
        (_LABELS, dict(contrast_labels=np.arange(5)),
         "contrast_labels given without contrast_features"),
    ],
)  # fmt: skip
def test_bad_extra_entries_raise_value_error(labels, extra, match):
    with pytest.raises(ValueError, match=match):
        supcon_loss(_FEATURES, labels, **extra)


def test_graph_checks_extra_lengths_at_run_time():
    loss = tf.function(
        lambda x, y, e, el: supcon_loss(x, y, contrast_features=e, contrast_labels=el),
        input_signature=[
            tf.TensorSpec([None, 2, 3]), tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None, 3]), tf.TensorSpec([None], tf.int64),
        ],
    )  # fmt: skip
    with pytest.raises(tf.errors.InvalidArgumentError, match="contrast_labels length"):
        loss(_FEATURES, _LABELS, tf.ones((5, 3)), tf.range(4, dtype=tf.int64))


def test_bad_queue_and_model_input_raise_value_error(batch, two_replicas):
    views, labels = batch
    queue = moco.KeyQueue(4, 3)
    with pytest.raises(ValueError, match=r"keys must have shape \(n, 3\)"):
        queue.enqueue(np.ones((2, 4)), np.arange(2))
    with pytest.raises(ValueError, match="3 labels for 2 keys"):
        queue.enqueue(np.ones((2, 3)), np.arange(3))
    model = _tiny_model()
    with pytest.raises(ValueError, match="views"):
        model(views[:, 0])
    with pytest.raises(ValueError, match="sample weights"):
        model.test_step((views, labels, np.ones(16)))
    with two_replicas.scope(), pytest.raises(ValueError, match="one device"):
        _tiny_model()
