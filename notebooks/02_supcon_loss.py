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
# # The supervised contrastive loss, step by step
#
# Build the SupCon loss of Khosla et al. (NeurIPS 2020) from softmax cross-entropy, check it
# against `supcon_utils.supcon_loss`, and see from its gradients why it works.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/supcon-tutorial/supcon/blob/main/notebooks/02_supcon_loss.ipynb)
#
# **What you will learn**
#
# - how NT-Xent (SimCLR) is softmax cross-entropy in which the "classes" are the other views in
#   the batch, and how SupCon's $\mathcal{L}^{sup}_{out}$ and $\mathcal{L}^{sup}_{in}$ extend it
#   to many positives per anchor;
# - how to write the loss as plain loops over anchors and positives, and check a fast
#   implementation against them;
# - what labels change: which pairs count as positives;
# - why the gradient does *hard mining* for free, and why $\mathcal{L}^{sup}_{in}$ does not;
# - how the temperature $\tau$ decides which negatives matter;
# - how to read a loss value: the collapse level $\ln(2N-1)$ and the floor set by the positives.
#
# **Run time**: 10 s with papermill on a 2-core AMD EPYC (measured 2026-12-06; 14 to 26 s
# earlier, depending on the machine and what else shared the CPU), half of it importing
# TensorFlow; no training and no data download.
# GPU: not measured, and not needed: every tensor here is tiny, so expect about the same.

# %% tags=["parameters"]
# One line per parameter, `name: type = default  # help`: papermill reads them so.
# fmt: off
seed: int = 0  # seeds numpy, Python and TensorFlow: every number below is reproducible
n_images: int = 8  # N: images in the small demo batch (2N views with two views each)
n_classes: int = 3  # classes among the demo images
dim: int = 16  # embedding dimension of the demo batch
temperature: float = 0.1  # tau for the demos (the paper's default for SupCon)
temperatures: list[float] = [0.05, 0.1, 0.5, 1.0]  # the temperatures compared in the temperature plot
n_positives: int = 24  # positives of the single anchor in the gradient plots
n_negatives: int = 200  # negatives of the single anchor in the gradient plots
grad_dim: int = 128  # embedding dimension of the gradient plots (the paper's projection size)
run_dir: str = "runs/default"  # run folder: figures and results.json go to run_dir/02_supcon_loss
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
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import tensorflow as tf

from supcon_utils import losses, plots, records, supcon_loss

keras.utils.set_random_seed(seed)
rng = np.random.default_rng(seed)
sns.set_theme(style="whitegrid", context="notebook")
out_dir = Path(run_dir) / "02_supcon_loss"
out_dir.mkdir(parents=True, exist_ok=True)
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")

# %% [markdown]
# ## Start from softmax cross-entropy
#
# A classifier scores an input against one weight vector per class and pays
# $-\log \mathrm{softmax}(\text{logits})_y$, the cross-entropy of the true class $y$.
# A contrastive loss keeps that formula but changes the "classes": an anchor view $i$ is scored
# against every *other view in the batch*, with the cosine similarity over a temperature,
# $\mathbf{z}_i \cdot \mathbf{z}_a / \tau$, as the logit.
#
# Make a batch to work with: $N$ images from a few classes, two augmented views of each,
# embedded in `dim` dimensions. Here the embeddings are made up (a class centre, plus an
# image offset, plus a little view noise), so the loss can be studied without a network. The
# layout is the one `supcon_loss` takes: `(batch, n_views, dim)`.


# %%
def make_views(n, n_classes, dim, rng, spread=0.6, view_noise=0.3):
    """Made-up embeddings of 2 views of n images, sorted by class: (n, 2, dim) and labels (n,)."""
    labels = np.sort(np.arange(n) % n_classes)
    centres = rng.normal(size=(n_classes, dim))
    images = centres[labels] + spread * rng.normal(size=(n, dim))
    views = images[:, None, :] + view_noise * rng.normal(size=(n, 2, dim))
    return views.astype(np.float32), labels


