"""TensorBoard logs: one scalar per epoch and tag across a resumption, and the projector's files."""

import numpy as np
import pytest
from test_training import TINY, _Crash

from supcon_utils import data, tensorboard_logs, training


@pytest.mark.slow  # two short trainings
def test_a_resumed_run_logs_every_epoch_once(tmp_path):
    cfg = training.config("quick", **TINY)
    logs = tmp_path / "logs"
    # The crash comes after the backup and before the log's callback: the worst moment.
    with pytest.raises(KeyboardInterrupt):
        training.run("cross_entropy", cfg, tmp_path / "run", callbacks=[_Crash(epoch=1)],
                     verbose=0, log_dir=logs)  # fmt: skip
    assert tensorboard_logs.logged_steps(logs / "cross_entropy")["loss"] == [0]
    results = training.run("cross_entropy", cfg, tmp_path / "run", verbose=0, log_dir=logs)
    assert results["resumed_after_epochs"] == 2

    steps = tensorboard_logs.logged_steps(logs / "cross_entropy")
    assert {"loss", "val_accuracy", "elapsed_s"} <= set(steps)
    assert all(written == [0, 1, 2] for written in steps.values()), steps
    scalars = tensorboard_logs.logged_scalars(logs / "cross_entropy")
    rows = training.history(tmp_path / "run" / "cross_entropy")
    for tag in ("loss", "val_accuracy"):
        np.testing.assert_allclose([scalars[tag][e] for e in range(3)], [r[tag] for r in rows],
                                   rtol=1e-6)  # fmt: skip

    # The finished encoder's test embeddings, for the projector, beside the scalars.
    folder = logs / "cross_entropy"
    (x_test, y_test) = training.load_data(cfg).test
    vectors = np.loadtxt(folder / "tensors.tsv", delimiter="\t", ndmin=2)
    dim = results["models"]["encoder"].output_shape[-1]
    assert vectors.shape == (len(x_test), dim)
    meta = (folder / "metadata.tsv").read_text().splitlines()
    names = data.DATASETS["digits"].class_names
    assert meta[0] == "label\tclass" and meta[1:] == [f"{y}\t{names[y]}" for y in y_test]
    config = (folder / tensorboard_logs.PROJECTOR_CONFIG).read_text()
    assert 'tensor_path: "tensors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config


@pytest.mark.slow
def test_a_run_from_epoch_zero_replaces_an_earlier_runs_log(tmp_path):
    cfg = training.config("quick", **{**TINY, "epochs": 1})
    logs = tmp_path / "logs"
    training.run("cross_entropy", cfg, tmp_path / "first", verbose=0, log_dir=logs)
    training.run("cross_entropy", cfg, tmp_path / "second", verbose=0, log_dir=logs)
    assert tensorboard_logs.logged_steps(logs / "cross_entropy")["loss"] == [0]


def test_export_embeddings_needs_one_row_per_label(tmp_path):
    with pytest.raises(ValueError, match="one row per label"):
        tensorboard_logs.export_embeddings(tmp_path, np.zeros((3, 2)), np.zeros(4), ["a"])
