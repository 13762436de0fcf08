"""benchmarks/bench.py: the figures computed from a worker's raw times, and the printed table."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench", Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"
)
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench"] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)


def _raw() -> dict:
    # Warm-up step first (ignored), then the timed steps; batch of 4 images.
    return {
        "settings": {"warmup": 1, "batch_size": 4},
        "matmul": {"size": 10, "times_s": [1e-6, 2e-6, 3e-6]},  # 2 * 10**3 FLOPs in 2 us: 1 GFLOP/s
        "cross_entropy": {
            "macs_per_image_view": 100,
            "n_views": 1,
            "premade_times_s": [9.0, 1.0, 1.0, 1.0],
            "pipeline_times_s": [9.0, 2.0, 2.0, 2.0],
        },
        "supcon": {
            "macs_per_image_view": 100,
            "n_views": 2,
            "premade_times_s": [9.0, 3.0, 2.0, 1.0],
            "pipeline_times_s": [9.0, 2.0, 2.0, 2.0],
            "loss_grad_times_s": [0.1, 0.2, 0.3],
        },
    }


def test_step_figures_are_ratios_of_medians_after_warmup():
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


def test_the_table_marks_each_target(capsys):
    figures = bench.step_figures(_raw())
    bench.print_table([{"onednn": 1, "xla": 0, "figures": figures}], None)
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["SupCon / CE step time"].endswith("2.00 ok")
    assert lines["CE: pipeline / pre-made throughput"].endswith("0.500 NO")
    assert lines["SupCon: loss fwd+bwd / whole step"].endswith("0.100 NO")


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--loss-batch", "5"])