features, labels = make_views(n_images, n_classes, dim, rng)
print("features", features.shape, features.dtype, "  labels", labels)

# %% [markdown]
# The loss compares views, so flatten the batch into its $2N$ views, the set $I$, and
# L2-normalise them (the $\mathbf{z}$ of the paper). Stack view 0 of every image, then view 1,
# so view $k$ of image $j$ sits at row $kN + j$; the labels $\tilde y$ repeat accordingly.


# %%
def flatten_views(features, labels=None):
    """(n, n_views, dim) -> unit vectors z (n_views*n, dim) and labels (default: image ids)."""
    n, n_views, _ = features.shape
    z = np.concatenate([features[:, k] for k in range(n_views)]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    ids = np.arange(n) if labels is None else np.asarray(labels)
    return z, np.tile(ids, n_views)


z, y = flatten_views(features, labels)
print("z", z.shape, " norms", np.round(np.linalg.norm(z, axis=1)[:4], 6), "...")
print("labels of the 2N views:", y)

# %% [markdown]
# SimCLR's NT-Xent has exactly one positive per anchor: the other view of the same image. For
# anchor $i$ that is cross-entropy over the $2N-1$ other views, with the partner view as the
# target "class". Build those logits, leaving the anchor itself out of the softmax (that is what
# $A(i) = I \setminus \{i\}$ means), and hand them to Keras' ordinary cross-entropy.


# %%
def similarity_logits(z, temperature):
    """z_i . z_a / tau for every pair; each view's logit for itself is so low its softmax is 0."""
    logits = z @ z.T / temperature
    np.fill_diagonal(logits, -1e9)  # not -inf: a 0 target times log(0) would give nan
    return logits


logits = similarity_logits(z, temperature)
partner = np.r_[np.arange(n_images, 2 * n_images), np.arange(n_images)]  # the other view
nt_xent = keras.losses.sparse_categorical_crossentropy(partner, logits, from_logits=True)
print("NT-Xent as cross-entropy, per anchor:", np.round(np.asarray(nt_xent)[:6], 3), "...")
print(f"mean {float(np.mean(nt_xent)):.4f}")
simclr_value = float(supcon_loss(tf.constant(features), None, temperature=temperature))
print(f"supcon_loss(features, labels=None): {simclr_value:.4f}")

# %% [markdown]
# `supcon_loss` with `labels=None` is NT-Xent. With labels, every view with the anchor's label is a
# positive: $P(i) = \{p \in A(i) : \tilde y_p = \tilde y_i\}$. There are two natural ways to turn
# $|P(i)|$ targets into one loss:
#
# - $\mathcal{L}^{sup}_{out}$ (eq. 2) averages the log-probability over the positives, *outside*
#   the log. That is cross-entropy with a *soft* target spread evenly over the positives,
#   $1/|P(i)|$ each.
# - $\mathcal{L}^{sup}_{in}$ (eq. 3) averages the probabilities *inside* the log: it is
#   $-\log$ of the total softmax probability that lands on any positive, plus
#   $\log |P(i)|$.
#
# $$\mathcal{L}^{sup}_{out} = \sum_{i \in I} \frac{-1}{|P(i)|} \sum_{p \in P(i)} \log
#   \frac{\exp(\mathbf{z}_i \cdot \mathbf{z}_p / \tau)}
#        {\sum_{a \in A(i)} \exp(\mathbf{z}_i \cdot \mathbf{z}_a / \tau)}
#   \qquad (2)$$
#
# $$\mathcal{L}^{sup}_{in} = \sum_{i \in I} -\log \left\{ \frac{1}{|P(i)|} \sum_{p \in P(i)}
#   \frac{\exp(\mathbf{z}_i \cdot \mathbf{z}_p / \tau)}
#        {\sum_{a \in A(i)} \exp(\mathbf{z}_i \cdot \mathbf{z}_a / \tau)} \right\}
#   \qquad (3)$$
#
# (The paper sums over anchors; `supcon_loss` averages, which only rescales the loss.)
# Both readings take two lines with Keras' cross-entropy.

# %%
positive = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
n_pos = positive.sum(axis=1)
soft_target = positive / n_pos[:, None]
l_out_ce = keras.losses.categorical_crossentropy(soft_target, logits, from_logits=True)
prob = keras.ops.softmax(logits, axis=1)
l_in_ce = -np.log(np.sum(np.where(positive, prob, 0.0), axis=1)) + np.log(n_pos)
print("|P(i)| per anchor:", n_pos)
print(f"L_out as soft-target cross-entropy: {float(np.mean(l_out_ce)):.4f}")
print(f"L_in as -log P(positive) + log|P|:  {float(np.mean(l_in_ce)):.4f}")

# %% [markdown]
# ## Write the loss as loops
#
# Before trusting a vectorised loss, write the definition down as directly as possible: a loop
# over anchors $i \in I$, and for each, a loop over its positives $p \in P(i)$. Clarity over
# speed; float64 numpy, nothing clever. Anchors without a positive (possible with labels when a
# class has one image and one view) are left out, and the value is the mean over the rest, the
# same convention as `supcon_loss`.


# %%
def naive_supcon_loss(features, labels=None, temperature=0.1, variant="out"):
    """Eq. 2 ("out") or eq. 3 ("in") by loops; returns the mean and the per-anchor losses."""
    z, y = flatten_views(features, labels)
    per_anchor = []
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]  # A(i)
        positives = [p for p in others if y[p] == y[i]]  # P(i)
        if not positives:
            continue
        denominator = sum(np.exp(z[i] @ z[a] / temperature) for a in others)
        ratios = [np.exp(z[i] @ z[p] / temperature) / denominator for p in positives]
        if variant == "out":
            loss_i = -sum(np.log(r) for r in ratios) / len(positives)
        else:
            loss_i = -np.log(sum(ratios) / len(positives))
        per_anchor.append(loss_i)
    return float(np.mean(per_anchor)), np.array(per_anchor)


