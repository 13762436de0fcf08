"""Does a seeded training run repeat bit for bit, augmentation included? Prints the answer.

Each recipe (cross-entropy, SupCon + linear probe) is trained twice through ``training.run``, each
time in a fresh process and a fresh run folder, with the same seed at a small budget of the
``quick`` preset; then the final weights (a SHA-256 of every array) and the metrics are compared.
Run it with oneDNN on (the default here) and off; the two settings round differently, so they are
compared each with itself.

    python benchmarks/determinism.py                   # ~3 min on a 2-core CPU
    python benchmarks/determinism.py --n-train 20000 --epochs 6   # the whole quick preset
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import hashlib, json, sys
import supcon_utils
supcon_utils.setup_tensorflow()
from supcon_utils import training
kind, run_dir, n_train, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = training.config("quick", n_train=n_train, epochs=epochs, probe_epochs=epochs)
result = training.run(kind, cfg, run_dir, verbose=0)
digest = hashlib.sha256()
for name in sorted(result["models"]):
    for w in result["models"][name].get_weights():
        digest.update(w.tobytes())
print(json.dumps({"weights": digest.hexdigest()[:16], "metrics": result["metrics"]}))
"""


def train(kind: str, onednn: str, n_train: int, epochs: int) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn}
    with tempfile.TemporaryDirectory() as run_dir:
        args = [sys.executable, "-c", CHILD, kind, run_dir, str(n_train), str(epochs)]
        done = subprocess.run(args, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2048, help="training images (default 2048)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of training and probe")
    parser.add_argument("--onednn", nargs="+", default=["1", "0"], help="settings to try")
    args = parser.parse_args(argv)
    all_same = True
    for onednn in args.onednn:
        for kind in ("cross_entropy", "supcon"):
            a = train(kind, onednn, args.n_train, args.epochs)
            b = train(kind, onednn, args.n_train, args.epochs)
            same = a == b
            all_same &= same
            acc = [r["metrics"]["test_accuracy"] for r in (a, b)]
            print(
                f"oneDNN={onednn} {kind:13s} two seeded runs identical: {same!s:5s} "
                f"(weights {a['weights']} / {b['weights']}; test accuracy "
                f"{acc[0]:.4f} / {acc[1]:.4f})",
                flush=True,
            )
    return 0 if all_same else 1


if __name__ == "__main__":
    raise SystemExit(main())
