"""Training speed of the CPU default (``resnet_small`` on 28x28x1 Fashion-MNIST), and of the loss.

    python benchmarks/bench.py                       # or: make bench
    python benchmarks/bench.py --steps 2 --warmup 1  # a quick check that it runs

Everything is measured at the ``full`` preset's batch size (``training.PRESETS["full"]``) with
the models, loss and optimizer that ``training.run`` trains (``supcon_utils.recipes``).
A step is one ``model.train_function`` call (what ``fit`` runs per batch) followed by reading the
loss, so each timed step has finished. The first ``--warmup`` steps of each input are left out
(tracing, XLA compilation, filling the ``tf.data`` buffers); each figure below comes from the
median time of the timed steps (the very first step, which traces the model, is recorded apart as
``first_step_s``). The two inputs of a recipe take turns in blocks of ``--block`` timed steps
(pre-made, pipeline, pipeline, pre-made, ...), each block after ``--settle`` untimed steps that
drain the buffers the pipeline filled while it waited: a drift of the machine's speed during the
run (seen here: steps 2x slower for several seconds at a time) then falls on both inputs alike.

Figures, for each configuration (oneDNN on or off, XLA on or off):

- **CE / SupCon step, images/s**: batch size / median step time, on pre-made tensors (below).
  A SupCon image is two views, both through encoder and head; a cross-entropy image is one view.
- **SupCon / CE step time** (target <= 2.1): SupCon does twice the encoder work of cross-entropy
  (two views) plus the loss over a ``2B x 2B`` similarity matrix; much above 2 means the loss or
  the view handling costs more than it should.
- **pipeline / pre-made throughput** (target >= 0.97), for each recipe: steps fed by the real
  augmentation pipeline (``data.make_dataset(..., augmentation="grayscale28", n_views=...)``,
  iterated while training, as ``fit`` does) against steps fed one batch of views made once
  beforehand and repeated as constant tensors: the median over rounds of a round's ratio of
  median step times (``paired_ratio``), with a 95% bootstrap interval over the rounds
  (``ratio_interval``). Below 1 means augmentation holds training back: on 2 cores the
  ``tf.data`` threads compete with the training step for the same cores.
- **pipeline CPU / step CPU**, for each recipe: the process's CPU time (all threads) to make one
  batch of views with nothing else running, over the CPU time of a training step on pre-made
  views. CPU time moves far less with the machine's slow spells than wall time, so this is the
  steadier reading of what the pipeline costs.
- **1 / (1 + pipeline CPU / step wall time)** (``pipeline_stall_estimate``): the throughput
  ratio if every CPU second of the pipeline stalled the step for a second of wall time, as it
  does when each of the step's ops is split over both cores and waits for both. It predicts the
  measured ratio here (within about a point in nine runs), where ``1 / (1 + CPU share)``, the
  pipeline taking only its CPU seconds from the step's, was above every measurement.
- **loss share of a SupCon step** (target <= 5%): ``losses.supcon_loss`` forward and backward
  alone (a ``tf.function`` taking the gradient with respect to the features, on random
  features of the step's shape: batch x 2 views x 128 dims) over the SupCon step time on
  pre-made tensors, both medians in the same process.
- **training FLOP/s / matmul FLOP/s** (target >= 0.5), for each recipe: the FLOPs of a training
  step counted from the model's layers (``models.count_macs``: forward multiply-accumulates of the
  Conv2D and Dense layers per image; forward + backward = 3 x forward = 6 x MACs per view) divided
  by the step time, relative to the FLOP/s of a large float32 ``tf.linalg.matmul`` (2048 x 2048
  by default, median of repeats) measured in the same process, i.e. the fraction of the machine's
  practical peak the training step reaches.

Where a step's time goes (the ``profile`` worker, oneDNN on, XLA off; ``--no-profile`` skips it):
TensorFlow's profiler traces ``--profile-steps`` steps of each recipe on pre-made views, and
``benchmarks/step_profile.py`` sums the ops' execution time per step by kind: convolutions,
batch norm, dense layers, element-wise and other, the loss, the optimizer. The table gives each in
milliseconds and as a share of the summed op time, the step's wall time while profiled, the input
pipeline's cost (the default configuration's pipeline step minus its pre-made step), and the
convolutions' own FLOP rate against the matmul's (6 x their forward MACs per view).

Each configuration runs in its own subprocess of this script (a ``steps`` worker), because
``TF_ENABLE_ONEDNN_OPTS`` only takes effect before TensorFlow is imported. With XLA on
(``jit_compile=True``) only the model step is compiled: the views come from ``tf.data`` outside it
(random erasing has no static shape for XLA).

The loss alone at scale (the ``loss`` worker, oneDNN on, no XLA): ``losses.supcon_loss`` on
features of shape ``(2048, 2, 128)`` (4096 views of 128 dims, ``--loss-batch``; labels from 10
classes), forward and backward in a ``tf.function`` (median of repeats), and the peak memory that
adds: the process's peak resident set (``ru_maxrss``) after those calls minus its resident set
before the first one; and its forward pass alone, in a ``tf.function`` and eagerly. No speed
target. Whether the values are right is for the tests (``tests/naive_supcon.py`` is the
reference they compare with), not for this script.

The table printed at the end gives each figure, its target and whether it holds; all figures, the
raw step times and the machine (CPU model, cores, TensorFlow and Keras versions, load average) go
to ``runs/bench/bench.json`` (``--output``). Another process using the CPU lowers every
throughput and can move the ratios: compare the load average before and after with the core count.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_profile  # noqa: E402  (beside this script; imports nothing heavy)

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "runs" / "bench" / "bench.json"
PROJECTION_DIM = 128  # output of models.projection_head, what the loss contrasts
KINDS = ("cross_entropy", "supcon")  # the two recipes measured, those notebook 03 compares
DEFAULT_CONFIGS = ("1,0", "1,1", "0,0")  # oneDNN,XLA: the CPU default, XLA on, oneDNN off


@dataclasses.dataclass(frozen=True)
class Figure:
    """One row of the table: a key of the figures dict, its label, and its target if any."""

    key: str
    label: str
    fmt: str
    op: str | None = None  # "<=" or ">="
    target: float | None = None

    def holds(self, value: float) -> bool | None:
        """Whether `value` meets the target (None when there is no target)."""
        if self.op is None or self.target is None:
            return None
        return value <= self.target if self.op == "<=" else value >= self.target


FIGURES = (
    Figure("ce_images_per_s", "CE step, images/s", ",.0f"),
    Figure("supcon_images_per_s", "SupCon step, images/s (2 views each)", ",.0f"),
    Figure("supcon_over_ce_step_time", "SupCon / CE step time", ".2f", "<=", 2.1),
    Figure("ce_pipeline_over_premade", "CE: pipeline / pre-made throughput", ".3f", ">=", 0.97),
    Figure("ce_pipeline_over_premade_interval", "CE: its 95% interval over the rounds", ".3f"),
    Figure(
        "supcon_pipeline_over_premade", "SupCon: pipeline / pre-made throughput", ".3f", ">=", 0.97
    ),
    Figure(
        "supcon_pipeline_over_premade_interval", "SupCon: its 95% interval over the rounds", ".3f"
    ),
    Figure("ce_pipeline_cpu_share", "CE: pipeline CPU / step CPU", ".3f"),
    Figure("ce_pipeline_stall_estimate", "CE: 1 / (1 + pipeline CPU / step wall)", ".3f"),
    Figure("supcon_pipeline_cpu_share", "SupCon: pipeline CPU / step CPU", ".3f"),
    Figure("supcon_pipeline_stall_estimate", "SupCon: 1 / (1 + pipeline CPU / step wall)", ".3f"),
    Figure("supcon_loss_share", "SupCon: loss fwd+bwd / whole step", ".3f", "<=", 0.05),
    Figure("matmul_gflops", "matmul GFLOP/s (the reference peak)", ",.1f"),
    Figure("ce_train_gflops", "CE training GFLOP/s", ",.1f"),
    Figure("supcon_train_gflops", "SupCon training GFLOP/s", ",.1f"),
    Figure("ce_flops_over_matmul", "CE: training FLOP/s / matmul FLOP/s", ".3f", ">=", 0.5),
    Figure("supcon_flops_over_matmul", "SupCon: training FLOP/s / matmul FLOP/s", ".3f", ">=", 0.5),
)


# ---------------------------------------------------------------------------------------------
# Workers: run in subprocesses, print one JSON line on stdout, progress on stderr.


def worker_steps(args: argparse.Namespace) -> dict[str, Any]:
    """Time CE and SupCon training steps on pre-made views and on the pipeline, plus a matmul."""
    import keras
    import tensorflow as tf

    from supcon_utils import data, training

    cfg = dataclasses.replace(
        training.PRESETS["full"],
        batch_size=args.batch_size or training.PRESETS["full"].batch_size,
        jit_compile=bool(args.xla),
    )
    label = f"oneDNN {args.onednn} XLA {args.xla}"
    (x_train, y_train), _ = data.load_dataset(cfg.dataset)
    matmul_times = time_matmul(args.matmul_size, args.matmul_repeats)

    result: dict[str, Any] = {
        "onednn": args.onednn,
        "xla": args.xla,
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "settings": {
            "preset": "full",
            "dataset": cfg.dataset,
            "encoder": cfg.encoder,
            "augmentation": cfg.augmentation,
            "batch_size": cfg.batch_size,
            "n_views": cfg.n_views,
            "optimizer": cfg.optimizer,
            "steps": args.steps,
            "warmup": args.warmup,
            "block": args.block,
            "settle": args.settle,
        },
        "matmul": {"size": args.matmul_size, "times_s": matmul_times},
    }
    for kind in KINDS:
        keras.utils.set_random_seed(cfg.seed)
        model, macs, views = build_model(
            kind, cfg, x_train.shape[1:], int(y_train.max()) + 1, len(x_train)
        )
        pipeline = data.make_dataset(
            x_train,
            y_train,
            batch_size=cfg.batch_size,
            n_views=views,
            augmentation=cfg.augmentation,
            shuffle=True,
            seed=cfg.seed,
        ).repeat()
        # One batch of views made once, then fed again and again: same shapes, no augmentation.
        premade = tf.data.Dataset.from_tensors(next(iter(pipeline))).repeat()
        # One `fit` step builds the optimizer and traces (and with XLA compiles) the step.
        start = time.perf_counter()
        model.fit(premade, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
        first_step = time.perf_counter() - start
        result[kind] = {
            "macs_per_image_view": macs,
            "n_views": views,
            "params": model.count_params(),
            "first_step_s": first_step,
            **time_alternating(model, {"premade": premade, "pipeline": pipeline}, args,
                               f"{label} {kind}"),
            "pipeline_alone_cpu_s": time_pipeline_cpu(pipeline, args.warmup, args.steps),
        }  # fmt: skip
        del model, pipeline, premade
    # The loss alone, forward and backward, at the step's shape (batch x views x projection).
    result["supcon"]["loss_grad_times_s"] = time_loss_grad(
        cfg.batch_size, cfg.n_views, PROJECTION_DIM, cfg.temperature, args.steps
    )
    return result


def worker_profile(args: argparse.Namespace) -> dict[str, Any]:
    """Profile CE and SupCon steps on pre-made views: op seconds per step by kind of op."""
    import keras
    import tensorflow as tf

    from supcon_utils import data, models, training

    cfg = dataclasses.replace(
        training.PRESETS["full"], batch_size=args.batch_size or training.PRESETS["full"].batch_size
    )
    (x_train, y_train), _ = data.load_dataset(cfg.dataset)
    result: dict[str, Any] = {
        "settings": {"batch_size": cfg.batch_size, "steps": args.profile_steps,
                     "warmup": args.warmup},
        "matmul": {"size": args.matmul_size,
                   "times_s": time_matmul(args.matmul_size, args.matmul_repeats)},
    }  # fmt: skip
    for kind in KINDS:
        keras.utils.set_random_seed(cfg.seed)
        model, _, views = build_model(kind, cfg, x_train.shape[1:], int(y_train.max()) + 1,
                                      len(x_train))  # fmt: skip
        pipeline = data.make_dataset(x_train, y_train, batch_size=cfg.batch_size, n_views=views,
                                     augmentation=cfg.augmentation, shuffle=True)  # fmt: skip
        batch = next(iter(pipeline))
        premade = tf.data.Dataset.from_tensors(batch).repeat()
        model.fit(premade, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
        print(f"profiling {kind} ...", file=sys.stderr, flush=True)
        result[kind] = {
            **step_profile.profile_steps(model, premade, args.profile_steps, args.warmup),
            "conv_macs_per_image_view": models.count_macs(model, (keras.layers.Conv2D,)),
            "n_views": views,
        }
    return result


def build_model(
    kind: str, cfg: Any, input_shape: tuple[int, ...], n_classes: int, n_images: int
) -> tuple[keras.Model, int, int]:
    """The compiled model of `kind` as training builds it (``recipes.RECIPES``); forward MACs of
    its encoder and head per view; views per image."""
    from supcon_utils import models, recipes

    built = recipes.get(kind).build(cfg, input_shape, n_classes, n_images, None)
    macs = sum(models.count_macs(part) for part in built.parts.values())
    return built.model, macs, built.n_views


def time_alternating(
    model: keras.Model, datasets: dict[str, tf.data.Dataset], args: argparse.Namespace, desc: str
) -> dict[str, list[float]]:
    """Seconds of each timed training step on batches of each dataset, as `{name}_times_s`.

    The datasets take turns in blocks of `args.block` timed steps (in A B B A ... order), so that
    a drift of the machine's speed over the run (frequency, a neighbour's load) falls on both
    alike. Each dataset first runs `args.warmup` untimed steps; each block first runs
    `args.settle` untimed ones, which empty the ``tf.data`` buffers filled while the other
    dataset ran (they would make the pipeline look free) and let its threads start again.
    """
    from tqdm import tqdm

    iterators = {name: iter(ds) for name, ds in datasets.items()}
    times: dict[str, list[float]] = {name: [] for name in datasets}
    cpu: dict[str, list[float]] = {name: [] for name in datasets}
    n_blocks = -(-args.steps // args.block)
    order = [name for r in range(n_blocks) for name in (list(datasets)[:: 1 if r % 2 == 0 else -1])]
    total = len(datasets) * args.warmup + len(order) * (args.settle + args.block)
    with tqdm(total=total, desc=desc, file=sys.stderr, ncols=100, mininterval=1.0) as bar:
        for iterator in iterators.values():
            for _ in range(args.warmup):
                _step(model, iterator)
                bar.update()
        for name in order:
            for i in range(args.settle + args.block):
                elapsed, cpu_elapsed = _step(model, iterators[name])
                if i >= args.settle and len(times[name]) < args.steps:
                    times[name].append(elapsed)
                    cpu[name].append(cpu_elapsed)
                bar.update()
        bar.set_postfix_str(
            " ".join(f"{n} {statistics.median(t):.3f}" for n, t in times.items()) + " s/step"
        )
    del iterators  # stops the pipeline's background threads before the next phase
    return {f"{name}_times_s": t for name, t in times.items()} | {
        f"{name}_cpu_s": t for name, t in cpu.items()
    }


def _step(model: keras.Model, iterator: Any) -> tuple[float, float]:
    """Wall and process CPU seconds of one training step (what `fit` calls once per batch),
    waiting for it to end."""
    start, start_cpu = time.perf_counter(), time.process_time()
    logs = model.train_function(iterator)
    float(logs["loss"])
    return time.perf_counter() - start, time.process_time() - start_cpu


def time_pipeline_cpu(dataset: Any, warmup: int, batches: int) -> float:
    """Process CPU seconds (all threads) per batch of `dataset` iterated alone, after `warmup`
    batches. Batches its buffers made before the timing starts and those left in them at the end
    fall on the two ends of the count and roughly cancel."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.process_time()
    for _ in range(batches):
        next(iterator)
    return (time.process_time() - start) / batches


