"""The Colab install cell: every notebook carries the same one, it installs only what is missing,
and it says when the runtime must restart. The end-to-end test runs the cell offline in a fresh
environment that sees this one's packages, as a Colab runtime sees its own."""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from supcon_utils import install

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _install_cell(source: Path) -> str:
    cells = source.read_text().split("\n# %%")
    found = [c for c in cells if "\n# Colab only:" in c]
    assert len(found) == 1, f"{source.name}: {len(found)} Colab install cells"
    return found[0].partition("\n")[2]


def test_every_notebook_has_the_same_install_cell():
    cells = {source.name: _install_cell(source) for source in NOTEBOOKS}
    assert len(cells) == 8 and len(set(cells.values())) == 1, sorted(cells)
    assert "install.colab(run_dir)" in cells[NOTEBOOKS[0].name]


def test_needed_lists_missing_and_out_of_range_requirements_only():
    have = {"tensorflow": "2.19.0", "keras": "3.8.0", "numpy": "2.0.2"}
    reqs = [Requirement(r) for r in ("tensorflow>=2.16,<2.22", "keras>=3.12,<4", "numpy>=1.26",
                                     "tqdm>=4.66")]  # fmt: skip
    needs = install.needed(reqs, have.get)
    assert [(n.requirement.name, n.have) for n in needs] == [("keras", "3.8.0"), ("tqdm", None)]
    assert str(needs[0]) == "keras<4,>=3.12 (have 3.8.0)" and str(needs[1]).endswith("(have none)")


def test_the_package_requirements_are_its_declared_dependencies():
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    got = {str(r) for r in install.requirements()}
    assert got == {str(Requirement(r)) for r in declared}, "reinstall: pip install -e '.[dev]'"


def test_a_replaced_package_this_kernel_imported_needs_a_restart():
    before = {"numpy": "1.26.4", "tqdm": "4.66.0", "not-imported-dist": "1.0"}
    after = {"numpy": "2.4.6", "tqdm": "4.66.0", "not-imported-dist": "2.0", "new-dist": "1.0"}
    assert install.replaced_and_imported(before, after) == ["numpy"]


def test_install_missing_installs_what_is_lacking_then_asks_for_a_restart(monkeypatch):
    monkeypatch.setattr(install, "requirements", lambda d: [Requirement("numpy>=99")])
    installed = []
    real = install.versions()

    def pip(specs):  # pretend pip replaced numpy (imported here) with an in-range version
        installed.append(specs)
        monkeypatch.setattr(install, "versions", lambda: {**real, "numpy": "99.0"})
        monkeypatch.setattr(install, "installed_version", lambda n: "99.0")

    with pytest.raises(install.RestartNeeded, match="numpy.*Restart the runtime"):
        install.install_missing(install=pip)
    assert installed == [["numpy>=99"]]


def test_install_missing_fails_when_tensorflow_stays_out_of_range(monkeypatch):
    monkeypatch.setattr(install, "requirements", lambda d: [Requirement("tensorflow>=99")])
    with pytest.raises(RuntimeError, match="still out of range: tensorflow>=99"):
        install.install_missing(install=lambda specs: None)


def test_a_run_dir_on_drive_mounts_drive(monkeypatch, tmp_path):
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(install, "DRIVE", str(tmp_path / "drive"))
    monkeypatch.setattr(install, "install_missing", lambda install: [])
    install.colab("runs/default")
    assert mounted == []
    install.colab(str(tmp_path / "drive" / "MyDrive" / "supcon"))
    assert mounted == [str(tmp_path / "drive")]


RUN_CELL = """
import json, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")  # what the cell looks for
run_dir = "runs/default"
exec(compile(open(sys.argv[1]).read(), "install cell", "exec"))
import supcon_utils
print(json.dumps({"supcon_utils": supcon_utils.__file__}))
"""


def test_the_install_cell_offline_in_a_fresh_environment(tmp_path):
    """A venv that sees this environment's packages (as Colab's runtime has its own) runs the
    cell with google.colab stubbed and the repository pointed at a copy of this checkout: the
    package installs into the venv, nothing else is installed, TensorFlow and Keras stay put."""
    venv = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip())  # fmt: skip
    (site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "supcon_utils", repo / "supcon_utils",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, repo / name)
    cell = tmp_path / "cell.py"
    cell.write_text(_install_cell(NOTEBOOKS[0]))
    env = {**os.environ, "SUPCON_REPO": str(repo), "PIP_NO_INDEX": "1",
           "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
    env.pop("PYTHONPATH", None)
    done = subprocess.run([python, "-c", RUN_CELL, cell], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "installing what" not in done.stdout
    assert re.search(r"ready: supcon-utils 0\.1\.0, tensorflow \S+, keras \S+", done.stdout)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])["supcon_utils"]
    assert Path(loaded).is_relative_to(site), loaded
    ours = sorted(p.name.lower() for p in site.iterdir())
    assert not [n for n in ours if n.startswith(("tensorflow", "keras"))], ours


def test_versions_take_the_copy_import_would_load(tmp_path, monkeypatch):
    """A package installed twice (the runtime's, and a newer one in front of it): the first on
    sys.path is the one ``import`` loads, and the one a restart check must compare."""
    for folder, version in (("front", "2.0"), ("behind", "1.0")):
        info = tmp_path / folder / f"twice_installed-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: twice-installed\n"
                                       f"Version: {version}\n")  # fmt: skip
    monkeypatch.setattr(sys, "path", [str(tmp_path / "front"), str(tmp_path / "behind")])
    assert install.versions()["twice-installed"] == "2.0"