mean_out, per_anchor_out = naive_supcon_loss(features, labels, temperature, "out")
print("per-anchor L_out,i:", np.round(per_anchor_out, 3))
print(f"mean: {mean_out:.4f}")

# %% [markdown]
# Now compare the loops with the library, for both variants, with and without labels. The library
# works in float32 and vectorises everything; agreement to float32 precision is the test.

# %%
# NBVAL_CHECK_OUTPUT
features_tf = tf.constant(features)
max_abs_diff = 0.0
for variant in ["out", "in"]:
    for name, lab in [("SimCLR", None), ("SupCon", labels)]:
        naive, _ = naive_supcon_loss(features, lab, temperature, variant)
        lab_tf = None if lab is None else tf.constant(lab)
        lib = float(supcon_loss(features_tf, lab_tf, temperature=temperature, variant=variant))
        same = np.allclose(naive, lib, rtol=1e-5, atol=1e-6)
        max_abs_diff = max(max_abs_diff, abs(naive - lib))
        print(f"variant={variant:<3} {name}: loops {naive:.4f}  library {lib:.4f}  allclose {same}")

# %% [markdown]
# ## Compare one positive with many
#
# The only thing the labels change is *which pairs are positives*. Draw both masks for the demo
# batch: rows are anchors, columns the views they are contrasted with, each marked label/view and
# sorted by class. SimCLR has one positive per row (the other view of the same image); SupCon
# has every other view of the same class. The diagonal, the anchor itself, is never in $A(i)$.

# %%
_, y_simclr = flatten_views(features, None)
not_self = ~np.eye(len(y), dtype=bool)
masks = {
    "SimCLR (labels=None)": (y_simclr[:, None] == y_simclr[None, :]) & not_self,
    "SupCon (class labels)": positive,
}
for name, mask in masks.items():
    print(f"{name:<22} positives per anchor: {mask.sum(axis=1)}")
