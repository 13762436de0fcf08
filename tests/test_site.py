"""The rendered site (`make site`): built offline from the committed files with warnings as
errors, a page per notebook with its figures and its Colab badge, nothing loaded from outside the
site; and in a real browser (headless Chromium), equations rendered and figures loaded."""

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SCREENSHOTS = ROOT / "runs" / "site" / "screenshots"  # kept for a person to look at
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
# Tags whose address the browser loads (an <a href> is only a link, which the reader follows).
LOADED = re.compile(r"<(?:img|script|link|iframe|source|video|audio|embed)\b[^>]*?"
                    r"\b(?:src|href|data)=\"((?:https?:)?//[^\"]*)\"", re.I)  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "html"
    build = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-c", "site", "-b",
             "html", ".", str(out)]  # fmt: skip
    done = subprocess.run(build, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"the site's build failed or warned:\n{done.stderr[-3000:]}"
    return out


def _pages(site: Path) -> dict[str, str]:
    return {str(p.relative_to(site)): p.read_text() for p in site.rglob("*.html")}


def test_every_notebook_has_its_page_in_notebook_order(site):
    index = (site / "index.html").read_text()
    linked = re.findall(r'href="notebooks/(\d\d_\w+)\.html"', index)
    assert list(dict.fromkeys(linked)) == NOTEBOOKS, "the navigation, in notebook order"
    for name in NOTEBOOKS:
        page = (site / "notebooks" / f"{name}.html").read_text()
        assert "colab.research.google.com/github/" in page and "colab-badge.svg" in page, name
        assert f"/blob/main/notebooks/{name}.py" in page, f"{name}: no link to its source"


def test_every_figure_of_a_notebook_is_an_image_on_its_page(site):
    for name in NOTEBOOKS:
        cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        figures = sum("image/png" in out.get("data", {})
                      for c in cells for out in c.get("outputs", []))  # fmt: skip
        page = (site / "notebooks" / f"{name}.html").read_text()
        shown = re.findall(r'<img[^>]*src="\.\./(_images/[0-9a-f]+\.png)"', page)
        assert figures > 0 and len(shown) == figures, f"{name}: {figures} figures, {len(shown)}"
        assert all((site / img).stat().st_size > 1000 for img in shown), name


def test_no_page_shows_a_traceback_or_loads_anything_from_outside(site):
    pages = _pages(site)
    assert len(pages) >= len(NOTEBOOKS) + 4
    for name, html in pages.items():
        assert "Traceback (most recent call last)" not in html, name
        assert not LOADED.findall(html), f"{name} loads {LOADED.findall(html)[:3]}"
    styles = "".join(p.read_text() for p in site.rglob("*.css"))
    assert not re.findall(r"url\(\s*['\"]?(?:https?:)?//|@import\s+url\(", styles)
    assert (site / "_static" / "mathjax" / "tex-svg.js").exists(), "MathJax ships with the site"


@pytest.mark.slow  # a browser
def test_a_browser_shows_the_equations_and_figures(site):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("no Chromium: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=1280,1600"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    try:
        # page, equations at least, the section whose first figure a second screenshot shows
        for page, equations, section in (("index.html", 0, None),
                                         ("notebooks/02_supcon_loss.html", 20, None),
                                         ("notebooks/04_evaluation.html", 0, "t-SNE")):  # fmt: skip
            browser.get(f"{base}/{page}")
            browser.set_script_timeout(30)
            state = browser.execute_async_script(_SETTLED)
            shots = [SCREENSHOTS / f"{Path(page).stem}.png"]
            browser.save_screenshot(str(shots[0]))
            if section is not None:
                assert browser.execute_script(_SHOW_FIGURE, section), f"{page}: no {section} figure"
                shots.append(SCREENSHOTS / f"{Path(page).stem}_{section}.png")
                browser.save_screenshot(str(shots[1]))
            for shot in shots:
                pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
                assert pixels.std() > 20, f"{shot.name}: a blank screenshot"
            assert state["images"] and all(state["images"]), f"{page}: a figure did not load"
            assert state["equations"] >= equations, f"{page}: {state['equations']} equations"
            assert not state["raw_tex"], f"{page}: TeX left unrendered: {state['raw_tex'][:3]}"
            outside = [u for u in state["requests"] if not u.startswith(base)]
            assert not outside, f"{page} requested {outside[:3]}"
    finally:
        browser.quit()
        server.shutdown()


# Waits for MathJax to finish (when the page has it), then reports what the browser shows.
_SETTLED = r"""
const done = arguments[arguments.length - 1];
const ready = window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve();
ready.then(() => {
  const raw = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (n.parentElement.closest("pre, code, script, style, mjx-container")) continue;
    if (/\$\$|\\(mathcal|frac|sum|tau|exp|log|sup)\b/.test(n.textContent)) raw.push(n.textContent);
  }
  done({
    images: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0),
    equations: document.querySelectorAll("mjx-container").length,
    raw_tex: raw,
    requests: performance.getEntriesByType("resource").map(e => e.name),
  });
});
"""

# Scrolls the first figure after the heading that contains arguments[0] to the top of the window.
_SHOW_FIGURE = r"""
const heading = Array.from(document.querySelectorAll("h1, h2, h3"))
  .find(h => h.textContent.includes(arguments[0]));
if (!heading) return false;
const figure = Array.from(document.images)
  .find(i => heading.compareDocumentPosition(i) & Node.DOCUMENT_POSITION_FOLLOWING);
if (!figure) return false;
figure.scrollIntoView({block: "start"});
return figure.complete && figure.naturalWidth > 0;
"""
