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
# # Contrastive augmentation: two views of every image
#
# Make the augmented views that SupCon contrasts, look at them, and see which pairs of views the
# loss treats as positives, with labels and without.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/supcon-tutorial/supcon/blob/main/notebooks/01_augmentation.ipynb)
#
# **What you will learn**
#
# - how a contrastive pipeline turns each image into two (or more) random *views* inside
#   `tf.data`, with Keras layers whose draws are keyed by image;
# - why each augmentation fits 28x28 grayscale clothing, and what changes for natural colour images;
# - how fast the pipeline is, so that it never starves training.
#
# **Run time**: 11 s with papermill on a 2-core AMD EPYC without GPU (measured 2026-12-06),
# most of it importing TensorFlow and timing the pipeline; a GPU does not change it.

# %% tags=["parameters"]
# One line per parameter, `name: type = default  # help`: papermill reads them so.
# fmt: off
seed: int = 0  # seeds Python, numpy, TensorFlow and the augmentation layers
dataset: str = "fashion_mnist"  # dataset of supcon_utils.data.load_dataset
augmentation: str = "grayscale28"  # the views' augmentation: "grayscale28" (clothing) or "color32" (CIFAR-10)
n_views: int = 2  # views per image
n_show: int = 10  # images shown in the grid of augmented views, one per class (10: all)
timing_images: int = 20_000  # images pushed through the pipeline to time it
batch_size: int = 256  # batch size of the timed pipeline (the training default)
run_dir: str = "runs/default"  # run folder: figures and results.json go to run_dir/01_augmentation
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

from supcon_utils import augment, data, plots, records

keras.utils.set_random_seed(seed)
out_dir = Path(run_dir) / "01_augmentation"
out_dir.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Load the images
#
# `load_dataset` returns uint8 arrays of shape `(N, H, W, C)`. Fashion-MNIST comes from a local,
# checksum-verified copy when the machine has one (see `data/README.md`; `make data` installs it),
# so nothing is downloaded; elsewhere, Colab included, Keras downloads it once and caches it.

# %%
# NBVAL_CHECK_OUTPUT
(x_train, y_train), (x_test, y_test) = data.load_dataset(dataset)
class_names = data.DATASETS[dataset].class_names
print("train", x_train.shape, x_train.dtype, "test", x_test.shape)
print("classes:", ", ".join(class_names))

# %% [markdown]
# ## Build the augmenter
#
# The augmentation for grayscale clothing is a milder cousin of SimCLR's:
#
# | augmentation | why it fits 28x28 grayscale clothing |
# |---|---|
# | random resized crop, 60-100% of the area | items are centred and scale-normalised, so small crops would cut away what tells a shirt from a coat |
# | horizontal flip | a garment mirrored is the same garment; a vertical flip is not (shoes never stand on their heads) |
# | brightness and contrast jitter (p = 0.8) | fabric tone and lighting vary; there is no colour to jitter |
# | random erasing | occludes a patch, so the encoder cannot rely on one detail (a collar, a strap) |
#
# For natural colour images (`augmentation="color32"`, CIFAR-10) the reference one is stronger:
# crops down to 20% of the image (objects appear at any scale and position), colour jitter of
# brightness, contrast and saturation 0.4 and hue 0.1 with p = 0.8, and grayscale with p = 0.2.
# Colour distortion matters there because two crops of one photo share a colour histogram, which
# would let the network match views by colour alone.

# %%
augmenter = augment.augmenter(augmentation, x_train.shape[1:], seed=seed)
for layer in augmenter.layers:  # each layer and the settings of its random draws
    settings = {k: v for k, v in layer.get_config().items()
                if k not in ("name", "trainable", "dtype", "seed")}  # fmt: skip
    print(f"{type(layer).__name__:<18} {settings}")

# %% [markdown]
# ## Look at the views
#
# One image per class; every row shows the original and its views. Each view gets its own random
# crop, flip, jitter and erasing. Views that look washed out or darker than their original are
# the brightness and contrast jitter at work (applied to 80% of the views: a brightness shift of
# up to 0.2 on pixels in [0, 1], a contrast gain of 1 to 1.4); a speckled rectangle is an erased
# patch, filled with noise (each view with probability 0.25, the `rate` printed above; this grid's
# draw happens to erase 12 of its 20 views).

# %%
rng = np.random.default_rng(seed)
shown = [int(rng.choice(np.flatnonzero(y_train == c))) for c in range(n_show)]
images = x_train[shown]
views = augment.make_views(images, augmenter, n_views).numpy()
fig = plots.augmented_pairs(images, views, y_train[shown], class_names)
fig.savefig(out_dir / "augmented_views.png", dpi=120)

# %% [markdown]
# ## Put it in a `tf.data` pipeline and time it
#
# `data.make_dataset` shuffles, batches, makes the views and prefetches. Augmenting whole batches
# (one call of the layers per batch, not per image) is what keeps it fast. Every random choice,
# the epoch's order and each view's crop, flip, jitter and erasing, is a function of
# `(seed, epoch, image index)`: the layers take their draws from a hash of that key
# (`augment.image_keys`) instead of a shared random state. So the `map` can run in parallel and
# still repeat bit for bit, and a training run resumed at epoch k sees the views the
# uninterrupted run saw. The encoder of notebook 03 trains at several hundred images per second
# on this CPU, so the pipeline must make views much faster than that.

# %%
# NBVAL_IGNORE_OUTPUT
# (a timing: it depends on the machine)
ds = data.make_dataset(
    x_train[:timing_images],
    y_train[:timing_images],
    batch_size=batch_size,
    n_views=n_views,
    augmentation=augmentation,
    shuffle=True,
    seed=seed,
)
batch_views, batch_labels = next(iter(ds))
print("one batch:", tuple(batch_views.shape), batch_views.dtype.name, tuple(batch_labels.shape))
start = time.perf_counter()
n_seen = sum(int(v.shape[0]) for v, _ in ds)
seconds = time.perf_counter() - start
throughput = n_seen / seconds
print(f"{n_seen} images -> {n_views} views each in {seconds:.1f} s: {throughput:,.0f} images/s")

# %% [markdown]
# ## Where the views go next
#
# The loss sees a batch of N images as 2N views. For an anchor view, its **positives** are the
# other views with the same label (SupCon) or only the other view of the same image (SimCLR,
# without labels); notebook 02 draws that mask and builds the loss on it.

# %%
results = {
    "metrics": {
        "augmentation_images_per_s": round(throughput),
        "n_views": n_views,
        "augmentation": augmentation,
    }
}
saved = records.write_results(out_dir, results)
print(f"results in {saved}")

# %% [markdown]
# ## What's next
#
# Notebook 02 derives the loss these views go into; notebook 03 trains an encoder with it and
# compares it with cross-entropy.
#
# ## Try it
#
# - **Colour photos.** `dataset="cifar10", augmentation="color32"` (Keras downloads CIFAR-10 once)
#   shows the reference recipe for natural images: compare how much of each object a view keeps.
# - **More views.** `n_views=4`: the grid shows four views per image, and the timing how the
#   pipeline's cost grows with them (SupCon's step grows likewise: every view goes through the
#   encoder).
# - **Batch size and speed.** `batch_size=64`: does the pipeline make fewer images per second with
#   smaller batches (the layers run once per batch)?
