"""Every figure the notebooks show. Each function draws on a new figure and returns it."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def augmented_pairs(
    images: np.ndarray,
    views: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
) -> plt.Figure:
    """One row per image: the original, then each of its augmented views.

    ``images`` is ``(n, H, W, C)``, ``views`` ``(n, n_views, H, W, C)``, both in [0, 1] or uint8.
    """
    n, n_views = views.shape[:2]
    fig, axes = plt.subplots(n, n_views + 1, figsize=(1.6 * (n_views + 1), 1.6 * n), squeeze=False)
    for row in range(n):
        tiles = [images[row], *views[row]]
        for col, tile in enumerate(tiles):
            ax = axes[row, col]
            ax.imshow(_displayable(tile), cmap="gray" if tile.shape[-1] == 1 else None,
                      vmin=0, vmax=1)  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("original" if col == 0 else f"view {col}", fontsize=9)
        axes[row, 0].set_ylabel(class_names[int(labels[row])], fontsize=9)
    fig.tight_layout()
    return fig


def positive_masks(masks: Mapping[str, np.ndarray], labels: np.ndarray, n_views: int) -> plt.Figure:
    """Heatmaps of boolean ``(n_views*B, n_views*B)`` positive masks, side by side.

    Rows are anchors and columns are the contrast set, both in view-major order (every image's
    view 0, then every image's view 1, ...), as the loss lays them out.
    """
    ticks = [f"{label}/v{v}" for v in range(n_views) for label in labels]
    fig, axes = plt.subplots(1, len(masks), figsize=(5.5 * len(masks), 5), squeeze=False)
    for ax, (title, mask) in zip(axes[0], masks.items(), strict=True):
        sns.heatmap(
            mask.astype(int),
            ax=ax,
            cmap="Blues",
            cbar=False,
            square=True,
            linewidths=0.3,
            linecolor="lightgrey",
            xticklabels=ticks,
            yticklabels=ticks,
        )
        ax.set_title(f"{title}: {int(mask.sum())} positive pairs")
        ax.set_xlabel("contrast view (label/view)")
        ax.set_ylabel("anchor view (label/view)")
        ax.tick_params(labelsize=max(6.0, min(9.0, 160 / len(ticks))))  # >= 9 pt up to 17 views
        ax.tick_params(axis="x", labelrotation=90)
        ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return fig


def training_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    reference_lines: Mapping[str, Mapping[str, float]] | None = None,
    val_labels: Mapping[str, str] | None = None,
    start_losses: Mapping[str, float] | None = None,
) -> plt.Figure:
    """Loss, and accuracy where logged (training and validation), per epoch of each run, a panel
    each, with the legend below the panel.

    ``histories`` maps a run's name to its per-epoch rows (``training.history``), whose loss is
    the mean over the epoch's steps; ``start_losses`` maps a run's name to its loss before the
    first step, drawn at epoch 0; ``reference_lines`` maps a run's name to loss levels to mark,
    ``{label: level}`` (e.g. SupCon's collapse value and its floor); ``val_labels`` names a run's
    ``val_accuracy`` line (default "validation accuracy").
    """
    fig, axes = plt.subplots(1, len(histories), figsize=(5.5 * len(histories), 4.4), squeeze=False)
    styles = [":", "--", "-."]
    for ax, (name, rows) in zip(axes[0], histories.items(), strict=True):
        epochs = [int(r["epoch"]) + 1 for r in rows]
        losses = [r["loss"] for r in rows]
        if start_losses and name in start_losses:
            epochs, losses = [0, *epochs], [start_losses[name], *losses]
        ax.plot(epochs, losses, "o-", label="training loss (epoch mean)")
        for i, (label, level) in enumerate(((reference_lines or {}).get(name) or {}).items()):
            ax.axhline(
                level, color="grey", ls=styles[i % len(styles)], label=f"{label} = {level:.2f}"
            )
        ax.set_xlabel("epoch (0: before training)" if start_losses else "epoch")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax.set_ylabel("loss")
        ax.set_title(name)
        handles, labels = ax.get_legend_handles_labels()
        accuracies = {
            "accuracy": ("training accuracy", "s--", "tab:green"),
            "val_accuracy": ((val_labels or {}).get(name, "validation accuracy"), "^-", "tab:red"),
        }
        logged = [key for key in accuracies if rows and key in rows[0]]
        if logged:
            twin = ax.twinx()
            for key in logged:
                label, style, color = accuracies[key]
                rows_epochs = [int(r["epoch"]) + 1 for r in rows]
                twin.plot(rows_epochs, [r[key] for r in rows], style, color=color, label=label)
            twin.set_ylabel("accuracy")
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  fontsize=8, frameon=False)  # fmt: skip
    fig.tight_layout()
    return fig


def budget_curves(
    table: pd.DataFrame,
    names: Mapping[str, str] | None = None,
    ylabel: str = "validation accuracy",
) -> plt.Figure:
    """Validation accuracy against epochs and against training seconds, one line per recipe.

    ``table`` has one row per recipe (``kind``), ``seed`` and ``epoch``, with ``elapsed_s`` and
    ``val_accuracy`` (``training.budget_study``). Lines are means over seeds, bands +- one
    standard deviation (with several seeds); on the time axis each epoch sits at its mean time.
    Where the mean curves cross on the time axis (:func:`crossings`), a dotted line marks it.
    ``names`` maps a kind to its name in the legend (with its scorer, say); ``ylabel`` names the
    y axis. The legend sits below the panels.
    """
    stats = _budget_means(table)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for kind, curve in stats.groupby("kind", sort=False):
        n_seeds = int(curve["n_seeds"].iloc[0])
        label = f"{(names or {}).get(kind, kind)} ({n_seeds} seed{'s' * (n_seeds > 1)})"
        for ax, x in zip(axes, ("epoch", "elapsed_s"), strict=True):
            xs = curve[x] + (1 if x == "epoch" else 0)
            line = ax.plot(xs, curve["mean"], "o-", ms=3, label=label)[0]
            if n_seeds > 1:
                ax.fill_between(xs, curve["mean"] - curve["std"], curve["mean"] + curve["std"],
                                color=line.get_color(), alpha=0.2)  # fmt: skip
    for seconds in crossings(table):
        axes[1].axvline(seconds, color="grey", ls=":", label=f"curves cross at {seconds:.0f} s")
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("training time (s)")
    axes[0].set_ylabel(ylabel)
    fig.tight_layout()
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
               fontsize=8, frameon=False)  # fmt: skip
    return fig


def crossings(table: pd.DataFrame) -> list[float]:
    """Training seconds at which two recipes' mean validation accuracies change order.

    With exactly two recipes in ``table`` (as for :func:`budget_curves`), both mean curves are
    interpolated linearly on the time span they share; each sign change of their difference is a
    crossing. Other numbers of recipes: no crossings.
    """
    stats = _budget_means(table)
    curves = [c for _, c in stats.groupby("kind", sort=False)]
    if len(curves) != 2:
        return []
    start = max(c["elapsed_s"].min() for c in curves)
    stop = min(c["elapsed_s"].max() for c in curves)
    if stop <= start:
        return []
    grid = np.linspace(start, stop, 1000)
    a, b = (np.interp(grid, c["elapsed_s"], c["mean"]) for c in curves)
    sign = np.sign(a - b)
    grid, sign = grid[sign != 0], sign[sign != 0]  # a tie is no change of order by itself
    changes = np.flatnonzero(sign[1:] != sign[:-1])
    return [float((grid[i] + grid[i + 1]) / 2) for i in changes]


def _budget_means(table: pd.DataFrame) -> pd.DataFrame:
    """Per recipe and epoch: mean time, mean and std of validation accuracy, number of seeds."""
    return (
        table.groupby(["kind", "epoch"], sort=False)
        .agg(
            elapsed_s=("elapsed_s", "mean"),
            mean=("val_accuracy", "mean"),
            std=("val_accuracy", "std"),
            n_seeds=("seed", "nunique"),
        )
        .reset_index()
        .sort_values(["kind", "epoch"], kind="stable")
    )


def gradient_sizes(
    sims: np.ndarray,
    is_positive: np.ndarray,
    autodiff: np.ndarray,
    weight: np.ndarray,
    formula: np.ndarray,
    temperature: float,
) -> plt.Figure:
    """One anchor's gradient on each contrast view against its cosine similarity to the anchor.

    Left panel positives, right panel negatives: the paper's weight of each term (dashed), that
    weight times the sqrt(1 - s^2) of the L2 normalisation (line), and autodiff's sizes (dots).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, chosen, colour, what, term in [
        (axes[0], is_positive, "tab:green", "positives (pulled in)", "|P_{ip} - X_{ip}|"),
        (axes[1], ~is_positive, "tab:red", "negatives (pushed away)", "P_{in}"),
    ]:
        ax.plot(
            sims[chosen],
            weight[chosen],
            "--",
            color="0.55",
            lw=1.2,
            label=rf"weight in $\partial\mathcal{{L}}/\partial\mathbf{{z}}_i$: ${term}/\tau$",
        )
        ax.plot(
            sims[chosen],
            formula[chosen],
            color="black",
            lw=1,
            label="weight $\\times\\sqrt{1-s^2}$",
        )
        ax.scatter(sims[chosen], autodiff[chosen], s=16, color=colour, zorder=3, label="autodiff")
        ax.set_title(f"{what}, $\\tau$ = {temperature}")
        ax.set_xlabel("cosine similarity to the anchor  $s = \\mathbf{z}_i \\cdot \\mathbf{z}_j$")
        ax.legend(loc="lower center" if ax is axes[0] else "upper left", fontsize=9)
    axes[0].set_ylabel(r"gradient size  $\|\partial \mathcal{L}_{out,i}/\partial \mathbf{z}_j\|$")
    fig.suptitle(
        "One anchor's gradient: the pull peaks on positives near s = 0, not the hardest (s = -1);\n"
        "the push grows on the negatives that resemble the anchor"
    )
    fig.tight_layout()
    return fig


def positive_pull(
    sims: np.ndarray, gradients: Mapping[str, np.ndarray], temperature: float
) -> plt.Figure:
    """Gradient size on each positive against its similarity, one line per loss variant."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = itertools.cycle([("o-", "tab:green"), ("s-", "tab:purple"), ("^-", "tab:orange")])
    for (name, g), (marker, colour) in zip(gradients.items(), styles, strict=False):
        ax.plot(sims, g, marker, color=colour, label=name)
    ax.set_xlabel("cosine similarity of the positive to the anchor")
    ax.set_ylabel("gradient size on the positive")
    ax.set_title(f"Pull on each of the {len(sims)} positives, $\\tau$ = {temperature}")
    ax.legend()
    fig.tight_layout()
    return fig


def negative_shares(sims: np.ndarray, shares: Mapping[str, np.ndarray]) -> plt.Figure:
    """Each negative's share of the total push against its similarity, one line per setting."""
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    colours = sns.color_palette("viridis", len(shares))
    for (label, share), colour in zip(shares.items(), colours, strict=True):
        ax.plot(sims, share, color=colour, lw=2, label=label)
    ax.set_yscale("log")
    ax.set_ylim(1e-6, 1)
    ax.set_xlabel("cosine similarity of the negative to the anchor")
    ax.set_ylabel("share of the total push on negatives")
    ax.set_title(f"Where the push on {len(sims)} negatives goes, by temperature")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def embedding_scatter(
    points: Mapping[str, np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
    axis_labels: Mapping[str, tuple[str, str]] | None = None,
) -> plt.Figure:
    """2-d embeddings of the same images (``evaluation.project_2d``), one panel per model.

    ``points`` maps a model's name to ``(n, 2)`` coordinates; ``labels`` colour the points and the
    legend names the classes; ``axis_labels`` maps a model's name to its panel's (x, y) labels
    (e.g. each principal axis with its share of the variance).
    """
    palette = sns.color_palette("tab10", len(class_names))
    fig, axes = plt.subplots(1, len(points), figsize=(5.2 * len(points), 5), squeeze=False)
    for ax, (name, xy) in zip(axes[0], points.items(), strict=True):
        for c, class_name in enumerate(class_names):
            chosen = labels == c
            ax.scatter(xy[chosen, 0], xy[chosen, 1], s=4, color=palette[c], label=class_name,
                       alpha=0.7, rasterized=True)  # fmt: skip
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
        if axis_labels and name in axis_labels:
            ax.set_xlabel(axis_labels[name][0])
            ax.set_ylabel(axis_labels[name][1])
    axes[0, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=4, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrices(
    matrices: Mapping[str, np.ndarray | Sequence[Sequence[int]]], class_names: Sequence[str]
) -> plt.Figure:
    """Row-normalised confusion matrices side by side (rows: true class, columns: predicted)."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(6 * len(matrices), 5.4), squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices.items(), strict=True):
        counts = np.asarray(matrix, dtype=np.float64)
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        sns.heatmap(rates, ax=ax, cmap="Blues", vmin=0, vmax=1, annot=True, fmt=".2f",
                    annot_kws={"fontsize": 7}, cbar=False, square=True,
                    xticklabels=class_names, yticklabels=class_names)  # fmt: skip
        ax.set_title(f"{name}: accuracy {np.trace(counts) / counts.sum():.2%}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def similarity_heatmaps(
    embeddings: Mapping[str, np.ndarray], labels: np.ndarray, class_names: Sequence[str]
) -> plt.Figure:
    """Cosine similarity between every pair of images, sorted by class, one panel per model.

    Strong clustering shows as bright blocks on the diagonal on a dark background. The panels
    share one colour scale, from the lowest similarity in any panel to 1 (encoder outputs after a
    ReLU are non-negative, so their similarities rarely go below 0).
    """
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    edges = np.flatnonzero(np.diff(sorted_labels)) + 1
    centres = (np.r_[0, edges] + np.r_[edges, len(labels)]) / 2
    ticks = [class_names[int(c)] for c in np.unique(sorted_labels)]
    sims = {}
    for name, x in embeddings.items():
        u = x[order] / np.linalg.norm(x[order], axis=1, keepdims=True)
        sims[name] = u @ u.T
    low = min(float(s.min()) for s in sims.values())
    fig, axes = plt.subplots(1, len(sims), figsize=(5.4 * len(sims) + 1, 5.4), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, (name, sim) in zip(axes[0], sims.items(), strict=True):
        image = ax.imshow(sim, cmap="viridis", vmin=low, vmax=1, interpolation="nearest")
        for edge in edges:
            ax.axhline(edge - 0.5, color="white", lw=0.3)
            ax.axvline(edge - 0.5, color="white", lw=0.3)
        ax.set_xticks(centres - 0.5, ticks, rotation=90, fontsize=8)
        ax.set_yticks(centres - 0.5, ticks, fontsize=8)
        ax.set_title(f"{name}: cosine similarity")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    return fig


def metric_bars(
    table: Mapping[str, Mapping[str, float]],
    title: str = "",
    lower_is_better: Sequence[str] = (),
) -> plt.Figure:
    """``table[model][metric]`` as one small panel per metric, a bar per model with its value
    printed on it, each panel titled with its metric and whether higher or lower is better
    (``lower_is_better`` names the metrics where lower is). Each panel has its own scale, so
    metrics of different ranges never share an axis."""
    models = list(table)
    metrics = list(next(iter(table.values())))
    colors = sns.color_palette("tab10", len(models))
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(16.0, 2.3 * len(metrics)), 3.2),
                             squeeze=False)  # fmt: skip
    for ax, metric in zip(axes[0], metrics, strict=True):
        values = [table[model][metric] for model in models]
        bars = ax.bar(range(len(models)), values, color=colors)
        ax.bar_label(bars, fmt="%.3f", fontsize=8, padding=2)
        low, high = min(0.0, *values), max(0.0, *values)
        ax.set_ylim(low * 1.2, high * 1.2 if high > 0 else 0.05)
        ax.set_xticks([])
        better = "lower" if metric in lower_is_better else "higher"
        ax.set_title(f"{metric}\n({better} is better)", fontsize=9)
    handles = [mpl.patches.Patch(color=c, label=m) for c, m in zip(colors, models, strict=True)]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(models),
               frameon=False)  # fmt: skip
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sweep_lines(
    table: pd.DataFrame,
    x: str,
    metrics: Mapping[str, str],
    hue: str | None = None,
    ylabel: str = "validation accuracy",
) -> plt.Figure:
    """Metrics of a sweep (``sweep.sweep``'s table) against one swept parameter.

    ``metrics`` maps a column to a panel title (e.g. ``{"supcon/metrics/test_accuracy":
    "SupCon + probe"}``); ``hue`` is a second swept parameter, one line per value. A log x axis
    when ``x`` spans more than a factor of 5. Rows repeated at one ``x`` (seeds) give the mean,
    with a band of +- one standard deviation. Axis labels in words: ``x`` with spaces, ``ylabel``.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.8), squeeze=False,
                             sharey=True)  # fmt: skip
    for ax, (column, title) in zip(axes[0], metrics.items(), strict=True):
        sns.lineplot(data=table, x=x, y=column, hue=hue, marker="o", ax=ax, errorbar="sd",
                     palette="viridis" if hue else None)  # fmt: skip
        values = table[x].astype(float)
        if values.min() > 0 and values.max() / values.min() > 5:
            ax.set_xscale("log")
            ax.set_xticks(sorted(values.unique()), [f"{v:g}" for v in sorted(values.unique())])
            ax.minorticks_off()  # else the log axis labels its minor ticks over ours
        ax.set_title(title)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def ablation_bars(
    table: pd.DataFrame,
    label: str,
    metrics: Mapping[str, str],
    xlabel: str = "validation accuracy",
) -> plt.Figure:
    """Horizontal bars of each metric for each value of ``label`` (e.g. a recipe's name).

    ``metrics`` maps a column of ``table`` (e.g. ``sweep.config_sweep``'s ``val_accuracy``) to
    its legend entry; ``xlabel`` names what they measure. Rows repeated for one label (seeds) give
    the mean, with a +- one standard deviation bar. The axis starts at 0, so a bar's length is its
    value; the value is printed inside each bar, and the legend sits below the axes.
    """
    long = table.melt(id_vars=[label], value_vars=list(metrics), var_name="metric",
                      value_name="accuracy").replace({"metric": dict(metrics)})  # fmt: skip
    n_bars = table[label].nunique() * len(metrics)
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.32 * n_bars))
    sns.barplot(data=long, y=label, x="accuracy", hue="metric", errorbar="sd", orient="h", ax=ax)
    for bars in ax.containers:
        ax.bar_label(bars, fmt="%.3f", label_type="center", fontsize=8, color="white")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylabel("")
    ax.set_xlabel(xlabel)
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    height = fig.get_size_inches()[1]
    fig.legend(handles, labels, loc="lower center", ncol=len(metrics), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0.0, 0.35 / height, 1.0, 1.0))  # room for the legend below
    return fig


