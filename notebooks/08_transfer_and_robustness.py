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
# # How far the representations carry: few labels, and corrupted images
#
# Clean test accuracy is one number. Two more questions about the encoders of notebook 03, with
# no training beyond a few tiny runs: how few labels does a linear probe need to read their
# classes, and how much accuracy survives when the test images are corrupted (the paper's Fig. 3
# measures SupCon on ImageNet-C)?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/supcon-tutorial/supcon/blob/main/notebooks/08_transfer_and_robustness.ipynb)
#
# **What you will learn**
#
# - how to measure label efficiency: linear probes fitted on 1 to all labels per class, several
#   random picks each, against the same encoder trained from scratch on those labels alone;
# - how to build a corrupted test set in code (Fashion-MNIST-C style: noise, blur, contrast,
#   brightness, pixelation, occlusion, rotation, translation, at five severities each);
# - how ImageNet-C summarises robustness: the corruption error relative to a baseline (mCE).
#
# **Run time**: 278 s with papermill on a 2-core AMD EPYC (measured 2026-12-06), six small
# runs trained from scratch included, when notebook 03 has saved its models in `run_dir`
# (otherwise they are trained first, as in notebook 03, about 6 minutes more at the defaults).

# %% tags=["parameters"]
# One line per parameter, `name: type = default  # help`: papermill reads them so.
# fmt: off
from typing import Optional  # papermill reads `X | None` as no parameter

preset: str = "quick"  # training preset of notebook 03's models, if run_dir has none (trained here as in 03)
n_train: Optional[int] = None  # their training images, if trained here; None: the preset's
batch_size: Optional[int] = None  # their batch size, if trained here; None: the preset's
epochs: Optional[int] = None  # their training epochs, if trained here; None: the preset's
probe_epochs: Optional[int] = None  # SupCon's linear probe's epochs, if trained here; None: the preset's
seed: int = 0  # seeds Python, numpy, TensorFlow, the label picks and the corruptions
per_class: str = "1,5,10,50,100,500,all"  # labels per class of the probes, comma-separated; "all": every label
n_seeds: int = 3  # random picks of the labelled images for each size (probes)
scratch_per_class: str = "1,5,10,50,100,500"  # labels per class of the models trained from scratch (the pick of `seed`); "" for none
n_robust: int = 2000  # test images corrupted (the first ones of the test split)
run_dir: str = "runs/default"  # run folder: models of notebook 03; results go to run_dir/transfer_and_robustness
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
import pandas as pd

from supcon_utils import corruptions, evaluation, plots, records, training

keras.utils.set_random_seed(seed)
out_dir = Path(run_dir) / "transfer_and_robustness"
out_dir.mkdir(parents=True, exist_ok=True)
started = time.perf_counter()


def sizes(text: str) -> list[Optional[int]]:
    """ "1,5,all" -> [1, 5, None]."""
    return [None if s.strip() == "all" else int(s) for s in text.split(",") if s.strip()]


# %% [markdown]
# ## Load both models
#
# As in notebook 04: `training.load_run` reads notebook 03's finished runs from `run_dir`, whatever
# parameters trained them (and trains them at this notebook's parameters only if they are
# missing). Both encoders were trained **with labels** on the preset's training images (20,000 at
# `quick`): SupCon's positives are images of one class. So the few-label
# curves below do not say how SupCon learns from few labels; they say how few labels a linear probe
# needs to read the classes out of each representation, which is how clearly each one has
# separated them.

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies of models trained on this machine, or trained here if missing)
if_missing = training.config(preset, **training.given(
    n_train=n_train, batch_size=batch_size, epochs=epochs, probe_epochs=probe_epochs, seed=seed
))  # fmt: skip
runs = {"cross-entropy": training.load_run(run_dir, "cross_entropy", train_if_missing=if_missing),
        "SupCon": training.load_run(run_dir, "supcon", train_if_missing=if_missing)}  # fmt: skip
