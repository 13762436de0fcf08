"""TensorFlow's native log lines are dropped, and nothing else is."""

import os
import subprocess
import sys

import nbformat
import pytest

from supcon_utils import tf_noise

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795980844.637578    4725 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1795980847.190689    4725 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "W1129 19:40:01.123456   12 local_rendezvous.cc:404] Local rendezvous is aborting",
]
KEPT = [
    "Epoch 1/6",
    "E: a line that merely starts with E",
    "WARNING: some other warning",
    "UserWarning: E0000 inside a sentence is not a log line",
    "",
]


@pytest.mark.parametrize("line", NOISE)
def test_pattern_matches_tensorflow_log_lines(line):
    assert tf_noise.TF_LOG_LINE.match(line)


@pytest.mark.parametrize("line", KEPT)
def test_pattern_leaves_other_lines_alone(line):
    assert not tf_noise.TF_LOG_LINE.match(line)


def test_without_tf_log_lines_keeps_the_rest_in_order():
    text = "\n".join([NOISE[0], KEPT[0], NOISE[2], KEPT[2]]) + "\n"
    assert tf_noise.without_tf_log_lines(text) == f"{KEPT[0]}\n{KEPT[2]}\n"


def test_quiet_native_stderr_drops_log_lines_and_passes_the_rest_even_on_error(capfd):
    with pytest.raises(RuntimeError), tf_noise.quiet_native_stderr():
        os.write(2, ("\n".join([NOISE[1], "real problem", NOISE[2]]) + "\n").encode())
        raise RuntimeError
    err = capfd.readouterr().err
    assert "real problem" in err
    assert not any(tf_noise.TF_LOG_LINE.match(line) for line in err.splitlines())


def test_strip_notebook_drops_log_lines_and_empty_stderr_outputs():
    cell = nbformat.v4.new_code_cell("import supcon_utils")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="\n".join(NOISE) + "\n"),
        nbformat.v4.new_output("stream", name="stdout", text=NOISE[1] + "\n"),
        nbformat.v4.new_output("stream", name="stderr", text=f"{NOISE[2]}\nkeep me\n"),
    ]
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell(NOISE[1])])
    assert tf_noise.strip_notebook(nb) == len(NOISE) + 1
    assert [(o.name, o.text) for o in cell.outputs] == [
        ("stdout", NOISE[1] + "\n"),  # only stderr is filtered
        ("stderr", "keep me\n"),
    ]


def test_strip_notebook_drops_progress_bars_and_keeps_other_stderr():
    bars = ["\rsweep:   0%|          | 0/4 [00:00<?, ?run/s]",
            "\rsweep:  50%|█████     | 2/4 [00:56<01:06, 33.32s/run]",
            "\rsweep: 100%|██████████| 4/4 [02:05<00:00, 31.25s/run]", "\n"]  # fmt: skip
    cell = nbformat.v4.new_code_cell("sweep.config_sweep(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=b) for b in bars]
    cell.outputs.append(nbformat.v4.new_output(
        "stream", name="stderr", text="epoch 3: 10%|done| of the data\nUserWarning: kept\n"
    ))  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert tf_noise.strip_notebook(nb) == 3
    assert [o.text for o in cell.outputs] == ["epoch 3: 10%|done| of the data\nUserWarning: kept\n"]
    both = "\rfit:  5%|▌ | 1/20 [00:01<00:19, 1.0it/s]\rfit: 10%|█ | 2/20 [00:02<00:18, 1.0it/s]"
    assert tf_noise.without_progress_bars(both + "\nnext line\n") == "\nnext line\n"


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def test_setup_tensorflow_then_tensorflow_prints_no_log_line():
    code = (
        "import supcon_utils; supcon_utils.setup_tensorflow(); import tensorflow as tf; "
        "print(float(tf.constant(1.0) + 1))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = _python(code, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2.0\n"
    noisy = [ln for ln in done.stderr.splitlines() if tf_noise.TF_LOG_LINE.match(ln)]
    assert not noisy, noisy


def test_importing_the_package_changes_nothing_and_the_clis_load_no_tensorflow():
    code = (
        "import os, sys; before = dict(os.environ); "
        "import supcon_utils, supcon_utils.runner, supcon_utils.sweep, supcon_utils.records; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, dict(os.environ) == before)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    done = _python(code, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "False False True\n"


def test_setup_sets_what_the_user_did_not_and_warns_when_tensorflow_came_first():
    keys = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTEROP_THREADS")
    report = f"import os; print([os.environ.get(k) for k in {keys}])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    done = _python(f"import supcon_utils; supcon_utils.setup_tensorflow(); {report}", env)
    assert done.stdout.splitlines()[-1] == "['1', '1']", done.stderr
    setup = "import supcon_utils; supcon_utils.setup_tensorflow"
    done = _python(f"{setup}(repeatable=False); {report}", {**env, "TF_ENABLE_ONEDNN_OPTS": "0"})
    assert done.stdout.splitlines()[-1] == "['0', None]", done.stderr
    late = _python("import tensorflow, supcon_utils; supcon_utils.setup_tensorflow()", env)
    assert late.returncode == 0
    assert (
        "TensorFlow was loaded before setup_tensorflow(), so TF_ENABLE_ONEDNN_OPTS" in late.stderr
    )
    twice = _python("import supcon_utils; supcon_utils.setup_tensorflow(); "
                    "supcon_utils.setup_tensorflow()", env)  # fmt: skip
    assert "was loaded before" not in twice.stderr
