"""Sphinx configuration of the project's site: the README, the docs and the eight executed
notebooks, rendered as committed (no re-execution), offline (``make site``).

Sources are the repository's own files (``include_patterns``), so nothing is copied or edited by
hand; the site-only parts (the navigation, a local Colab badge) are added as each file is read.
"""

import shutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
DOCS = ["docs/running", "docs/results", "docs/performance"]
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

project = "Supervised Contrastive Learning: a TensorFlow/Keras tutorial"
author = "The supcon tutorial authors"
root_doc = "README"
include_patterns = ["README.md", "docs/*.md", "notebooks/[0-9][0-9]_*.ipynb"]
exclude_patterns = ["runs", ".venv", "site"]
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # the latter ships MathJax into _static
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the committed outputs, as they are
nb_output_stderr = "remove"  # TensorFlow's and tqdm's progress lines are not the lesson
html_theme = "alabaster"
# Below 1200 px of window alabaster puts the sidebar on top (its narrow-screen layout).
html_theme_options = {"fixed_sidebar": True, "page_width": "1200px", "sidebar_width": "250px",
                      "body_max_width": "none"}  # fmt: skip
templates_path = ["_templates"]
html_sidebars = {"**": ["globaltoc.html", "source.html", "searchbox.html"]}
html_context = {"repository": REPOSITORY}
html_title = "supcon tutorial"
html_show_sourcelink = False
html_copy_source = False


def _add_site_parts(app, docname: str, source: list[str]) -> None:
    """The navigation (a hidden toctree in the README, in notebook order) and a local copy of
    the Colab badge in place of Google's (a page of the site loads nothing from elsewhere)."""
    if docname == root_doc:
        entries = "\n".join([*(f"notebooks/{n}" for n in NOTEBOOKS), *DOCS])
        source[0] += f"\n\n```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{entries}\n```\n"
    source[0] = source[0].replace(COLAB_BADGE, "../site/colab-badge.svg")


def _index_page(app, exception: Exception | None) -> None:
    """``index.html``: the README's page, so the site opens on it."""
    if exception is None and app.builder.name == "html":
        out = Path(app.outdir)
        shutil.copy(out / "README.html", out / "index.html")


def setup(app) -> None:
    app.config.mathjax_path = "mathjax/tex-svg.js"  # SVG output: no font files to load
    app.connect("source-read", _add_site_parts)
    app.connect("build-finished", _index_page)
