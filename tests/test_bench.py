"""benchmarks/bench.py: the figures computed from a worker's raw times, and the printed table."""

import importlib.util
import itertools
import json
import sys
import types
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench", Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench"] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)
step_profile = sys.modules["step_profile"]  # bench imports it from beside itself


def _raw() -> dict:
    # The timed steps (warm-up left out by the worker); batch of 4 images.
    return {
        "settings": {"batch_size": 4, "block": 3},
        "matmul": {"size": 10, "times_s": [1e-6, 2e-6, 3e-6]},  # 2 * 10**3 FLOPs in 2 us: 1 GFLOP/s
        "cross_entropy": {
            "macs_per_image_view": 100,
            "n_views": 1,
            "premade_times_s": [1.0, 1.0, 1.0],
            "pipeline_times_s": [2.0, 2.0, 2.0],
        },
        "supcon": {
            "macs_per_image_view": 100,
            "n_views": 2,
            "premade_times_s": [3.0, 2.0, 1.0],
            "pipeline_times_s": [2.0, 2.0, 2.0],
            "loss_grad_times_s": [0.1, 0.2, 0.3],
            "premade_cpu_s": [4.0, 3.0, 5.0],  # CPU seconds on both cores: median 4 s
            "pipeline_alone_cpu_s": 0.2,
        },
    }


def test_step_figures_are_ratios_of_medians():
    f = bench.step_figures(_raw())
    assert f["matmul_gflops"] == pytest.approx(1.0)
    assert f["ce_images_per_s"] == pytest.approx(4.0)
    assert f["supcon_over_ce_step_time"] == pytest.approx(2.0)
    assert f["ce_pipeline_over_premade"] == pytest.approx(0.5)
    assert f["supcon_pipeline_over_premade"] == pytest.approx(1.0)
    assert f["supcon_loss_share"] == pytest.approx(0.1)  # 0.2 s of a 2 s step
    # 6 FLOPs per MAC (forward + backward) per view: 6 * 100 * 2 views * 4 images / 2 s.
    assert f["supcon_train_gflops"] == pytest.approx(2400e-9)
    assert f["supcon_flops_over_matmul"] == pytest.approx(2400 / 1e9)
    # 0.2 CPU seconds per batch of views against 4 per step: 5% more work; if each of them
    # stalls the 2 s step (median wall time), 10% more time.
    assert f["supcon_pipeline_cpu_share"] == pytest.approx(0.05)
    assert f["supcon_pipeline_stall_estimate"] == pytest.approx(1 / 1.1)
    assert "ce_pipeline_cpu_share" not in f  # a worker that did not measure it


def test_the_ratio_interval_holds_the_rounds_median_and_narrows_with_agreeing_rounds():
    block = 1
    premade = [1.0] * 20
    spread = [1 / r for r in (0.8, 0.9, 1.0, 1.1, 1.2) * 4]
    low, high = bench.ratio_interval(premade, spread, block)
    assert low < bench.paired_ratio(premade, spread, block) < high
    assert 0.8 <= low and high <= 1.2
    assert bench.ratio_interval(premade, spread, block) == (low, high)  # seeded
    steady = [1 / r for r in (0.99, 1.0, 1.01) * 7][:20]
    steady_low, steady_high = bench.ratio_interval(premade, steady, block)
    assert steady_high - steady_low < (high - low) / 5


class _CountingModel:
    """Stands in for a Keras model: each step takes the next batch and logs which input it was."""

    def __init__(self):
        self.steps = []

    def train_function(self, iterator):
        self.steps.append(next(iterator))
        return {"loss": 0.0}


def test_the_inputs_take_turns_and_only_settled_steps_are_timed():
    model = _CountingModel()
    args = types.SimpleNamespace(steps=5, warmup=1, block=2, settle=1)
    inputs = {"premade": itertools.repeat("A"), "pipeline": itertools.repeat("B")}
    times = bench.time_alternating(model, inputs, args, "test")
    assert sorted(times) == ["pipeline_cpu_s", "pipeline_times_s", "premade_cpu_s",
                             "premade_times_s"]  # fmt: skip
    assert [len(t) for t in times.values()] == [5, 5, 5, 5]
    # Warm-up of each, then blocks of settle + block steps in A B B A A B order (3 rounds of 2).
    assert "".join(model.steps) == "AB" + "AAA BBB BBB AAA AAA BBB".replace(" ", "")


def test_the_pipeline_ratio_pairs_each_round():
    # Round 2 ran in a slow spell (both inputs 2x slower): it does not tip the ratio, 0.5.
    premade = [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0]
    pipeline = [2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 2.0, 2.0, 2.0]
    assert bench.paired_ratio(premade, pipeline, 3) == pytest.approx(0.5)
    assert bench.paired_ratio([1.0, 9.0, 1.0], [2.0, 2.0, 9.0], 1) == pytest.approx(0.5)