fig = plots.positive_masks(masks, labels, n_views=2)
fig.savefig(out_dir / "positive_masks.png", dpi=100)
plt.show()

# %% [markdown]
# In SimCLR the other images of the anchor's class are *negatives*: the loss pushes them away even
# though they share the label. SupCon pulls them in. So the two losses disagree about what a good
# embedding is. Score two embeddings of the same 16 views with both:
#
# - *instance clusters*: the two views of an image close together, images scattered at random;
# - *class clusters*: the same, but images of a class close together too (our demo batch).

# %%
# Every image its own "class" and spread=0: the views pair up, but there is no class structure.
other_rng = np.random.default_rng(seed + 1)
instance_clustered, _ = make_views(n_images, n_images, dim, other_rng, spread=0.0)
for name, feats in [("instance clusters", instance_clustered), ("class clusters", features)]:
    simclr = float(supcon_loss(tf.constant(feats), None, temperature=temperature))
    supcon = float(supcon_loss(tf.constant(feats), tf.constant(labels), temperature=temperature))
    print(f"{name:<18} SimCLR loss {simclr:6.3f}   SupCon loss {supcon:6.3f}")

# %% [markdown]
# SimCLR gives both a low loss and slightly prefers the instance clusters: in the class-clustered
# batch, the same-class images are close *negatives*, and it pays for them. SupCon's verdict is
# the opposite and much stronger: the instance-clustered embedding costs almost three times
# more, because there the positives of other images are scattered. That preference, made into a
# gradient, is what pulls same-class images together during training.

# %% [markdown]
# ## See the gradient do hard mining
#
# The paper (section 3.2.3 and its supplement) differentiates $\mathcal{L}^{sup}_{out,i}$ with
# respect to the normalised anchor $\mathbf{z}_i$. Write
#
# $$P_{ij} = \frac{\exp(\mathbf{z}_i \cdot \mathbf{z}_j / \tau)}
#                 {\sum_{a \in A(i)} \exp(\mathbf{z}_i \cdot \mathbf{z}_a / \tau)}$$
#
# for the softmax probability anchor $i$ gives view $j$, and $N(i)$ for its negatives. Then
#
# $$\frac{\partial \mathcal{L}^{sup}_{out,i}}{\partial \mathbf{z}_i} = \frac{1}{\tau}\Big(
#   \sum_{p \in P(i)} \mathbf{z}_p \big(P_{ip} - X_{ip}\big)
#   + \sum_{n \in N(i)} \mathbf{z}_n P_{in} \Big), \qquad X_{ip} = \frac{1}{|P(i)|}:$$
#
# one term per other view. Each positive pulls with weight $|P_{ip} - X_{ip}|/\tau$ and each
# negative pushes with weight $P_{in}/\tau$. A *hard* negative (similar to the anchor, large
# $P_{in}$) gets a large weight and an easy one (small $P_{in}$) almost none; a *hard* positive
# (small $P_{ip}$) gets close to the full $1/(\tau|P(i)|)$. The L2 normalisation in front of
# $\mathbf{z}$ then keeps only the part of each term at right angles to $\mathbf{z}_i$, which
# multiplies its size by $\sqrt{1 - s^2}$, with $s = \mathbf{z}_i \cdot \mathbf{z}_j$. So a view at
# similarity $s$ contributes a gradient of size
#
# $$\text{positive } p: \ \frac{1}{\tau}\,\Big|P_{ip} - \frac{1}{|P(i)|}\Big|\,\sqrt{1 - s^2},
# \qquad \text{negative } n: \ \frac{1}{\tau}\,P_{in}\,\sqrt{1 - s^2},$$
#
# and an *easy* positive ($s \approx 1$) gets almost nothing. Nobody has to mine hard examples: the
# loss weights them by itself.
#
# Check it with autodiff rather than taking the formulas on trust. Take one anchor and a
# contrast set whose similarities to it are spread evenly from $-1$ to $1$ (in a real batch they
# bunch up, but an even spread shows the whole curve). `supcon_loss` returns the *mean* over all
# anchors, and every view is an anchor too, so its gradient on a view mixes that view's roles.
# Write the loss of the one anchor in TensorFlow instead, check below that the library's gradient
# is exactly the mean of these one-anchor gradients, and let `tf.GradientTape` differentiate it
# with respect to each contrast vector: since $\partial \mathcal{L}_i / \partial \mathbf{z}_j =
# \frac{1}{\tau}(P_{ij} - X_{ij})\,\mathbf{z}_i$, that gradient has the size of view $j$'s term.


