"""nbval settings for the notebooks: keep TensorFlow's C++ log noise out of output comparison.

TensorFlow writes absl/C++ log lines (CUDA probing, oneDNN notices) straight to the process's
stderr even at TF_CPP_MIN_LOG_LEVEL=3, and whether they appear depends on the machine. nbval
compares stderr like any output, so those lines, and only those, are dropped from both the stored
and the fresh outputs before comparison. Any other stderr text is still compared.
"""

import re

import nbformat
import nbval.plugin

_TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:. ]+\s*\d+ \S+:\d+\]"  # absl: I0000 00:00:17.95 2164 port.cc:153] ...
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|\s*$)"
)


def _without_tf_noise(outputs):
    kept = []
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            lines = [ln for ln in out["text"].splitlines() if not _TF_LOG_LINE.match(ln)]
            if not lines:
                continue
            out = nbformat.from_dict({**out, "text": "\n".join(lines) + "\n"})
        kept.append(out)
    return kept


_compare = nbval.plugin.IPyNbCell.compare_outputs


def _compare_without_tf_noise(self, test, ref, skip_compare=None):
    return _compare(self, _without_tf_noise(test), _without_tf_noise(ref), skip_compare)


nbval.plugin.IPyNbCell.compare_outputs = _compare_without_tf_noise
