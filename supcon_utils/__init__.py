"""supcon_utils: the library behind the supcon notebooks (Khosla et al., 2020, in TensorFlow/Keras).

Importing it sets two TensorFlow environment defaults before TensorFlow loads, unless the user set
them: ``TF_ENABLE_ONEDNN_OPTS=1`` (off by default on AMD CPUs; on this project's reference 2-core
AMD EPYC it made training 1.6x to 7x faster) and ``TF_CPP_MIN_LOG_LEVEL=2`` (fewer C++ log lines).
Import ``supcon_utils`` before ``tensorflow`` for them to take effect.
"""

import os
import sys
import warnings

if "tensorflow" in sys.modules and "TF_ENABLE_ONEDNN_OPTS" not in os.environ:
    warnings.warn(
        "tensorflow was imported before supcon_utils, so oneDNN stays at TensorFlow's default "
        "(off on AMD CPUs, several times slower). Import supcon_utils first, or set "
        "TF_ENABLE_ONEDNN_OPTS=1 yourself.",
        stacklevel=2,
    )
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from supcon_utils.data import load_dataset  # noqa: E402
from supcon_utils.losses import SupConLoss, supcon_loss  # noqa: E402

__all__ = ["SupConLoss", "load_dataset", "supcon_loss"]
