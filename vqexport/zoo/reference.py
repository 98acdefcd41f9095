"""The reference networks, trained once and cached as TorchScript files (~/.cache/vqexport)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from .cnn import FASHION_TRAIN, NETWORK_VERSION, NETWORKS, TRAIN, input_spec, labels
from .train import train_reference


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
        module, acc = train_reference(dataset, train, quiet=quiet, network=network)
        save_torchscript(module, path, {"arch": NETWORKS[network], "labels": labels(dataset),
                                        "input": input_spec(dataset), "trained_on": dataset, "test_top1": acc})
    return path


def save_torchscript(module, path: Path, spec: dict) -> None:
    """TorchScript with the labels and input spec inside, so a plain `vqexport ... model.pt` knows them."""
    from ..load import EXTRA_FILE
    from ..util.fileio import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    scripted = torch.jit.script(module.eval())
    with atomic_path(path) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={EXTRA_FILE: json.dumps(spec, sort_keys=True)})
