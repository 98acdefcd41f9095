"""The reference CNN and its reproducible training.

Like the paper's network, almost all parameters sit in the dense layers: two small
conv layers, then dense 3136 -> 1024 -> 1024 -> 10 (99.6 % of 4.3 M parameters).
Trained weights are cached outside git, under ~/.cache/vqexport (or $VQEXPORT_CACHE).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

MNIST_INPUT = {"shape": [1, 1, 28, 28], "layout": "NCHW", "mean": [0.1307], "std": [0.3081]}
FASHION_INPUT = {"shape": [1, 1, 28, 28], "layout": "NCHW", "mean": [0.2860], "std": [0.3530]}
LABELS = [str(i) for i in range(10)]
ARCH = "vqexport.zoo.cnn:MnistCNN"
TRAIN = {"epochs": 12, "batch": 64, "lr": 1e-3, "shift": 2, "seed": 0}
# Fashion-MNIST has 60,000 training images: a few epochs, no augmentation. Capped so that each
# model trains in a couple of minutes on 2 cores; the accuracy reached is in docs/results.
FASHION_TRAIN = {"paper": {"epochs": 3, "batch": 128, "lr": 1e-3, "shift": 0, "seed": 0},
                 "mobile": {"epochs": 3, "batch": 128, "lr": 3e-3, "shift": 0, "seed": 0}}
# The reference networks: (builder, --arch string). "paper" is the paper-shaped CNN above,
# "mobile" the conv-heavy depthwise-separable network of vqexport.zoo.mobile.
NETWORKS = {"paper": ARCH, "mobile": "vqexport.zoo.mobile:MobileCNN"}
NETWORK_VERSION = {"mobile": 2}  # bumped when the architecture changes, so a stale cache is not reused



def input_spec(dataset: str) -> dict:
    return dict(FASHION_INPUT if dataset == "fashion" else MNIST_INPUT)


def labels(dataset: str) -> list[str]:
    from ..evaluate.datasets import FASHION_LABELS

    return list(FASHION_LABELS if dataset == "fashion" else LABELS)


class MnistCNN(torch.nn.Sequential):
    """The paper-shaped CNN: two small convs, then dense 3136 -> 1024 -> 1024 -> 10."""

    def __init__(self, num_classes: int = 10):
        nn = torch.nn
        super().__init__(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(1024, num_classes),
        )


def _mobile():
    from .mobile import MobileCNN

    return MobileCNN()


BUILDERS = {"paper": MnistCNN, "mobile": _mobile}


def cache_dir() -> Path:
    return Path(os.environ.get("VQEXPORT_CACHE") or Path.home() / ".cache" / "vqexport")


def _key(dataset: str, train: dict, network: str = "paper") -> str:
    what = {"dataset": dataset, "train": train, "torch": torch.__version__.split("+")[0], "v": 2}
    if network != "paper":  # the paper CNN's key predates the other networks; kept so caches stay valid
        what["network"] = network
        what["network_version"] = NETWORK_VERSION[network]
    blob = json.dumps(what, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def reference_model(dataset: str = "mnist5k", quiet: bool = True, train: dict | None = None,
                    network: str = "paper"):
    """A trained reference network as a LoadedModel, trained once then read from the cache."""
    from ..load import load_model

    path = reference_path(dataset, quiet=quiet, train=train, network=network)
    return load_model(path)


def reference_path(dataset: str = "mnist5k", quiet: bool = True, train: dict | None = None,
                   network: str = "paper") -> Path:
    """Path of the cached TorchScript file of a reference network, training it if needed.

    network: "paper" (the paper-shaped CNN) or "mobile" (depthwise-separable, fashion only).
    """
    if network not in NETWORKS:
        raise ValueError(f"unknown reference network {network!r}; use {', '.join(NETWORKS)}")
    defaults = FASHION_TRAIN[network] if dataset == "fashion" else TRAIN
    train = {**defaults, **(train or {})}
    stem = "mnist_cnn" if network == "paper" else f"{network}_cnn"
    path = cache_dir() / f"{stem}-{dataset}-{_key(dataset, train, network)}.pt"
    if not path.exists():
        from .train import train_reference

        module, acc = train_reference(dataset, train, quiet=quiet, network=network)
        save_torchscript(module, path, {"arch": NETWORKS[network], "labels": labels(dataset),
                                        "input": input_spec(dataset), "trained_on": dataset, "test_top1": acc})
    return path


def save_torchscript(module, path: Path, spec: dict) -> None:
    """TorchScript with the labels and input spec inside, so a plain `vqexport ... model.pt` knows them."""
    from ..util.fileio import atomic_path
    from ..load import EXTRA_FILE

    path.parent.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script(module.eval())
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={EXTRA_FILE: json.dumps(spec, sort_keys=True)})


def accuracy(module, x: np.ndarray, y: np.ndarray, spec: dict = MNIST_INPUT, batch: int = 1000) -> float:
    from ..evaluate.datasets import prepare

    with torch.no_grad():
        pred = np.concatenate([module(torch.from_numpy(prepare(x[i:i + batch], spec))).argmax(1).numpy()
                               for i in range(0, len(x), batch)])
    return float((pred == y).mean())
