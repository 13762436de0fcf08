"""Encoders, heads, MAC counting and SupConModel training (plain, XLA, MirroredStrategy)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from supcon_utils import augment, losses, models

SMALL = dict(input_shape=(16, 16, 1), widths=(16, 32, 64))  # a resnet_small that trains in seconds


@pytest.mark.parametrize(
    "name, input_shape, dim",
    [
        ("resnet_small", (28, 28, 1), 128),
        ("resnet_small", (8, 8, 1), 128),  # digits
        ("resnet18_cifar", (32, 32, 3), 512),
        ("resnet50v2", (32, 32, 3), 2048),
    ],
)
def test_encoder_output_shapes(name, input_shape, dim):
    encoder = models.build_encoder(name, input_shape)
    features = encoder(np.random.default_rng(0).random((2, *input_shape), np.float32))
    assert tuple(features.shape) == (2, dim)
    assert np.all(np.isfinite(features))


def test_encoder_errors_name_the_problem():
    with pytest.raises(ValueError, match="resnet18_cifar.*resnet50v2.*resnet_small"):
        models.build_encoder("resnet1000", (28, 28, 1))
    with pytest.raises(ValueError, match="at least 32x32"):
        models.build_encoder("resnet50v2", (28, 28, 1))


def test_count_macs_matches_hand_count():
    inputs = keras.Input((10, 10, 8))
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(inputs)  # 5x5 outputs
    x = keras.layers.GlobalAveragePooling2D()(x)
    inner = keras.Model(inputs, keras.layers.Dense(4)(x))
    outer_in = keras.Input((10, 10, 8))
    outer = keras.Model(outer_in, keras.layers.Dense(3)(inner(outer_in)))  # nested model
    assert models.count_macs(outer) == 5 * 5 * 3 * 3 * 8 * 16 + 16 * 4 + 4 * 3


def test_resnet_small_budget():
    encoder = models.resnet_small()
    assert 9e6 <= models.count_macs(encoder) <= 11.5e6
    assert 0.25e6 <= encoder.count_params() <= 0.35e6


def test_projection_head_is_unit_norm_and_classifier_gives_logits():
    features = np.random.default_rng(0).normal(size=(5, 64)).astype(np.float32)
    head = models.projection_head(64)
    z = head(features).numpy()
    assert z.shape == (5, 128)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)
    assert models.projection_head(64, hidden_dim=32, output_dim=16).count_params() == (
        64 * 32 + 32 + 32 * 16 + 16
    )
    logits = models.linear_classifier(64, 10)(features).numpy()
    assert logits.shape == (5, 10) and logits.min() < 0  # raw logits, no softmax


@pytest.fixture(scope="module")
def views_batch():
    """32 noise images of 4 classes, two fixed views each: a batch a model can memorise."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, *SMALL["input_shape"]), dtype=np.uint8)
    labels = np.repeat(np.arange(4), 8)
    views = augment.make_views(images, augment.augmenter("grayscale28", images.shape[1:], seed=0))
    return images, views.numpy(), labels


def _supcon_model(**kwargs) -> models.SupConModel:
    keras.utils.set_random_seed(0)
    return models.SupConModel(models.resnet_small(**SMALL), models.projection_head(64), **kwargs)


def _fit_and_check(model, views, labels, steps=12):
    """Train on the one batch; the loss must fall clearly (chance ~log 63, floor log 15)."""
    history = [float(model.train_on_batch(views, labels)) for _ in range(steps)]
    assert history[-1] < history[0] - 1.0, f"loss did not fall: {np.round(history, 3)}"
    # test_step: inference batch norm, whose moving statistics still lag the weights a little.
    assert model.evaluate(views, labels, verbose=0) < history[0] - 0.5


@pytest.mark.slow  # 12 training steps
@pytest.mark.parametrize("jit_compile", [False, True])
def test_supcon_model_train_steps_lower_the_loss(views_batch, jit_compile):
    _, views, labels = views_batch
    model = _supcon_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.SupConLoss(),
                  jit_compile=jit_compile)  # fmt: skip
    assert model.built  # at construction: BackupAndRestore needs it before fit
    assert tuple(model(views[:3]).shape) == (3, 2, 128)
    _fit_and_check(model, views, labels)


@pytest.mark.slow  # 12 training steps
def test_supcon_model_trains_under_mirrored_strategy(views_batch, two_replicas):
    cpus = tf.config.list_logical_devices("CPU")
    assert len(cpus) == 2, (
        f"expected 2 logical CPU devices, found {len(cpus)}: tests/conftest.py must split the CPU "
        "at import (tf.config.set_logical_device_configuration) before TensorFlow initialises"
    )
    _, views, labels = views_batch
    with two_replicas.scope():  # one strategy per process: see tests/conftest.py
        model = _supcon_model()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.SupConLoss())
    _fit_and_check(model, views, labels)


