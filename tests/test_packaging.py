"""Packaging: conda and pip install the same dependencies, pinned in constraints.txt; one
repository address everywhere; the license, citation and changelog agree with the metadata."""

import re
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from supcon_utils import install

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    return set(project["dependencies"]).union(*extras)


def _environment_pip_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {req for req in pip if not req.startswith("-e")}


def test_environment_yml_matches_pyproject():
    assert _environment_pip_requirements() == _pyproject_requirements()


def test_environment_yml_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip
    assert "python=3.11" in env["dependencies"]


def _repository() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def test_readme_and_every_notebook_point_at_the_one_repository():
    repo = _repository()
    slug = repo.removeprefix("https://github.com/")
    texts = {"README.md": (ROOT / "README.md").read_text()}
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        text = source.read_text()
        texts[source.name] = text
        badge = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{source.stem}"
        assert f"{badge}.ipynb" in text, f"{source.name}: no Colab badge for {repo}"
        assert f'"{repo}"' in text, f"{source.name}: the install cell does not use {repo}"
    assert repo in texts["README.md"]
    for name, text in texts.items():
        for url in re.findall(r"github\.com/[\w.-]+/[\w.-]+", text):
            assert url == f"github.com/{slug}", f"{name} names another repository: {url}"


def test_license_citation_and_changelog_agree_with_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    required = {"cff-version", "message", "title", "authors"}  # CFF 1.2.0's required keys
    assert required <= set(cff), f"CITATION.cff lacks {sorted(required - set(cff))}"
    assert all("family-names" in a or "name" in a for a in cff["authors"])
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["repository-code"] == _repository() and cff["version"] == project["version"]
    paper = cff["preferred-citation"]
    assert (paper["title"], paper["year"]) == ("Supervised Contrastive Learning", 2020)
    assert paper["authors"][0]["family-names"] == "Khosla" and len(paper["authors"]) == 9
    dates = re.findall(r"^## (\d{4}-\d{2}-\d{2})$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert dates and dates == sorted(dates, reverse=True), "CHANGELOG: dated sections, newest first"


def test_every_third_party_module_the_code_imports_is_declared():
    declared = {re.split(r"[<>=!~ ]", r)[0].lower() for r in _pyproject_requirements()}
    sources = [p for d in ("supcon_utils", "tests", "scripts", "benchmarks", "notebooks")
               for p in (ROOT / d).glob("*.py")]  # fmt: skip
    local = {p.stem for p in sources} | {"supcon_utils"}
    pattern = re.compile(r"^\s*(?:import (\w+)|from (\w+)[\w.]* import )", re.M)
    imported = {a or b for p in sources for a, b in pattern.findall(p.read_text())}
    distribution = {
        "sklearn": "scikit-learn",
        "yaml": "pyyaml",
        "PIL": "pillow",
        "IPython": "ipykernel",
    }
    platform = {"google"}  # google.colab: Colab's own, imported only there (supcon_utils.install)
    missing = sorted(
        m for m in imported - local - platform - set(sys.stdlib_module_names)
        if distribution.get(m, m).lower() not in declared
    )  # fmt: skip
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def _constraints() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pinned = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(p) == 2 for p in pinned), "constraints.txt: one name==version a line"
    return {canonicalize_name(name): version for name, version in pinned}


def test_every_requirement_is_pinned_in_its_range():
    pins = _constraints()
    for req in map(Requirement, sorted(_pyproject_requirements())):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in constraints.txt: python scripts/pin_versions.py"
        assert req.specifier.contains(pins[name]), f"constraints.txt: {name}=={pins[name]} vs {req}"


def test_this_environment_has_the_pinned_versions():
    """What ran the tests (and made the outputs) is what constraints.txt says: `make env`."""
    pins = _constraints()
    differ = {}
    for req in map(Requirement, sorted(_pyproject_requirements())):
        have = install.installed_version(req.name)
        if have is not None and have != pins[canonicalize_name(req.name)]:
            differ[req.name] = (have, pins[canonicalize_name(req.name)])
    assert not differ, f"installed vs constraints.txt (run make env): {differ}"
