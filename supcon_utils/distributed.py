"""Training across processes: workers of a ``MultiWorkerMirroredStrategy``, and a local launcher.

On real machines, run one worker on each, with ``TF_CONFIG`` naming them all and this worker's
place (TensorFlow's multi-worker guide; worker 0 is the chief)::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python -m supcon_utils.distributed supcon runs/two -p preset=quick -p epochs=3

On one machine, ``--workers N`` starts N such workers over 127.0.0.1 (free ports), each the same
command with its own ``TF_CONFIG``, and waits for them; if one fails or is killed, the others are
killed too (a worker waiting on a dead peer never returns) and the exit status is the failed
one's; stopping the launcher (Ctrl-C, SIGTERM) stops its workers. Run it again to resume::

    python -m supcon_utils.distributed supcon runs/two --workers 2 -p epochs=3

Each worker calls :func:`training.run` with the strategy, which trains as in one process: the
global batch is ``batch_size``, SupCon contrasts it whole and batch norm is synchronised. The
chief writes the run folder ``run_dir/kind``; worker ``i`` trains into ``run_dir/workertemp_i``
and removes it when done (TensorFlow's pattern). A restarted run resumes from the
chief's backup, read by every worker: ``run_dir`` must be on a filesystem all workers see (a
shared or network disk on several machines; TensorFlow's ``BackupAndRestore`` asks the same).
The chief prints its results (metrics, configuration, wall time) as one line of JSON, last.

Keras 3's ``fit`` fails across processes (:data:`KERAS_BUG`, TensorFlow 2.21 and Keras 3.15
here) in two places, which :func:`mend_keras` mends for the process: (1) before the first step it
averages a batch over the replicas in eager mode, only to learn the shapes of the model's
inputs, and ``MultiWorkerMirroredStrategy`` cannot reduce there ("Attempt to convert a value
(PerReplica...)"): the mend reads the shapes from this worker's part of the batch; (2) it averages
each step's logged values over the workers along axis 0, which scalars do not have: the mend
averages them elementwise, as Keras does for replicas of one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supcon_utils import runner

if TYPE_CHECKING:  # TensorFlow is imported by the functions that need it, after setup
    import tensorflow as tf

KERAS_BUG = "https://github.com/keras-team/keras/issues/20585"


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether ``strategy`` spans several processes (a ``MultiWorkerMirroredStrategy`` whose
    cluster has more than one task)."""
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(tasks) for tasks in cluster.values()) > 1


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process writes the run folder: always, but for the workers other than the
    chief of a strategy across processes."""
    return not is_multi_worker(strategy) or strategy.extended.should_checkpoint


def chief_value(strategy: tf.distribute.Strategy, value: int) -> int:
    """The chief's ``value``, on every worker. A collective: every worker must call it, and none
    returns before all have called it (so it is also a barrier)."""
    import tensorflow as tf

    def replica_fn(x: tf.Tensor) -> tf.Tensor:
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)  # the chief's first device
        return context.all_reduce("SUM", tf.where(first, x, tf.zeros_like(x)))

    summed = tf.function(lambda x: strategy.run(replica_fn, args=(x,)))(tf.constant(value))
    return int(strategy.experimental_local_results(summed)[0])


@contextlib.contextmanager
def worker_folder(home: Path, strategy: tf.distribute.Strategy | None) -> Iterator[Path]:
    """The folder this process writes a run in: ``home`` for the chief (and a single process);
    for worker ``i``, ``workertemp_i/kind`` beside the run (TensorFlow's name), emptied first (a
    killed worker leaves it) and removed when the block ends, however it ends, with
    ``workertemp_i`` once no other run is in it (fine-tuning runs SupCon inside its own run)."""
    if is_chief(strategy):
        yield home
        return
    temporary = home.parent / f"workertemp_{strategy.cluster_resolver.task_id}"
    folder = temporary / home.name
    shutil.rmtree(folder, ignore_errors=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            temporary.rmdir()


def mend_keras() -> None:
    """Mend Keras 3's ``fit`` for strategies across processes (:data:`KERAS_BUG`; the module's
    docstring says what and why). Changes nothing for one process; calling it again is a no-op."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_supcon_mended", False):
        return
    symbolic_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    reduce_per_replica = trainer.reduce_per_replica

    def maybe_symbolic_build(self: Any, iterator: Any = None, data_batch: Any = None) -> None:
        strategy = self._distribute_strategy
        if iterator is not None and is_multi_worker(strategy):
            for _, _, batches in iterator:  # the shapes of this worker's part of a batch
                data_batch = tf.nest.map_structure(
                    lambda v: strategy.experimental_local_results(v)[0], next(batches)
                )
                break
            iterator = None
        symbolic_build(self, iterator=iterator, data_batch=data_batch)

    def reduce(values: Any, strategy: tf.distribute.Strategy, reduction: str) -> Any:
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer.reduce_per_replica = reduce
    trainer._supcon_mended = True