# %%
def at_similarity(anchor, sims, rng):
    """Unit vectors whose cosine similarity to the unit vector `anchor` is exactly `sims`."""
    noise = rng.normal(size=(len(sims), len(anchor)))
    noise -= np.outer(noise @ anchor, anchor)  # keep only the part orthogonal to the anchor
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return sims[:, None] * anchor + np.sqrt(1 - sims[:, None] ** 2) * noise


def anchor_loss(anchor, contrast, is_positive, temperature, variant="out"):
    """L_out,i (eq. 2) or L_in,i (eq. 3) of one anchor against its contrast set A(i)."""
    z_i = tf.math.l2_normalize(anchor)
    z_a = tf.math.l2_normalize(contrast, axis=-1)
    log_prob = tf.nn.log_softmax(tf.linalg.matvec(z_a, z_i) / temperature)
    log_prob_pos = tf.boolean_mask(log_prob, is_positive)
    n_pos = tf.cast(tf.size(log_prob_pos), log_prob.dtype)
    if variant == "out":
        return -tf.reduce_mean(log_prob_pos)
    return -(tf.reduce_logsumexp(log_prob_pos) - tf.math.log(n_pos))


def contrast_gradients(anchor, contrast, is_positive, temperature, variant="out"):
    """The loss of one anchor, and the size of its gradient with respect to each contrast vector."""
    contrast = tf.constant(contrast)
    with tf.GradientTape() as tape:
        tape.watch(contrast)
        loss = anchor_loss(tf.constant(anchor), contrast, is_positive, temperature, variant)
    return float(loss), tf.norm(tape.gradient(loss, contrast), axis=1).numpy()


# The library's gradient on the demo batch is the mean of the one-anchor gradients.
features_64 = tf.constant(features, tf.float64)
with tf.GradientTape(persistent=True) as tape:
    tape.watch(features_64)
    library_value = supcon_loss(features_64, tf.constant(labels), temperature=temperature)
    flat = tf.reshape(tf.transpose(features_64, [1, 0, 2]), [len(y), dim])  # view-major, like z
    one_anchor = [
        anchor_loss(flat[i], tf.boolean_mask(flat, others), positive[i][others], temperature)
        for i, others in enumerate(not_self)  # others: A(i), every view but i
    ]
    mean_of_anchors = tf.add_n(one_anchor) / len(y)
gap = tape.gradient(library_value, features_64) - tape.gradient(mean_of_anchors, features_64)
print(f"library loss {float(library_value):.4f}, one-anchor mean {float(mean_of_anchors):.4f}")
# The exact difference is round-off and varies with the CPU; what holds everywhere is its size.
print(
    f"gradients equal to float64 round-off (< 1e-12): {float(tf.reduce_max(tf.abs(gap))) < 1e-12}"
)

# %% [markdown]
# The two agree to float64 round-off. Now the single anchor with its evenly spread contrast set:

# %%
anchor = rng.normal(size=grad_dim)
anchor /= np.linalg.norm(anchor)
sims = np.r_[np.linspace(-0.99, 0.99, n_positives), np.linspace(-0.99, 0.99, n_negatives)]
contrast = at_similarity(anchor, sims, rng)
is_pos = np.r_[np.ones(n_positives, bool), np.zeros(n_negatives, bool)]
loss_i, grad = contrast_gradients(anchor, contrast, is_pos, temperature)
print(f"anchor loss L_out,i = {loss_i:.3f} with |P(i)| = {n_positives}, {n_negatives} negatives")