def test_the_table_marks_each_target(capsys):
    figures = bench.step_figures(_raw())
    bench.print_table([{"onednn": 1, "xla": 0, "figures": figures}], None)
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["SupCon / CE step time"].endswith("2.00 ok")
    assert lines["CE: pipeline / pre-made throughput"].endswith("0.500 NO")
    assert lines["SupCon: loss fwd+bwd / whole step"].endswith("0.100 NO")
    assert lines["CE: its 95% interval over the rounds"].endswith("[0.500, 0.500]")
    assert lines["CE: pipeline CPU / step CPU"].endswith("-")  # not measured


def test_a_worker_is_started_with_one_spec_of_everything_it_measures():
    args = bench.parse_args(["--steps", "7", "--configs", "0,1", "--output", "/tmp/x.json"])
    spec = json.loads(bench.worker_spec(args, "steps", 0, 1))
    assert spec["worker"] == "steps" and (spec["onednn"], spec["xla"]) == (0, 1)
    assert spec["steps"] == 7 and spec["loss_batch"] == 4096
    assert "output" not in spec and "configs" not in spec  # the parent's, not the worker's


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--loss-batch", "5"])


# Op names as TensorFlow's profiler records them (from a SupCon step's trace here).
TRACED = {
    "StatefulPartitionedCall/gradient_tape/sup_con_model_1/resnet_small_1/conv2d_9_1/convolution/"
    "Conv2DBackpropFilter:_MklNativeConv2DBackpropFilter": "convolutions",
    "StatefulPartitionedCall/sup_con_model_1/resnet_small_1/conv2d_2_1/convolution:"
    "_MklNativeConv2D": "convolutions",
    "StatefulPartitionedCall/sup_con_model_1/resnet_small_1/batch_normalization_1/moments/"
    "SquaredDifference:SquaredDifference": "batch norm",
    "StatefulPartitionedCall/gradient_tape/sup_con_model_1/resnet_small_1/batch_normalization_1/"
    "batchnorm/mul_1/Mul_1:Mul": "batch norm",
    "StatefulPartitionedCall/sup_con_model/resnet_small/fused_batch_normalization_3/"
    "FusedBatchNormV3:_MklFusedBatchNormV3": "batch norm",
    "StatefulPartitionedCall/gradient_tape/sup_con_model/resnet_small/fused_batch_normalization_3/"
    "FusedBatchNormV3/FusedBatchNormGradV3:_MklFusedBatchNormGradV3": "batch norm",
    "StatefulPartitionedCall/sup_con_model_1/projection_head_1/dense_1:_MklNativeFusedMatMul":
        "dense",
    "StatefulPartitionedCall/gradient_tape/compile_loss/supcon_loss:_MklMatMul": "loss",
    "StatefulPartitionedCall/compile_loss/supcon_loss/Exp:Exp": "loss",
    "StatefulPartitionedCall/adam_w/AssignSubVariableOp_25:AssignSubVariableOp": "optimizer",
    "StatefulPartitionedCall/sup_con_model_1/re_lu_1:Relu": "element-wise and other",
    "StatefulPartitionedCall/AddN_26:AddN": "element-wise and other",
}  # fmt: skip


def test_traced_ops_fall_into_their_kind():
    for name, kind in TRACED.items():
        path, op = name.rsplit(":", 1)
        assert step_profile.category(path, op, "adam_w") == kind, name


def test_op_seconds_sum_the_executors_events_by_kind():
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    names = [*TRACED, "ExecutorState::Process"]
    for i, name in enumerate(names, 1):
        plane.event_metadata[i].name = name
    compute = plane.lines.add(name="tf_Compute/123")
    for i, name in enumerate(names, 1):  # 1 ms each, the executor's span 50 ms
        compute.events.add(metadata_id=i, duration_ps=(50 if "Executor" in name else 1) * 10**9)
    data_line = plane.lines.add(name="tf_data_iterator_get_next/1")  # tf.data's thread: not ops
    data_line.events.add(metadata_id=1, duration_ps=7 * 10**9)
    seconds = step_profile.op_seconds(space.SerializeToString(), "adam_w")
    expected = {kind: 1e-3 * list(TRACED.values()).count(kind) for kind in step_profile.CATEGORIES}
    assert seconds == pytest.approx(expected)


def test_profile_figures_are_per_step_milliseconds_and_the_convolutions_rate():
    ops = dict.fromkeys(step_profile.CATEGORIES, 0.01)
    ops["convolutions"] = 0.2
    raw = {
        "settings": {"batch_size": 4, "steps": 2, "warmup": 1},
        "matmul": {"size": 10, "times_s": [2e-6]},  # 1 GFLOP/s
        **{kind: {"op_s_per_step": ops, "step_s": 0.3, "conv_macs_per_image_view": 100,
                  "n_views": views} for kind, views in (("cross_entropy", 1), ("supcon", 2))},
    }  # fmt: skip
    f = bench.profile_figures(raw)
    assert f["supcon"]["convolutions"] == pytest.approx(200.0)
    assert f["supcon"]["ops_ms"] == pytest.approx(250.0)
    assert f["supcon"]["step_ms"] == pytest.approx(300.0)
    # 6 FLOPs per MAC x 100 MACs x 2 views x 4 images in 0.2 s, against 1e9 FLOP/s
    assert f["supcon"]["conv_flops_over_matmul"] == pytest.approx(4800 / 0.2 / 1e9)
