"""`scripts/check_notebooks.py` (run by `make check`) passes a good pair and names each bad one."""

import importlib.util
from pathlib import Path

import jupytext
import nbformat
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_notebooks.py"
_spec = importlib.util.spec_from_file_location("check_notebooks", SCRIPT)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

SOURCE = """\
# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A title

# %%
x = 1

# %%
print(x)
"""


def _pair(directory: Path, name: str = "01_demo") -> tuple[Path, Path]:
    """A good pair: the .py, and its .ipynb with every code cell executed in order."""
    source = directory / f"{name}.py"
    source.write_text(SOURCE)
    nb = jupytext.read(source)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code, start=1):
        cell.execution_count = i
    code[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    executed = directory / f"{name}.ipynb"
    nbformat.write(nb, executed)
    return source, executed


def _edit(path: Path, change) -> None:
    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)


def test_a_good_pair_passes(tmp_path):
    _pair(tmp_path)
    assert check.problems(tmp_path) == []
    assert check.main([str(tmp_path)]) == 0


def _no_ipynb(source, executed):
    executed.unlink()


def _no_py(source, executed):
    source.unlink()


def _source_edited(source, executed):
    source.write_text(SOURCE.replace("x = 1", "x = 2"))


def _cell_added(source, executed):
    source.write_text(SOURCE + "\n# %%\nx\n")


def _unexecuted(source, executed):
    _edit(executed, lambda nb: nb.cells[1].update(execution_count=None))


def _out_of_order(source, executed):
    _edit(executed, lambda nb: nb.cells[1].update(execution_count=3))


def _no_kernelspec(source, executed):
    _edit(executed, lambda nb: nb.metadata.pop("kernelspec"))


def _tf_log_line(source, executed):
    line = "E0000 00:00:1795980847.190689    4725 cuda_platform.cc:52] failed call to cuInit\n"
    _edit(executed, lambda nb: nb.cells[2].outputs.append(
        nbformat.v4.new_output("stream", name="stderr", text=line)))  # fmt: skip


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_no_ipynb, "has no 01_demo.ipynb"),
        (_no_py, "has no 01_demo.py"),
        (_source_edited, "cells differ from 01_demo.py (cell 1)"),
        (_cell_added, "cells differ from 01_demo.py (3 cells, not 4)"),
        (_unexecuted, "not executed"),
        (_out_of_order, "not executed once, in order"),
        (_no_kernelspec, "no kernelspec"),
        (_tf_log_line, "cell 2 shows TensorFlow log lines"),
    ],
)
def test_each_broken_pair_is_named(tmp_path, capsys, breakage, message):
    _pair(tmp_path, "02_other")  # a good neighbour is not reported
    breakage(*_pair(tmp_path))
    found = check.problems(tmp_path)
    assert len(found) == 1 and message in found[0], found
    assert check.main([str(tmp_path)]) == 1
    assert message in capsys.readouterr().err
