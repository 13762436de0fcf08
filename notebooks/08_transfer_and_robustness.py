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
# Clean test accuracy is one number. Two more questions about a SupCon and a cross-entropy
# encoder, with no training beyond a few small baselines: how few labels does a linear probe need
# to read their classes, and how much accuracy survives when the test images are corrupted (the
# paper's Fig. 3 measures SupCon on ImageNet-C)? By default the encoders are the `full` preset's
# models that come with the package (`supcon_utils.pretrained`, as in notebook 04);
# `models_from="run_dir"` reads notebook 03's instead.
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
# **Run time**: printed at the end (a few minutes on a 2-core CPU with the shipped models, the
# small from-scratch baselines included). With `models_from="run_dir"` and no finished runs of
# notebook 03 there, it trains them first, as 03 does (about 6 minutes more at `quick`).

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
seed: int = 0  # seeds Python, numpy, TensorFlow, the label picks and the corruptions
per_class: str = "1,5,10,50,100,500,all"  # labels per class of the probes, comma-separated; "all": every label
n_seeds: int = 3  # random picks of the labelled images for each size (probes)
scratch_per_class: str = "1,10"  # labels per class of the models trained from scratch (the pick of `seed`); "" for none
scratch_steps: int = 500  # optimizer steps of each model trained from scratch (at least; whole epochs)
n_robust: int = 2000  # test images corrupted (the first ones of the test split)
run_dir: str = "runs/default"  # run folder: results go to run_dir/transfer_and_robustness (and 03's models, see models_from)
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

from supcon_utils import (
    corruptions,
    data,
    evaluation,
    plots,
    pretrained,
    recipes,
    records,
    stats,
    training,
)

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
# As in notebook 04: `pretrained.models_dir` names the folder of finished runs (the shipped
# `full` models, or `run_dir` for notebook 03's), and `training.load_run` reads them whatever
# parameters trained them (training them at this notebook's parameters only if they are missing
# from `run_dir`). Both encoders were trained **with labels** on the preset's training images:
# SupCon's positives are images of one class. So the few-label curves below do not say how SupCon
# learns from few labels; they say how few labels a linear probe needs to read the classes out of
# each representation, which is how clearly each one has separated them.

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies of models trained on some machine, or here if missing with models_from="run_dir")
if_missing = training.config(preset, **training.given(
    n_train=n_train, batch_size=batch_size, epochs=epochs, probe_epochs=probe_epochs, seed=seed
))  # fmt: skip
models_at = pretrained.models_dir(models_from, run_dir)
runs = {"cross-entropy": training.load_run(models_at, "cross_entropy", train_if_missing=if_missing),
        "SupCon": training.load_run(models_at, "supcon", train_if_missing=if_missing)}  # fmt: skip
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
# scratch by cross-entropy on the same labelled images alone (`training.Config.labels_per_class`,
# the model of `recipes`' cross-entropy recipe, fitted here in one call), augmented, in batches of
# at most all of them, for at least `scratch_steps` optimizer steps (`training.epochs_for_steps`):
# with one label per class a step sees the same 10 images, so "the same epochs as the encoders"
# would be a handful of steps and no baseline at all. Each is a training run, so only the pick of
# `seed` is trained from scratch (a line without a band), and its steps and seconds are printed
# beside the probes' time.

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies and times vary with the machine)
features = {
    name: tuple(evaluation.embeddings(result["models"]["encoder"], x) for x in (x_train, x_test))
    for name, result in runs.items()
}
probes_started = time.perf_counter()
label_table = evaluation.label_efficiency(
    features, y_train, y_test, per_class=sizes(per_class), seeds=range(seed, seed + n_seeds)
)
probe_seconds = time.perf_counter() - probes_started
n_classes = int(y_train.max()) + 1


