"""Test setup shared by the test modules.

Two logical CPU devices let the loss tests run a real ``tf.distribute.MirroredStrategy`` on one CPU.
They must be configured before TensorFlow initialises its devices, hence here at import time.
"""

# supcon_utils sets TensorFlow's environment defaults, so it must load before TensorFlow.
# isort: off
import supcon_utils  # noqa: F401
import tensorflow as tf

# isort: on

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # devices already initialised by an earlier import; keep what is there
    pass
