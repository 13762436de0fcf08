"""Every figure function draws what it is given: panels, lines and labels (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from supcon_utils import plots  # noqa: E402

rng = np.random.default_rng(0)
NAMES = ["a", "b", "c"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_embedding_scatter_has_a_panel_per_model_and_a_legend_entry_per_class():
    labels = np.repeat(np.arange(3), 10)
    points = {"ce": rng.normal(size=(30, 2)), "supcon": rng.normal(size=(30, 2))}
    fig = plots.embedding_scatter(points, labels, NAMES)
    assert [ax.get_title() for ax in fig.axes] == ["ce", "supcon"]
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == NAMES


def test_confusion_matrices_are_row_normalised():
    fig = plots.confusion_matrices({"m": [[3, 1, 0], [0, 2, 2], [0, 0, 5]]}, NAMES)
    values = [float(t.get_text()) for t in fig.axes[0].texts]
    assert values[:3] == [0.75, 0.25, 0.0]
    assert "accuracy 76.92%" in fig.axes[0].get_title()


def test_similarity_heatmaps_share_one_colour_scale():
    labels = np.array([2, 0, 1, 0, 2, 1])
    fig = plots.similarity_heatmaps({"x": rng.normal(size=(6, 4)), "y": rng.random((6, 4))},
                                    labels, NAMES)  # fmt: skip
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    assert images[0].get_clim() == images[1].get_clim()
    assert np.allclose(np.diag(images[0].get_array()), 1.0)


def test_sweep_lines_draw_one_line_per_hue_value():
    table = pd.DataFrame({"temperature": [0.05, 0.5, 0.05, 0.5], "batch_size": [128, 128, 512, 512],
                          "acc": [0.8, 0.7, 0.82, 0.75]})  # fmt: skip
    fig = plots.sweep_lines(table, "temperature", {"acc": "SupCon"}, hue="batch_size")
    assert len(fig.axes[0].lines) >= 2
    assert fig.axes[0].get_xscale() == "log"


def test_robustness_curves_have_a_panel_per_corruption_and_the_mean():
    rows = [{"corruption": "clean", "severity": 0, "accuracy": 0.9}]
    rows += [{"corruption": c, "severity": s, "accuracy": 0.9 - 0.1 * s}
             for c in ["noise", "blur"] for s in (1, 2)]  # fmt: skip
    fig = plots.robustness_curves({"ce": pd.DataFrame(rows), "supcon": pd.DataFrame(rows)})
    assert [ax.get_title() for ax in fig.axes] == ["noise", "blur", "mean"]
    assert len(fig.axes[2].lines) == 2
    assert list(fig.axes[2].lines[0].get_ydata()) == pytest.approx([0.9, 0.8, 0.7])


def test_metric_bars_and_gradient_figures_draw():
    table = {"ce": {"knn": 0.9, "probe": 0.8}, "supcon": {"knn": 0.95, "probe": 0.9}}
    fig = plots.metric_bars(table)
    assert len(fig.axes[0].patches) == 4
    sims = np.linspace(-0.9, 0.9, 6)
    is_pos = np.array([True] * 3 + [False] * 3)
    g = np.abs(sims)
    assert len(plots.gradient_sizes(sims, is_pos, g, g, g, 0.1).axes) == 2
    assert len(plots.positive_pull(sims[:3], {"out": g[:3], "in": g[:3]}, 0.1).axes[0].lines) == 2
    assert len(plots.negative_shares(sims[3:], {"t=0.1": g[3:]}).axes[0].lines) == 1
