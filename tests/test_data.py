"""Datasets: where Fashion-MNIST is looked up and how its files are checked, CIFAR-10 through
Keras's own cache, scikit-learn's digits. Nothing here touches the network."""

import gzip
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from supcon_utils import data
from supcon_utils.data import DatasetError, load_dataset

DEBIAN_DIR = data.DEBIAN_DIR  # the real one, before any test points it elsewhere
NAMES = list(data.FASHION_MNIST_SHA256)
NETWORK_DOWN = "URL fetch failure on https://example.invalid/: None -- [Errno -3] name resolution"


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST


def _idx(array: np.ndarray) -> bytes:
    """An idx file as the format's spec gives it: 0, 0, type 8 (ubyte), ndim, big-endian dims."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _parse(content: bytes) -> np.ndarray:
    ndim = content[3]
    shape = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(content, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@pytest.fixture
def tiny(monkeypatch):
    """Tiny Fashion-MNIST-shaped files (decompressed contents by name); their SHA-256 sums
    replace the real table for the test, so every check runs as on the real files."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(6) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28)),
        "t10k-labels-idx1-ubyte": np.array([9, 0, 3, 3]),
    }
    contents = {name: _idx(array) for name, array in arrays.items()}
    sums = {name: hashlib.sha256(contents[name]).hexdigest() for name in NAMES}
    monkeypatch.setattr(data, "FASHION_MNIST_SHA256", sums)
    return contents


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Points every place Fashion-MNIST is looked up to an empty temporary folder, in lookup
    order, and makes Keras's Fashion-MNIST download fail as it does without network."""
    keras_home = tmp_path / "keras_home"
    order = {key: tmp_path / key for key in ("supcon", "repo", "debian")}
    order["keras"] = keras_home / "datasets" / "fashion-mnist"  # where get_file puts them
    for folder in order.values():
        folder.mkdir(parents=True)
    monkeypatch.setenv("SUPCON_DATA_DIR", str(order["supcon"]))
    monkeypatch.setattr(data, "REPO_DATA_DIR", order["repo"])
    monkeypatch.setattr(data, "DEBIAN_DIR", order["debian"])
    monkeypatch.setattr(data, "_keras_cache", lambda: keras_home)

    def no_network():
        raise Exception(NETWORK_DOWN)  # what Keras's get_file raises on a failed download

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", no_network)
    return order


def _write(folder: Path, contents: dict[str, bytes], names=NAMES) -> None:
    for name in names:
        (folder / f"{name}.gz").write_bytes(gzip.compress(contents[name]))


def _corrupt(content: bytes) -> bytes:
    flipped = bytearray(content)
    flipped[-1] ^= 0xFF  # the last pixel: the header stays valid, only the sum can tell
    return bytes(flipped)


def _assert_is_tiny(splits, contents):
    (x_train, y_train), (x_test, y_test) = splits
    for x, y, part in ((x_train, y_train, "train"), (x_test, y_test, "t10k")):
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28, 1)
        assert _idx(x[..., 0]) == contents[f"{part}-images-idx3-ubyte"]
        assert _idx(y) == contents[f"{part}-labels-idx1-ubyte"]


def _check_real_fashion_mnist(splits) -> None:
    (x_train, y_train), (x_test, y_test) = splits
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert np.issubdtype(y_train.dtype, np.integer) and np.issubdtype(y_test.dtype, np.integer)
    assert np.array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    assert np.array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    assert x_train.max() == 255 and x_train.min() == 0


def test_fashion_mnist_loads_from_the_debian_package(places, monkeypatch):
    missing = [n for n in NAMES if not (DEBIAN_DIR / f"{n}.gz").is_file()]
    if missing:  # CI installs it (.ci/run); a conda user or a Mac has the data elsewhere
        pytest.skip(f"{DEBIAN_DIR} lacks {missing}: apt-get install dataset-fashion-mnist")
    monkeypatch.setattr(data, "DEBIAN_DIR", DEBIAN_DIR)  # the earlier places stay empty
    _check_real_fashion_mnist(load_dataset("fashion_mnist"))


