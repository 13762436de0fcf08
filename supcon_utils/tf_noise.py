"""TensorFlow's native log lines: one pattern, kept out of notebooks and the main job's output
(and progress bars, kept out of committed notebooks).

TensorFlow's C++ side writes absl log lines straight to file descriptor 2 when it loads and when it
probes for GPUs, whatever ``TF_CPP_MIN_LOG_LEVEL`` says; one of them reads ``E0000 ... failed call
to cuInit: ... UNKNOWN ERROR (303)``, which a newcomer takes for an error. It only means that this
machine has no GPU. This module holds the pattern of those lines (:data:`TF_LOG_LINE`), a context
manager that drops them while TensorFlow loads (any other text written to the descriptor is passed
on), and the filter that strips them from executed notebooks. It imports nothing heavy: it must run
before TensorFlow loads.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

# An absl line (I0000 00:00:1795980844.637578    4725 port.cc:153] ...), and absl's notice that
# it has not been initialised yet. Nothing else: other stderr text stays visible and compared.
TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w.-]+:\d+\] .*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)$"
)


# A tqdm progress bar's state ("sweep:  25%|██▌       | 3/12 [02:46<08:13, 54.82s/run]"): on a
# live screen it redraws itself; in a committed notebook it is a stack of stale copies.
PROGRESS_BAR = re.compile(r"^[^|\n]*\d+%\|[^|]*\|\s*[\d.]+[kMG]?/[\d.?]+[kMG]?\s*\[[^\]]*\]\s*$")


def without_progress_bars(text: str) -> str:
    """``text`` without the progress bar states that match :data:`PROGRESS_BAR` (each ended by a
    carriage return or a newline)."""
    return "\n".join("\r".join(_kept_parts(line)) for line in text.split("\n"))


def _kept_parts(line: str) -> list[str]:
    return [part for part in line.split("\r") if not PROGRESS_BAR.match(part)]


def without_tf_log_lines(text: str) -> str:
    """``text`` without the lines that match :data:`TF_LOG_LINE`."""
    lines = text.splitlines(keepends=True)
    return "".join(ln for ln in lines if not TF_LOG_LINE.match(ln.rstrip("\r\n")))


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Drop TensorFlow's log lines written to file descriptor 2 inside the block; keep the rest.

    The descriptor goes to a temporary file for the duration; on exit every line that is not a
    TensorFlow log line is written back to ``sys.stderr`` (where a notebook shows it), also when the
    block raises, so a real error message is never lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = without_tf_log_lines(captured.read().decode(errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def strip_notebook(nb: Any) -> int:
    """Remove TensorFlow log lines and progress bars from the stderr outputs of an ``nbformat``
    notebook, in place.

    A stderr output left empty (or only whitespace) is dropped. Returns the number of lines and
    progress bar states removed.
    """
    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out["text"]
                clean = without_tf_log_lines(text)
                removed += len(text.splitlines()) - len(clean.splitlines())
                removed += sum(line.count("\r") + 1 - len(_kept_parts(line))
                               for line in clean.split("\n"))  # fmt: skip
                clean = without_progress_bars(clean)
                if not clean.strip():
                    continue
                out["text"] = clean
            kept.append(out)
        cell.outputs = kept
    return removed