def time_matmul(size: int, repeats: int) -> list[float]:
    """Seconds of each of `repeats` float32 `size x size` matmuls (after two warm-up ones)."""
    import tensorflow as tf

    a = tf.random.stateless_normal((size, size), seed=(0, 1))
    b = tf.random.stateless_normal((size, size), seed=(0, 2))
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        float(tf.linalg.matmul(a, b)[0, 0])
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def loss_inputs(n_images: int, n_views: int, dim: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Random float32 features ``(n_images, n_views, dim)`` and labels from 10 classes."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    features = tf.constant(rng.normal(size=(n_images, n_views, dim)), tf.float32)
    return features, tf.constant(rng.integers(0, 10, size=n_images), tf.int64)


def loss_grad_function(temperature: float) -> Callable[[tf.Tensor, tf.Tensor], Any]:
    """``supcon_loss`` and its gradient with respect to the features, in a ``tf.function``."""
    import tensorflow as tf

    from supcon_utils import losses

    @tf.function
    def loss_and_grad(features: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(features)
            loss = losses.supcon_loss(features, labels, temperature=temperature)
        return loss, tape.gradient(loss, features)

    return loss_and_grad


def time_loss_grad(
    n_images: int, n_views: int, dim: int, temperature: float, repeats: int
) -> list[float]:
    """Seconds of each of `repeats` forward+backward calls of the loss (after one untimed call)."""
    features, labels = loss_inputs(n_images, n_views, dim)
    loss_and_grad = loss_grad_function(temperature)
    # A tf.function's outputs are ready together: reading the loss waits for the gradient too.
    return _repeat(lambda: loss_and_grad(features, labels)[0], repeats)


def _rss_bytes() -> int:
    """This process's resident set now (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def worker_loss(args: argparse.Namespace) -> dict[str, Any]:
    """Time `losses.supcon_loss` on `loss_batch` views, and its peak memory."""
    import resource

    import tensorflow as tf

    from supcon_utils import losses

    n_images, n_views, dim, temperature = args.loss_batch // 2, 2, PROJECTION_DIM, 0.1
    features, labels = loss_inputs(n_images, n_views, dim)

    def library() -> tf.Tensor:
        return losses.supcon_loss(features, labels, temperature=temperature)

    print(f"loss at batch {n_views * n_images}: library ...", file=sys.stderr, flush=True)
    loss_and_grad = loss_grad_function(temperature)
    rss_before = _rss_bytes()
    grad_times = _repeat(lambda: loss_and_grad(features, labels)[0], args.loss_repeats)
    # ru_maxrss is in KiB on Linux: the process's peak so far, i.e. during the calls above.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    graph = tf.function(lambda f, y: losses.supcon_loss(f, y, temperature=temperature))
    eager_times = _repeat(library, args.loss_repeats)
    graph_times = _repeat(lambda: graph(features, labels), args.loss_repeats)
    return {
        "batch_views": n_views * n_images,
        "dim": dim,
        "n_classes": 10,
        "temperature": temperature,
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "library_grad_times_s": grad_times,
        "rss_before_bytes": rss_before,
        "peak_rss_bytes": peak,
        "library_eager_times_s": eager_times,
        "library_graph_times_s": graph_times,
    }


def _repeat(fn: Callable[[], Any], repeats: int) -> list[float]:
    """Seconds of each of `repeats` calls of `fn` (after one untimed call), result read."""
    float(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        float(fn())
        times.append(time.perf_counter() - start)
    return times


# ---------------------------------------------------------------------------------------------
# Parent: runs the workers, computes the figures, prints the table, writes the JSON.


def worker_spec(args: argparse.Namespace, worker: str, onednn: int = 1, xla: int = 0) -> str:
    """What one worker measures, as the JSON it is started with: the parent's settings, the
    worker's job (``steps``, ``loss`` or ``profile``) and its oneDNN and XLA switches."""
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "configs", "spec")}
    return json.dumps({**settings, "worker": worker, "onednn": onednn, "xla": xla})


