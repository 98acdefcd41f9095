"""Reproducible training of the reference CNN: explicit seeds, a torch.Generator, no global state."""
from __future__ import annotations

import numpy as np

from .cnn import BUILDERS, MNIST_INPUT, input_spec


def train_reference(dataset: str, cfg: dict, quiet: bool = True, network: str = "paper"):
    import torch

    from ..evaluate.datasets import BUILT_IN, prepare
    from ..util.progress import step_bar

    load = BUILT_IN[dataset]
    xtr, ytr = load("train")
    xte, yte = load("test")
    spec = input_spec(dataset)
    gen = torch.Generator().manual_seed(cfg["seed"])
    module = _seeded(BUILDERS[network], cfg["seed"])
    opt = torch.optim.Adam(module.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg["epochs"])
    x_all = torch.from_numpy(prepare(xtr, spec))
    y_all = torch.from_numpy(ytr)
    steps = cfg["epochs"] * ((len(ytr) + cfg["batch"] - 1) // cfg["batch"])
    bar = step_bar(steps, f"training the {network} reference network on {dataset}", quiet, every=10.0, leave=False)
    # Dropout draws from torch's global generator, which takes no Generator argument: seed it
    # inside fork_rng, so training is reproducible and the caller's RNG state is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg["seed"] + 1)
        _epochs(module, opt, sched, x_all, y_all, cfg, gen, bar)
    bar.close()
    module.eval()
    return module, accuracy(module, xte, yte, spec)


def _epochs(module, opt, sched, x_all, y_all, cfg, gen, bar) -> None:
    import torch

    for _ in range(cfg["epochs"]):
        module.train()
        order = torch.randperm(len(y_all), generator=gen)
        for i in range(0, len(order), cfg["batch"]):
            idx = order[i:i + cfg["batch"]]
            xb = _shift(x_all[idx], cfg["shift"], gen)
            loss = torch.nn.functional.cross_entropy(module(xb), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bar.update(1)
        sched.step()


def _seeded(factory, seed: int):
    """Initialise the module's parameters from a seed without touching the global RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def _shift(x, max_shift: int, gen):
    """Random translations by up to max_shift pixels: cheap augmentation for 4,000 digits."""
    import torch

    if max_shift <= 0:
        return x
    dx, dy = (torch.randint(-max_shift, max_shift + 1, (2,), generator=gen)).tolist()
    bg = float(x.min())
    out = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if dy > 0:
        out[:, :, :dy] = bg
    elif dy < 0:
        out[:, :, dy:] = bg
    if dx > 0:
        out[:, :, :, :dx] = bg
    elif dx < 0:
        out[:, :, :, dx:] = bg
    return out


__all__ = ["train_reference"]


def accuracy(module, x: np.ndarray, y: np.ndarray, spec: dict = MNIST_INPUT, batch: int = 1000) -> float:
    import torch

    from ..evaluate.datasets import prepare

    with torch.no_grad():
        pred = np.concatenate([module(torch.from_numpy(prepare(x[i:i + batch], spec))).argmax(1).numpy()
                               for i in range(0, len(x), batch)])
    return float((pred == y).mean())
