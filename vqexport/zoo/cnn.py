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

MNIST_INPUT = {"shape": [1, 1, 28, 28], "layout": "NCHW", "mean": [0.1307], "std": [0.3081]}
LABELS = [str(i) for i in range(10)]
ARCH = "vqexport.zoo.cnn:MnistCNN"
TRAIN = {"epochs": 12, "batch": 64, "lr": 1e-3, "shift": 2, "seed": 0}


def _torch():
    import torch

    return torch


def MnistCNN():  # noqa: N802 - used as a class: `--arch vqexport.zoo.cnn:MnistCNN`
    torch = _torch()
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(1024, 10),
    )


def cache_dir() -> Path:
    return Path(os.environ.get("VQEXPORT_CACHE") or Path.home() / ".cache" / "vqexport")


def _key(dataset: str, train: dict) -> str:
    torch = _torch()
    blob = json.dumps({"dataset": dataset, "train": train, "torch": torch.__version__.split("+")[0], "v": 2},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def reference_model(dataset: str = "mnist5k", quiet: bool = True, train: dict | None = None):
    """The trained reference CNN as a LoadedModel, trained once then read from the cache."""
    from ..load import load_model

    path = reference_path(dataset, quiet=quiet, train=train)
    return load_model(path)


def reference_path(dataset: str = "mnist5k", quiet: bool = True, train: dict | None = None) -> Path:
    """Path of the cached TorchScript file of the reference CNN, training it if needed."""
    train = {**TRAIN, **(train or {})}
    path = cache_dir() / f"mnist_cnn-{dataset}-{_key(dataset, train)}.pt"
    if not path.exists():
        from .train import train_reference

        module, acc = train_reference(dataset, train, quiet=quiet)
        save_torchscript(module, path, {"arch": ARCH, "labels": LABELS, "input": MNIST_INPUT,
                                        "trained_on": dataset, "test_top1": acc})
    return path


def save_torchscript(module, path: Path, spec: dict) -> None:
    """TorchScript with the labels and input spec inside, so a plain `vqexport ... model.pt` knows them."""
    torch = _torch()
    from ..fileio import atomic_path
    from ..load import EXTRA_FILE

    path.parent.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script(module.eval())
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={EXTRA_FILE: json.dumps(spec, sort_keys=True)})


def accuracy(module, x: np.ndarray, y: np.ndarray) -> float:
    torch = _torch()
    from ..evaluate.datasets import prepare

    with torch.no_grad():
        logits = module(torch.from_numpy(prepare(x, MNIST_INPUT)))
    return float((logits.argmax(1).numpy() == y).mean())