def run_worker(spec: str) -> dict[str, Any]:
    """Run this script as a worker of `spec` (``worker_spec``); its last stdout line is its JSON.
    oneDNN is switched by the environment, which only counts before TensorFlow loads."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": str(json.loads(spec)["onednn"])}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--spec", spec],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def step_figures(raw: dict[str, Any]) -> dict[str, float]:
    """The figures of one configuration from a steps worker's raw times."""
    batch = raw["settings"]["batch_size"]
    size = raw["matmul"]["size"]
    matmul_flops = 2 * size**3 / statistics.median(raw["matmul"]["times_s"])
    out: dict[str, float] = {"matmul_gflops": matmul_flops / 1e9}
    for kind, short in (("cross_entropy", "ce"), ("supcon", "supcon")):
        r = raw[kind]
        premade = statistics.median(r["premade_times_s"])
        pipeline = statistics.median(r["pipeline_times_s"])
        train_flops = 6 * r["macs_per_image_view"] * r["n_views"] * batch / premade
        if "loss_grad_times_s" in r:
            out["supcon_loss_grad_ms"] = 1e3 * statistics.median(r["loss_grad_times_s"])
            out["supcon_loss_share"] = out["supcon_loss_grad_ms"] / 1e3 / premade
        out |= {
            f"{short}_step_s": premade,
            f"{short}_pipeline_step_s": pipeline,
            f"{short}_images_per_s": batch / premade,
            f"{short}_pipeline_images_per_s": batch / pipeline,
            f"{short}_pipeline_over_premade": paired_ratio(
                r["premade_times_s"], r["pipeline_times_s"], raw["settings"]["block"]
            ),
            f"{short}_pipeline_over_premade_interval": ratio_interval(
                r["premade_times_s"], r["pipeline_times_s"], raw["settings"]["block"]
            ),
            f"{short}_train_gflops": train_flops / 1e9,
            f"{short}_flops_over_matmul": train_flops / matmul_flops,
        }
        if "pipeline_alone_cpu_s" in r:
            cpu = r["pipeline_alone_cpu_s"]
            out[f"{short}_pipeline_cpu_share"] = cpu / statistics.median(r["premade_cpu_s"])
            out[f"{short}_pipeline_stall_estimate"] = 1 / (1 + cpu / premade)
    out["supcon_over_ce_step_time"] = out["supcon_step_s"] / out["ce_step_s"]
    return out


