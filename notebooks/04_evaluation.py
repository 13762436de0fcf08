# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -papermill
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,colab
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Evaluate: what the embeddings learned
#
# Put a SupCon encoder and a cross-entropy encoder side by side, on the same test images:
# accuracy, nearest neighbours, how tightly each class clusters, and where each one goes wrong.
# By default they are the models trained at the `full` preset (all 55,000 training images beside
# the validation set, 15 epochs) that come with the package (`supcon_utils.pretrained`), the
# budget of the README's three-seed records; `models_from="run_dir"` evaluates notebook 03's
# instead.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/supcon-tutorial/supcon/blob/main/notebooks/04_evaluation.ipynb)
#
# **What you will learn**
#
# - how to measure a representation without training a new network: a k-nearest-neighbour vote
#   and a linear probe on frozen embeddings;
# - what the cluster metrics say: silhouette, intra- and inter-class cosine similarity, and
#   Wang and Isola's *alignment* and *uniformity* on the hypersphere;
# - how to read t-SNE and PCA pictures of embeddings, and what they cannot tell you;
# - which classes of Fashion-MNIST each model confuses.
#
# **Run time**: printed at the end (under two minutes on a 2-core CPU with the shipped models;
# nothing is trained). With `models_from="run_dir"` and no finished runs of notebook 03 there, it
# trains them first, as 03 does (about 6 minutes more at the `quick` preset).

# %% tags=["parameters"]
# One line per parameter, `name: type = default  # help`: papermill reads them so.
# fmt: off
from typing import Optional  # papermill reads `X | None` as no parameter

models_from: str = "shipped"  # "shipped": the full preset's models in the package; "run_dir": notebook 03's
preset: str = "quick"  # training preset of the models if models_from is "run_dir" and run_dir has none
n_train: Optional[int] = None  # their training images, if trained here; None: the preset's
batch_size: Optional[int] = None  # their batch size, if trained here; None: the preset's
epochs: Optional[int] = None  # their training epochs, if trained here; None: the preset's
probe_epochs: Optional[int] = None  # SupCon's linear probe's epochs, if trained here; None: the preset's
seed: int = 0  # seeds Python, numpy, TensorFlow, the augmentation and t-SNE
knn_k: int = 20  # neighbours in the kNN vote (cosine similarity)
n_geometry: int = 5000  # test images for silhouette, similarities, alignment and uniformity
n_plot: int = 2000  # test images in the t-SNE/PCA pictures and (a quarter of them) the heatmap
run_dir: str = "runs/default"  # run folder: results go to run_dir/evaluation (and 03's models, see models_from)
# fmt: on

# %%
# Colab only: install supcon_utils without its dependencies, then only what Colab lacks
# (`supcon_utils.install`: it keeps Colab's TensorFlow when in range, and says when to restart).
# SUPCON_REPO may name your fork or the folder of an uploaded copy. On Colab, /content is wiped
# with the runtime: run_dir="/content/drive/MyDrive/supcon" keeps runs on Google Drive (mounted
# here), and running again resumes them. Elsewhere this cell does nothing.
import importlib
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    repo = os.environ.get("SUPCON_REPO", "https://github.com/supcon-tutorial/supcon")
    source = repo if os.path.isdir(repo) else f"git+{repo}"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", source]
    installed = subprocess.run(pip, capture_output=True, text=True)
    if installed.returncode != 0:
        raise RuntimeError(
            f"could not install supcon_utils from {repo}:\n{installed.stderr[-1500:]}\n"
            "Set os.environ['SUPCON_REPO'] to a repository Colab can reach (your fork) or to the "
            "folder of an uploaded copy, then run this cell again."
        )
    importlib.invalidate_caches()
    from supcon_utils import install

    install.colab(run_dir)

# %%
import supcon_utils

# Before TensorFlow loads: oneDNN's kernels on (off by default on AMD CPUs, several times slower
# here) and one inter-op thread, so that a seeded run repeats bit for bit (`supcon_utils.tf_setup`).
supcon_utils.setup_tensorflow()

# isort: split
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from supcon_utils import data, evaluation, plots, pretrained, records, training

keras.utils.set_random_seed(seed)
out_dir = Path(run_dir) / "evaluation"
out_dir.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()

