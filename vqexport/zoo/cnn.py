"""The reference CNN and its reproducible training.

Like the paper's network, almost all parameters sit in the dense layers: two small
conv layers, then dense 3136 -> 1024 -> 1024 -> 10 (99.6 % of 4.3 M parameters).
Trained weights are cached outside git, under ~/.cache/vqexport (or $VQEXPORT_CACHE).
"""
from __future__ import annotations

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