cfg = training.shared_data(runs.values())
# Nothing is chosen here, so the report is on the test images (the validation ones are unused).
(x_train, y_train), _, (x_test, y_test) = training.load_data(cfg)
for name, result in runs.items():
    print(
        f"{name:>13}: validation accuracy {result['metrics']['val_accuracy']:.4f}, "
        f"test accuracy {result['metrics']['test_accuracy']:.4f}"
    )

# %% [markdown]
# ## Label efficiency
#
# The encoders' training images (the preset's subset) go through each frozen encoder once. Then,
# for each number of labels per class, a random pick of that many of them per class fits a
# logistic-regression probe on the standardised features (`evaluation.label_efficiency`, the same
# picks for both encoders), scored on the 10,000 test images; "all" is every one of them, the
# probe of notebook 04. Against them: the same small encoder and a linear head trained from
# scratch by cross-entropy on the same labelled images alone, for the same epochs as notebook
# 03's models (`training.Config.labels_per_class`), in batches of at most all the labelled images:
# with one label per class, an epoch is one step of 10 images. Each is a training run, so only
# the pick of `seed` is trained from scratch (a line without a band).

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies and times vary with the machine)
features = {
    name: tuple(evaluation.embeddings(result["models"]["encoder"], x) for x in (x_train, x_test))
    for name, result in runs.items()
}
label_table = evaluation.label_efficiency(
    features, y_train, y_test, per_class=sizes(per_class), seeds=range(seed, seed + n_seeds)
)
scratch_rows = []
for k in sizes(scratch_per_class):
    few = dataclasses.replace(cfg, labels_per_class=k, batch_size=min(cfg.batch_size, 10 * k))
    scratch = training.run("cross_entropy", few, out_dir / f"scratch_{k}", verbose=0)
    scratch_rows.append({"encoder": "trained from scratch", "per_class": k, "seed": seed,
                         "accuracy": scratch["metrics"]["test_accuracy"]})  # fmt: skip
label_table = pd.concat([label_table, pd.DataFrame(scratch_rows)], ignore_index=True)
fig = plots.label_efficiency_curves(label_table)
fig.savefig(out_dir / "label_efficiency.png", dpi=100)
label_summary = label_table.pivot_table(index="per_class", columns="encoder", values="accuracy",
                                        aggfunc="mean")  # fmt: skip
label_summary.round(4)

# %% [markdown]
# In the committed run both frozen encoders need very few labels: one labelled image per class
# already gives a probe 79 to 81% test accuracy (means of three picks), five give 83 to 86%, and
# 500 per class come within 1.1 points of the probe on all 20,000 labels (88.6% against 89.7% for
# SupCon, 89.2% against 89.9% for cross-entropy). Cross-entropy's features are ahead of SupCon's
# at every size here, by 0.2 to 2.1 points, on one seed of each encoder. The same encoder trained
# from scratch on those labels alone, for the same 6 epochs, is far behind: 17% with one image per
# class, 83% with 500 (one pick each; with fewer than 26 images per class an epoch is a single
# step, so these models are barely trained). At this budget the labels that shaped each encoder
# carry over to a few-label probe, and SupCon's representation does not carry them better than
# cross-entropy's.

# %% [markdown]
# ## A corrupted test set, made in code
#
# `supcon_utils.corruptions` corrupts uint8 images deterministically under a seed, at severities 1
# to 5 (0 is the clean image): four kinds of ImageNet-C, its brightness, an occlusion, and
# MNIST-C's rotation and translation, with parameters rescaled for 28x28 images (the table is in
# its docstring). One test image under each:

# %%
example = x_test[:1]
fig = plots.corruption_examples(
    {name: [corruptions.corrupt(example, name, s, seed)[0] for s in range(6)]
     for name in corruptions.CORRUPTIONS}
)  # fmt: skip
fig.savefig(out_dir / "corruptions.png", dpi=100)

