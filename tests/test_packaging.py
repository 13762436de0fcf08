"""Packaging: conda and pip install the same dependencies; one repository address everywhere."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])


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
