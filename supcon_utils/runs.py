"""The folder of one training run (``run_dir/kind``): one owner at a time, files written whole.

:func:`training.run` keeps a run here; this module holds what makes the folder safe to kill:

- :func:`locked`: an exclusive lock on the folder for the life of the run (``fcntl.flock`` on
  ``.lock``, released by the kernel when the process dies, even by SIGKILL); a second process
  gets a :class:`RunFolderError` naming the holder.
- :func:`save_model` (and ``records.write_json`` for the JSON files): written to a temporary file
  in the folder, then renamed over the old one, so a kill leaves the old file or the new, never
  half of one.
- :func:`read_json`, :func:`load_model`: an unreadable file is a :class:`RunFolderError` naming it
  and what to do, not a bare ``JSONDecodeError`` or ``OSError``.
- :class:`Backup`: Keras' ``BackupAndRestore(double_checkpoint=True)``, with each epoch's weights
  and epoch number written whole and tied together by a checksum, the previous pair kept until
  the new one is in place; :func:`restore_backup` picks the newest intact pair before training.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

from supcon_utils import records

LOCK = ".lock"
WEIGHTS = "latest.weights.h5"  # the names keras.callbacks.BackupAndRestore reads
METADATA = "training_metadata.json"
NEW_WEIGHTS, NEW_METADATA = "new.weights.h5", "new_training_metadata.json"  # being written


class RunFolderError(RuntimeError):
    """A run folder that is in use, or holds a file that cannot be read or should not be there."""


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``folder`` (created if missing) while the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "another process"
            raise RunFolderError(
                f"{folder} is in use by {holder}; wait for that run to end (or stop it), or "
                "give this one another run_dir"
            ) from None
        handle.truncate(0)
        handle.write(f"process {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")  # fmt: skip
        handle.flush()
        for stale in folder.glob(".*.tmp*"):  # left by a process killed while writing
            stale.unlink()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_json(path: Path, remedy: str) -> Any:
    """The JSON record at ``path``; unreadable, a :class:`RunFolderError` ending in ``remedy``."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFolderError(f"{path} cannot be read ({error}); {remedy}") from error


def save_model(model: keras.Model, path: Path) -> None:
    """``model.save(path)``, whole or not at all."""
    tmp = records.temporary(path, ".keras")
    model.save(tmp)
    records.replace(tmp, path)


def load_model(path: Path, remedy: str) -> keras.Model:
    """The Keras model saved at ``path``; unreadable, a :class:`RunFolderError` with ``remedy``."""
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # Keras raises ValueError, OSError or zipfile's errors
        raise RunFolderError(f"{path} cannot be loaded ({error}); {remedy}") from error


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Backup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose state after each epoch is written whole, and kept at the end.

    Each epoch end writes the weights and a record of the epoch (with the weights' SHA-256) to
    temporary files, moves the current pair to ``*.bkp`` (Keras' ``double_checkpoint`` names),
    then renames the new pair in. A kill at any point leaves at least one intact pair, the newest
    or the one before; :func:`restore_backup` installs the newest before the next ``fit``. The
    backup is not deleted when training ends (``delete_checkpoint=False``): the caller removes it
    once the trained models are saved, so a kill after training resumes with nothing to train.
    """

    def __init__(self, backup_dir: Path) -> None:
        super().__init__(str(backup_dir), double_checkpoint=True, delete_checkpoint=False)

    def _save_model(self) -> None:
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        weights, metadata = folder / WEIGHTS, folder / METADATA
        new_weights, new_metadata = folder / NEW_WEIGHTS, folder / NEW_METADATA
        self.model.save_weights(new_weights, overwrite=True)
        new_metadata.write_text(json.dumps({
            "epoch": self._current_epoch, "batch": self._last_batch_seen,
            "weights_sha256": _sha256(new_weights),
        }))  # fmt: skip
        for path in (weights, metadata):
            if path.exists():
                os.replace(path, f"{path}.bkp")
        records.replace(new_weights, weights)
        records.replace(new_metadata, metadata)


def _pairs(folder: Path) -> list[tuple[Path, Path]]:
    """The (weights, record) pairs a :class:`Backup` may have left: current, new, previous."""
    weights, metadata = folder / WEIGHTS, folder / METADATA
    return [(weights, metadata), (folder / NEW_WEIGHTS, folder / NEW_METADATA),
            (Path(f"{weights}.bkp"), Path(f"{metadata}.bkp"))]  # fmt: skip


def restore_backup(folder: Path) -> int:
    """Make the newest intact epoch of a :class:`Backup` in ``folder`` its current one, delete
    the rest, and return the epoch training resumes at (0: no backup, training starts afresh).

    A pair is intact when its record reads and names the SHA-256 of its weights file. A backup
    with files but no intact pair is a :class:`RunFolderError`.
    """
    if not folder.exists():
        return 0
    best: tuple[int, Path, Path] | None = None
    for weights, metadata in _pairs(folder):
        try:
            record = json.loads(metadata.read_text())
            intact = weights.exists() and record.get("weights_sha256") == _sha256(weights)
        except (OSError, ValueError):
            continue
        if intact and (best is None or record["epoch"] > best[0]):
            best = (int(record["epoch"]), weights, metadata)
    if best is None:
        if any(folder.iterdir()):
            raise RunFolderError(
                f"the training backup in {folder} is damaged (no intact epoch in "
                f"{sorted(p.name for p in folder.iterdir())}); delete {folder} to train from "
                "epoch 0, keeping the run's other files"
            )
        return 0
    epoch, weights, metadata = best
    os.replace(weights, folder / WEIGHTS)
    os.replace(metadata, folder / METADATA)
    for path in folder.iterdir():
        if path.name not in (WEIGHTS, METADATA):
            path.unlink()
    return epoch


def copy_backup(source: Path, target: Path) -> int:
    """Copy the restored backup and the history of the run folder ``source`` into ``target``
    (another worker's folder, :mod:`supcon_utils.distributed`), check it as
    :func:`restore_backup` does, and return its epoch."""
    (target / "backup").mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, METADATA):
        shutil.copyfile(source / "backup" / name, target / "backup" / name)
    if (source / "history.csv").exists():
        shutil.copyfile(source / "history.csv", target / "history.csv")
    return restore_backup(target / "backup")


def remove_backup(folder: Path) -> None:
    """Delete the backup of a run whose trained models and results are saved."""
    shutil.rmtree(folder, ignore_errors=True)


def trim_history(path: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows of ``history.csv``, the epochs the backup
    holds: a kill can leave a row of an epoch the backup missed, or half a row."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines[: epochs + 1] if line.endswith("\n")]
    if kept != lines:
        tmp = records.temporary(path)
        tmp.write_text("".join(kept))
        records.replace(tmp, path)
