"""Run folders that lose nothing: kills, a second process, deleted or damaged files, bad settings.

Each test is one way a user broke a run (issue 27): it must end in the right answer or in an
error naming the problem, with nothing that was trained lost.
"""

import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from supcon_utils import records, runs, training

TINY = dict(dataset="digits", n_val=200, n_train=256, batch_size=64, epochs=3, probe_epochs=2)


def _cfg(**changes) -> training.Config:
    return training.config("quick", **{**TINY, **changes})


def _snapshot(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# A process that trains TINY supcon and SIGKILLs itself at `where`: "probe" (training done, the
# linear probe starting) or "save" (the first model being saved); "none" trains to the end.
_KILL_ITSELF = r"""
import json, os, signal, sys
import supcon_utils
supcon_utils.setup_tensorflow()
from supcon_utils import runs, training

run_dir, where, tiny = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
die = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if where == "probe":
    training.linear_probe = die
elif where == "save":
    runs.save_model = die
result = training.run("supcon", training.config("quick", **tiny), run_dir, verbose=0)
print(json.dumps({"metrics": result["metrics"], "epochs": result["epochs_completed"]}))
"""


def _process(run_dir, where: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-c", _KILL_ITSELF, str(run_dir), where, json.dumps(TINY)]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # four short training processes
@pytest.mark.parametrize("where", ["probe", "save"])
def test_a_kill_after_training_resumes_with_nothing_to_train(tmp_path, where, epoch_starts):
    killed = _process(tmp_path / "killed", where)
    assert killed.returncode == -9
    out = tmp_path / "killed" / "supcon"
    assert len(training.history(out)) == 3 and (out / "backup").exists()
    epochs = epoch_starts
    resumed = training.run("supcon", _cfg(), tmp_path / "killed", callbacks=[epochs], verbose=0)
    assert epochs.started == []  # no epoch trained again
    assert resumed["resumed_after_epochs"] == 3 and resumed["epochs_completed"] == 3
    assert not (out / "backup").exists()
    whole = json.loads(_process(tmp_path / "whole", "none").stdout.splitlines()[-1])
    assert resumed["metrics"] == whole["metrics"]


_HOLD_LOCK = r"""
import sys, time
from pathlib import Path
from supcon_utils import runs

with runs.locked(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_second_process_is_refused_and_a_killed_holder_frees_the_folder(tmp_path):
    out = tmp_path / "supcon"
    with subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(out)], stdout=subprocess.PIPE,
                          text=True) as holder:  # fmt: skip
        assert holder.stdout.readline().strip() == "holding"
        before = _snapshot(tmp_path)
        with pytest.raises(runs.RunFolderError, match=rf"is in use by process {holder.pid} on "):
            training.run("supcon", _cfg(), tmp_path, verbose=0)
        assert _snapshot(tmp_path) == before  # nothing of the holder's touched
        holder.kill()
        holder.wait()
    with runs.locked(out):  # the kernel released the dead holder's lock
        pass


def test_locks_are_per_folder_and_released(tmp_path):
    with runs.locked(tmp_path / "a"), runs.locked(tmp_path / "b"):
        with pytest.raises(runs.RunFolderError, match="in use by process"):
            with runs.locked(tmp_path / "a"):
                pass
    with runs.locked(tmp_path / "a"):
        pass


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished TINY cross-entropy run, copied fresh for each test that damages it."""
    run_dir = tmp_path_factory.mktemp("finished")
    training.run("cross_entropy", _cfg(), run_dir, verbose=0)
    return run_dir


def _copy(finished, tmp_path):
    import shutil

    shutil.copytree(finished, tmp_path / "run")
    return tmp_path / "run", tmp_path / "run" / "cross_entropy"


def test_deleted_results_with_models_kept_is_an_error_not_a_retraining(finished, tmp_path):
    run_dir, out = _copy(finished, tmp_path)
    (out / "results.json").unlink()
    before = _snapshot(out)
    with pytest.raises(runs.RunFolderError, match=r"holds trained models \(classifier.keras, "
                       r"encoder.keras\) but no results.json; they are kept"):  # fmt: skip
        training.run("cross_entropy", _cfg(), run_dir, verbose=0)
    assert _snapshot(out) == before


def test_deleted_config_still_refuses_another_configuration(finished, tmp_path, epoch_starts):
    run_dir, out = _copy(finished, tmp_path)
    (out / "config.json").unlink()
    with pytest.raises(ValueError, match=r"another configuration \(epochs: 3 there, 1 asked; "
                       r"learning_rate: 0.005 there, 0.05 asked\)"):  # fmt: skip
        training.run("cross_entropy", _cfg(epochs=1, learning_rate=0.05), run_dir, verbose=0)
    epochs = epoch_starts
    again = training.run("cross_entropy", _cfg(), run_dir, callbacks=[epochs], verbose=0)
    assert epochs.started == [] and again["config"]["epochs"] == 3


@pytest.mark.parametrize("name", ["results.json", "encoder.keras"])
def test_a_truncated_file_is_an_error_naming_it(finished, tmp_path, name):
    run_dir, out = _copy(finished, tmp_path)
    path = out / name
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(runs.RunFolderError, match=rf"(?s){path} cannot be (read|loaded) .*delete"):
        training.run("cross_entropy", _cfg(), run_dir, verbose=0)


def test_a_failed_start_leaves_nothing_and_blocks_no_retry(tmp_path):
    with pytest.raises(ValueError, match="dataset='digitz'; allowed: 'fashion_mnist'"):
        training.run("supcon", _cfg(dataset="digitz"), tmp_path, verbose=0)
    with pytest.raises(ValueError, match="n_train=5000 is more than the 1,237 training images "
                       "of digits left after the n_val=200 validation images"):  # fmt: skip
        training.run("supcon", _cfg(n_train=5000), tmp_path, verbose=0)
    with pytest.raises(ValueError, match="batch_size=512 is more than the 256 training images"):
        training.run("supcon", _cfg(batch_size=512), tmp_path, verbose=0)
    assert list(tmp_path.iterdir()) == []
    # A run stopped before its first epoch leaves a config.json with nothing to protect.
    out = tmp_path / "cross_entropy"
    out.mkdir()
    records.write_json(out / "config.json", {**dataclasses.asdict(_cfg()), "epochs": 9})
    results = training.run("cross_entropy", _cfg(epochs=1), tmp_path, verbose=0)
    assert results["epochs_completed"] == 1


class _Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def _interrupted(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        training.run("cross_entropy", _cfg(), tmp_path, callbacks=[_Crash()], verbose=0)
    return tmp_path / "cross_entropy"


def test_half_a_history_row_and_a_row_the_backup_missed_are_trimmed(tmp_path, epoch_starts):
    out = _interrupted(tmp_path)
    with open(out / "history.csv", "a") as log:
        log.write("2,0.5,0.1,3.0,0.4\n3,0.4")  # a row of an epoch the backup never saved, half one
    epochs = epoch_starts
    results = training.run("cross_entropy", _cfg(), tmp_path, callbacks=[epochs], verbose=0)
    assert epochs.started == [2]
    assert [row["epoch"] for row in training.history(out)] == [0, 1, 2]
    assert results["epochs_completed"] == 3


def test_a_kill_while_the_backup_is_written_keeps_an_intact_epoch(tmp_path):
    out = _interrupted(tmp_path)
    backup = out / "backup"
    assert runs.restore_backup(backup) == 2
    # Killed after the new pair was written and the current one moved aside, before the renames.
    (backup / runs.WEIGHTS).rename(backup / f"{runs.WEIGHTS}.bkp")
    (backup / runs.METADATA).rename(backup / f"{runs.METADATA}.bkp")
    (backup / runs.NEW_WEIGHTS).write_bytes((backup / f"{runs.WEIGHTS}.bkp").read_bytes()[:100])
    assert runs.restore_backup(backup) == 2  # the half-written new weights are not taken
    assert sorted(p.name for p in backup.iterdir()) == [runs.WEIGHTS, runs.METADATA]
    # Truncated in place (not by a Backup): no intact epoch, an error naming the backup.
    (backup / runs.WEIGHTS).write_bytes(b"")
    with pytest.raises(runs.RunFolderError, match=rf"backup in {backup} is damaged.*delete"):
        training.run("cross_entropy", _cfg(), tmp_path, verbose=0)
    (out / "config.json").unlink()
    with pytest.raises(runs.RunFolderError, match="a training backup but no config.json"):
        training.run("cross_entropy", _cfg(), tmp_path, verbose=0)


def test_a_truncated_config_is_an_error_naming_it(tmp_path):
    out = _interrupted(tmp_path)
    (out / "config.json").write_text('{"dataset": "dig')
    with pytest.raises(runs.RunFolderError, match=rf"{out / 'config.json'} cannot be read"):
        training.run("cross_entropy", _cfg(), tmp_path, verbose=0)


def test_write_json_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    records.write_json(path, {"a": 1})
    records.write_json(path, {"a": np.float64(2.0).item()})
    assert json.loads(path.read_text()) == {"a": 2.0}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_write_results_is_what_the_runner_collects(tmp_path):
    from supcon_utils import runner

    path = records.write_results(tmp_path / "run" / "evaluation", {"metrics": {"accuracy": 0.5}})
    assert path == tmp_path / "run" / "evaluation" / "results.json"
    collected = runner.collect_results(tmp_path / "run")
    assert collected == {"evaluation": {"metrics": {"accuracy": 0.5}}}
    with pytest.raises(ValueError, match="results need a 'metrics' dict"):
        records.write_results(tmp_path, {"accuracy": 0.5})


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(learning_rate=-0.01), "learning_rate=-0.01; allowed: 0 or more"),
        (dict(learning_rate=float("inf")), "learning_rate=inf; allowed: a finite number"),
        (dict(weight_decay=-1e-4), "weight_decay=-0.0001; allowed: 0 or more"),
        (dict(n_train=0.5), r"n_train=0.5 \(float\); allowed: int or None"),
        (dict(epochs=0), "epochs=0; allowed: 1 or more"),
        (dict(probe_epochs=0), "probe_epochs=0; allowed: 1 or more"),
        (dict(batch_size=0), "batch_size=0; allowed: 1 or more"),
        (dict(epochs="3"), r"epochs='3' \(str\); allowed: int"),
        (dict(epochs=3.0), r"epochs=3.0 \(float\); allowed: int"),
        (dict(seed=True), r"seed=True \(bool\); allowed: int"),
        (dict(temperature=0.0), "temperature=0.0; allowed: more than 0"),
        (dict(optimizer="adam"), "optimizer='adam'; allowed: 'adamw', 'sgd'"),
        (dict(momentum=1.5), "momentum=1.5; allowed: 0 to 1"),
    ],
)
def test_settings_are_checked_naming_the_knob_and_what_is_allowed(changes, message):
    with pytest.raises((TypeError, ValueError), match=message):
        _cfg(**changes)


def test_integers_are_fine_floats():
    assert _cfg(learning_rate=1).learning_rate == 1