def from_scratch(k: int) -> dict:
    """The encoder and a linear head trained by cross-entropy on the `k` labelled images per class
    alone (the probes' pick of `seed`), augmented, for at least `scratch_steps` steps."""
    few = dataclasses.replace(
        cfg, labels_per_class=k, batch_size=min(cfg.batch_size, n_classes * k)
    )
    few = dataclasses.replace(few, epochs=training.epochs_for_steps(few, scratch_steps))
    x_few, y_few = training.load_data(few).train
    steps = few.epochs * training.steps_per_epoch(few)
    keras.utils.set_random_seed(seed)
    built = recipes.get("cross_entropy").build(few, x_few.shape[1:], n_classes, len(x_few), None)
    views = data.make_dataset(x_few, y_few, batch_size=few.batch_size, augmentation=few.augmentation,
                              shuffle=True, seed=seed, epochs=few.epochs)  # fmt: skip
    begin = time.perf_counter()
    built.model.fit(views, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    seconds = time.perf_counter() - begin
    test_images = data.make_dataset(x_test, y_test, batch_size=1024)
    accuracy = built.model.evaluate(test_images, verbose=0)[1]
    return {"encoder": "trained from scratch", "per_class": k, "seed": seed, "accuracy": accuracy,
            "steps": steps, "seconds": round(seconds, 1)}  # fmt: skip


scratch_rows = [from_scratch(k) for k in sizes(scratch_per_class)]
scratch_table = pd.DataFrame(scratch_rows)
print(f"{len(label_table)} probes fitted in {probe_seconds:.0f} s")
if scratch_rows:
    shown = scratch_table[["per_class", "steps", "seconds", "accuracy"]].round(4)
    print("trained from scratch:\n" + shown.to_string(index=False))
    scratch_table = scratch_table.drop(columns=["steps", "seconds"])
label_table = pd.concat([label_table, scratch_table], ignore_index=True)
fig = plots.label_efficiency_curves(label_table)
fig.savefig(out_dir / "label_efficiency.png", dpi=100)
label_summary = label_table.pivot_table(index="per_class", columns="encoder", values="accuracy",
                                        aggfunc="mean")  # fmt: skip
label_summary.round(4)

# %% [markdown]
# In the committed run both frozen encoders need very few labels: one labelled image per class
# already gives a probe 83.0% test accuracy (means of three picks), five give 89.9 to 90.1%, and
# 500 per class come within 1.3 points of the probe on all 55,000 labels (the last row, 5,500 per
# class: 93.1% for SupCon, 93.4% for cross-entropy). The two encoders are within 0.4 points of each
# other at every size. The same encoder trained from scratch on the labelled images alone, for 500
# steps, reaches 52.1% with one image per class and 70.2% with ten, far below either frozen
# encoder: those were trained with all 55,000 labels, which is what a few-label probe reads out.

# %% [markdown]
# Are the two encoders' probes apart at any size? The same picks of labelled images serve both, so
# their difference is paired by pick; its 95% interval over the `n_seeds` picks (`stats`) calls a
# size only when it excludes zero. It measures how much the pick of labels moves the difference,
# for these two trained encoders: one training seed each, so a separated row would still speak for
# these two models only.

# %%
# NBVAL_IGNORE_OUTPUT
# (accuracies vary with the machine)
probes = label_table[label_table.encoder != "trained from scratch"].pivot_table(
    index=["per_class", "seed"], columns="encoder", values="accuracy"
)
verdicts = {}
for k, picks in probes.groupby(level="per_class"):
    diff = stats.paired_difference(picks["SupCon"], picks["cross-entropy"])
    verdicts[k] = {"SupCon - cross-entropy": round(diff.mean, 4), "95% low": round(diff.low, 4),
                   "95% high": round(diff.high, 4), "picks": diff.n,
                   "verdict": stats.verdict(diff, "SupCon ahead", "cross-entropy ahead")}  # fmt: skip
pd.DataFrame.from_dict(verdicts, orient="index").rename_axis("labels per class")

# %% [markdown]
# In the committed run no size separates them: every interval over three picks contains zero (the
# last row, all labels, is one pick and has no interval). At this budget SupCon's representation
# does not carry its labels to a few-label probe better than cross-entropy's, nor worse.

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
fig.savefig(out_dir / "robustness.png", dpi=100, bbox_inches="tight")
accuracy = pd.concat(
    {name: t.pivot(index="corruption", columns="severity", values="accuracy")
     for name, t in robust.items()}, axis=1,
)  # fmt: skip
accuracy.round(3)

# %% [markdown]
# Both models lose accuracy in the same places: Gaussian noise (from severity 2), brightness and
# contrast at severity 5 (the background is no longer black, which neither saw in training),
# rotation from severity 3, pixelation and large occlusions; blur and translation cost least.
# Where they differ: SupCon is well behind under noise (48.4% against 69.0% at severity 2) and
# brightness 5 (58.2% against 66.4%), and ahead under contrast 5 (73.1% against 65.8%) and
# translation 5 (79.0% against 75.2%). The mean panel hides these opposite gaps.

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
# On these 2,000 test images SupCon's corruption errors are lower than cross-entropy's for
# contrast (0.84), translation (0.89), blur (0.95) and rotation (0.97), and higher for occlusion
# (1.05), pixelation (1.06), brightness (1.11) and Gaussian noise (1.18): an mCE of 1.007, level
# with cross-entropy's 1.00. Counting only what each corruption costs above the clean error, its
# relative mCE is 1.009, level too. That is not the clear gain of the paper's Fig. 3 (ResNet-50s on
# ImageNet-C, trained for hundreds of epochs): at this budget, on one seed of each encoder and one
# pass over 2,000 images, the two representations are about as robust overall, each ahead on
# different corruptions.

# %% [markdown]
# ## Try it
#
# - **A longer baseline.** `scratch_steps=2000`: does the from-scratch model close the gap to the
#   frozen encoders at 100 labels per class, and what does it cost in seconds?
# - **How noisy are few labels?** `per_class="1,2,3,5"` with `n_seeds=10`: how wide are the bands
#   at one label per class, and do the two encoders' bands overlap?
# - **The small budget.** `models_from="run_dir"` with notebook 03's `quick` models: is the order
#   of the two encoders under corruption the same?

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