def label_efficiency_curves(table: pd.DataFrame) -> plt.Figure:
    """Test accuracy against labels per class (log axis), one line per encoder or recipe.

    ``table``: rows of ``evaluation.label_efficiency`` (columns ``encoder``, ``per_class``,
    ``accuracy``, one row per seed), possibly with rows of models trained from scratch. Lines are
    means over seeds, bands +- one standard deviation.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=table, x="per_class", y="accuracy", hue="encoder", marker="o",
                 errorbar="sd", ax=ax)  # fmt: skip
    ax.set_xscale("log")
    ticks = sorted(table.per_class.unique())
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images per class")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def corruption_examples(rows: Mapping[str, Sequence[np.ndarray]]) -> plt.Figure:
    """A grid of images: one row per corruption, one column per severity (0: the clean image).

    ``rows`` maps a corruption's name to its images at severities 0, 1, ... (each ``(H, W, C)``).
    """
    n_cols = max(len(images) for images in rows.values())
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.2 * n_cols, 1.25 * len(rows)),
                             squeeze=False)  # fmt: skip
    for row, (name, images) in zip(axes, rows.items(), strict=True):
        for severity, ax in enumerate(row):
            ax.set_xticks([])
            ax.set_yticks([])
            if severity < len(images):
                ax.imshow(_displayable(images[severity]), cmap="gray", vmin=0, vmax=1)
            if severity == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    for severity, ax in enumerate(axes[0]):
        ax.set_title("clean" if severity == 0 else f"severity {severity}", fontsize=8)
    fig.tight_layout()
    return fig


def robustness_curves(tables: Mapping[str, pd.DataFrame], columns: int = 3) -> plt.Figure:
    """Accuracy against severity per corruption, one line per model (``robustness_table`` rows).

    One panel per corruption in a grid of ``columns`` columns, and a last panel with the mean over
    corruptions (the paper's Fig. 3); the legend below the grid.
    """
    corruptions = [c for c in next(iter(tables.values())).corruption.unique() if c != "clean"]
    panels = [*corruptions, "mean"]
    n_rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(n_rows, columns, figsize=(3.6 * columns, 2.8 * n_rows), sharey=True,
                             squeeze=False)  # fmt: skip
    flat = list(axes.flat)
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    for name, table in tables.items():
        clean = float(table.loc[table.corruption == "clean", "accuracy"].iloc[0])
        corrupted = table[table.corruption != "clean"]
        curves = {c: corrupted[corrupted.corruption == c].set_index("severity").accuracy
                  for c in corruptions}  # fmt: skip
        curves["mean"] = corrupted.groupby("severity").accuracy.mean()
        for ax, panel in zip(flat, panels, strict=False):
            curve = curves[panel]
            ax.plot([0, *curve.index], [clean, *curve.values], "o-", ms=3, label=name)
            ax.set_title(panel, fontsize=10)
    for row in axes:
        row[0].set_ylabel("test accuracy")
    for ax in flat[: len(panels)][-columns:]:
        ax.set_xlabel("severity (0: clean)")
    fig.tight_layout()
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(tables),
               frameon=False)  # fmt: skip
    return fig


def _displayable(tile: np.ndarray) -> np.ndarray:
    tile = np.asarray(tile, dtype=np.float32)
    if tile.max() > 1.0:
        tile = tile / 255.0
    return tile[..., 0] if tile.shape[-1] == 1 else tile
