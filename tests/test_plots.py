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
    fig = plots.embedding_scatter(points, labels, NAMES, axis_labels={"ce": ("PC 1", "PC 2")})
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes] == [("PC 1", "PC 2"), ("", "")]


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
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels(which="both") if t.get_text()]
    assert labels == ["0.05", "0.5"]  # only the swept values: no minor-tick labels over them
    by_batch = plots.sweep_lines(table, "batch_size", {"acc": "SupCon"})
    assert (by_batch.axes[0].get_xlabel(), by_batch.axes[0].get_ylabel()) == (
        "batch size",
        "validation accuracy",
    )  # words, not column names


def test_robustness_curves_have_a_panel_per_corruption_and_the_mean():
    rows = [{"corruption": "clean", "severity": 0, "accuracy": 0.9}]
    rows += [{"corruption": c, "severity": s, "accuracy": 0.9 - 0.1 * s}
             for c in ["noise", "blur"] for s in (1, 2)]  # fmt: skip
    fig = plots.robustness_curves({"ce": pd.DataFrame(rows), "supcon": pd.DataFrame(rows)},
                                  columns=2)  # fmt: skip
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["noise", "blur", "mean"]  # a 2 x 2 grid, one empty
    assert len(fig.axes) == 4
    assert len(shown[2].lines) == 2
    assert list(shown[2].lines[0].get_ydata()) == pytest.approx([0.9, 0.8, 0.7])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ce", "supcon"]
    assert max(fig.get_size_inches()) <= 16


def test_metric_bars_and_gradient_figures_draw():
    table = {"ce": {"knn": 0.9, "probe": 0.8}, "supcon": {"knn": 0.95, "probe": 0.9}}
    fig = plots.metric_bars(table, lower_is_better=["probe"])
    assert [len(ax.patches) for ax in fig.axes] == [2, 2]  # a panel per metric, a bar per model
    assert [ax.get_title() for ax in fig.axes] == ["knn\n(higher is better)",
                                                   "probe\n(lower is better)"]  # fmt: skip
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.900", "0.950"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ce", "supcon"]
    sims = np.linspace(-0.9, 0.9, 6)
    is_pos = np.array([True] * 3 + [False] * 3)
    g = np.abs(sims)
    assert len(plots.gradient_sizes(sims, is_pos, g, g, g, 0.1).axes) == 2
    assert len(plots.positive_pull(sims[:3], {"out": g[:3], "in": g[:3]}, 0.1).axes[0].lines) == 2
    assert len(plots.negative_shares(sims[3:], {"t=0.1": g[3:]}).axes[0].lines) == 1


def _budget(rows):
    return pd.DataFrame(
        [
            {"kind": kind, "seed": seed, "epoch": e, "elapsed_s": t, "val_accuracy": acc}
            for kind, seed, e, t, acc in rows
        ]
    )


def test_crossings_find_where_the_mean_curves_change_order():
    # a leads at first, b overtakes between 2 s and 3 s (means over two seeds of b).
    table = _budget(
        [("a", 0, 0, 1.0, 0.5), ("a", 0, 1, 2.0, 0.6), ("a", 0, 2, 3.0, 0.62),
         ("b", 0, 0, 1.0, 0.3), ("b", 0, 1, 2.0, 0.5), ("b", 0, 2, 3.0, 0.7),
         ("b", 1, 0, 1.0, 0.3), ("b", 1, 1, 2.0, 0.5), ("b", 1, 2, 3.0, 0.7)]
    )  # fmt: skip
    (cross,) = plots.crossings(table)
    assert 2.0 < cross < 3.0
    assert plots.crossings(table[table.kind == "a"]) == []
    never = table.assign(val_accuracy=np.where(table.kind == "a", 0.9, 0.1))
    assert plots.crossings(never) == []


