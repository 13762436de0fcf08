"""TensorBoard logs of a training run: one scalar per epoch, across resumptions, and the test
embeddings for TensorBoard's projector.

``training.run(..., log_dir=...)`` writes them to ``log_dir/<kind>``; look with
``tensorboard --logdir <log_dir>`` (the viewer: ``pip install -e ".[tensorboard]"``).
Writing needs only TensorFlow (``tf.summary.write``), not the TensorBoard package.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from supcon_utils import records

PROJECTOR_CONFIG = "projector_config.pbtxt"
# What tf.summary.scalar tags a value with; written with tf.summary.write, which needs no
# TensorBoard package (tf.summary.scalar does).
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


class EpochScalars(keras.callbacks.Callback):
    """Writes each epoch's logs (loss, ``val_accuracy``, ...) as scalars with step = epoch.

    It must come after the run's backup in the callbacks: an epoch reaches the log only once the
    backup holds it, so a resumed run never writes an epoch twice. At the start of a (resumed)
    fit it first writes the epochs of ``history_csv`` that the log lacks (a kill between the
    backup and this callback), so the log ends with one value per epoch and tag. A fit from
    epoch 0 (an empty history) deletes the event files of an earlier run in ``log_dir``.
    """

    def __init__(self, log_dir: str | Path, history_csv: str | Path) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self.history_csv = Path(history_csv)
        self._writer: tf.summary.SummaryWriter | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        rows = _csv_rows(self.history_csv)
        if not rows:
            for old in self.log_dir.glob("events.out.tfevents.*"):
                old.unlink()
        done = logged_steps(self.log_dir)
        last = max((max(steps) for steps in done.values()), default=-1)
        self._writer = tf.summary.create_file_writer(str(self.log_dir))
        for row in rows:
            if int(row["epoch"]) > last:
                self._write(int(row["epoch"]), row)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._write(epoch, logs or {})

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()

    def _write(self, epoch: int, logs: dict) -> None:
        with self._writer.as_default():
            for name, value in logs.items():
                if name != "epoch" and _finite_number(value):
                    tf.summary.write(name, tf.constant(float(value), tf.float32), step=epoch,
                                     metadata=_SCALAR)  # fmt: skip
        self._writer.flush()


def logged_steps(log_dir: str | Path) -> dict[str, list[int]]:
    """The steps of every scalar tag in the event files of ``log_dir``, in the order written."""
    steps: dict[str, list[int]] = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(int(event.step))
    return steps


def logged_scalars(log_dir: str | Path) -> dict[str, dict[int, float]]:
    """Every scalar in the event files of ``log_dir``: tag -> step -> value (the last written)."""
    found: dict[str, dict[int, float]] = {}
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                scalar = float(number) if number is not None else value.simple_value
                found.setdefault(value.tag, {})[int(event.step)] = scalar
    return found


def export_embeddings(
    log_dir: str | Path,
    vectors: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    name: str = "test embeddings",
) -> Path:
    """Write ``vectors`` (one row per image) and their labels for TensorBoard's projector in
    ``log_dir`` (``tensors.tsv``, ``metadata.tsv``, ``projector_config.pbtxt``); returns the
    config's path. ``log_dir`` should be a run's log folder: the projector shows the embeddings of
    folders that hold event files."""
    vectors = np.asarray(vectors, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise ValueError(f"vectors {vectors.shape} and labels {labels.shape}: one row per label")
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = "\n".join("\t".join(f"{v:.6g}" for v in row) for row in vectors)
    records.write_text(folder / "tensors.tsv", rows + "\n")
    meta = [f"{int(y)}\t{class_names[int(y)]}" for y in labels]
    records.write_text(folder / "metadata.tsv", "label\tclass\n" + "\n".join(meta) + "\n")
    config = (f'embeddings {{\n  tensor_name: "{name}"\n  tensor_path: "tensors.tsv"\n'
              '  metadata_path: "metadata.tsv"\n}\n')  # fmt: skip
    records.write_text(folder / PROJECTOR_CONFIG, config)
    return folder / PROJECTOR_CONFIG


def _csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a run's ``history.csv`` (none when it is missing or still empty)."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _finite_number(value: object) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