# The paper's weights, and the gradient sizes they give after the normalisation.
p = np.exp(sims / temperature) / np.exp(sims / temperature).sum()
weight = np.where(is_pos, np.abs(p - 1 / n_positives), p) / temperature
paper = weight * np.sqrt(1 - sims**2)
print(
    f"autodiff equals the paper's formula to round-off (< 1e-12): {np.abs(grad - paper).max() < 1e-12}"
)

# %%
fig = plots.gradient_sizes(sims, is_pos, grad, weight, paper, temperature)
fig.savefig(out_dir / "hard_mining.png", dpi=100)
plt.show()

# %% [markdown]
# The dots (autodiff) sit on the black lines (the formula). The dashed lines are the weights
# alone: every positive the anchor does not yet resemble gets the full $1/(\tau|P(i)|)$, and a
# negative's weight grows exponentially with its similarity. After the normalisation, positives
# at $s \approx 0$ (where unrelated vectors in high dimensions sit) get the largest pull, and the
# pull fades as they come close. Negatives far away get no push at all, and the push grows
# sharply for negatives that look like the anchor.
#
# Three details at the edges, all from the $\sqrt{1-s^2}$ of the normalisation or the softmax:
#
# - a positive pointing exactly away ($s = -1$) has the largest weight but gets little gradient:
#   at the far pole of the sphere its similarity to the anchor is at its minimum, flat to first
#   order in every direction (and in high dimensions such vectors are rare);
# - the push on negatives peaks a little below $s = 1$ and drops at 1 for the same reason;
# - the dashed line for positives dips towards 0 where $P_{ip}$ reaches $1/|P(i)|$ and rises
#   again: the closest positive gets a small gradient that *pushes* it, because it already takes
#   more than its $1/|P(i)|$ share of the probability. $\mathcal{L}^{sup}_{out}$ wants the
#   positives to share equally.
#
# A big batch helps through the same mechanism: more views, more chances that some are hard, and
# those are the ones that get the gradient.

# %% [markdown]
# ## See why $\mathcal{L}^{sup}_{in}$ trains worse
#
# In eq. 3 the $1/|P(i)|$ sits inside the log, so it comes out as an additive constant,
# $+\log|P(i)|$, which has no gradient. What is left is $-\log\sum_{p}P_{ip}$, and its
# derivative gives positive $p$ the weight
#
# $$\frac{1}{\tau}\Big(X^{in}_{ip} - P_{ip}\Big), \qquad
# X^{in}_{ip} = \frac{\exp(\mathbf{z}_i\cdot\mathbf{z}_p/\tau)}
#                     {\sum_{p' \in P(i)} \exp(\mathbf{z}_i\cdot\mathbf{z}_{p'}/\tau)},$$
#
# where $\mathcal{L}^{sup}_{out}$ has the fixed $1/|P(i)|$ in place of $X^{in}_{ip}$. So
# $\mathcal{L}^{sup}_{in}$ weights each positive by *its own softmax share among the positives*,
# which is exponentially small for hard positives: the pull goes to the positives that are
# already close, and the far ones are ignored. $\mathcal{L}^{sup}_{out}$ gives every positive the
# same target share, the averaging that keeps its gradient well behaved.
#
# Same anchor, same contrast set, both variants:

# %%
loss_in, grad_in = contrast_gradients(anchor, contrast, is_pos, temperature, variant="in")
print(f"L_out,i = {loss_i:.3f}   L_in,i = {loss_in:.3f}   (L_in <= L_out always, by Jensen)")
closest = np.argsort(-sims[is_pos])[:3]  # the three easiest positives
for name, g in [("L_out", grad[is_pos]), ("L_in", grad_in[is_pos])]:
    far = g[sims[is_pos] < 0.5].sum() / g.sum()
    print(
        f"{name:<5}: 3 easiest positives get {g[closest].sum() / g.sum():4.0%} of the pull, "
        f"positives at s < 0.5 get {far:4.0%}"
    )