# %% [markdown]
# ## Accuracy under corruption
#
# Each model classifies the first `n_robust` test images with its own classifier (the
# cross-entropy head; SupCon's linear probe from notebook 03), clean and under every corruption and
# severity. The last panel is the mean over corruptions, the curve of the paper's Fig. 3.


# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies vary with the machine)
def predictor(result):
    """uint8 images -> predicted labels, through the encoder and its linear head."""
    encoder, head = result["models"]["encoder"], result["models"]["classifier"]

    def predict(images):
        return head.predict(evaluation.embeddings(encoder, images), verbose=0).argmax(axis=1)

    return predict


images, labels = x_test[:n_robust], y_test[:n_robust]
robust = {name: corruptions.robustness_table(predictor(result), images, labels, seed=seed)
          for name, result in runs.items()}  # fmt: skip
fig = plots.robustness_curves(robust)
fig.savefig(out_dir / "robustness.png", dpi=100)
accuracy = pd.concat(
    {name: t.pivot(index="corruption", columns="severity", values="accuracy")
     for name, t in robust.items()}, axis=1,
)  # fmt: skip
accuracy.round(3)

# %% [markdown]
# Both models lose accuracy in the same places: brightness (above severity 2 the background is no
# longer black, which neither saw in training), contrast at severity 5, rotation beyond 15 degrees,
# pixelation and large occlusions; blur costs little. Read the table and the panels before the
# summary below: the differences between the two models are a few points, except for pixelation
# at severities 4 and 5, where SupCon is 10 and 13 points behind.

# %% [markdown]
# ## Corruption error relative to cross-entropy
#
# ImageNet-C's summary: a model's errors on a corruption, summed over the five severities, divided
# by the baseline's (`CE`; its mean over corruptions is the `mCE`, 1.00 for the baseline itself).
# The `relative CE` divides instead the rise of the error above each model's clean error, so it
# counts only what the corruption costs. Below 1: more robust than cross-entropy.

# %%
# NBVAL_IGNORE_OUTPUT
# (ratios of accuracies measured on this machine)
errors = corruptions.corruption_errors(robust, baseline="cross-entropy")
errors.round(3)

# %% [markdown]
# On these 2,000 test images SupCon's corruption errors are lower than cross-entropy's only for
# rotation (0.97) and translation (0.96), level for blur (1.01), and higher for contrast (1.08),
# pixelation (1.11), occlusion (1.13), brightness (1.15) and Gaussian noise (1.28): an mCE of
# 1.087, worse than cross-entropy's 1.00. Counting only what each corruption costs above the clean
# error (SupCon's clean accuracy here is 0.4 points lower), its relative mCE is 1.105, worse too.
# That is not the clear gain of the paper's Fig. 3 (ResNet-50s on ImageNet-C, trained for
# hundreds of epochs): at this budget, and on one seed of each encoder, SupCon's representation
# is the less robust of the two on most corruptions.

# %%
# NBVAL_IGNORE_OUTPUT
# (a wall time)
results = {
    "kind": "transfer_and_robustness",
    "metrics": {
        **{f"probe@{k}/{enc}": float(v) for (k, enc), v in label_summary.stack().items()},
        **{f"mCE/{name}": float(errors.loc["mean", (name, "CE")]) for name in robust},
        **{
            f"relative_mCE/{name}": float(errors.loc["mean", (name, "relative CE")])
            for name in robust
        },
        **{
            f"mean_corrupted_accuracy/{name}": float(t[t.corruption != "clean"].accuracy.mean())
            for name, t in robust.items()
        },
    },  # fmt: skip
    "config": {
        "per_class": per_class,
        "n_seeds": n_seeds,
        "scratch_per_class": scratch_per_class,
        "n_robust": n_robust,
        "training": runs["SupCon"]["config"],
    },  # fmt: skip
    "wall_time_s": round(time.perf_counter() - started, 1),
}
saved = records.write_results(out_dir, results)
print(f"notebook took {results['wall_time_s']:.0f} s; results in {saved}")