def test_mirrored_loss_equals_single_device_loss(views_batch, two_replicas):
    """evaluate() on 2 replicas (each contrasting against the global batch) equals 1 device."""
    _, views, labels = views_batch
    with two_replicas.scope():
        mirrored = _supcon_model()
        mirrored.compile(loss=losses.SupConLoss())
    single = _supcon_model()
    single.compile(loss=losses.SupConLoss())
    single.set_weights(mirrored.get_weights())
    expected = single.evaluate(views, labels, batch_size=32, verbose=0)
    actual = mirrored.evaluate(views, labels, batch_size=32, verbose=0)
    assert actual == pytest.approx(expected, rel=1e-5)


def test_supcon_model_with_augmenter_makes_its_own_views(views_batch):
    images, _, labels = views_batch
    augmenter = augment.augmenter("grayscale28", images.shape[1:], seed=0)
    model = _supcon_model(augmenter=augmenter, n_views=3)
    with pytest.raises(ValueError, match="do not support XLA"):
        model.compile(loss=losses.SupConLoss(), jit_compile=True)
    model.compile(optimizer="adam", loss=losses.SupConLoss())
    assert tuple(model(images).shape) == (32, 3, 128)
    assert np.isfinite(model.train_on_batch(images, labels))


def test_supcon_model_without_labels_and_bad_input(views_batch):
    images, views, _ = views_batch
    model = _supcon_model()
    model.compile(optimizer="adam", loss=losses.SupConLoss())
    assert np.isfinite(model.train_on_batch(views))  # no labels: SimCLR
    with pytest.raises(ValueError, match="views"):
        model(images.astype(np.float32))


@pytest.mark.parametrize("stop_gradient", [False, True])
def test_hybrid_model_stop_gradient_keeps_cross_entropy_out_of_the_encoder(stop_gradient):
    encoder = models.resnet_small((8, 8, 1), widths=(4, 4, 8))
    model = models.HybridModel(encoder, models.projection_head(8), models.linear_classifier(8, 3),
                               stop_gradient=stop_gradient)  # fmt: skip
    views = tf.random.uniform((4, 2, 8, 8, 1))
    with tf.GradientTape() as tape:
        out = model(views, training=True)
        ce = tf.reduce_mean(out["logits"])
    assert out["projection"].shape == (4, 2, 128) and out["logits"].shape == (4, 2, 3)
    grads = tape.gradient(ce, encoder.trainable_variables)
    reached = any(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
    assert reached is not stop_gradient


def test_fused_batch_norm_is_keras_batch_norm_to_round_off(tmp_path):
    """Outputs, gradients, moving statistics and inference against Keras' own layer."""
    x = tf.random.stateless_normal((32, 9, 9, 16), seed=(0, 1)) * 3.0 + 1.0
    ours = models.FusedBatchNormalization(momentum=0.9)
    keras_bn = keras.layers.BatchNormalization(momentum=0.9)
    for layer in (ours, keras_bn):
        layer.build(x.shape)
        layer.gamma.assign(tf.linspace(0.5, 2.0, 16))
        layer.beta.assign(tf.linspace(-1.0, 1.0, 16))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        outputs = [layer(x, training=True) for layer in (ours, keras_bn)]
        losses_ = [tf.reduce_sum(y * tf.sin(y)) for y in outputs]  # a gradient that varies
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-5)
    for a, b in zip(
        tape.gradient(losses_[0], [x, ours.gamma, ours.beta]),
        tape.gradient(losses_[1], [x, keras_bn.gamma, keras_bn.beta]),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(tf.reduce_max(abs(b))))
    # The moving averages took the biased batch variance, as Keras' do (not the unbiased one).
    np.testing.assert_allclose(ours.moving_mean, keras_bn.moving_mean, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, keras_bn.moving_variance, rtol=1e-5)
    np.testing.assert_allclose(ours(x, training=False), keras_bn(x, training=False), atol=1e-5)
    # Saved and loaded as itself.
    model = keras.Sequential([keras.Input((9, 9, 16)), ours])
    model.save(tmp_path / "bn.keras")
    loaded = keras.saving.load_model(tmp_path / "bn.keras")
    assert isinstance(loaded.layers[0], models.FusedBatchNormalization)
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))


def test_fused_batch_norm_trains_through_one_fused_op():
    """The training graph holds the fused kernel and none of Keras' moments ops."""
    layer = models.FusedBatchNormalization()
    layer.build((None, 5, 5, 3))

    @tf.function
    def train(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.sin(y))
        return tape.gradient(loss, [x, layer.gamma])

    ops_ = {
        op.type for op in train.get_concrete_function(tf.zeros((4, 5, 5, 3))).graph.get_operations()
    }
    assert "FusedBatchNormV3" in ops_ and "FusedBatchNormGradV3" in ops_
    assert "SquaredDifference" not in ops_  # Keras' moments