fig = plots.positive_pull(
    sims[is_pos],
    {"$\\mathcal{L}^{sup}_{out}$ (eq. 2)": grad[is_pos],
     "$\\mathcal{L}^{sup}_{in}$ (eq. 3)": grad_in[is_pos]},
    temperature,
)  # fmt: skip
fig.savefig(out_dir / "out_vs_in.png", dpi=100)
plt.show()

# %% [markdown]
# With $\mathcal{L}^{sup}_{in}$ nearly all of the pull lands on the few positives that are already
# the most similar (the three easiest get about four fifths of it), and the hard positives, the
# ones that still need to move, get close to nothing. The paper found the same in training: on
# ImageNet with ResNet-50, $\mathcal{L}^{sup}_{out}$ reached 78.7% top-1 and
# $\mathcal{L}^{sup}_{in}$ 67.4% (Table 1), and it attributes the gap to this gradient: with the
# $1/|P(i)|$ outside the log, $\mathcal{L}^{sup}_{out}$ averages over the positives.
# `supcon_loss` defaults to `variant="out"`.

# %% [markdown]
# ## Reshape the gradient with the temperature
#
# The temperature sets how sharp the softmax is, and so how the push is shared among the
# negatives. Compute the negatives' gradients at several temperatures on the same contrast set,
# and plot each negative's *share* of the total push, so the curves are comparable (the legend
# gives the total, which grows as $\tau$ falls).

# %%
shares = {}
for tau in temperatures:
    _, g = contrast_gradients(anchor, contrast, is_pos, tau)
    share = g[~is_pos] / g[~is_pos].sum()
    largest = np.sort(share)[::-1]
    at_025 = np.interp(0.25, sims[~is_pos], share)
    print(
        f"tau = {tau:<4}: largest share {largest[0]:5.1%}, 10 largest {largest[:10].sum():4.0%}, "
        f"a negative at s = 0.25 {at_025:.1e}"
    )
    shares[f"$\\tau$ = {tau}  (summed size {g[~is_pos].sum():.2f})"] = share
fig = plots.negative_shares(sims[~is_pos], shares)
fig.savefig(out_dir / "temperature.png", dpi=100)
plt.show()

# %% [markdown]
# At $\tau = 1$ the push is spread out: almost every negative gets a share within a factor of
# ten of the largest, whatever its similarity. At $\tau = 0.05$ ten negatives, 5% of them and all
# among the most similar, take three quarters of it, the largest single share is about a tenth,
# and a negative at similarity 0.25 gets hundreds of thousands of times less than that. A low
# temperature mines harder, but leans on a few examples per anchor. The paper reports that lower
# temperatures train better, until they become numerically unstable, and uses $\tau = 0.1$.

# %% [markdown]
# ## Read the loss value
#
# When every embedding is the same vector, every similarity is 1, every softmax probability is
# $1/(2N-1)$, and each anchor pays $-\log\frac{1}{2N-1} = \ln(2N-1)$, whatever the labels, the
# temperature or the variant. Check it for a few batch sizes:

# %%
# NBVAL_CHECK_OUTPUT
for n in [8, 64, 256]:
    collapsed = tf.ones((n, 2, dim))  # every view of every image is the same vector
    labels_n = tf.constant(np.arange(n) % n_classes)
    settings = [(None, 0.1, "out"), (labels_n, 0.1, "out"), (labels_n, 0.5, "in")]
    values = [
        float(supcon_loss(collapsed, lab, temperature=t, variant=v)) for lab, t, v in settings
    ]
    match = np.allclose(values, np.log(2 * n - 1), rtol=1e-5)
    print(
        f"N = {n:3d}: losses {', '.join(f'{x:.3f}' for x in values)}   "
        f"ln(2N-1) = {np.log(2 * n - 1):.3f}   allclose {match}"
    )