# %% [markdown]
# ## Load both models
#
# `pretrained.models_dir` names the folder of finished runs to read: the shipped `full` models, or
# `run_dir` for notebook 03's. `training.load_run` reads each run whatever parameters trained it,
# so a setting given to 03 alone (say `temperature`) carries through; only where a run is missing
# in `run_dir` does it train one, as 03 does, at this notebook's parameters.
# `training.shared_data` returns the configuration of the runs after checking that both trained
# on the same images. Both models are then measured on the same data: the training split they
# were trained on (for the kNN vote and the probe to fit) and the 10,000 test images.

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies of models trained on some machine, or here if missing with models_from="run_dir")
if_missing = training.config(preset, **training.given(
    n_train=n_train, batch_size=batch_size, epochs=epochs, probe_epochs=probe_epochs, seed=seed
))  # fmt: skip
names = {"cross_entropy": "cross-entropy", "supcon": "SupCon"}
models_at = pretrained.models_dir(models_from, run_dir)
runs = {kind: training.load_run(models_at, kind, train_if_missing=if_missing) for kind in names}
cfg = training.shared_data(runs.values())
train, _, test = training.load_data(cfg)  # nothing is chosen here: the report is on test
class_names = data.DATASETS[cfg.dataset].class_names
for kind, result in runs.items():
    print(
        f"{names[kind]:>13}: {result['epochs_completed']} epochs on {len(train[0])} images, "
        f"validation accuracy {result['metrics']['val_accuracy']:.4f}, "
        f"test accuracy {result['metrics']['test_accuracy']:.4f}"
    )

# %% [markdown]
# ## The comparison table
#
# `evaluation.evaluate` computes every metric for one model in one call. All of them except
# `accuracy` read only the **encoder's** output (the 128-dimensional vector before SupCon's
# projection head or the cross-entropy classifier), so the two representations are compared on
# equal terms:
#
# | metric | what it measures | better |
# |---|---|---|
# | `accuracy` | the model's own classifier: the CE head, or SupCon's linear probe (notebook 03) | higher |
# | `knn_accuracy` | majority label of the k nearest training images, by cosine similarity | higher |
# | `linear_probe_accuracy` | logistic regression on the standardised frozen embeddings | higher |
# | `silhouette_cosine` | (distance to the nearest other class - distance to own class) / max, -1 to 1 | higher |
# | `intra_class_cosine` | mean cosine similarity of two images of one class | higher |
# | `inter_class_cosine` | mean cosine similarity of two images of different classes | lower |
# | `uniformity` | log E exp(-2 squared distance) over pairs of images: spread over the sphere | lower |
# | `alignment` | mean squared distance between two augmented views of an image (unit vectors) | lower |
# | `accuracy/<class>` | the model's own classifier, per class | higher |

# %%
# NBVAL_IGNORE_OUTPUT
# (metrics of models trained on this machine)
metrics = {}
for kind, result in runs.items():
    models = result["models"]
    metrics[kind] = evaluation.evaluate(
        models["encoder"], models["classifier"], train, test, class_names,
        augmentation=cfg.augmentation, k=knn_k, n_geometry=n_geometry, seed=seed,
    )  # fmt: skip
confusion = {kind: np.array(m.pop("confusion_matrix")) for kind, m in metrics.items()}
table = pd.DataFrame(metrics).rename(columns=names)
table.round(4)

# %%
headline = ["accuracy", "knn_accuracy", "linear_probe_accuracy", "silhouette_cosine",
            "intra_class_cosine", "inter_class_cosine"]  # fmt: skip
fig = plots.metric_bars(
    {names[k]: {m: metrics[k][m] for m in headline} for k in metrics},
    title="Cross-entropy and SupCon encoders on the same test images",
    lower_is_better=["inter_class_cosine"],
)

# %%
# NBVAL_IGNORE_OUTPUT
# (metrics of models trained on this machine)
gap = table["SupCon"] - table["cross-entropy"]
for metric in ["accuracy", "knn_accuracy", "linear_probe_accuracy", "silhouette_cosine"]:
    higher = "SupCon" if gap[metric] > 0 else "cross-entropy" if gap[metric] < 0 else "neither"
    print(f"{metric:>22}: SupCon - cross-entropy = {gap[metric]:+.4f}  (higher: {higher})")
print("One seed each: a difference is a verdict only beyond the spread between seeds.")

