"""Two worker processes over localhost (``python -m supcon_utils.distributed --workers 2``): the
one-process weights, and a worker killed mid-run."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from test_training import _batch_norms

from supcon_utils import distributed, runs, training

# SGD: Adam divides each gradient by its running size, so a float32 difference in a near-zero
# gradient can turn into a step of the full learning rate (as in test_training's two replicas).
SMALL = dict(dataset="digits", n_val=200, n_train=256, batch_size=64, probe_epochs=2,
             jit_compile=False, optimizer="sgd", learning_rate=0.05)  # fmt: skip


def _command(kind: str, run_dir, settings: dict) -> list[str]:
    parameters = [arg for k, v in settings.items() for arg in ("-p", f"{k}={json.dumps(v)}")]
    return [sys.executable, "-m", "supcon_utils.distributed", kind, str(run_dir), "--workers",
            "2", "--timeout", "300", *parameters]  # fmt: skip


def _weights(models: dict) -> dict[str, list[np.ndarray]]:
    return {name: model.get_weights() for name, model in models.items()}


@pytest.mark.slow  # a one-process run and two worker processes
@pytest.mark.parametrize("kind", ["supcon", "cross_entropy"])
def test_two_workers_train_the_one_process_weights(tmp_path, kind):
    """SupCon contrasts the global batch across the two processes and batch norm is synchronised
    across them, so one epoch (4 steps) on two workers is the one-process epoch to float32
    round-off (the same tolerance as two replicas in one process, test_training)."""
    settings = {**SMALL, "epochs": 1}
    done = subprocess.run(_command(kind, tmp_path / "two", settings), capture_output=True,
                          text=True, timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout.strip().splitlines()[-1])  # the chief's results
    two = training.load_run(tmp_path / "two", kind)
    assert printed["metrics"] == two["metrics"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [kind], "workertemp_1 removed"
    one = training.run(kind, training.config("quick", **settings), tmp_path / "one", verbose=0)
    assert not any(bn.synchronized for bn in _batch_norms(one["models"]["encoder"]))
    assert all(bn.synchronized for bn in _batch_norms(two["models"]["encoder"]))
    rows = [training.history(tmp_path / run / kind) for run in ("one", "two")]
    np.testing.assert_allclose([r["loss"] for r in rows[1]], [r["loss"] for r in rows[0]],
                               rtol=1e-4)  # fmt: skip
    ones, twos = _weights(one["models"]), _weights(two["models"])
    for name in ones:
        for i, (a, b) in enumerate(zip(ones[name], twos[name], strict=True)):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"{name} weight {i}")
    assert two["metrics"]["test_accuracy"] == pytest.approx(one["metrics"]["test_accuracy"])


@pytest.mark.slow  # two worker processes, SupCon then fine-tuning
def test_two_workers_fine_tune_the_supcon_run_they_train_first(tmp_path):
    settings = {**SMALL, "epochs": 1, "finetune_epochs": 1}
    done = subprocess.run(_command("finetune", tmp_path, settings), capture_output=True,
                          text=True, timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finetune", "supcon"]
    tuned = training.load_run(tmp_path, "finetune")
    supcon = training.load_run(tmp_path, "supcon")
    assert tuned["metrics"]["pretrained_test_accuracy"] == supcon["metrics"]["test_accuracy"]


def _kill_the_chief_mid_run(command: list[str], out) -> None:
    """Start the workers, SIGKILL the chief once its backup holds a finished epoch (the launcher
    then kills the other worker), and check the run was cut short."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as launcher:
        chief = int(launcher.stdout.readline().split("pid")[1])  # "worker 0: pid N"
        deadline = time.monotonic() + 300
        while not (out / "backup" / runs.METADATA).exists():
            assert launcher.poll() is None and time.monotonic() < deadline, "no epoch finished"
            time.sleep(0.01)
        os.kill(chief, 9)
        launcher.communicate(timeout=60)
        assert launcher.returncode == 128 + 9, "the killed worker's status, as a shell gives it"
    assert not (out / "results.json").exists(), "killed before the end"


@pytest.mark.slow  # three launches of two worker processes
def test_a_worker_killed_mid_run_resumes_on_the_uninterrupted_weights(tmp_path):
    settings = {**SMALL, "epochs": 6}
    _kill_the_chief_mid_run(_command("supcon", tmp_path / "killed", settings),
                            tmp_path / "killed" / "supcon")  # fmt: skip
    for run in ("killed", "whole"):  # the killed run again, then an uninterrupted one
        done = subprocess.run(_command("supcon", tmp_path / run, settings),
                              capture_output=True, text=True, timeout=400)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["supcon"], "workertemp_1"
    resumed, whole = (training.load_run(tmp_path / run, "supcon") for run in ("killed", "whole"))
    assert 1 <= resumed["resumed_after_epochs"] < settings["epochs"]
    assert whole["resumed_after_epochs"] == 0
    resumed_w, whole_w = _weights(resumed["models"]), _weights(whole["models"])
    for name in whole_w:
        for i, (a, b) in enumerate(zip(whole_w[name], resumed_w[name], strict=True)):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7, err_msg=f"{name} weight {i}")
    assert resumed["metrics"] == pytest.approx(whole["metrics"])


def test_stopping_the_launcher_stops_its_workers(tmp_path):
    command = _command("supcon", tmp_path, {**SMALL, "epochs": 50})
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as launcher:
        pids = [int(launcher.stdout.readline().split("pid")[1]) for _ in range(2)]
        launcher.terminate()
        assert launcher.wait(timeout=60) == 128 + 15
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # killed and reaped by the launcher
            os.kill(pid, 0)


def test_the_launcher_refuses_bad_settings(capsys):
    with pytest.raises(SystemExit):
        distributed.main(["supcon", "runs/x", "--workers", "0"])
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "supcon_utils.distributed", "supcon", "runs/x"],
                          env=env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "TF_CONFIG is not set" in done.stderr
    assert "--workers N" in done.stderr


def test_one_process_is_its_own_chief_and_local_clusters_name_every_worker():
    assert not distributed.is_multi_worker(None) and distributed.is_chief(None)
    configs = distributed.local_cluster(3)
    ports = configs[0]["cluster"]["worker"]
    assert len(set(ports)) == 3 and all(p.startswith("127.0.0.1:") for p in ports)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)
