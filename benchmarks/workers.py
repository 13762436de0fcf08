"""A training step on 1 and 2 worker processes of this machine: seconds per step, printed.

Each recipe trains the same short run three ways: in one process without a strategy, and through
``python -m supcon_utils.distributed --workers N`` with N = 1 and 2 (a
``MultiWorkerMirroredStrategy`` over 127.0.0.1). A step's time is read from the run's
``history.csv`` (training seconds of each epoch, scoring excluded), over the epochs after the
first (which holds the tracing). Two workers on one machine share its cores: the point is that
the code that runs across machines runs, not a speed-up.

    python benchmarks/workers.py            # ~6 min on a 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys
import supcon_utils
supcon_utils.setup_tensorflow()
from supcon_utils import training
kind, run_dir, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
training.run(kind, training.config("quick", **settings), run_dir, verbose=0)
"""


def seconds_per_step(run_dir: Path, kind: str, steps: int) -> float:
    """Median over the epochs after the first of each epoch's training seconds, per step."""
    import statistics

    lines = (run_dir / kind / "history.csv").read_text().splitlines()
    column = lines[0].split(",").index("elapsed_s")
    elapsed = [float(line.split(",")[column]) for line in lines[1:]]
    epochs = [b - a for a, b in zip(elapsed, elapsed[1:], strict=False)]
    return statistics.median(epochs) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5120)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    settings = {"n_train": args.n_train, "batch_size": args.batch_size, "epochs": args.epochs,
                "probe_epochs": 1}  # fmt: skip
    steps = args.n_train // args.batch_size
    print(f"{args.n_train} images, global batch {args.batch_size}, {steps} steps an epoch, "
          f"median of epochs 2 to {args.epochs}")  # fmt: skip
    for kind in ("cross_entropy", "supcon"):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            subprocess.run([sys.executable, "-c", CHILD, kind, str(root / "one"),
                            json.dumps(settings)], check=True)  # fmt: skip
            times = {"one process, no strategy": seconds_per_step(root / "one", kind, steps)}
            for workers in (1, 2):
                parameters = [a for k, v in settings.items() for a in ("-p", f"{k}={v}")]
                subprocess.run([sys.executable, "-m", "supcon_utils.distributed", kind,
                                str(root / f"w{workers}"), "--workers", str(workers),
                                *parameters], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
                times[f"{workers} worker(s)"] = seconds_per_step(root / f"w{workers}", kind, steps)
        for name, seconds in times.items():
            print(f"{kind:14s} {name:26s} {seconds * 1000:7.1f} ms per step "
                  f"({args.batch_size / seconds:,.0f} images/s)")  # fmt: skip


if __name__ == "__main__":
    main()
