"""Test setup shared by the test modules.

Two logical CPU devices let the loss tests run a real ``tf.distribute.MirroredStrategy`` on one CPU.
They must be configured before TensorFlow initialises its devices, hence here at import time.
"""

# TensorFlow's environment (oneDNN, one inter-op thread) must be set before TensorFlow loads.
from collections.abc import Iterator

# isort: off
import pytest
import supcon_utils

supcon_utils.setup_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

# isort: on

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # devices already initialised by an earlier import; keep what is there
    pass


@pytest.fixture(scope="session")
def two_replicas() -> tf.distribute.MirroredStrategy:
    """One MirroredStrategy on 2 logical CPUs for the whole session.

    Each strategy object numbers its collectives from the same start, and TensorFlow's collective
    executor remembers an instance key's dtype and shape for the process: a second strategy would
    reuse keys of the first with other tensors and abort. So every test shares this one.
    """
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.fail(
            f"need 2 logical CPU devices, found {len(devices)}: tests/conftest.py configures them "
            "before TensorFlow initialises; something initialised TensorFlow's devices earlier"
        )
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])


class EpochStarts(keras.callbacks.Callback):
    """Records the epochs a ``fit`` starts, to tell a resumed or loaded run from a retrained one."""

    def __init__(self):
        super().__init__()
        self.started = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch)


@pytest.fixture
def epoch_starts() -> EpochStarts:
    """A fresh :class:`EpochStarts` callback."""
    return EpochStarts()


@pytest.fixture
def own_datasets() -> Iterator[None]:
    """Datasets a test registers (data.register) are gone from data.DATASETS after it."""
    from supcon_utils import data

    before = set(data.DATASETS)
    yield
    for name in set(data.DATASETS) - before:
        del data.DATASETS[name]
