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
# # Joint training and fine-tuning: the other routes from SupCon to a classifier
#
# The paper trains in two stages: SupCon shapes the encoder, then a linear classifier is fitted on
# the frozen features. Two routes it leaves open: **train both objectives at once**, in one model
# with a projection head and a classifier head, and **fine-tune** the pretrained encoder together
# with its classifier by cross-entropy.
# How much does each give at the same budget?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/supcon-tutorial/supcon/blob/main/notebooks/07_joint_and_finetune.ipynb)
#
# **What you will learn**
#
# - how a Keras model with two outputs trains a weighted sum of two losses:
#   $\mathcal{L} = \mathcal{L}_{CE} + \lambda\,\mathcal{L}^{sup}_{out}$ (`training.hybrid_model`);
# - how to fine-tune a SupCon encoder end to end at a low learning rate, and what it changes;
# - how the four routes compare on a linear readout (their own classifier) and on the geometry of
#   their features (a 20-NN vote).
#
# **The budget**: notebook 05's (4,000 Fashion-MNIST training images, 3 epochs, batch 256), every
# route the same number of epochs, at three seeds; the SupCon runs are notebook 05's (the same
# configuration). Like notebook 05's, the runs are committed as records
# (`results/sweeps/ablations`), which this notebook reads at its defaults; `records_dir=""`
# trains them here: 9.5 minutes of training for its 21 runs (fine-tuning's SupCon stage is a run
# of its own) on a 2-core Intel Xeon (2026-12-07, the records' times).

# %% tags=["parameters"]
# One line per parameter, `name: type = default  # help`: papermill reads them so.
# fmt: off
preset: str = "quick"  # training preset the runs start from (see notebook 03)
n_train: int = 4000  # training images of every run (a stratified subset); notebook 05's default
epochs: int = 3  # training epochs of every route (fine-tuning: SupCon epochs + fine-tuning epochs)
batch_size: int = 256  # batch size of every run
probe_epochs: int = 40  # epochs of the SupCon runs' linear probe (on frozen features)
weights: str = "0.1,0.5,1"  # lambda of the hybrid runs (cross-entropy plus lambda times SupCon), comma-separated
finetune_epochs: int = 1  # fine-tuning: epochs of end-to-end cross-entropy, taken out of `epochs`
finetune_lr: float = 1e-4  # fine-tuning: peak learning rate (cosine decay to 0)
n_seeds: int = 3  # seeds of every route (seed, seed + 1, ...): the verdicts' intervals
seed: int = 0  # seeds Python, numpy, TensorFlow, the subset and the augmentation
run_dir: str = "runs/default"  # run folder: runs go to run_dir/sweeps (shared with 05), results to run_dir/joint_and_finetune
records_dir: str = "../results/sweeps"  # committed records: a run recorded there at its settings is read, not trained (empty string: train all)
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
import time
from pathlib import Path

import keras
import numpy as np
from IPython.display import display

from supcon_utils import plots, records, sweep, training

keras.utils.set_random_seed(seed)
sweep_dir = Path(run_dir) / "sweeps"  # the runs, shared with notebook 05
out_dir = Path(run_dir) / "joint_and_finetune"  # this notebook's figure and results.json
out_dir.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()
if not 0 < finetune_epochs < epochs:
    raise ValueError(f"finetune_epochs ({finetune_epochs}) must be between 0 and epochs ({epochs})")

# %% [markdown]
# ## Four routes, one budget
#
# | route | what trains the encoder | the classifier |
# |---|---|---|
# | cross-entropy | CE on one view per image | trained with it |
# | SupCon + probe (the paper) | SupCon on two views | fitted afterwards on frozen features |
# | SupCon + fine-tune | SupCon for `epochs - finetune_epochs`, then CE end to end at `finetune_lr` | the probe, then trained with the encoder |
# | hybrid, $\lambda$ | CE on both views $+ \lambda$ SupCon, one stage | trained with it |
#
# The hybrid model (`models.HybridModel`) returns the projections and the logits of every view;
# `compile(loss={...}, loss_weights={"projection": lambda, "logits": 1})` adds the two losses,
# so $\lambda = 0$ is cross-entropy on two views per image (a test checks that its step is the
# cross-entropy model's step). Fine-tuning spends its epochs out of the same budget: SupCon for
# `epochs - finetune_epochs`, then `finetune_epochs` of cross-entropy, whose learning rate is
# 20 times lower than the recipe's so that the pretrained features are adjusted, not replaced.

# %%
# NBVAL_IGNORE_OUTPUT
# (a progress bar; accuracies and times vary with the machine)
base = training.config(preset, n_train=n_train, epochs=epochs, batch_size=batch_size,
                       probe_epochs=probe_epochs, finetune_epochs=finetune_epochs,
                       finetune_lr=finetune_lr, seed=seed)  # fmt: skip
routes = {
    "cross-entropy": {"kind": "cross_entropy"},
    "SupCon + probe": {},
    "SupCon + fine-tune": {"kind": "finetune", "epochs": epochs - finetune_epochs},
    **{f"hybrid, λ = {w}": {"kind": "hybrid", "supcon_weight": float(w)}
       for w in weights.split(",")},
}  # fmt: skip
points = [(route, {**overrides, "seed": s}) for route, overrides in routes.items()
          for s in range(seed, seed + n_seeds)]  # fmt: skip
