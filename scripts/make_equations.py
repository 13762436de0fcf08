"""Render the two supervised contrastive losses of Khosla et al. (2020), eqs. 2 and 3, to a PNG.

The README shows this image. It uses matplotlib's mathtext (no LaTeX install needed) and writes
byte-identical output on every run: fixed figure size and dpi, the STIX fonts bundled with
matplotlib, an opaque white RGB image, and no timestamp or software metadata in the PNG.

Usage:
    python scripts/make_equations.py [OUTPUT_PATH]     # default: equations.png at the repo root
"""

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402  (Pillow: a dependency of matplotlib)

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "equations.png"

# Figure geometry: 7 x 3.7 in at 200 dpi = 1400 x 740 px, the width of a GitHub README column
# at 2x, so the text stays sharp on high-density screens.
WIDTH_IN, HEIGHT_IN, DPI = 7.0, 3.7, 200

Z = r"\mathbf{z}"  # the paper writes embeddings in bold
SIM = {
    "p": rf"\exp\left({Z}_i \cdot {Z}_p / \tau\right)",
    "a": rf"\sum_{{a \in A(i)}} \exp\left({Z}_i \cdot {Z}_a / \tau\right)",
}

# Eq. 2: the sum over positives sits outside the log ("out").
EQ_OUT = (
    r"$\mathcal{L}^{sup}_{out} = \sum_{i \in I} \, \mathcal{L}^{sup}_{out,i}"
    r" = \sum_{i \in I} \, \dfrac{-1}{|P(i)|} \, \sum_{p \in P(i)} \, \log"
    rf" \dfrac{{{SIM['p']}}}{{{SIM['a']}}}$"
)
# Eq. 3: the sum over positives sits inside the log ("in").
EQ_IN = (
    r"$\mathcal{L}^{sup}_{in} = \sum_{i \in I} \, \mathcal{L}^{sup}_{in,i}"
    r" = \sum_{i \in I} \, -\log \left\{ \dfrac{1}{|P(i)|} \, \sum_{p \in P(i)} \,"
    rf" \dfrac{{{SIM['p']}}}{{{SIM['a']}}} \right\}}$"
)
WHERE = [
    (rf"${Z}_i$", r"the L2-normalised projection (embedding) of anchor $i$"),
    (r"$I$", r"all $2N$ augmented views in the batch ($N$ images, two views each)"),
    (r"$A(i) = I \,\backslash\{i\}$", r"every view in the batch except the anchor itself"),
    (
        r"$P(i) = \{p \in A(i) : \tilde{y}_p = \tilde{y}_i\}$",
        r"the positives: views with the anchor's label; $|P(i)|$ is their number",
    ),
    (r"$\tau > 0$", r"the temperature, a scalar hyperparameter"),
]


def draw(path: Path) -> None:
    plt.rcParams.update(
        {
            # STIX is Times-like, as in the NeurIPS paper, and ships with matplotlib, so every
            # machine renders the same glyphs; text and maths share one typeface.
            "mathtext.fontset": "stix",
            "font.family": "STIXGeneral",
        }
    )
    fig = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
    eq_size, text_size = 15, 10
    eq_x, num_x = 0.035, 0.965

    for y, eq, number in [(0.84, EQ_OUT, "(2)"), (0.595, EQ_IN, "(3)")]:
        fig.text(eq_x, y, eq, fontsize=eq_size, va="center", ha="left")
        fig.text(num_x, y, number, fontsize=eq_size - 1, va="center", ha="right")

    y0, dy = 0.325, 0.063
    fig.text(eq_x, y0 + dy, "where", fontsize=text_size, va="center", ha="left", style="italic")
    for k, (symbol, meaning) in enumerate(WHERE):
        y = y0 - k * dy
        fig.text(0.33, y, symbol, fontsize=text_size + 0.5, va="center", ha="right")
        fig.text(0.35, y, meaning, fontsize=text_size, va="center", ha="left")

    path.parent.mkdir(parents=True, exist_ok=True)
    # Opaque RGB, and no "Software"/date chunks: the bytes depend only on this script and
    # matplotlib's renderer.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    plt.close(fig)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").save(path, format="PNG", dpi=(DPI, DPI), optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "output", nargs="?", type=Path, default=DEFAULT_OUTPUT, help="PNG path to write"
    )
    args = parser.parse_args()
    draw(args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