# %% [markdown]
# ## Where the loss acts: the projection head, and centred features
#
# The table above reads each encoder's output, after its last ReLU: every coordinate is >= 0, so
# every pair of images has a cosine >= 0 and the similarities partly measure a shared offset. The
# SupCon loss is not computed there but one layer later, on the projection head's L2-normalised
# output. The same geometry (`evaluation.geometry`, on the first `n_geometry` test images) in the
# three spaces, as they come and with the mean embedding taken off (`centre=True`):

# %%
# NBVAL_IGNORE_OUTPUT
# (metrics of models trained on some machine)
geo_images, geo_labels = test[0][:n_geometry], test[1][:n_geometry]
supcon_models = runs["supcon"]["models"]
spaces = {
    "cross-entropy encoder": evaluation.embeddings(runs["cross_entropy"]["models"]["encoder"],
                                                   geo_images),
    "SupCon encoder": evaluation.embeddings(supcon_models["encoder"], geo_images),
    "SupCon projection head": evaluation.embeddings(supcon_models["encoder"], geo_images,
                                                    head=supcon_models["projection_head"]),
}  # fmt: skip
geometry = pd.DataFrame({
    (space, "centred" if centre else "as output"): evaluation.geometry(x, geo_labels, centre=centre)
    for space, x in spaces.items() for centre in (False, True)
}).T  # fmt: skip
geometry.round(3)

# %% [markdown]
# In the committed run (the shipped `full` models), the projection head's output is where
# SupCon's classes are tight and apart: silhouette 0.78 against 0.55 for its encoder's output,
# intra-class cosine 0.96 against 0.86, inter-class 0.25 against 0.48. That is the space the loss
# shapes. One layer earlier, where the probe, the kNN vote and this notebook's other metrics read,
# the two encoders are alike: silhouettes 0.55 (SupCon) and 0.52 (cross-entropy). Centring shows
# how much of the raw similarities is the shared offset of features that are all >= 0: the
# inter-class cosine falls from about 0.5 to -0.07 or -0.08 for both encoders, and their intra-class
# cosines (0.69 and 0.73 centred) stay within 0.04 of each other.

# %% [markdown]
# ## Look at the embeddings: t-SNE and PCA
#
# The same `n_plot` test images, embedded by each encoder, then squashed to 2-d. **PCA** is a
# linear projection: distances along its axes are real, but it shows only the two directions of
# largest variance. **t-SNE** (on cosine distances) keeps neighbourhoods and discards the rest:
# tight, separate islands mean each image's nearest neighbours share its class, but the sizes of the
# islands and the gaps between them carry no meaning.

# %%
subset = slice(0, n_plot)
plot_labels = test[1][subset]
emb = {names[k]: evaluation.embeddings(r["models"]["encoder"], test[0][subset])
       for k, r in runs.items()}  # fmt: skip
pca_axes = {}
for name, x in emb.items():
    shares = evaluation.pca_variance(x)
    pca_axes[name] = tuple(f"principal axis {i + 1} ({share:.0%} of the variance)"
                           for i, share in enumerate(shares))  # fmt: skip
for method, method_name in [("tsne", "t-SNE"), ("pca", "PCA")]:
    points = {name: evaluation.project_2d(x, method, seed=seed) for name, x in emb.items()}
    title = f"{method_name} of {n_plot} test embeddings"
    fig = plots.embedding_scatter(points, plot_labels, class_names, title=title,
                                  axis_labels=pca_axes if method == "pca" else None)  # fmt: skip
    fig.savefig(out_dir / f"{method}.png", dpi=100)

# %% [markdown]
# Both pictures say the same of both encoders: trousers, bags, and the footwear (sandals, sneakers,
# ankle boots) form islands of their own, while T-shirts, shirts, pullovers, coats and dresses
# touch or overlap, the classes the confusion matrices below mix up. The first two principal axes
# carry 30% and 14% of the variance of the cross-entropy embeddings, 23% and 13% of SupCon's
# (axis labels): a flat picture shows less of SupCon's representation, consistent with its lower
# (more uniform) uniformity value in the table.