table = sweep.config_sweep([p for _, p in points], base, sweep_dir,
                           table_file="joint_and_finetune.csv", records=records_dir or None)  # fmt: skip
table.insert(0, "route", [route for route, _ in points])
if table.error.notna().any():
    print(table[table.error.notna()][["route", "error"]].to_string(index=False))

# %% [markdown]
# Each run's own classifier gives `val_accuracy` (compared) and `test_accuracy` (reported). For
# the geometry of the features, every encoder gets the same 20-NN vote after training
# (`training.knn_scorer`): cosine similarity between the validation (then test) images' features
# and those of the 4,000 training images, as in notebook 04.

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies and times measured on this machine)
table = table.assign(training_s=table.wall_time_s)
# Compared on validation (5,000 held-out training images); the table adds the test accuracies.
metrics = {"val_accuracy": "own classifier", "knn_val_accuracy": "20-NN"}
fig = plots.ablation_bars(table, "route", metrics)
fig.savefig(out_dir / "routes.png", dpi=100)
display(table.groupby("route", sort=False)[[*sweep.METRICS, "training_s"]].mean().round(4))
sweep.verdicts_per_metric(table, "route", "cross-entropy", metrics).round(4)

# %% [markdown]
# Over three seeds, on validation, the one-stage hybrid and cross-entropy are level: 78.4%, 78.2%
# and 77.9% at $\lambda$ = 0.1, 0.5 and 1 against 78.1% for cross-entropy's own classifier, none
# separated. SupCon + probe (72.5%) and fine-tuning (71.4%) are behind cross-entropy, by 5.6 and
# 6.7 points, on every seed: at this budget two of fine-tuning's three epochs went to SupCon, and
# one epoch of cross-entropy at a low learning rate does not catch up. The 20-NN vote orders the
# routes the same way: the hybrids 80.8% to 81.3%, cross-entropy 80.2%, SupCon 76.6%, fine-tuning
# 75.4%; there the hybrid at $\lambda = 0.5$ is ahead of cross-entropy (+1.1 points, interval
# +0.6 to +1.6), the other two not separated. Of the ten intervals, four exclude zero by several
# points (SupCon and fine-tuning, on both numbers) and this one by half a point; among ten
# intervals at 95% each, one such narrow miss is about what chance gives, so read it as a lead to
# test with more seeds, not a finding.
#
# The `training_s` column is each run's wall time, averaged over the seeds: 20 s for
# cross-entropy, 26 to 31 s for each hybrid, 36 s for SupCon + probe (shared with notebook 05),
# 17 s for fine-tuning's last epoch (its two SupCon epochs are a run of their own). At 3 epochs of
# 4,000 images they include each run's fixed costs (building and tracing the model, scoring), so
# they do not rank the routes' cost per step (`make bench` measures that). And the hybrid's
# classifier sees two augmented views of every image per epoch where cross-entropy's sees one, so
# what it gains may be the second view rather than SupCon: $\lambda = 0$ is that control
# (cross-entropy on both views), one parameter away: `-p weights 0,0.1,0.5,1`.

# %% [markdown]
# ## What each route trades
#
# - **Cross-entropy**: one stage, one view per image, the cheapest per epoch.
# - **SupCon + probe** (the paper): two stages, and the encoder never sees the classifier's loss;
#   a linear probe reads its classes from few labels as well as one reads cross-entropy's (the
#   `full` models, notebook 08), and the classifier costs seconds.
#   At this budget it is 5.6 points behind cross-entropy on validation over three seeds; at
#   larger budgets (notebook 03's records) cross-entropy is ahead on validation at `quick` and
#   SupCon + probe at `full`.
# - **SupCon + fine-tune**: worth it after a converged pretraining, where a few epochs of
#   end-to-end cross-entropy at a low learning rate adjust the features to the labels; at an
#   equal small budget it spends epochs that pretraining needed.
# - **Hybrid**: one stage, two heads and two losses on the same batch, about the cost of SupCon;
#   the SupCon term shapes the features and the cross-entropy term reads them out as they form.
#   Here $\lambda$ between 0.1 and 1 barely matters (78.4%, 78.2% and 77.9%), level with
#   cross-entropy on its classifier and about a point above it on 20-NN.

# %% [markdown]
# ## Try it
#
# - **The control.** `weights="0,0.1,0.5,1"`: $\lambda = 0$ trains cross-entropy on both views;
#   is the hybrid's lead over cross-entropy the SupCon term or the second view?
# - **Longer pretraining.** `epochs=6` with `finetune_epochs=1`: does fine-tuning overtake the
#   probe once pretraining has had more of the budget?
# - **A lower fine-tuning rate.** `finetune_lr=1e-5`: does the fine-tuned model stay closer to the
#   probe's accuracy, or move further from it?

# %%
# NBVAL_IGNORE_OUTPUT
# (a wall time)
results = {
    "kind": "joint_and_finetune",
    "metrics": {
        f"{row.route}/seed={row.seed}/{column}": float(row[column])
        for _, row in table.iterrows()
        for column in sweep.METRICS
        if np.isfinite(row[column])
    },  # fmt: skip
    "config": {"base": dataclasses.asdict(base), "weights": weights, "n_seeds": n_seeds},
    "wall_time_s": round(time.perf_counter() - started, 1),
}
saved = records.write_results(out_dir, results)
print(f"notebook took {results['wall_time_s']:.0f} s; results in {saved}")