def test_fashion_mnist_loads_from_the_first_real_copy():
    """Wherever this machine keeps the real files ($SUPCON_DATA_DIR, data/, Debian's, Keras')."""
    found = [
        folder
        for folder in data.fashion_mnist_locations()
        if all((folder / f"{n}.gz").is_file() for n in NAMES)
    ]
    if not found:
        pytest.skip(
            "no copy of Fashion-MNIST here: apt-get install dataset-fashion-mnist, or put the "
            f"four .gz files in $SUPCON_DATA_DIR (looked in {data.fashion_mnist_locations()})"
        )
    _check_real_fashion_mnist(load_dataset("fashion_mnist"))


@pytest.mark.parametrize("first", ["supcon", "repo", "debian", "keras"])
def test_fashion_mnist_takes_the_first_place_that_has_it(places, tiny, monkeypatch, first):
    # The first place holding the files has a good copy, every later one a corrupt copy: reading
    # any later place first would raise. Earlier places are empty.
    order = list(places)
    if first != "supcon":
        monkeypatch.delenv("SUPCON_DATA_DIR")
    expected = [places[k] for k in order if k != "supcon" or first == "supcon"]
    assert data.fashion_mnist_locations() == expected
    _write(places[first], tiny)
    for later in order[order.index(first) + 1 :]:
        _write(places[later], {name: _corrupt(content) for name, content in tiny.items()})

    _assert_is_tiny(load_dataset("fashion_mnist"), tiny)


def test_a_folder_with_only_some_files_is_passed_over(places, tiny):
    corrupt = {name: _corrupt(content) for name, content in tiny.items()}
    _write(places["supcon"], corrupt, names=NAMES[:3])
    _write(places["repo"], tiny)

    _assert_is_tiny(load_dataset("fashion_mnist"), tiny)


def test_a_corrupt_file_names_the_file_and_both_sums(places, tiny):
    _write(places["supcon"], tiny)
    _write(places["repo"], tiny)  # a good copy later on must not hide the damage
    bad = "train-labels-idx1-ubyte"
    corrupted = _corrupt(tiny[bad])
    (places["supcon"] / f"{bad}.gz").write_bytes(gzip.compress(corrupted))

    with pytest.raises(DatasetError) as error:
        load_dataset("fashion_mnist")
    message = str(error.value)
    assert str(places["supcon"] / f"{bad}.gz") in message
    assert hashlib.sha256(corrupted).hexdigest() in message
    assert data.FASHION_MNIST_SHA256[bad] in message


def test_a_truncated_gzip_is_an_error_naming_the_file(places, tiny):
    _write(places["supcon"], tiny)
    path = places["supcon"] / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])  # cut inside the data: no end-of-stream, no CRC

    with pytest.raises(DatasetError, match="cannot be decompressed") as error:
        load_dataset("fashion_mnist")
    assert str(path) in str(error.value)


def test_nowhere_and_no_network_lists_every_place_and_how_to_get_it(places, tiny):
    _write(places["repo"], tiny, names=NAMES[1:])  # a partial copy: said what it lacks

    with pytest.raises(DatasetError) as error:
        load_dataset("fashion_mnist")
    message = str(error.value)
    for folder in places.values():
        assert f"- {folder}" in message
    assert f"(missing {NAMES[0]})" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert NETWORK_DOWN in message and str(error.value.__cause__) == NETWORK_DOWN


@pytest.mark.parametrize("damaged", [False, True])
def test_a_keras_download_is_checked_too(places, tiny, monkeypatch, damaged):
    # Keras's loader checks no hash: whatever it returns is checked against the same table.
    x_train, y_train, x_test, y_test = (_parse(tiny[name]).copy() for name in NAMES)
    x_train[0, 0, 0] ^= 0xFF * damaged
    loaded = (x_train, y_train), (x_test, y_test)
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", lambda: loaded)

    if damaged:
        with pytest.raises(DatasetError, match="as Keras loaded it"):
            load_dataset("fashion_mnist")
    else:
        _assert_is_tiny(load_dataset("fashion_mnist"), tiny)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 through Keras's real loader and cache
