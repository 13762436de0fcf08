"""Every figure the notebooks show. Each function draws on a new figure and returns it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
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
        sns.heatmap(mask.astype(int), ax=ax, cmap="Blues", cbar=False, square=True,
                    linewidths=0.3, linecolor="lightgrey", xticklabels=ticks, yticklabels=ticks)
        ax.set_title(f"{title}: {int(mask.sum())} positive pairs")
        ax.set_xlabel("contrast view (label/view)")
        ax.set_ylabel("anchor view (label/view)")
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def training_curves(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    reference_lines: Mapping[str, float] | None = None,
) -> plt.Figure:
    """Loss (and accuracy where logged) per epoch of each run, one panel per run.

    ``histories`` maps a run's name to its per-epoch rows (``training.history``);
    ``reference_lines`` maps a run's name to a loss level to mark (e.g. SupCon's collapse value).
    """
    fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], histories.items(), strict=True):
        epochs = [int(r["epoch"]) + 1 for r in rows]
        ax.plot(epochs, [r["loss"] for r in rows], "o-", label="training loss")
        if reference_lines and name in reference_lines:
            ax.axhline(reference_lines[name], color="grey", ls="--",
                       label=f"collapse ln(2N-1) = {reference_lines[name]:.2f}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(name)
        if rows and "accuracy" in rows[0]:
            twin = ax.twinx()
            twin.plot(epochs, [r["accuracy"] for r in rows], "s--", color="tab:green",
                      label="training accuracy")
            twin.set_ylabel("accuracy")
            twin.legend(loc="center right", fontsize=8)
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def _displayable(tile: np.ndarray) -> np.ndarray:
    tile = np.asarray(tile, dtype=np.float32)
    if tile.max() > 1.0:
        tile = tile / 255.0
    return tile[..., 0] if tile.shape[-1] == 1 else tile
