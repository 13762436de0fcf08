"""Where a training step's time goes: TensorFlow's profiler trace of a few steps, by kind of op.

Every op TensorFlow runs in a step is one event of the trace's "/host:CPU" plane, named
``<name scope>:<op type>`` (e.g. ``gradient_tape/sup_con_model/resnet_small/conv2d_3/convolution/
Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter``). :func:`category` sorts them by their scope
and type: the loss and the optimizer by scope (``compile_loss``, the optimizer's name), batch norm
by its layers' scope or the fused op's type, then convolutions and dense layers by op type,
forward and backward together; whatever is left (ReLU, the residual additions, gradient sums,
pooling) is element-wise and other. Summed per step, these are seconds of op execution; the
step's wall time adds what the executor spends between ops.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

CATEGORIES = (
    "convolutions",
    "batch norm",
    "dense",
    "element-wise and other",
    "loss",
    "optimizer",
)


def category(path: str, op: str, optimizer: str) -> str:
    """The kind of an op from its name scope `path` and type `op` (`optimizer`: its scope)."""
    scopes = path.split("/")
    if any("loss" in scope for scope in scopes):
        return "loss"
    if optimizer in scopes:
        return "optimizer"
    if "BatchNorm" in op or any("batch_normalization" in scope for scope in scopes):
        return "batch norm"
    if "Conv2D" in op:
        return "convolutions"
    if "MatMul" in op:
        return "dense"
    return "element-wise and other"


def op_seconds(xspace: bytes, optimizer: str) -> dict[str, float]:
    """Seconds of op execution in a serialised XSpace (a profiler trace), summed by category."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(xspace)
    seconds = dict.fromkeys(CATEGORIES, 0.0)
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads; not tf.data's
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name.startswith("ExecutorState") or ":" not in name:
                    continue  # the executor's own spans, which hold the ops
                path, op = name.rsplit(":", 1)
                seconds[category(path, op, optimizer)] += event.duration_ps * 1e-12
    return seconds


def profile_steps(
    model: keras.Model, dataset: tf.data.Dataset, steps: int, warmup: int
) -> dict[str, Any]:
    """Profile `steps` training steps of `model` on `dataset` after `warmup` untimed ones.

    Returns the op seconds per step by category and the steps' wall times (while profiled).
    """
    import tensorflow as tf

    iterator = iter(dataset)
    for _ in range(warmup):
        float(model.train_function(iterator)["loss"])
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            float(model.train_function(iterator)["loss"])  # waits for the step to finish
            times.append(time.perf_counter() - start)
        tf.profiler.experimental.stop()
        traces = sorted(Path(logdir).rglob("*.xplane.pb"))
        if not traces:
            raise RuntimeError(f"the profiler wrote no trace in {logdir}")
        seconds = op_seconds(traces[-1].read_bytes(), model.optimizer.name)
    return {
        "steps": steps,
        "op_s_per_step": {k: v / steps for k, v in seconds.items()},
        "step_times_s": times,
        "step_s": statistics.median(times),
    }