#
# Keras 3.15's cifar10.load_data calls get_file("cifar-10-batches-py-target", extract=True,
# file_hash=<sha256 of the real archive>). get_file uses the cache only when the *archive*
# <cache>/datasets/cifar-10-batches-py-target_archive exists and matches that hash; otherwise it
# downloads, and in both cases it extracts the archive again into
# <cache>/datasets/cifar-10-batches-py-target/. An extracted folder alone is never used. A tiny
# archive cannot match the real hash, so the child process below hands get_file the tiny
# archive's hash instead: the one thing swapped; the cache layout, the hash check, the
# extraction, the unpickling and Keras's transposition all run for real. Keras reads KERAS_HOME
# once, at import (keras/src/backend/config.py), so the child gets it in its environment.

CIFAR_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_MARK = (2, 7)  # batch index (0-based), image within the batch
TEST_SIZE = 5

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import numpy as np

    args = json.loads(sys.argv[1])
    from supcon_utils import data  # imports Keras, which reads KERAS_HOME now
    import keras
    import keras.src.datasets.cifar10 as keras_cifar10
    from keras.src.utils import file_utils

    real_urlretrieve = file_utils.urlretrieve
    def local_only(url, *rest):  # a guard: this test must never download
        assert url.startswith("file:"), f"tried to download {url}"
        return real_urlretrieve(url, *rest)
    file_utils.urlretrieve = local_only

    # Keras keeps the home it read at import; data._keras_cache must say the same.
    os.environ["KERAS_HOME"] = args["elsewhere"]
    probe = keras.utils.get_file("probe.txt", origin=Path(args["probe"]).as_uri())
    out = {"probe": probe, "cache": str(data._keras_cache()),
           "fashion_place": str(data.fashion_mnist_locations()[-1])}

    real_get_file = keras_cifar10.get_file
    def get_file(*a, file_hash, **kw):
        out["asked_hash"] = file_hash
        return real_get_file(*a, file_hash=args["tiny_hash"], **kw)
    keras_cifar10.get_file = get_file

    for fmt in ("channels_last", "channels_first"):
        keras.config.set_image_data_format(fmt)
        (x_train, y_train), (x_test, y_test) = data.load_dataset("cifar10")
        out[fmt] = {"x_train_shape": x_train.shape, "x_dtype": str(x_train.dtype),
                    "y_dtype": str(y_train.dtype), "y_train": y_train.tolist(),
                    "marked": x_train[args["marked"]].tolist(), "x_test": x_test.tolist(),
                    "y_test": y_test.tolist()}
    print(json.dumps(out))
    """
)


def _cifar_row(marks: dict[tuple[int, int, int], int]) -> np.ndarray:
    """One image as a CIFAR-10 batch row: 1024 red, then 1024 green, then 1024 blue values, each
    a 32x32 image in row-major order. ``marks`` maps (row, column, channel) to a value."""
    row = np.zeros(3072, np.uint8)
    for (r, c, channel), value in marks.items():
        row[channel * 1024 + r * 32 + c] = value
    return row


MARKED_PIXELS = {(1, 2, 0): 10, (1, 2, 1): 20, (1, 2, 2): 30, (3, 5, 2): 200}


def _cifar_archive(path: Path) -> None:
    """A CIFAR-10 archive in the python-version layout: cifar-10-batches-py/ with data_batch_1..5
    and test_batch, each a pickle of a dict with bytes keys, b"data" uint8 (n, 3072)
    and b"labels" a list of ints. Keras fills 50000 training images, so the training batches are
    full size (zeros compress to nothing); the test batch is small."""
    batches = {}
    for b in range(5):
        images = np.zeros((10000, 3072), np.uint8)
        if b == TRAIN_MARK[0]:
            images[TRAIN_MARK[1]] = _cifar_row(MARKED_PIXELS)
        batches[f"data_batch_{b + 1}"] = (images, [(i + b) % 10 for i in range(10000)])
    test = np.stack([_cifar_row({(k, 31 - k, k % 3): 50 + k}) for k in range(TEST_SIZE)])
    batches["test_batch"] = (test, [9 - k for k in range(TEST_SIZE)])

    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, (images, labels) in batches.items():
            batch = {b"batch_label": name.encode(), b"labels": labels, b"data": images,
                     b"filenames": [f"{i}.png".encode() for i in range(len(labels))]}  # fmt: skip
            blob = pickle.dumps(batch, protocol=3)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))


@pytest.mark.slow  # ~15 s, nearly all of it the child process importing TensorFlow
def test_cifar10_loads_through_keras_from_its_cache(tmp_path):
    home = tmp_path / "keras_home"
    (home / "datasets").mkdir(parents=True)
    archive = home / "datasets" / "cifar-10-batches-py-target_archive"  # where get_file looks
    _cifar_archive(archive)
    (tmp_path / "probe.txt").write_text("probe")
    args = {
        "tiny_hash": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "elsewhere": str(tmp_path / "elsewhere"),
        "probe": str(tmp_path / "probe.txt"),
        "marked": TRAIN_MARK[0] * 10000 + TRAIN_MARK[1],
    }
    env = {**os.environ, "KERAS_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("SUPCON_DATA_DIR", None)
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    out = json.loads(child.stdout.strip().splitlines()[-1])

    # KERAS_HOME set after the import moved nothing, for Keras and for data alike.
    assert Path(out["probe"]) == home / "datasets" / "probe.txt"
    assert Path(out["cache"]) == home
    assert Path(out["fashion_place"]) == home / "datasets" / "fashion-mnist"
    assert not (tmp_path / "elsewhere").exists()

    assert out["asked_hash"] == CIFAR_SHA256  # Keras asked for the real archive
    assert (home / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py").is_dir()
    for fmt in ("channels_last", "channels_first"):  # NHWC whatever Keras's image format
        got = out[fmt]
        assert got["x_train_shape"] == [50000, 32, 32, 3], fmt
        assert got["x_dtype"] == "uint8" and got["y_dtype"] == "int64"
        marked = np.array(got["marked"])
        assert marked[1, 2].tolist() == [10, 20, 30]  # R, G, B of one pixel
        assert marked[3, 5].tolist() == [0, 0, 200] and marked[5, 3].tolist() == [0, 0, 0]
        assert marked.sum() == 260
        assert got["y_train"] == [(i + b) % 10 for b in range(5) for i in range(10000)]
        x_test = np.array(got["x_test"])
        assert x_test.shape == (TEST_SIZE, 32, 32, 3)
        for k in range(TEST_SIZE):
            assert x_test[k, k, 31 - k, k % 3] == 50 + k and x_test[k].sum() == 50 + k
        assert got["y_test"] == [9 - k for k in range(TEST_SIZE)]


# ---------------------------------------------------------------------------------------------
# digits and names


def test_digits_is_a_fixed_stratified_split_on_the_common_pixel_scale():
    (x_train, y_train), (x_test, y_test) = load_dataset("digits")

    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    both = np.concatenate([x_train, x_test])
    assert both.min() == 0 and both.max() == 255
    assert set(np.unique(both)) <= {round(v * 255 / 16) for v in range(17)}  # 0..16 rescaled

    digits = load_digits()
    counts = np.bincount(digits.target, minlength=10)
    assert np.array_equal(np.bincount(y_train, minlength=10) + np.bincount(y_test), counts)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 0.2 * counts) <= 1)  # stratified

    (x_train2, y_train2), (x_test2, y_test2) = load_dataset("digits")
    assert np.array_equal(x_train, x_train2) and np.array_equal(y_test, y_test2)


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="imagenet") as error:
        load_dataset("imagenet")
    for name in ("fashion_mnist", "cifar10", "mnist", "digits"):
        assert name in str(error.value)


def test_each_dataset_has_one_entry_with_its_classes_and_image_shape():
    assert list(data.DATASETS) == ["fashion_mnist", "cifar10", "mnist", "digits"]
    assert data.DATASETS["fashion_mnist"].class_names[9] == "Ankle boot"
    assert all(len(d.class_names) == 10 for d in data.DATASETS.values())
    (x_train, _), (x_test, _) = load_dataset("digits")
    assert x_train.shape[1:] == x_test.shape[1:] == data.DATASETS["digits"].image_shape


def _own(n: int = 40, shape=(6, 6), classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, classes, n)


def test_your_own_arrays_load_as_a_named_dataset_after_the_same_checks(own_datasets):
    train, test = _own(), _own(seed=1)
    entry = data.register("squares", train, (test[0], test[1][:, None]), ["a", "b", "c", "d"])
    assert entry.image_shape == (6, 6, 1) and entry.class_names == ("a", "b", "c", "d")
    (x_train, y_train), (x_test, y_test) = load_dataset("squares")
    assert x_train.shape == (40, 6, 6, 1) and y_train.dtype == np.int64 and y_test.shape == (40,)
    np.testing.assert_array_equal(x_train[..., 0], train[0])
    assert data.register("squares", train, test, ["a", "b", "c", "d"]) == entry  # the same again
    train[0][:] = 0  # the caller's arrays changed afterwards: the registered ones are copies
    assert load_dataset("squares")[0][0].any()
    assert data.register("unnamed", train, test).class_names == ("0", "1", "2", "3")


@pytest.mark.parametrize(
    "name, train, test, names, message",
    [
        ("fashion_mnist", _own(), _own(), None, "already a built-in dataset"),
        ("", _own(), _own(), None, "name=''"),
        ("f", (_own()[0] / 255.0, _own()[1]), _own(), None, "float64; allowed: uint8"),
        ("f", _own(), _own(shape=(7, 6)), None, r"\(6, 6, 1\) and test images \(7, 6, 1\)"),
        ("f", (_own()[0], _own()[1][:-1]), _own(), None, r"shape \(39,\) for 40 images"),
        ("f", (_own()[0], _own()[1] - 1), _own(), None, "from -1; allowed: integers from 0"),
        ("f", (_own()[0], _own()[1] * 0.5), _own(), None, "float64 from 0.0; allowed: integers"),
        ("f", _own(), _own(), ["a", "b"], "labels go up to 3 but 2 class names"),
        ("f", _own()[0], _own(), None, "train: allowed: a pair"),
        ("f", (_own()[0][0], _own()[1]), _own(), None, r"shape \(6, 6\); allowed: \(N, H, W\)"),
    ],
)
def test_own_arrays_that_break_the_contract_are_refused(own_datasets, name, train, test, names,
                                                        message):  # fmt: skip
    with pytest.raises(ValueError, match=message):
        data.register(name, train, test, names)
    assert "f" not in data.DATASETS


def test_other_arrays_under_a_registered_name_are_refused(own_datasets):
    data.register("mine", _own(), _own())
    with pytest.raises(ValueError, match="'mine' is already a dataset of other arrays"):
        data.register("mine", _own(seed=2), _own())


def test_make_dataset_shapes_for_evaluation_cross_entropy_and_supcon():
    images = np.random.default_rng(0).integers(0, 256, (70, 28, 28, 1), dtype=np.uint8)
    labels = np.arange(70) % 7

    plain = list(data.make_dataset(images, None, batch_size=32))
    assert [tuple(b.shape) for b in plain] == [(32, 28, 28, 1), (32, 28, 28, 1), (6, 28, 28, 1)]
    np.testing.assert_allclose(plain[0].numpy(), images[:32] / 255.0, rtol=1e-6)

    one = list(
        data.make_dataset(images, labels, batch_size=32, augmentation="grayscale28", shuffle=True)
    )
    assert [tuple(x.shape) for x, _ in one] == [(32, 28, 28, 1)] * 2  # partial batch dropped
    shuffled = np.concatenate([y.numpy() for _, y in one])
    assert shuffled.tolist() != labels[:64].tolist()
    np.testing.assert_array_equal(  # epoch 0's order: a function of (seed, epoch) alone
        shuffled, labels[np.random.default_rng((0, 0)).permutation(70)[:64]]
    )

    views, y = next(
        iter(
            data.make_dataset(images, labels, batch_size=32, n_views=2, augmentation="grayscale28")
        )
    )
    assert tuple(views.shape) == (32, 2, 28, 28, 1) and views.dtype.name == "float32"
    assert 0.0 <= float(views.numpy().min()) and float(views.numpy().max()) <= 1.0
    np.testing.assert_array_equal(y.numpy(), labels[:32])
    assert not np.allclose(views[:, 0], views[:, 1])


def test_make_dataset_batches_run_on_across_epochs_unless_shuffled():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    labels = np.arange(10)
    in_order = [y.numpy().tolist() for _, y in data.make_dataset(images, labels, batch_size=3,
                                                                  epochs=2)]  # fmt: skip
    assert in_order == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1], [2, 3, 4], [5, 6, 7], [8, 9]]
    shuffled = [y.numpy() for _, y in data.make_dataset(images, labels, batch_size=4, epochs=2,
                                                         shuffle=True, seed=3)]  # fmt: skip
    orders = [np.random.default_rng((3, e)).permutation(10)[:8] for e in (0, 1)]
    np.testing.assert_array_equal(np.stack(shuffled), np.concatenate(orders).reshape(4, 4))
    assert all(tuple(b.shape) == (4,) for b in shuffled)


def test_make_dataset_refuses_views_without_an_augmentation():
    with pytest.raises(ValueError, match="needs an augmentation to make"):
        data.make_dataset(np.zeros((4, 8, 8, 1), np.uint8), None, batch_size=2, n_views=2)


# ---------------------------------------------------------------------------------------------
# class-balanced batches


def _most_batches(groups: list[int], classes_per_batch: int) -> int:
    """The most batches of c different classes that groups-per-class counts allow (brute force)."""
    fits = [b for b in range(sum(groups) + 1)
            if sum(min(g, b) for g in groups) >= classes_per_batch * b]  # fmt: skip
    return max(fits)


def test_balanced_batches_hold_m_images_of_c_classes_and_each_image_at_most_once():
    counts = [40, 31, 22, 13, 9, 5]  # groups of 4: 10, 7, 5, 3, 2, 1
    labels = np.repeat(np.arange(6) * 3 + 1, counts)  # any integer labels, not only 0..K-1
    for seed in range(20):
        batches = data.balanced_batches(labels, 3, 4, seed)
        assert batches.dtype == np.int64
        assert batches.shape == (_most_batches([n // 4 for n in counts], 3), 12)  # 9 batches
        assert len(np.unique(batches)) == batches.size  # no image twice in an epoch
        for batch in batches:
            classes, per_class = np.unique(labels[batch], return_counts=True)
            assert len(classes) == 3 and per_class.tolist() == [4, 4, 4]
    # Rare classes are not held back to the end of the epoch: the batch order is shuffled.
    rarest = [np.flatnonzero((labels[data.balanced_batches(labels, 3, 4, s)] == 16).any(1))[0]
              for s in range(20)]  # fmt: skip
    assert min(rarest) < 4


def test_balanced_batches_use_every_image_of_balanced_classes():
    labels = np.arange(100) % 10
    batches = data.balanced_batches(labels, 5, 2, seed=1)
    assert batches.shape == (10, 10)
    assert sorted(batches.ravel().tolist()) == list(range(100))
    within = [labels[batch].tolist() for batch in batches]
    assert any(row != sorted(row) for row in within)  # images in random order within a batch


def test_balanced_batches_are_reproducible_from_the_seed():
    labels = np.arange(200) % 7
    first = data.balanced_batches(labels, 4, 3, seed=5)
    np.testing.assert_array_equal(first, data.balanced_batches(labels, 4, 3, seed=5))
    np.testing.assert_array_equal(
        data.balanced_batches(labels, 4, 3, (5, 1)),
        data.balanced_batches(labels, 4, 3, np.random.default_rng((5, 1))))  # fmt: skip
    assert not np.array_equal(first, data.balanced_batches(labels, 4, 3, seed=6))
    assert not np.array_equal(data.balanced_batches(labels, 4, 3, (5, 0)),
                              data.balanced_batches(labels, 4, 3, (5, 1)))  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "c", "m", "message"),
    [
        (np.arange(30) % 3, 4, 2, "classes_per_batch=4 exceeds the 3 classes"),
        (np.array([0] * 9 + [1] * 9 + [2] * 2), 2, 3, r"exceeds the images of some classes "
                                                       r"\(class: count\): \{2: 2\}"),
        (np.arange(30) % 3, 0, 2, "must be at least 1"),
        (np.arange(30) % 3, 2, 0, "must be at least 1"),
        (np.arange(30.0) % 3, 2, 2, "1-D integer array"),
        (np.zeros((4, 2), int), 1, 1, "1-D integer array"),
    ],
)  # fmt: skip
def test_balanced_batches_refuse_what_they_cannot_make(labels, c, m, message):
    with pytest.raises(ValueError, match=message):
        data.balanced_batches(labels, c, m)


def test_make_dataset_balanced_with_views_one_epoch_after_another():
    labels = np.repeat(np.arange(5), [12, 10, 9, 8, 6])
    images = np.zeros((len(labels), 28, 28, 1), np.uint8)

    def labels_of(epochs):
        ds = data.make_dataset(images, labels, batch_size=6, n_views=2, augmentation="grayscale28",
                               balanced=(3, 2), seed=4, epochs=epochs)  # fmt: skip
        batches = list(ds)
        assert int(ds.cardinality()) == len(batches)  # known ahead, so Keras shows its progress
        for views, y in batches:
            assert tuple(views.shape) == (6, 2, 28, 28, 1) and views.dtype.name == "float32"
            assert sorted(np.unique(y.numpy(), return_counts=True)[1].tolist()) == [2, 2, 2]
        return np.stack([y.numpy() for _, y in batches])

    n_batches = len(data.balanced_batches(labels, 3, 2))
    both = labels_of(2)
    assert len(both) == 2 * n_batches
    assert not np.array_equal(both[:n_batches], both[n_batches:])  # the second is another epoch
    for epoch in (0, 1):  # each epoch is balanced_batches of (seed, epoch), alone or not
        expected = labels[data.balanced_batches(labels, 3, 2, (4, epoch))]
        np.testing.assert_array_equal(both[epoch * n_batches : (epoch + 1) * n_batches], expected)
    np.testing.assert_array_equal(labels_of(range(1, 2)), both[n_batches:])


def test_make_dataset_balanced_keeps_images_with_their_labels():
    labels = np.arange(60) % 6
    images = (labels * 40).astype(np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 1), np.uint8)
    ds = data.make_dataset(images, labels, batch_size=8, balanced=(4, 2), seed=0)
    seen = []
    for x, y in ds:
        np.testing.assert_allclose(x.numpy()[:, 0, 0, 0], y.numpy() * 40 / 255, rtol=1e-6)
        seen.append(y.numpy())
    assert np.concatenate(seen).size == 56  # 7 batches: 4 of the 60 images wait for next epoch


def test_make_dataset_balanced_needs_labels_and_a_matching_batch_size():
    images, labels = np.zeros((20, 8, 8, 1), np.uint8), np.arange(20) % 2
    with pytest.raises(ValueError, match=r"batches of 2 x 5 images, but batch_size=8"):
        data.make_dataset(images, labels, batch_size=8, balanced=(2, 5))
    with pytest.raises(ValueError, match="need labels"):
        data.make_dataset(images, None, batch_size=10, balanced=(2, 5))
