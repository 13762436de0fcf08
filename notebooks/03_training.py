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
# # Train: SupCon then a linear probe, against a cross-entropy baseline
#
# Train one encoder with the supervised contrastive loss and a linear classifier on its frozen
# features, and the same encoder with plain cross-entropy, at the same augmentation and budget.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/supcon-tutorial/supcon/blob/main/notebooks/03_training.ipynb)
#
# **What you will learn**
#
# - the two-stage SupCon recipe: contrastive pretraining of encoder + projection head, then a
#   linear probe on the encoder's features;
# - the cross-entropy baseline it is measured against;
# - how to make a training run survive a dead Colab session (`BackupAndRestore`) and how a
#   finished run is reloaded instead of retrained;
# - how to read the two training curves, and validation accuracy against training time;
# - why every choice is made on a validation split and the test set is scored once.
#
# **Run time** at the defaults (`preset="quick"`: 20,000 Fashion-MNIST images, 6 epochs each):
# see the wall times printed below, measured on a 2-core CPU; on a Colab GPU use
# `preset="gpu"` (CIFAR-10, ResNet-18, 200 epochs). A second run loads the models from `run_dir`.

# %% tags=["parameters"]
# One line per parameter, `name: type = default  # help`: papermill reads them so.
# fmt: off
from typing import Optional  # papermill reads `X | None` as no parameter

preset: str = "quick"  # training preset: "quick" (CPU, minutes), "full" (CPU, all 55k images), "gpu"
dataset: Optional[str] = None  # dataset of supcon_utils.data; None keeps the preset's ("fashion_mnist")
encoder: Optional[str] = None  # "resnet_small" (CPU), "resnet18_cifar" or "resnet50v2"; None: the preset's
augmentation: Optional[str] = None  # the views' augmentation, "grayscale28" or "color32"; None: the preset's
n_train: Optional[int] = None  # training images (a stratified subset); None: the preset's (quick: 20,000)
batch_size: Optional[int] = None  # images per batch; None: the preset's (quick: 256)
epochs: Optional[int] = None  # epochs of SupCon pretraining and of the CE baseline; None: the preset's
probe_epochs: Optional[int] = None  # epochs of the linear probe; None: the preset's
temperature: Optional[float] = None  # SupCon temperature tau; None: the preset's (0.1)
variant: Optional[str] = None  # SupCon loss, "out" (eq. 2) or "in" (eq. 3); None: the preset's ("out")
classes_per_batch: Optional[int] = None  # class-balanced batches of this many classes; None: random batches
learning_rate: Optional[float] = None  # peak learning rate; None: the preset's
optimizer: Optional[str] = None  # "adamw" or "sgd"; None: the preset's
warmup_epochs: Optional[float] = None  # linear warm-up before cosine decay; None: the preset's
jit_compile: Optional[bool] = None  # XLA for the train step; None: the preset's (off on CPU, on for "gpu")
seed: int = 0  # seeds Python, numpy, TensorFlow and the augmentation layers
n_seeds: int = 1  # seeds of the budget figure (seed, seed + 1, ...): each one more trains both recipes again
run_dir: str = "runs/default"  # run folder: models and results in run_dir/supcon, run_dir/cross_entropy
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
import dataclasses
import math

import keras
import pandas as pd

from supcon_utils import plots, training

keras.utils.set_random_seed(seed)

# %% [markdown]
# ## Choose the configuration
#
# A preset fixes every knob; any parameter above that is not `None` overrides it (`training.given`
# keeps those). Both recipes below use this one configuration, so they see the same images,
# augmentation and epochs.

# %%
cfg = training.config(preset, **training.given(
    dataset=dataset,
    encoder=encoder,
    augmentation=augmentation,
    n_train=n_train,
    batch_size=batch_size,
    epochs=epochs,
    probe_epochs=probe_epochs,
    temperature=temperature,
    variant=variant,
    classes_per_batch=classes_per_batch,
    learning_rate=learning_rate,
    optimizer=optimizer,
    warmup_epochs=warmup_epochs,
    jit_compile=jit_compile,
    seed=seed,
))  # fmt: skip
pd.Series(dataclasses.asdict(cfg), name=preset).to_frame()

# %% [markdown]
# ## Train the cross-entropy baseline
#
# Encoder, then a linear layer to the 10 classes, trained end to end with softmax cross-entropy on
# one augmented view per image. `training.run` saves a backup every epoch: if the session dies,
# running this cell again resumes from the last finished epoch; once the run is finished, it is
# loaded from `run_dir/cross_entropy` instead of retrained.

# %%
# NBVAL_IGNORE_OUTPUT
# (training logs, times and accuracies vary with the machine)
ce = training.run("cross_entropy", cfg, run_dir)
print(
    f"cross-entropy: validation accuracy {ce['metrics']['val_accuracy']:.4f}, "
    f"trained in {ce['wall_time_s']:.0f} s"
)

# %% [markdown]
# ## Pretrain with SupCon, then fit a linear probe
#
# Stage 1 trains encoder + projection head (an MLP to 128 L2-normalised dimensions) with
# $\mathcal{L}^{sup}_{out}$ on two views of each image. Stage 2 throws the projection head away,
# freezes the encoder, and fits a linear classifier on its 128-dimensional features: the
# accuracy of that probe measures how linearly separable the learned representation is.