def test_budget_curves_draw_a_band_only_with_several_seeds():
    ce = [("ce", 0, e, e + 1.0, 0.5 + 0.1 * e) for e in range(3)]
    supcon = [
        ("supcon", s, e, e + 1.5, 0.4 + 0.25 * e + 0.01 * s) for s in (0, 1) for e in range(3)
    ]
    table = _budget(ce + supcon)  # supcon overtakes ce between 2 s and 3 s
    fig = plots.budget_curves(table, names={"ce": "cross-entropy"}, ylabel="accuracy (scorers)")
    time_axis = fig.axes[1]
    (legend,) = fig.legends  # one, below the panels
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["cross-entropy (1 seed)", "supcon (2 seeds)"]
    assert fig.axes[0].get_ylabel() == "accuracy (scorers)"
    assert any(label.startswith("curves cross at") for label in labels)
    assert len(time_axis.collections) == 1  # supcon's band


def test_training_curves_one_legend_below_with_loss_references_start_and_accuracy():
    rows = [{"epoch": e, "loss": 1.0 / (e + 1), "val_accuracy": 0.5 + 0.1 * e} for e in range(3)]
    fig = plots.training_curves(
        {"supcon": rows},
        val_labels={"supcon": "validation (k-NN)"},
        reference_lines={"supcon": {"collapse": 6.24, "floor": 3.9}},
        start_losses={"supcon": 6.3},
    )
    ax, twin = fig.axes
    assert twin.get_legend() is None  # one legend, under the panel: nothing drawn over the curves
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["training loss (epoch mean)", "collapse = 6.24", "floor = 3.90",
                      "validation (k-NN)"]  # fmt: skip
    assert ax.get_legend().get_bbox_to_anchor().y1 < ax.get_window_extent().y0  # below the axes
    loss_line = ax.get_lines()[0]
    assert list(loss_line.get_xdata()) == [0, 1, 2, 3] and loss_line.get_ydata()[0] == 6.3
    assert list(twin.get_lines()[0].get_xdata()) == [1, 2, 3]


def test_label_efficiency_curves_one_line_per_encoder_on_a_log_axis():
    table = pd.DataFrame(
        [{"encoder": e, "per_class": k, "seed": s, "accuracy": 0.5 + 0.1 * np.log10(k) + s / 100}
         for e in ("ce", "supcon") for k in (1, 10, 100) for s in (0, 1)]
    )  # fmt: skip
    fig = plots.label_efficiency_curves(table)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ce", "supcon"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "10", "100"]


def test_corruption_examples_one_row_per_corruption_one_column_per_severity():
    image = np.zeros((28, 28, 1), np.uint8)
    fig = plots.corruption_examples({"noise": [image] * 6, "blur": [image] * 6})
    assert len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes[:6]] == [
        "clean",
        *(f"severity {s}" for s in range(1, 6)),
    ]
    assert [fig.axes[i].get_ylabel() for i in (0, 6)] == ["noise", "blur"]


def test_ablation_bars_one_bar_per_label_and_metric_with_values():
    table = pd.DataFrame(
        [{"recipe": r, "seed": s, "probe": 0.8 + i / 100 + s / 500, "knn": 0.7 + i / 100}
         for i, r in enumerate(("L_out", "L_in", "SimCLR")) for s in (0, 1)]
    )  # fmt: skip
    fig = plots.ablation_bars(table, "recipe", {"probe": "linear probe", "knn": "20-NN"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["L_out", "L_in", "SimCLR"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["linear probe", "20-NN"]
    widths = [[round(b.get_width(), 4) for b in bars] for bars in ax.containers]
    assert widths == [[0.801, 0.811, 0.821], [0.7, 0.71, 0.72]]  # means over the seeds
    assert ax.texts[0].get_text() == "0.801"  # values printed in the bars (means)
    assert ax.get_xlim() == (0.0, 1.0)  # a bar's length is its value
    assert ax.get_xlabel() == "validation accuracy"
