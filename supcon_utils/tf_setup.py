"""TensorFlow as this project runs it: one explicit call, before TensorFlow loads.

Importing ``supcon_utils`` changes nothing in the process. The notebooks, tests and benchmarks
call :func:`setup_tensorflow` first thing, because two of TensorFlow's defaults cost them:

- ``TF_ENABLE_ONEDNN_OPTS=1``: oneDNN's kernels are off by default on AMD CPUs; on this project's
  reference 2-core AMD EPYC, turning them on made training 1.6x to 7x faster.
- ``TF_NUM_INTEROP_THREADS=1`` (with ``repeatable=True``): independent ops run one after another,
  each still on every core. With several at once, SupCon's train step summed in a varying order
  and two seeded runs drifted apart; with one, a seeded run repeats bit for bit. It cost 4% and
  14% of the speed in two paired runs on 2 cores.
- ``TF_CPP_MIN_LOG_LEVEL=2``: fewer C++ log lines.

A variable the user has set is kept. These are read once, when TensorFlow loads, so the call must
come before anything imports TensorFlow (or Keras); after, it warns that they could not apply.
It then loads TensorFlow and probes its devices with TensorFlow's native log lines dropped
(``supcon_utils.tf_noise``): on a machine without a GPU they include an alarming but harmless
``failed call to cuInit``.
"""

from __future__ import annotations

import os
import sys
import warnings

from supcon_utils.tf_noise import quiet_native_stderr

_SET_BY_US: dict[str, str] = {}  # the variables this module set, before TensorFlow loaded


def setup_tensorflow(*, repeatable: bool = True) -> None:
    """Set TensorFlow's environment for fast, repeatable CPU runs, then load TensorFlow quietly.

    ``repeatable=False`` leaves the inter-op threads at TensorFlow's default (a little faster,
    seeded runs no longer bit-identical).
    """
    wanted = {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if repeatable:
        wanted["TF_NUM_INTEROP_THREADS"] = "1"
    if "tensorflow" in sys.modules:
        missing = [k for k, v in wanted.items() if os.environ.get(k) != v and k not in _SET_BY_US]
        if missing:
            warnings.warn(
                f"TensorFlow was loaded before setup_tensorflow(), so {', '.join(missing)} cannot "
                "take effect now: oneDNN may be off (several times slower on AMD CPUs) and seeded "
                "runs may not repeat exactly. Call supcon_utils.setup_tensorflow() before "
                "importing tensorflow or keras (in a notebook: restart the kernel).",
                stacklevel=2,
            )
        return
    for key, value in wanted.items():
        if key not in os.environ:
            os.environ[key] = _SET_BY_US[key] = value
    # TensorFlow logs from C++ as it loads and as it probes for GPUs; do both now, without those.
    with quiet_native_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