# %%
# NBVAL_IGNORE_OUTPUT
# (training logs, times and accuracies vary with the machine)
supcon = training.run("supcon", cfg, run_dir)
print(
    f"SupCon + linear probe: validation accuracy {supcon['metrics']['val_accuracy']:.4f}, "
    f"trained in {supcon['wall_time_s']:.0f} s"
)

# %% [markdown]
# ## Read the training curves
#
# The cross-entropy loss falls towards 0 as the training accuracy rises. The SupCon loss cannot:
# even a perfect embedding leaves each anchor's softmax shared among its positives, so its floor
# is well above 0; the dashed line is $\ln(2N-1)$, the value of a *collapsed* embedding (all views
# mapped to one point). A curve that starts near that line and falls away from it is learning; one
# that stays on it has collapsed.
#
# Each epoch also ends with a validation accuracy (`training.ValAccuracy`, logged in
# `history.csv`), on 5,000 training images held out from training (`Config.n_val`, the same for
# every seed): the classifier's for cross-entropy; for SupCon, which has no classifier until the
# probe, a 20-nearest-neighbour vote of the encoder's features against 10,000 training images'
# (seconds per epoch, where a probe would take a minute). Everything chosen is chosen on these;
# the test set is scored once, by the finished models, below.

# %%
collapse = math.log(2 * cfg.batch_size - 1)
fig = plots.training_curves(
    {
        "cross-entropy": training.history(f"{run_dir}/cross_entropy"),
        "SupCon (pretraining)": training.history(f"{run_dir}/supcon"),
    },
    reference_lines={"SupCon (pretraining)": collapse},
    val_labels={"SupCon (pretraining)": "validation accuracy (k-NN)"},
)

# %% [markdown]
# ## Compare: validation, then the test set once

# %%
# NBVAL_IGNORE_OUTPUT
# (training logs, times and accuracies vary with the machine)
table = pd.DataFrame(
    {
        "validation accuracy": [ce["metrics"]["val_accuracy"], supcon["metrics"]["val_accuracy"]],
        "test accuracy": [ce["metrics"]["test_accuracy"], supcon["metrics"]["test_accuracy"]],
        "training time (s)": [ce["wall_time_s"], supcon["wall_time_s"]],
        "epochs": [ce["epochs_completed"], supcon["epochs_completed"]],
    },
    index=["cross-entropy", "SupCon + linear probe"],
)
table.round(4)

# %% [markdown]
# At this small budget the two recipes land within about half a point of each other. On
# validation, where every choice is made, cross-entropy is ahead in this run (89.8% against 89.4%);
# the test set, scored once, says the same (89.5% against 88.9%). One seed cannot say whether the
# order holds: the README's records of this notebook at seeds 0, 1 and 2 (`python -m
# supcon_utils.results make quick`) find cross-entropy ahead on validation beyond the noise and
# the two not separated on the test set. SupCon spends each step on two views, learns no
# classifier until the probe, and its loss is still falling (right panel above), so it is the
# recipe further from convergence; the paper trains for hundreds of epochs. The `full` preset
# (`papermill -p preset full`, or `make reproduce NAME=full PARAMS="-p preset=full"`) trains on
# all 55,000 images left beside the validation set, for 15 epochs at the same learning rate.
# Notebook 04 will look past accuracy, at what the embeddings learned.

# %% [markdown]
# ## Accuracy against training time
#
# SupCon's step costs about twice cross-entropy's (two views), so equal epochs are not an equal
# budget. The same per-epoch validation accuracies, against the seconds spent training: the
# figure a reader with a fixed budget needs. With `n_seeds` above 1 (e.g. `papermill -p n_seeds 3`), both
# recipes are trained again at each further seed (into `run_dir/seed<k>`, resumable), and the
# lines become means with a band of one standard deviation; with one seed they are one draw.

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies and times vary with the machine)
budget = training.budget_study(cfg, run_dir, seeds=range(seed, seed + n_seeds))
fig = plots.budget_curves(budget)
crossed = plots.crossings(budget)
print("mean curves cross at", [f"{t:.0f} s" for t in crossed] if crossed else "no point")
finals = budget.groupby(["kind", "seed"])[
    ["final_val_accuracy", "final_test_accuracy", "wall_time_s"]
].first()
finals.groupby("kind").agg(["mean", "std"]).round(4)

# %% [markdown]
# In the committed run (one seed), counted in epochs SupCon's k-NN accuracy is ahead for the first
# four (83.4% against cross-entropy's 81.3% after the first) and cross-entropy overtakes it in the
# fifth; it ends at 89.8% against 89.0%. Counted in seconds, SupCon is ahead only until the curves
# cross (the dotted line, 44 s): cross-entropy finishes its 6 epochs at 89.8% in about 100 s of
# training, when SupCon's k-NN accuracy is at 87.2% (86 s); SupCon reaches its 89.0% at about
# 164 s. Both curves are still rising, so neither recipe has reached its plateau at this budget,
# and one seed gives no band: run with `n_seeds=3` for one (the README's records are that run).
