"""Does a seeded training run repeat exactly? Prints the answer with oneDNN on and off.

Each setting runs in fresh processes (oneDNN is chosen when TensorFlow loads): two cross-entropy
runs of a few steps on a seeded batch order, then compares the final weights. Augmentation is left
out: with parallel tf.data map calls its random draws are not reproducible whatever the kernels
(see ``augment.view_maker``), which would hide what the kernels themselves do.

    python benchmarks/determinism.py
"""

import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys
import supcon_utils
import keras, numpy as np, tensorflow as tf
from supcon_utils import data, models
if sys.argv[1] == "op_determinism":
    tf.config.experimental.enable_op_determinism()
keras.utils.set_random_seed(0)
(x, y), _ = data.load_dataset("fashion_mnist")
x, y = x[:2048], y[:2048]
encoder = models.resnet_small()
inputs = keras.Input((28, 28, 1))
model = keras.Model(inputs, models.linear_classifier(128, 10)(encoder(inputs)))
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
ds = data.make_dataset(x, y, batch_size=256, shuffle=True)  # no augmentation: see below
model.fit(ds, epochs=1, verbose=0, shuffle=False)
w = np.concatenate([v.numpy().ravel() for v in model.weights])
print(json.dumps({"checksum": float(np.abs(w).sum()), "first": float(w[0])}))
"""


def run(onednn: str, mode: str) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    for onednn in ("1", "0"):
        for mode in ("default", "op_determinism"):
            a, b = run(onednn, mode), run(onednn, mode)
            same = a == b
            print(f"oneDNN={onednn} {mode:15s} identical weights after two runs: {same} "
                  f"({a['checksum']:.6f} vs {b['checksum']:.6f})", flush=True)


if __name__ == "__main__":
    main()