def paired_ratio(premade: list[float], pipeline: list[float], block: int) -> float:
    """The median over rounds of (median pre-made step / median pipeline step) within a round.

    Round r is the r-th block of each input, run back to back (``time_alternating``): a slow
    spell of the machine (seen here: steps 2x slower for several seconds) falls on both halves of
    a round, so it cancels in the round's ratio instead of tipping the overall medians.
    """
    return statistics.median(_round_ratios(premade, pipeline, block))


def ratio_interval(
    premade: list[float], pipeline: list[float], block: int, level: float = 0.95
) -> tuple[float, float]:
    """A percentile bootstrap interval of `paired_ratio`: the rounds resampled 2,000 times
    (seeded, so the same times give the same interval)."""
    ratios = _round_ratios(premade, pipeline, block)
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    tail = (1 - level) / 2
    return medians[int(tail * len(medians))], medians[int((1 - tail) * len(medians)) - 1]


def _round_ratios(premade: list[float], pipeline: list[float], block: int) -> list[float]:
    """Each round's median pre-made step time over its median pipeline step time."""
    return [
        statistics.median(premade[i : i + block]) / statistics.median(pipeline[i : i + block])
        for i in range(0, min(len(premade), len(pipeline)), block)
    ]


def profile_figures(raw: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per recipe: milliseconds per step of each kind of op, their sum, the step's wall time,
    and the convolutions' FLOP rate against the matmul's."""
    batch = raw["settings"]["batch_size"]
    size = raw["matmul"]["size"]
    matmul_flops = 2 * size**3 / statistics.median(raw["matmul"]["times_s"])
    out = {}
    for kind in KINDS:
        r = raw[kind]
        ops = {k: 1e3 * r["op_s_per_step"][k] for k in step_profile.CATEGORIES}
        conv_flops = 6 * r["conv_macs_per_image_view"] * r["n_views"] * batch
        out[kind] = {
            **ops,
            "ops_ms": sum(ops.values()),
            "step_ms": 1e3 * r["step_s"],
            "conv_flops_over_matmul": conv_flops / (ops["convolutions"] / 1e3) / matmul_flops,
        }
    return out


def print_profile(profile: dict[str, dict[str, float]], raw: dict[str, Any],
                  default: dict[str, float] | None) -> None:  # fmt: skip
    """The step breakdown of both recipes: milliseconds and shares of the summed op time."""
    settings = raw["settings"]
    print(f"\nWhere a step's time goes (oneDNN on, XLA off, batch {settings['batch_size']}, "
          f"pre-made views; TensorFlow profiler over {settings['steps']} steps):")  # fmt: skip
    print(f"{'':<44} {'CE ms':>9} {'share':>6} {'SupCon ms':>10} {'share':>6}")
    ce, sc = profile["cross_entropy"], profile["supcon"]
    for name in step_profile.CATEGORIES:
        print(f"{name:<44} {ce[name]:9.1f} {ce[name] / ce['ops_ms']:6.1%} {sc[name]:10.1f} "
              f"{sc[name] / sc['ops_ms']:6.1%}")  # fmt: skip
    print(f"{'ops, summed':<44} {ce['ops_ms']:9.1f} {'':>6} {sc['ops_ms']:10.1f}")
    print(f"{'step, wall (while profiled)':<44} {ce['step_ms']:9.1f} {'':>6} {sc['step_ms']:10.1f}")
    if default is not None:  # the input pipeline's cost, from the steps worker's default config
        extra = [1e3 * (default[f"{k}_pipeline_step_s"] - default[f"{k}_step_s"])
                 for k in ("ce", "supcon")]  # fmt: skip
        print(f"{'input: pipeline step - pre-made step':<44} {extra[0]:9.1f} {'':>6} "
              f"{extra[1]:10.1f}")  # fmt: skip
    print(f"{'convolutions: FLOP/s / matmul FLOP/s':<44} {ce['conv_flops_over_matmul']:9.3f} "
          f"{'':>6} {sc['conv_flops_over_matmul']:10.3f}")  # fmt: skip


def loss_figures(raw: dict[str, Any]) -> dict[str, Any]:
    """Median times of the library loss and its peak memory."""
    return {
        "library_grad_ms": 1e3 * statistics.median(raw["library_grad_times_s"]),
        "peak_extra_mib": (raw["peak_rss_bytes"] - raw["rss_before_bytes"]) / 2**20,
        "library_eager_ms": 1e3 * statistics.median(raw["library_eager_times_s"]),
        "library_graph_ms": 1e3 * statistics.median(raw["library_graph_times_s"]),
    }


def machine_info() -> dict[str, Any]:
    """CPU model and cores, library versions, load average, git commit."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        git = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
        commit = subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "load_average_start": list(os.getloadavg()),
        "git": commit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def print_table(configs: list[dict[str, Any]], loss: dict[str, Any] | None) -> None:
    """The figures of every configuration side by side, each with its target and verdict."""
    names = [f"oneDNN {c['onednn']} XLA {c['xla']}" for c in configs]
    width = 44
    print(f"\n{'figure':<{width}} {'target':>8}" + "".join(f"  {n:>16}" for n in names))
    print("-" * (width + 9 + 18 * len(names)))
    for fig in FIGURES:
        target = f"{fig.op} {fig.target:g}" if fig.op else "-"
        cells = []
        for c in configs:
            value = c["figures"].get(fig.key)
            if value is None:  # a figure the worker's raw times do not give
                cells.append(f"  {'-':>16}")
            elif isinstance(value, (tuple, list)):  # an interval
                cells.append(f"  {'[' + ', '.join(format(v, fig.fmt) for v in value) + ']':>16}")
            else:
                verdict = {True: " ok", False: " NO", None: ""}[fig.holds(value)]
                cells.append(f"  {format(value, fig.fmt) + verdict:>16}")
        print(f"{fig.label:<{width}} {target:>8}" + "".join(cells))
    if loss is not None:
        f = loss["figures"]
        print(
            f"\nSupCon loss at batch {loss['raw']['batch_views']} "
            f"({loss['raw']['batch_views'] // 2} x 2 views x {loss['raw']['dim']}, 10 classes):"
        )
        print(
            f"  library supcon_loss, forward + backward, tf.function {f['library_grad_ms']:.1f} ms"
            f" (median), peak memory +{f['peak_extra_mib']:,.0f} MiB (resident, over the process's"
            " before the first call)"
        )
        print(f"  library supcon_loss, tf.function {f['library_graph_ms']:10.1f} ms (median)")
        print(f"  library supcon_loss, eager       {f['library_eager_ms']:10.1f} ms (median)")


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    """Command-line options of the parent and of the workers."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--steps", type=int, default=40, help="timed steps per recipe and input (default 40)"
    )
    p.add_argument(
        "--warmup", type=int, default=5, help="untimed steps before them, at least 1 (default 5)"
    )
    p.add_argument(
        "--block", type=int, default=5, help="timed steps per turn of each input (default 5)"
    )
    p.add_argument(
        "--settle", type=int, default=2, help="untimed steps at the start of a turn (default 2)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per batch (default: the full preset's, 256)",
    )
    p.add_argument(
        "--configs",
        nargs="+",
        default=list(DEFAULT_CONFIGS),
        metavar="ONEDNN,XLA",
        help="configurations to run, e.g. 1,0 1,1 0,0 (the default) or 0,1",
    )
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--matmul-repeats", type=int, default=10)
    p.add_argument("--loss-batch", type=int, default=4096, help="views in the loss benchmark")
    p.add_argument("--loss-repeats", type=int, default=5)
    p.add_argument("--no-loss", action="store_true", help="skip the loss benchmark")
    p.add_argument("--profile-steps", type=int, default=5, help="steps traced by the profiler")
    p.add_argument("--no-profile", action="store_true", help="skip the step breakdown")
    p.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON file of all figures (default {DEFAULT_OUTPUT.relative_to(ROOT)})",
    )
    p.add_argument("--spec", help=argparse.SUPPRESS)  # a worker's job, from worker_spec
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        p.error("--steps and --warmup must be at least 1 (the first step traces the model)")
    if args.block < 1 or args.settle < 0:
        p.error("--block must be at least 1 and --settle at least 0")
    if args.loss_batch < 4 or args.loss_batch % 2:
        p.error("--loss-batch must be an even number >= 4 (2 views per image)")
    return args


def main(argv: Iterable[str] | None = None) -> int:
    """Parent: run every configuration and the loss in workers, report. Worker: measure."""
    args = parse_args(argv)
    if args.spec:
        spec = argparse.Namespace(**json.loads(args.spec))
        # Before TensorFlow loads (oneDNN is chosen then); setup_tensorflow keeps a value set.
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = str(spec.onednn)
        import supcon_utils

        supcon_utils.setup_tensorflow()
        measure = {"steps": worker_steps, "loss": worker_loss, "profile": worker_profile}
        print(json.dumps(measure[spec.worker](spec)), flush=True)
        return 0

    configs = [tuple(int(v) for v in c.split(",")) for c in args.configs]
    if any(len(c) != 2 or not set(c) <= {0, 1} for c in configs):
        raise SystemExit("--configs takes ONEDNN,XLA pairs of 0/1, e.g. 1,0 1,1 0,0")

    machine = machine_info()
    print(
        f"{machine['cpu_model']}, {machine['cpus_usable']} usable cores, load average "
        f"{machine['load_average_start'][0]:.2f}; TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    for i, (onednn, xla) in enumerate(configs, 1):
        print(
            f"[{i}/{len(configs)}] oneDNN {onednn}, XLA {xla} ({time.perf_counter() - start:.0f}"
            " s elapsed)",
            file=sys.stderr,
            flush=True,
        )
        raw = run_worker(worker_spec(args, "steps", onednn, xla))
        results.append({"onednn": onednn, "xla": xla, "figures": step_figures(raw), "raw": raw})
    loss = None
    if not args.no_loss:
        print(f"[loss] ({time.perf_counter() - start:.0f} s elapsed)", file=sys.stderr, flush=True)
        raw = run_worker(worker_spec(args, "loss"))
        loss = {"figures": loss_figures(raw), "raw": raw}
    profile = None
    if not args.no_profile:
        print(f"[profile] ({time.perf_counter() - start:.0f} s elapsed)", file=sys.stderr,
              flush=True)  # fmt: skip
        raw = run_worker(worker_spec(args, "profile"))
        profile = {"figures": profile_figures(raw), "raw": raw}
    machine["load_average_end"] = list(os.getloadavg())
    machine["wall_time_s"] = round(time.perf_counter() - start, 1)

    print_table(results, loss)
    if profile is not None:
        default = next((r["figures"] for r in results if (r["onednn"], r["xla"]) == (1, 0)), None)
        print_profile(profile["figures"], profile["raw"], default)
    report = {
        "machine": machine,
        "settings": results[0]["raw"]["settings"] if results else None,
        "targets": {f.key: f"{f.op} {f.target:g}" for f in FIGURES if f.op},
        "configs": [
            {
                **{k: r[k] for k in ("onednn", "xla", "figures")},
                "holds": {f.key: f.holds(r["figures"][f.key]) for f in FIGURES if f.op},
                "raw": r["raw"],
            }
            for r in results
        ],
        "loss": loss,
        "profile": profile,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nwrote {args.output} ({machine['wall_time_s']:.0f} s; load average "
        f"{machine['load_average_start'][0]:.2f} at the start, "
        f"{machine['load_average_end'][0]:.2f} at the end, {machine['cpus_usable']} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