def local_cluster(workers: int) -> list[dict[str, Any]]:
    """The ``TF_CONFIG`` of each of ``workers`` workers on this machine, on free ports."""
    ports = []
    for _ in range(workers):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(f"127.0.0.1:{s.getsockname()[1]}")
    return [{"cluster": {"worker": ports}, "task": {"type": "worker", "index": i}}
            for i in range(workers)]  # fmt: skip


def launch(workers: int, argv: Sequence[str], timeout: float | None = None) -> int:
    """Start ``workers`` local workers, each ``python -m supcon_utils.distributed *argv`` with its
    ``TF_CONFIG``, and wait for them. The chief's output passes through (the others' is
    dropped; their errors reach stderr). Returns 0 when all succeed; when one fails, it kills the
    others (SIGKILL: a worker blocked on its dead peer ignores SIGTERM) and returns the failed
    one's exit status, the shell's 128 + N for a worker killed by signal N (137: SIGKILL). Past
    ``timeout`` seconds all are killed (124)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    command = [sys.executable, "-m", "supcon_utils.distributed", *argv]
    processes = []
    try:
        for i, config in enumerate(local_cluster(workers)):
            env = {**os.environ, "TF_CONFIG": json.dumps(config)}
            out = None if i == 0 else subprocess.DEVNULL
            processes.append(subprocess.Popen(command, env=env, stdout=out))
            print(f"worker {i}: pid {processes[-1].pid}", flush=True)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            codes = [p.poll() for p in processes]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                print(f"a worker ended with status {failed[0]}: stopping the others",
                      file=sys.stderr, flush=True)  # fmt: skip
                return failed[0] if failed[0] > 0 else 128 - failed[0]
            if all(c == 0 for c in codes):
                return 0
            if deadline is not None and time.monotonic() > deadline:
                print(f"the workers ran past {timeout} s: stopped", file=sys.stderr, flush=True)
                return 124
            time.sleep(0.2)
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()


def work(kind: str, run_dir: Path, parameters: dict[str, Any]) -> int:
    """Be one worker of ``TF_CONFIG``'s cluster: train ``kind`` into ``run_dir`` with
    :func:`training.run` (``parameters``: Config settings, and ``preset``, default quick)."""
    import supcon_utils

    supcon_utils.setup_tensorflow()
    import tensorflow as tf

    from supcon_utils import training

    settings = dict(parameters)
    cfg = training.config(settings.pop("preset", "quick"), **settings)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # waits for every worker
    chief = is_chief(strategy)
    results = training.run(kind, cfg, run_dir, strategy=strategy, verbose=2 if chief else 0)
    if chief:
        print(json.dumps({k: v for k, v in results.items() if k != "models"}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="One worker of TF_CONFIG's cluster, or --workers N on this machine.",
    )
    parser.add_argument("kind", help="the recipe, e.g. supcon or cross_entropy")
    parser.add_argument("run_dir", type=Path, help="the run folder (the chief writes run_dir/kind)")
    parser.add_argument("-p", "--parameter", action="append", type=runner._parse_parameter,
                        default=[], help="a Config setting key=value (JSON value), e.g. -p "
                        "epochs=3; -p preset=full picks the preset (default quick)")  # fmt: skip
    parser.add_argument("--workers", type=int,
                        help="start this many workers here, over 127.0.0.1")  # fmt: skip
    parser.add_argument("--timeout", type=float, help="with --workers: seconds before all stop")
    args = parser.parse_args(argv)
    if args.workers is not None:
        if args.workers < 1:
            parser.error(f"--workers must be at least 1, got {args.workers}")
        forwarded = [args.kind, str(args.run_dir)]
        for key, value in args.parameter:
            forwarded += ["-p", f"{key}={json.dumps(value)}"]
        # SIGTERM to the launcher stops its workers too (launch's cleanup runs on SystemExit)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
        return launch(args.workers, forwarded, args.timeout)
    if "TF_CONFIG" not in os.environ:
        parser.error("TF_CONFIG is not set: set it for this worker (TensorFlow's multi-worker "
                     "guide), or pass --workers N to start N workers on this machine")  # fmt: skip
    return work(args.kind, args.run_dir, dict(args.parameter))


if __name__ == "__main__":
    raise SystemExit(main())
