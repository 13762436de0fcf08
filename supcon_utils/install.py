"""Installing into a live kernel that already holds most of what the notebooks need (Colab).

Each notebook's first code cell, on Colab only, installs this package *without* its dependencies
and then calls :func:`colab`. A plain ``pip install git+<repo>`` would bring every dependency's
range into the running kernel: it may move Colab's own TensorFlow, Keras or ipykernel, and the
kernel keeps the modules it had already imported. Here pip installs only the requirements that
are missing or out of range, TensorFlow's and Keras's versions are checked afterwards, and when a
module the kernel had already imported was replaced, :class:`RestartNeeded` stops the run with
what to do.

Nothing here imports TensorFlow: the point is to decide before it loads.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

DISTRIBUTION = "supcon-utils"
CHECKED = ("tensorflow", "keras")  # their versions are checked after installing
DRIVE = "/content/drive"  # where Colab mounts Google Drive


class RestartNeeded(RuntimeError):
    """A module the kernel had already imported was replaced on disk: restart, then rerun."""


@dataclass(frozen=True)
class Need:
    """A requirement the environment does not satisfy, and the version it has (None: missing)."""

    requirement: Requirement
    have: str | None

    def __str__(self) -> str:
        return f"{self.requirement} (have {self.have or 'none'})"


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def requirements(distribution: str = DISTRIBUTION) -> list[Requirement]:
    """The runtime requirements of the installed ``distribution`` (no extras), markers applied."""
    found = [Requirement(r) for r in metadata.requires(distribution) or []]
    return [r for r in found if r.marker is None or r.marker.evaluate({"extra": ""})]


def needed(
    reqs: Iterable[Requirement], version_of: Callable[[str], str | None] = installed_version
) -> list[Need]:
    """The requirements in ``reqs`` that ``version_of`` says are missing or out of range."""
    needs = []
    for req in reqs:
        have = version_of(req.name)
        if have is None or not req.specifier.contains(have, prereleases=True):
            needs.append(Need(req, have))
    return needs


def pip_install(specs: list[str]) -> None:
    """``pip install specs`` into this interpreter; pip's last lines in the error if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", *specs], capture_output=True, text=True
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise RuntimeError(f"pip install {' '.join(specs)} failed:\n{tail}")
    importlib.invalidate_caches()


def versions() -> dict[str, str]:
    """Every installed distribution's version, by normalised name: of a name installed twice, the
    one found first on ``sys.path``, which ``import`` loads."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        found.setdefault(_norm(dist.metadata["Name"]), dist.version)
    return found


def replaced_and_imported(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The distributions whose version changed between ``before`` and ``after`` and that own a
    module this kernel has already imported (it keeps running the old code)."""
    changed = {name for name, v in after.items() if before.get(name, v) != v}
    owners = metadata.packages_distributions()
    loaded = {m.partition(".")[0] for m in sys.modules}
    return sorted({_norm(d) for m in loaded for d in owners.get(m, [])} & changed)


def install_missing(
    distribution: str = DISTRIBUTION, install: Callable[[list[str]], None] = pip_install
) -> list[Need]:
    """Install the requirements of ``distribution`` that are missing or out of range, check
    TensorFlow's and Keras's versions, and return what was installed.

    Raises :class:`RestartNeeded` when pip replaced a package whose modules this kernel imported.
    """
    reqs = requirements(distribution)
    needs = needed(reqs)
    before = versions()
    if needs:
        print("installing what this environment lacks:", ", ".join(map(str, needs)))
        install([str(n.requirement) for n in needs])
    still = needed(r for r in reqs if r.name in CHECKED)
    if still:
        raise RuntimeError(f"after installing, still out of range: {', '.join(map(str, still))}")
    have = ", ".join(f"{name} {installed_version(name)}" for name in CHECKED)
    stale = replaced_and_imported(before, versions())
    if stale:
        raise RestartNeeded(
            f"Installed new versions of {', '.join(stale)}, which this kernel had already "
            "imported. Restart the runtime (Runtime > Restart session), then run the notebook "
            f"again from the top; this cell will then find everything in place ({have})."
        )
    print(f"ready: {distribution} {installed_version(distribution)}, {have}")
    return needs


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def colab(run_dir: str, install: Callable[[list[str]], None] = pip_install) -> list[Need]:
    """What a notebook's install cell does on Colab after installing this package: install the
    missing requirements (:func:`install_missing`), and mount Google Drive when ``run_dir`` is on
    it, so that runs outlive the runtime and a rerun resumes them."""
    needs = install_missing(install=install)
    if Path(run_dir).is_relative_to(DRIVE) and not Path(DRIVE, "MyDrive").is_dir():
        from google.colab import drive  # only on Colab

        drive.mount(DRIVE)
    return needs