# %% [markdown]
# That number is the level of an embedding that tells the views apart no better than chance. Put
# it next to two other reference points for a batch of $N = 256$ images from 10 classes (sizes
# like those of notebook 03):
#
# - random unit vectors in 128 dimensions: no structure, but not collapsed;
# - perfect class clusters: every view of a class on the same point, the classes orthogonal.
#   Each anchor then splits its probability evenly over its positives, so the loss cannot go
#   below the mean of $\log|P(i)|$: with labels, SupCon's floor is not 0.


# %%
def mean_cosine(features):
    """Mean cosine similarity between different views in a batch: near 1 means collapse."""
    z, _ = flatten_views(np.asarray(features))
    sim = z @ z.T
    return float((sim.sum() - len(z)) / (len(z) * (len(z) - 1)))


n_big, k_big = 256, 10
labels_big = np.arange(n_big) % k_big
references = {  # name: (key in results.json, features)
    "collapsed (all equal)": ("collapse_loss", np.ones((n_big, 2, grad_dim), np.float32)),
    "random": ("random_loss", rng.normal(size=(n_big, 2, grad_dim)).astype(np.float32)),
    "perfect class clusters": (
        "perfect_clusters_loss",
        np.repeat(np.eye(grad_dim, dtype=np.float32)[labels_big, None], 2, axis=1),
    ),
}
floor = losses.positive_floor(labels_big)  # mean log|P(i)| over anchors
results = {
    "max_abs_diff_naive_vs_library": max_abs_diff,
    "ln_2N_minus_1": float(np.log(2 * n_big - 1)),
    "mean_log_positives": float(floor),
}
print(f"ln(2N-1) = {np.log(2 * n_big - 1):.3f}    mean log|P(i)| = {floor:.3f}")
for name, (key, feats) in references.items():
    value = float(supcon_loss(tf.constant(feats), tf.constant(labels_big), temperature=temperature))
    results[key] = value
    print(f"{name:<24} SupCon loss {value:.3f}   mean cosine similarity {mean_cosine(feats):+.3f}")

# %% [markdown]
# Random embeddings score about $\ln(2N-1)$ too (a little above: random similarities spread the
# softmax unevenly), and a perfect embedding sits just above $\log|P(i)|$. A SupCon training
# curve should fall from near $\ln(2N-1)$ towards that floor.
#
# If yours *stays* at $\ln(2N-1)$, the embedding is not separating anything. Look at the mean
# cosine similarity of a batch of embeddings:
#
# - **near 1**: the representation has *collapsed*, every input maps to the same point. A learning
#   rate that is too high is the usual cause (the first updates throw the weights where the
#   output no longer depends on the input); lower it or warm it up.
# - **near 0** and the loss still flat: the network is not learning from this signal at all.
#   Check that the two views of an image really are paired (same order in both halves of the
#   batch), that the labels line up with the images, and that the encoder's weights are
#   trainable.
#
# Weak augmentations show the opposite symptom: the loss drops quickly and far, because telling
# two nearly identical views apart from the rest is easy, while the features learnt are shallow.

# %%
saved = records.write_results(out_dir, {"metrics": results})
print(f"results in {saved}")

# %% [markdown]
# ## Try it
#
# - **More classes in the batch.** `n_classes=8` with `n_images=8`: every image is alone in its
#   class; what happens to SupCon's positive mask and to the gap between SupCon and SimCLR?
# - **Temperatures.** `temperatures=[0.02, 0.1, 1.0]`: how does the share of the gradient that goes
#   to the hardest negatives change?
# - **Harder anchors.** `n_positives=4` and `n_negatives=1000`: does $\mathcal{L}^{sup}_{in}$'s
#   gradient on the hardest positive shrink further against $\mathcal{L}^{sup}_{out}$'s?

# %% [markdown]
# ## What's next
#
# You have the loss, a check of it, and a feel for its gradients. Notebook
# [03_training](03_training.ipynb) puts it to work: an encoder and projection head trained with
# `SupConLoss` on Fashion-MNIST, compared with a cross-entropy baseline, followed by a linear
# probe on the frozen features.
