"""supcon_utils: the library behind the supcon notebooks (Khosla et al., 2020, in TensorFlow/Keras).

Importing it sets three TensorFlow environment defaults before TensorFlow loads, unless the user
set them: ``TF_ENABLE_ONEDNN_OPTS=1`` (off by default on AMD CPUs; on this project's reference
2-core AMD EPYC it made training 1.6x to 7x faster), ``TF_CPP_MIN_LOG_LEVEL=2`` (fewer C++ log
lines) and ``TF_NUM_INTEROP_THREADS=1`` (a seeded SupCon run then repeats bit for bit; 4% and
14% slower in two paired runs on a 2-core CPU; set it to 0 for TensorFlow's default).
Import ``supcon_utils`` before ``tensorflow`` for them to take effect. It then loads TensorFlow and
lists its devices with TensorFlow's native log lines dropped (``supcon_utils.tf_noise``): on a
machine without a GPU they include an alarming but harmless ``failed call to cuInit``.
"""

import os
import sys
import warnings

if "tensorflow" in sys.modules and "TF_ENABLE_ONEDNN_OPTS" not in os.environ:
    warnings.warn(
        "tensorflow was imported before supcon_utils, so oneDNN stays at TensorFlow's default "
        "(off on AMD CPUs, several times slower) and seeded runs may not repeat exactly. Import "
        "supcon_utils first, or set TF_ENABLE_ONEDNN_OPTS=1 and TF_NUM_INTEROP_THREADS=1 yourself.",
        stacklevel=2,
    )
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Independent ops run one after another (each still uses every core): with several running at
# once, SupCon's train step summed in a varying order and two seeded runs drifted apart.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

from supcon_utils.tf_noise import quiet_native_stderr  # noqa: E402

# TensorFlow logs from C++ as it loads and as it probes for GPUs; do both now, without those lines.
with quiet_native_stderr():
    import tensorflow as _tf

    _tf.config.list_physical_devices()

from supcon_utils.data import load_dataset  # noqa: E402
from supcon_utils.losses import SupConLoss, supcon_loss  # noqa: E402

__all__ = ["SupConLoss", "load_dataset", "supcon_loss"]
