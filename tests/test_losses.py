"""supcon_loss / SupConLoss against things that do not share its code.

A naive loop over anchors and positives (float64), known values, invariances, gradients (finite
differences and the paper's closed form), half precision, a real two-replica MirroredStrategy, bad
input, and Keras fit. The two logical CPU devices come from tests/conftest.py.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from naive_supcon import naive_supcon

from supcon_utils.losses import (
    CONTRAST_MODES,
    VARIANTS,
    SupConLoss,
    _anchor_losses,
    positive_floor,
    positive_mask,
    supcon_loss,
)

# No example database: property tests should not write into the checkout.
PROPERTY = settings(deadline=None, database=None)


def _labels_with_class_sizes(rng, batch, max_size):
    """Labels whose classes have 1 to max_size members, shuffled, with arbitrary int values."""
    sizes = []
    while sum(sizes) < batch:
        sizes.append(int(rng.integers(1, max_size + 1)))
    sizes[-1] -= sum(sizes) - batch
    classes = rng.choice(np.arange(-500, 500), size=len(sizes), replace=False)
    return rng.permutation(np.repeat(classes, sizes)).astype(np.int64)


@st.composite
def loss_cases(draw, max_batch=64):
    """Features (varied norms, sometimes clustered by class), labels or None, and options."""
    batch = draw(st.integers(1, max_batch))
    n_views = draw(st.sampled_from([2, 4, 1, 3]))  # 1 to 4, shrinking towards 2
    dim = draw(st.integers(2, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labels = None
    if draw(st.booleans()):
        labels = _labels_with_class_sizes(rng, batch, draw(st.integers(1, batch)))
    features = rng.normal(size=(batch, n_views, dim))
    if labels is not None and draw(st.booleans()):  # positives close together: larger logits
        centres = {c: rng.normal(size=dim) for c in np.unique(labels)}
        features = 0.3 * features + np.stack([centres[c] for c in labels])[:, None]
    features *= rng.uniform(0.1, 10.0, size=(batch, n_views, 1))
    options = dict(
        temperature=draw(st.one_of(st.just(0.01), st.floats(0.01, 1.0))),
        variant=draw(st.sampled_from(VARIANTS)),
        contrast_mode=draw(st.sampled_from(CONTRAST_MODES)),
        base_temperature=draw(st.one_of(st.none(), st.floats(0.05, 1.0))),
    )
    return features, labels, options


def _loss(features, labels=None, **options):
    labels = None if labels is None else tf.constant(labels)
    return float(supcon_loss(tf.constant(features), labels, **options))


# 1. Reference --------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=120)
@given(loss_cases())
def test_matches_naive_loop(case):
    features, labels, options = case
    expected = naive_supcon(features, labels, **options)
    np.testing.assert_allclose(_loss(features, labels, **options), expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["random", "clustered", "far_positive", "isolated_anchor"])
def test_float32_is_stable_at_small_temperature(kind, variant):
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(8), 4)
    features = rng.normal(size=(32, 2, 16))
    if kind == "clustered":  # logits near 1/t = 100 for all positives
        features = rng.normal(size=(8, 1, 16))[labels] + 0.01 * features
    elif kind == "far_positive":  # image 0's views point opposite ways: logit -100 for a positive
        features[0, 1] = -features[0, 0]
    elif kind == "isolated_anchor":
        # Every other view is at cosine < -0.5 from image 0's view 0: shifting by the anchor's
        # own logit 1/t instead of the largest logit in A(i) would underflow all of exp(-150).
        features[:, :, 0] = -4.0
        features[0, 0] = np.eye(16)[0]
    x = tf.constant(features, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = supcon_loss(x, labels, temperature=0.01, variant=variant)
    assert np.isfinite(tape.gradient(loss, x).numpy()).all()
    expected = naive_supcon(x.numpy(), labels, 0.01, variant, "all")
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


# 2. Known values -----------------------------------------------------------------------------


@settings(PROPERTY, max_examples=40)
@given(
    batch=st.integers(1, 32),
    n_views=st.integers(1, 4),
    labels_kind=st.sampled_from(["none", "one_class", "distinct", "mixed"]),
    variant=st.sampled_from(VARIANTS),
    contrast_mode=st.sampled_from(CONTRAST_MODES),
    temperature=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_equal_embeddings_give_log_of_contrast_size(
    batch, n_views, labels_kind, variant, contrast_mode, temperature, seed
):
    # Every logit is 1/t, so each anchor's ratio is 1/|A(i)| = 1/(N*V - 1) whatever P(i) is, and
    # both variants give ln(N*V - 1) (ln(2N - 1) for two views), for every labelling, in both
    # modes, as long as each anchor has a positive. With 2+ views it always has one (its other
    # views). With one view only anchors sharing a label count, so the value is ln(N - 1) if
    # some label repeats, else no anchor counts and the loss is 0 (SimCLR with one view: always).
    rng = np.random.default_rng(seed)
    labels = {
        "none": None,
        "one_class": np.zeros(batch, np.int64),
        "distinct": np.arange(batch),
        "mixed": rng.integers(0, max(1, batch // 3), batch),
    }[labels_kind]
    direction = rng.normal(size=5)
    features = rng.uniform(0.5, 2.0, size=(batch, n_views, 1)) * direction  # same after L2 norm
    has_positive = n_views > 1 or (labels is not None and len(np.unique(labels)) < batch)
    expected = math.log(batch * n_views - 1) if has_positive else 0.0
    value = _loss(
        features.astype(np.float32),
        labels,
        temperature=temperature,
        variant=variant,
        contrast_mode=contrast_mode,
    )
    np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5)


@settings(PROPERTY, max_examples=40)
@given(loss_cases())
def test_l_in_is_at_most_l_out(case):
    # Jensen: -log(mean of ratios) <= mean of -log(ratios), anchor by anchor, same anchors.
    features, labels, options = case
    options.pop("variant")
    l_in = _loss(features, labels, variant="in", **options)
    l_out = _loss(features, labels, variant="out", **options)
    assert l_in <= l_out + 1e-9 * max(1.0, abs(l_out))


def test_no_positive_gives_zero_loss_and_zero_gradient():
    x = tf.constant(np.random.default_rng(0).normal(size=(6, 1, 4)))
    for labels in (None, np.arange(6)):  # one view, no shared label: no anchor has a positive
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = supcon_loss(x, labels)
        gradient = tape.gradient(loss, x).numpy()
        assert float(loss) == 0.0
        assert np.isfinite(gradient).all() and not gradient.any()


# 3. Invariances ------------------------------------------------------------------------------


@settings(PROPERTY, max_examples=40)
@given(loss_cases(max_batch=32), st.integers(0, 2**32 - 1))
def test_invariant_to_batch_order_and_class_names(case, seed):
    features, labels, options = case
    rng = np.random.default_rng(seed)
    value = _loss(features, labels, **options)
    order = rng.permutation(len(features))
    permuted = _loss(features[order], None if labels is None else labels[order], **options)
    np.testing.assert_allclose(permuted, value, rtol=1e-10, atol=1e-12)
    if labels is not None:
        classes = np.unique(labels)
        new_names = rng.choice(np.arange(-10_000, 10_000), size=len(classes), replace=False)
        renamed = new_names[np.searchsorted(classes, labels)].astype(np.int32)  # injective
        np.testing.assert_allclose(_loss(features, renamed, **options), value, rtol=1e-12)


# 4. Gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("with_labels", [True, False], ids=["labels", "simclr"])
def test_gradient_matches_finite_differences(with_labels, variant, contrast_mode):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(5, 2, 3))
    labels = tf.constant([0, 1, 0, 2, 1]) if with_labels else None  # class 2 is a singleton
    loss = tf.function(
        lambda x: supcon_loss(
            x,
            labels,
            temperature=0.3,
            variant=variant,
            contrast_mode=contrast_mode,
            base_temperature=0.07,
        )
    )
    x = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    gradient = tape.gradient(value, x).numpy()

    step = 1e-6
    numeric = np.zeros_like(features)
    for index in np.ndindex(features.shape):
        shift = np.zeros_like(features)
        shift[index] = step
        numeric[index] = float(loss(x + shift) - loss(x - shift)) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)
    # L2 normalisation makes the loss blind to each vector's length: the gradient is tangent.
    np.testing.assert_allclose(np.sum(gradient * features, axis=-1), 0.0, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_anchor_gradient_matches_paper_closed_form(variant):
    # The paper's formula is dL_i/dz_i for the anchor role of a normalised z_i alone. Through
    # supcon_loss the input's gradient also carries the normalisation Jacobian (I - zz^T)/|x| and
    # the terms where z_i is another anchor's positive or negative. _anchor_losses takes the
    # normalised anchors and the contrast set as separate tensors, so its gradient with respect to
    # the anchors is exactly the paper's quantity, with nothing to project or subtract. (The
    # finite-difference test covers the full gradient of the public function.)
    rng = np.random.default_rng(2)
    ids = np.array([0, 1, 0, 2, 1, 0, 3, 2], np.int64)  # class 3 is a singleton: gradient 0
    z = rng.normal(size=(len(ids), 4))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    t = 0.2
    anchors = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(anchors)
        losses, _ = _anchor_losses(
            anchors,
            tf.constant(ids),
            tf.range(len(ids)),
            tf.constant(z),
            tf.constant(ids),
            t,
            variant,
        )
        total = tf.reduce_sum(losses)
    gradient = tape.gradient(total, anchors).numpy()

    expected = np.zeros_like(z)
    for i in range(len(ids)):
        others = [a for a in range(len(ids)) if a != i]
        positives = [p for p in others if ids[p] == ids[i]]
        if not positives:
            continue
        weight = {a: math.exp(z[i] @ z[a] / t) for a in others}
        p_ix = {a: weight[a] / sum(weight.values()) for a in others}  # softmax over A(i)
        if variant == "out":
            x_ip = {p: 1 / len(positives) for p in positives}
        else:  # L_in: softmax over P(i) alone
            x_ip = {p: weight[p] / sum(weight[q] for q in positives) for p in positives}
        expected[i] = (
            sum(z[p] * (p_ix[p] - x_ip[p]) for p in positives)
            + sum(z[n] * p_ix[n] for n in others if n not in positives)
        ) / t
    assert not expected[6].any()
    np.testing.assert_allclose(gradient, expected, rtol=1e-10, atol=1e-12)


# 5. Half precision ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_inputs_at_small_temperature(dtype, variant):
    # The loss computes half-precision inputs in float32, so it gives exactly the float32 value of
    # the rounded inputs. Against float32 on the unrounded inputs, only that rounding differs,
    # amplified by 1/t = 100 in the logits: measured relative errors were up to 1e-4 (float16) and
    # 2e-3 (bfloat16), absolute up to 3e-3 and 8e-3 on losses of 1 to 60. We assert relative 1e-2:
    # an absolute bound would depend on the size of the loss.
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 6, 48)
    cases = {
        "random": rng.normal(size=(48, 2, 32)),
        "clustered": rng.normal(size=(6, 1, 32))[labels] + 0.3 * rng.normal(size=(48, 2, 32)),
        "nearly_equal": rng.normal(size=(1, 1, 32)) + 0.05 * rng.normal(size=(48, 2, 32)),
    }
    for name, features in cases.items():
        x32 = tf.constant(features, tf.float32)
        x = tf.cast(x32, dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = supcon_loss(x, labels, temperature=0.01, variant=variant)
        gradient = tape.gradient(value, x)
        assert gradient.dtype == dtype
        assert np.isfinite(float(value)) and np.isfinite(tf.cast(gradient, tf.float32)).all(), name
        rounded = supcon_loss(tf.cast(x, tf.float32), labels, temperature=0.01, variant=variant)
        assert float(value) == float(rounded), name
        reference = supcon_loss(x32, labels, temperature=0.01, variant=variant)
        np.testing.assert_allclose(float(value), float(reference), rtol=1e-2, err_msg=name)


@pytest.mark.parametrize("scale", [1e-30, 1e-8, 1e-5, 1.0, 1e5, 1e19, 1e30])
def test_any_finite_scale_gives_the_float64_loss_and_gradient(scale):
    # l2_normalize squared the entries: above ~1e19 the sum overflowed, below ~1e-6 its floor took
    # over, and the loss sat at ln(2N-1) with a zero gradient. The direction has no scale.
    rng = np.random.default_rng(7)
    features, labels = rng.normal(size=(8, 2, 5)), rng.integers(0, 3, 8)
    values, gradients = [], []
    for dtype in (tf.float64, tf.float32):
        x = tf.constant(features * scale, dtype)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = supcon_loss(x, labels, temperature=0.1)
        values.append(float(value))
        gradients.append(tape.gradient(value, x).numpy().astype(np.float64) * scale)
    assert values[0] == pytest.approx(naive_supcon(features, labels, 0.1, "out", "all"), rel=1e-9)
    assert values[1] == pytest.approx(values[0], rel=1e-5)
    assert np.all(np.isfinite(gradients[1])) and np.abs(gradients[0]).max() > 1e-3
    # The gradient scales as 1 / scale; rescaled, float32's equals float64's.
    np.testing.assert_allclose(gradients[1], gradients[0], rtol=1e-3, atol=1e-5)


def test_half_precision_features_far_from_unit_scale_keep_the_float32_loss():
    rng = np.random.default_rng(8)
    features, labels = rng.normal(size=(8, 2, 5)), rng.integers(0, 3, 8)
    for scale in (1e-4, 1e4):
        x = tf.constant(features * scale, tf.float16)
        expected = supcon_loss(tf.cast(x, tf.float64), labels, temperature=0.1)
        assert float(supcon_loss(x, labels, temperature=0.1)) == pytest.approx(float(expected),
                                                                              rel=1e-5)  # fmt: skip


def test_an_all_zero_row_is_the_zero_vector_with_a_finite_gradient():
    # Documented behaviour: no direction, so similarity 0 to every view (logit 0).
    features = np.array([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.6, 0.8]]])
    x = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = supcon_loss(x, np.array([0, 1]), temperature=0.5)
    unit = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.6, 0.8]])  # view-major
    logits = unit @ unit.T / 0.5
    np.fill_diagonal(logits, -np.inf)
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    positives = [(0, 2), (1, 3), (2, 0), (3, 1)]  # the other view of the same image
    assert float(value) == pytest.approx(-np.mean([log_prob[a, p] for a, p in positives]))
    assert np.all(np.isfinite(tape.gradient(value, x).numpy()))


# 6. tf.distribute ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_labels", "variant", "contrast_mode", "shards"),
    [
        (True, "out", "all", (4, 4)),
        (True, "in", "one", (4, 3)),
        (False, "out", "one", (4, 3)),
        (False, "in", "all", (4, 4)),
        (True, "out", "all", (3, 0)),  # a last batch smaller than the replica count
    ],
)
def test_mirrored_strategy_matches_single_device(
    two_replicas, with_labels, variant, contrast_mode, shards
):
    strategy = two_replicas
    n_replicas = strategy.num_replicas_in_sync
    rng = np.random.default_rng(5)
    batch = sum(shards)
    features = rng.normal(size=(batch, 2, 5))
    labels = rng.integers(0, 3, batch) if with_labels else None
    options = dict(temperature=0.1, variant=variant, contrast_mode=contrast_mode)
    bounds = np.cumsum([0, *shards])

    def shard(array):
        def local(ctx):
            replica = ctx.replica_id_in_sync_group
            return tf.constant(array[bounds[replica] : bounds[replica + 1]])

        return strategy.experimental_distribute_values_from_function(local)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = supcon_loss(x, y, **options)
            # As Keras does before differentiating; it then sums the replicas' gradients.
            scaled = loss / n_replicas
        return loss, tape.gradient(scaled, x)

    run = tf.function(lambda x, y: strategy.run(replica_step, args=(x, y)))
    losses, gradients = run(shard(features), None if labels is None else shard(labels))
    losses = [float(v) for v in strategy.experimental_local_results(losses)]
    gradients = np.concatenate([g.numpy() for g in strategy.experimental_local_results(gradients)])

    x = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(x)
        expected = supcon_loss(x, labels, **options)
    expected_gradient = tape.gradient(expected, x).numpy()

    # The replicas' values differ (each averages its own anchors, rescaled), their mean is the loss.
    assert losses[0] != pytest.approx(losses[1])
    np.testing.assert_allclose(np.mean(losses), float(expected), rtol=1e-10)
    # all_gather's gradient sums every replica's upstream gradient onto the local slice, so replica
    # r's gradient of loss_r / R is d(sum_r' loss_r' / R)/dx_r = dL/dx_r: concatenated, the
    # single-device gradient. (Keras then chains each through its replica's variables and sums.)
    np.testing.assert_allclose(gradients, expected_gradient, rtol=1e-8, atol=1e-12)


# 7. Bad input --------------------------------------------------------------------------------

_GOOD = dict(features=np.ones((4, 2, 3), np.float32), labels=np.arange(4))
_NAN = np.ones((4, 2, 3), np.float32)
_NAN[1, 0, 2] = np.nan
_INF = np.ones((4, 2, 3), np.float32)
_INF[3, 1, 0] = np.inf


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(features=np.ones((4, 3), np.float32)), r"rank 3 .*shape \(4, 3\)"),
        (dict(features=np.ones((4, 2, 3, 1), np.float32)), "rank 3"),
        (dict(features=np.ones((4, 2, 3), np.int32)), "floating point"),
        (dict(features=_NAN), "NaN"),
        (dict(features=_INF), "inf"),
        (dict(labels=np.zeros((4, 1), np.int64)), r"labels must have rank 1 .*\(4, 1\)"),
        (dict(labels=np.arange(5)), "length 5 but features have batch 4"),
        (dict(labels=np.zeros(4, np.float32)), "labels must be integers"),
        (dict(labels=np.array([0.0, 0.7, 1.0, 2.0])), "labels must be integers, got float64"),
        (dict(temperature=0.0), "temperature must be a finite number > 0, got 0.0"),
        (dict(temperature=-0.1), "temperature must be a finite number > 0"),
        (dict(temperature=float("nan")), "temperature must be a finite number > 0, got nan"),
        (dict(temperature=float("inf")), "temperature must be a finite number > 0, got inf"),
        (dict(temperature="0.1"), "temperature must be a finite number > 0, got '0.1'"),
        (dict(temperature=None), "temperature must be a finite number > 0, got None"),
        (dict(temperature=True), "temperature must be a finite number > 0, got True"),
        (dict(base_temperature=0.0), "base_temperature must be a finite number > 0"),
        (dict(base_temperature=float("inf")), "base_temperature must be a finite number > 0"),
        (dict(base_temperature="1"), "base_temperature must be a finite number > 0"),
        (dict(variant="both"), "unknown variant 'both'"),
        (dict(contrast_mode="any"), "unknown contrast_mode 'any'"),
    ],
)
def test_bad_input_raises_value_error(change, match):
    args = {**_GOOD, **change}
    features, labels = args.pop("features"), args.pop("labels")
    with pytest.raises(ValueError, match=match):
        supcon_loss(tf.constant(features), tf.constant(labels), **args)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        (dict(temperature=0), "temperature"),
        (dict(temperature=float("inf")), "temperature must be a finite number"),
        (dict(temperature="warm"), "temperature must be a finite number"),
        (dict(variant="sum"), "unknown variant"),
        (dict(contrast_mode="none"), "unknown contrast_mode"),
    ],
)
def test_bad_options_fail_when_the_keras_loss_is_built(option, match):
    with pytest.raises(ValueError, match=match):
        SupConLoss(**option)


def test_graph_with_unknown_batch_checks_at_run_time():
    # A traced graph cannot raise ValueError for values it only sees when it runs (Keras traces
    # with batch size None); it fails with InvalidArgumentError naming the problem instead.
    loss = tf.function(
        supcon_loss,
        input_signature=[
            tf.TensorSpec([None, 2, 3], tf.float32),
            tf.TensorSpec([None], tf.int64),
        ],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels length"):
        loss(tf.ones((4, 2, 3)), tf.range(5, dtype=tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN"):
        loss(tf.constant(_NAN), tf.range(4, dtype=tf.int64))


# 8. Keras ------------------------------------------------------------------------------------


def test_keras_loss_equals_function():
    rng = np.random.default_rng(6)
    features = tf.constant(rng.normal(size=(10, 2, 4)), tf.float32)
    labels = rng.integers(0, 3, 10)
    options = dict(temperature=0.07, variant="in", contrast_mode="one", base_temperature=0.1)
    loss = SupConLoss(**options)
    expected = float(supcon_loss(features, labels, **options))
    for y_true in (labels, labels.astype(np.int32), labels.reshape(-1, 1)):
        assert float(loss(y_true, features)) == pytest.approx(expected, rel=1e-6)
    for y_true in (labels.astype(np.float32), labels.reshape(-1, 1).astype(np.float32)):
        assert float(loss(y_true, features)) == pytest.approx(expected, rel=1e-6)
    fractional = labels.astype(np.float32) + np.where(np.arange(10) == 3, 0.7, 0.0)
    with pytest.raises(ValueError, match="whole numbers"):
        loss(fractional, features)
    with pytest.raises(tf.errors.InvalidArgumentError, match="whole numbers"):
        tf.function(loss)(tf.constant(fractional), features)
    with pytest.raises(ValueError, match="labels must be integers, got string"):
        loss(np.array(["a"] * 10), features)
    assert float(loss(None, features)) == pytest.approx(
        float(supcon_loss(features, None, **options)), rel=1e-6
    )
    clone = SupConLoss.from_config(loss.get_config())
    assert float(clone(labels, features)) == pytest.approx(expected, rel=1e-6)


def test_keras_model_fits_with_jit_compile():
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 2, 6)).astype(np.float32)
    y = rng.integers(0, 4, (16, 1))  # (batch, 1), as Keras targets often arrive
    model = keras.Sequential([keras.Input((2, 6)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=SupConLoss(), jit_compile=True)
    before = model.get_weights()[0].copy()
    expected = float(supcon_loss(model(x), y[:, 0]))
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    # The logged loss is the one of the weights before the step.
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)
    assert not np.allclose(model.get_weights()[0], before)


@pytest.mark.parametrize("with_labels", [True, False])
def test_keras_fit_under_mirrored_strategy_matches_single_device(two_replicas, with_labels):
    """evaluate() and one SGD step of fit() on 2 replicas equal those on one device.

    Keras divides a loss by the number of replicas only when it reduces a vector itself, and
    sums the replicas' gradients; a scalar loss that skipped the division would step 2x too far.
    """
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 2, 8)).astype("float32")
    y = rng.integers(0, 3, 16) if with_labels else np.zeros(16)  # labels unused without them

    def build(weights=None):
        model = keras.Sequential([keras.Input((2, 8)), keras.layers.Dense(8, use_bias=False)])
        if weights is not None:
            model.set_weights(weights)
        loss = SupConLoss(temperature=0.5)
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss=loss if with_labels else (lambda _, features: loss(None, features)),
        )
        return model

    single = build()
    weights = single.get_weights()
    with two_replicas.scope():
        mirrored = build(weights)
    assert mirrored.evaluate(x, y, batch_size=16, verbose=0) == pytest.approx(
        single.evaluate(x, y, batch_size=16, verbose=0), rel=1e-5
    )
    single.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    mirrored.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        mirrored.get_weights()[0], single.get_weights()[0], rtol=1e-4, atol=1e-6
    )
    assert not np.allclose(single.get_weights()[0], weights[0]), "the step must move the weights"


def test_keras_loss_refuses_sample_and_class_weights():
    """A per-image weight has no meaning for a mean over anchors: refused, not half-applied."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(8, 2, 4)).astype(np.float32)
    y = rng.integers(0, 2, 8)
    with pytest.raises(ValueError, match="no sample_weight or class_weight"):
        SupConLoss()(y, x, sample_weight=np.ones(8))
    model = keras.Sequential([keras.Input((2, 4)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=SupConLoss())
    with pytest.raises(ValueError, match="no sample_weight or class_weight"):
        model.fit(x, y, sample_weight=np.ones(8), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="no sample_weight or class_weight"):
        model.fit(x, y, class_weight={0: 1.0, 1: 2.0}, epochs=1, verbose=0)


def test_keras_loss_keeps_large_integer_labels_exact():
    """Keras casts targets to float32 (2**24 + 1 becomes 2**24); SupConLoss keeps them as given."""
    rng = np.random.default_rng(9)
    x = tf.constant(rng.normal(size=(4, 2, 4)), tf.float32)
    big = np.array([2**24, 2**24 + 1, 2**24, 2**24 + 1], np.int64)
    assert float(SupConLoss()(big, x)) == pytest.approx(float(supcon_loss(x, [0, 1, 0, 1])))


def test_labels_beyond_int32_stay_distinct_under_mirrored_strategy(two_replicas):
    """Gathered across replicas, 0 and 2**32 are two classes, as on one device."""
    rng = np.random.default_rng(10)
    features = rng.normal(size=(8, 2, 5)).astype(np.float32)
    small = np.array([0, 1, 0, 1, 2, 1, 2, 0])
    big = np.where(small == 1, 2**32, np.where(small == 2, -(2**40) - 1, 0))
    expected = float(supcon_loss(features, small))
    for labels in (big, big.astype(np.int64)):
        halves = two_replicas.experimental_distribute_values_from_function(
            lambda ctx, y=labels: (
                tf.constant(features[4 * ctx.replica_id_in_sync_group :][:4]),
                tf.constant(y[4 * ctx.replica_id_in_sync_group :][:4]),
            )
        )
        per_replica = two_replicas.run(lambda xy: supcon_loss(*xy), args=(halves,))
        losses = [float(v) for v in two_replicas.experimental_local_results(per_replica)]
        assert np.mean(losses) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n_views", [1, 2, 3])
def test_positive_mask_is_every_other_view_of_the_class_view_major(n_views):
    labels = np.array([2, 0, 2, 1])
    mask = positive_mask(labels, n_views).numpy()
    views = [(v, i) for v in range(n_views) for i in range(len(labels))]  # view-major
    expected = [[a != b and labels[a[1]] == labels[b[1]] for b in views] for a in views]
    np.testing.assert_array_equal(mask, expected)
    simclr = positive_mask(np.arange(4), n_views).numpy()
    same_image = [[a != b and a[1] == b[1] for b in views] for a in views]
    np.testing.assert_array_equal(simclr, same_image)


def test_positive_mask_is_the_loss_own_mask():
    """The loss computed from `positive_mask` by hand equals the library's (L_out, t = 0.5)."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 0, 2, 1])
    features = rng.normal(size=(5, 2, 4))
    z = np.concatenate([features[:, v] for v in range(2)])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    logits = z @ z.T / 0.5
    positives = positive_mask(labels, 2).numpy()
    others = ~np.eye(10, dtype=bool)
    log_prob = logits - np.log((np.exp(logits) * others).sum(axis=1, keepdims=True))
    per_anchor = (log_prob * positives).sum(axis=1) / positives.sum(axis=1)
    keep = positives.any(axis=1)
    expected = -per_anchor[keep].mean()
    got = supcon_loss(tf.constant(features), tf.constant(labels), temperature=0.5)
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_positive_floor_is_the_mean_log_positives_that_perfect_clusters_reach():
    labels = np.array([0, 0, 0, 1, 1, 2, 3])  # class 3 alone: its anchors keep one positive
    counts = positive_mask(labels, 2).numpy().sum(axis=1)
    assert positive_floor(labels) == pytest.approx(np.mean(np.log(counts[counts > 0])), rel=1e-12)
    assert positive_floor(np.arange(6)) == 0.0  # SimCLR: one positive each
    perfect = np.repeat(np.eye(8)[labels, None], 2, axis=1)  # classes orthogonal, views equal
    at_zero = float(supcon_loss(tf.constant(perfect), tf.constant(labels), temperature=0.01))
    assert at_zero == pytest.approx(positive_floor(labels), abs=1e-6)
    rng = np.random.default_rng(0)
    for _ in range(5):  # no embedding goes below it
        features = tf.constant(rng.normal(size=(7, 2, 8)))
        assert float(supcon_loss(features, tf.constant(labels), temperature=0.1)) > positive_floor(
            labels
        )
    with pytest.raises(ValueError, match="no anchor in this batch has a positive"):
        positive_floor(np.arange(3), n_views=1)