# %% [markdown]
# ## Similarity between every pair of images
#
# Each pixel is the cosine similarity of two test images' embeddings, with the images sorted by
# class. A representation that clusters by class shows bright blocks on the diagonal (similar
# within a class); off-diagonal bright blocks are classes the encoder finds alike. Read the colour
# bar before the colours: these are encoder outputs after a ReLU, so no cosine is below 0 and the
# darkest pixels are still well above it.

# %%
few = slice(0, n_plot // 4)
fig = plots.similarity_heatmaps({name: x[few] for name, x in emb.items()}, plot_labels[few],
                                class_names)  # fmt: skip
fig.savefig(out_dir / "similarity.png", dpi=100)

# %% [markdown]
# ## Where each model goes wrong
#
# Rows are the true class, columns the predicted one, each row normalised to 1. On Fashion-MNIST
# both models fail in the same place: shirts, T-shirts/tops, pullovers and coats are all upper-body
# garments with similar silhouettes at 28x28.

# %%
fig = plots.confusion_matrices({names[k]: m for k, m in confusion.items()}, class_names)
fig.savefig(out_dir / "confusion.png", dpi=100)

# %%
# NBVAL_IGNORE_OUTPUT
# (metrics of models trained on this machine)
per_class = table.loc[[f"accuracy/{c}" for c in class_names]]
per_class.index = class_names
per_class.assign(difference=per_class["SupCon"] - per_class["cross-entropy"]).round(4)

# %% [markdown]
# ## What the numbers say
#
# The numbers quoted here are those of the committed run: the shipped `full` models (all 55,000
# training images beside the validation set, 15 epochs, seed 0), measured once on the test set,
# so one draw of each recipe, not an average. Over three seeds (the README's records, notebook
# 03's table) SupCon + probe is ahead on validation and the two are not separated on the test set.
#
# - **Accuracy, kNN and the linear probe** agree to within half a point: 93.05% against 92.96%
#   with each model's own classifier, 93.13% against 92.94% by a 20-neighbour vote, and 93.05%
#   against 93.40% by the logistic-regression probe (cross-entropy ahead there). SupCon's encoder
#   never saw a label through a classifier, only through which views to pull together, yet a kNN
#   vote on it is as good as a linear probe: its classes are clustered, not merely separable.
# - **Class similarities and silhouette**: at the encoder's output SupCon's silhouette is a little
#   higher (0.546 against 0.524), because its classes are further apart (inter-class cosine 0.48
#   against 0.52), though not tighter (intra-class 0.86 against 0.88). Its projection head's
#   output, where the loss acts, is far more clustered (silhouette 0.78, the geometry table).
# - **Alignment and uniformity**: SupCon's two views of an image land further apart (alignment
#   0.145 against 0.104: less invariant to the augmentation at the encoder's output), and its
#   embeddings spread more evenly over the sphere (uniformity -1.66 against -1.49).
# - **Per class**: SupCon is ahead on T-shirts (by 2.7 points), sandals and ankle boots (1.2
#   each), and behind on shirts (1.6), dresses and sneakers (1.0 each); shirts stay the hardest
#   class for both (76% and 78%).
#
# So at this budget both recipes give strongly clustered representations, and their accuracies
# are within what another seed moves. Where SupCon differs is in the geometry: classes further
# apart and more uniform at the encoder, and tight clusters at the projection head.

# %% [markdown]
# ## Try it
#
# - **The small budget.** Run notebook 03, then this one with `models_from="run_dir"`: which of
#   the gaps in the comparison table shrink or change sign with 20,000 images and 6 epochs?
# - **How many neighbours.** `knn_k=1` and `knn_k=100`: which encoder's kNN accuracy depends more
#   on k, and what does that say about how tight its classes are?
# - **More points.** `n_plot=5000`: do the t-SNE islands stay where they are, and does the PCA's
#   share of the variance change?

# %%
# NBVAL_IGNORE_OUTPUT
# (a wall time)
results = {
    "kind": "evaluation",
    "metrics": metrics,
    "confusion_matrices": {kind: m.tolist() for kind, m in confusion.items()},
    "config": {
        "knn_k": knn_k,
        "n_geometry": n_geometry,
        "n_plot": n_plot,
        "training": runs["supcon"]["config"],
    },  # fmt: skip
    "wall_time_s": round(time.perf_counter() - started, 1),
}
saved = records.write_results(out_dir, results)
print(f"evaluation took {results['wall_time_s']:.0f} s; results in {saved}")
