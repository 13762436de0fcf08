"""supcon_utils: the library behind the supcon notebooks (Khosla et al., 2020, in TensorFlow/Keras).

Importing it loads nothing heavy and changes nothing in the process. To run TensorFlow as the
notebooks do (oneDNN on, seeded runs that repeat bit for bit, no native log noise), call
:func:`setup_tensorflow` before anything imports TensorFlow; ``supcon_utils.tf_setup`` says why.
``SupConLoss``, ``supcon_loss`` and ``load_dataset`` are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from supcon_utils.tf_setup import setup_tensorflow

_LAZY = {"SupConLoss": "losses", "supcon_loss": "losses", "load_dataset": "data"}

__all__ = ["SupConLoss", "load_dataset", "setup_tensorflow", "supcon_loss"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"supcon_utils.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'supcon_utils' has no attribute {name!r}")
