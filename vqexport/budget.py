"""A size or accuracy budget: per-layer settings chosen from measured sensitivity.

    plan = plan_budget(model, "fashion", target_bytes=400_000)   # smallest loss within the size
    plan = plan_budget(model, "fashion", max_drop=0.5)            # smallest size within the drop
    cm = vqexport.compress(model, config=plan.config)

1. Sensitivity. Each candidate setting (method, k, d, rows) is fitted to each compressible
   layer alone, and the model runs on calibration images with only that layer replaced. The
   cost of the choice is the KL divergence of its softmax from the uncompressed model's, a
   proxy that needs no labels; its size is the tensor's stored bits.
2. Choice. A Lagrangian relaxation of the multiple-choice knapsack: for a price per bit,
   each layer takes the setting of least cost + price x bits; the price is searched until
   the file fits (target_bytes) or the accuracy drop on held-out images is within max_drop.
   For a size, what the price search leaves unspent is then filled greedily (_fill).
3. Check. The plan is compressed for real and its .vqm size measured, so the budget holds
   for the bytes on disk, not for an estimate.
"""
from __future__ import annotations

import copy
import math
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np

from .config import CompressConfig, QuantConfig
from .errors import ConfigError
from .evaluate.datasets import training_images
from .methods import registry

# The settings a layer may take. Raw (uncompressed) is always a choice too.
CANDIDATES = (
    {"method": "binary"},
    *({"method": "kmeans", "k": k} for k in (2, 4, 8, 16, 256)),
    *({"method": "pq", "d": d, "k": k, "rows": False} for d, k in ((2, 16), (4, 16), (4, 256), (8, 16), (8, 256),
                                                                 (16, 256))),
    *({"method": "pq", "d": d, "k": k, "rows": True} for d, k in ((4, 16), (8, 16), (8, 32), (16, 16), (32, 16))),
    # Half-precision codebooks: the same indices for less; they matter where the codebooks are a
    # large share of the bits (PQ by rows on a wide layer).
    *({"method": "pq", "d": d, "k": k, "rows": True, "codebook_dtype": "float16"} for d, k in ((4, 16), (8, 32))),
    # The paper's SVD baseline is a candidate too: on some layers a low rank costs less than any VQ.
    *({"method": "svd", "rank": r} for r in (8, 16, 24, 32, 48, 64)),
)
RAW = {"method": "raw"}
PRICE_STEPS = 60  # bisection steps on log(price): ample for a 1e-30 .. 1e10 range


@dataclass
class Option:
    setting: dict
    bits: int
    cost: float  # KL divergence (nats per image) with only this layer compressed this way
    tensor: object = field(default=None, repr=False)  # the fitted CompressedTensor (None: raw)


@dataclass
class Plan:
    settings: dict  # layer name -> setting dict (method "raw" for layers left uncompressed)
    seed: int
    options: dict = field(default_factory=dict, repr=False)  # layer -> [Option], for reports
    file_bytes: int = 0
    measured_drop: float | None = None  # points of top-1 on the held-out images (max_drop search)

    @property
    def config(self) -> CompressConfig:
        chosen = [n for n, s in self.settings.items() if s["method"] != "raw"]
        if not chosen:
            raise ConfigError("the budget leaves every layer uncompressed: no setting keeps within it")
        return CompressConfig(quant=QuantConfig(), layers=tuple(chosen), min_size=0,
                              overrides=tuple((n, dict(s)) for n, s in self.settings.items()
                                              if s["method"] != "raw"), seed=self.seed)

    def override_args(self) -> list[str]:
        """The plan as command-line flags that reproduce it exactly."""
        chosen = {n: s for n, s in self.settings.items() if s["method"] != "raw"}
        args = [a for name in chosen for a in ("--layers", name)]
        args += [a for name, s in chosen.items()
                 for a in ("--override", f"{name}:" + ",".join(f"{k}={_flag(v)}" for k, v in s.items()))]
        return args + ["--min-size", "0", "--seed", str(self.seed)]


def _flag(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def plan_budget(model, data: str, target_bytes: int | None = None, max_drop: float | None = None,
                images: int = 1000, holdout: int = 2000, seed: int = 0, candidates=CANDIDATES,
                progress=None) -> Plan:
    """Choose per-layer settings for `model` (a LoadedModel). Exactly one of target_bytes, max_drop."""
    if (target_bytes is None) == (max_drop is None):
        raise ConfigError("give exactly one budget: a target size or a maximum accuracy drop")
    budget = Budget(model, data, images, holdout, seed, candidates, progress)
    return budget.for_size(target_bytes) if target_bytes is not None else budget.for_drop(max_drop)


class Budget:
    """The measured sensitivities of one model, from which plans for any budget are cut."""

    def __init__(self, model, data: str, images: int = 1000, holdout: int = 2000, seed: int = 0,
                 candidates=CANDIDATES, progress=None):
        layers = model.dense_layers()
        if not layers:
            raise ConfigError(f"{model.name}: has no layer that can be compressed")
        self.model, self.seed = model, seed
        x_cal, self.x_val, self.y_val = training_images(data, model.input, images, holdout, seed)
        self.probe = _Probe(model, x_cal)
        self.options = {name: _options(self.probe, name, candidates, seed, progress) for name in layers}
        self.fixed = _fixed_bytes(model, layers)

    def for_size(self, target_bytes: int) -> Plan:
        if target_bytes <= 0:
            raise ConfigError(f"--target-size must be positive, got {target_bytes}")
        plan = _fit_size(self.options, self.fixed, target_bytes, self.model, self.seed)
        plan.options = self.options
        return plan

    def for_drop(self, max_drop: float) -> Plan:
        if not 0 <= max_drop < 100:
            raise ConfigError(f"--max-drop is in points of top-1, between 0 and 100; got {max_drop}")
        plan = _fit_drop(self.options, self.probe, self.model, self.x_val, self.y_val, max_drop, self.seed)
        plan.options = self.options
        return plan


class _Probe:
    """The model with one layer's weight swapped at a time, run on fixed images."""

    def __init__(self, model, x: np.ndarray):
        import torch

        self.torch = torch
        self.module = copy.deepcopy(model.module).eval()
        self.state = self.module.state_dict()
        layers = set(model.dense_layers())  # walked once, not once per tensor
        self.original = {k: v.clone() for k, v in self.state.items() if k in layers}
        self.x = x
        self.reference = self.log_softmax(x)

    def log_softmax(self, x: np.ndarray, batch: int = 500) -> np.ndarray:
        with self.torch.no_grad():
            out = [self.torch.log_softmax(self.module(self.torch.from_numpy(x[i:i + batch])), 1).numpy()
                   for i in range(0, len(x), batch)]
        return np.concatenate(out).astype(np.float64)

    def set(self, name: str, weight: np.ndarray | None) -> None:
        with self.torch.no_grad():
            self.state[name].copy_(self.original[name] if weight is None else self.torch.from_numpy(weight))

    def kl(self) -> float:
        logp = self.log_softmax(self.x)
        return float(np.mean(np.sum(np.exp(self.reference) * (self.reference - logp), axis=1)))


def _options(probe: _Probe, name: str, candidates, seed: int, progress) -> list[Option]:
    w = probe.original[name].float().numpy()
    opts = [Option(RAW, 32 * w.size, 0.0)]
    for setting in candidates:
        q = QuantConfig(**setting)
        quantizer = registry.get(q.method)
        try:
            quantizer.check(w.shape, q)
        except ConfigError:
            continue
        t = quantizer.fit(w, q, seed)
        probe.set(name, registry.decode(t))
        opts.append(Option(dict(setting), t.ideal_bits, max(probe.kl(), 0.0), t))
        if progress:
            progress(name, setting)
    probe.set(name, None)
    return opts


def _fixed_bytes(model, layers) -> int:
    return sum(v.numel() * v.element_size() for k, v in model.state_dict().items() if k not in layers)


def _choose(options: dict, price: float) -> dict:
    return {n: min(opts, key=lambda o: (o.cost + price * o.bits, o.bits)) for n, opts in options.items()}


def _bits(choice: dict) -> int:
    return sum(o.bits for o in choice.values())


def _search(options: dict, fits) -> dict:
    """The cheapest choice (lowest price per bit) that `fits`; bisection on log(price)."""
    lo, hi = -30.0, 10.0
    if not fits(_choose(options, 10.0 ** hi)):
        return {}
    for _ in range(PRICE_STEPS):
        mid = (lo + hi) / 2
        if fits(_choose(options, 10.0 ** mid)):
            hi = mid
        else:
            lo = mid
    return _choose(options, 10.0 ** hi)


def _fill(options: dict, choice: dict, max_bits: int) -> dict:
    """Spend what the price search left over. The Lagrangian choice only lands on the corners of
    the cost-size hull, which can leave much of the budget unused; so, while anything fits, move
    the layer whose cost falls most per added bit to that better setting."""
    choice = dict(choice)
    while True:
        room = max_bits - _bits(choice)
        best, best_gain = None, 0.0
        for name, opts in options.items():
            current = choice[name]
            for o in opts:
                extra = o.bits - current.bits
                if o.cost < current.cost and extra <= room:
                    gain = (current.cost - o.cost) / max(extra, 1)
                    if gain > best_gain:
                        best, best_gain = (name, o), gain
        if best is None:
            return choice
        choice[best[0]] = best[1]


def _fit_size(options: dict, fixed: int, target: int, model, seed: int) -> Plan:
    """Largest payload within target, verified on the written file (its header, table and
    alignment are not in the estimate, so the estimate's budget shrinks until the file fits)."""
    budget = target
    for _ in range(8):
        choice = _search(options, lambda c, budget=budget: fixed + math.ceil(_bits(c) / 8) <= budget)
        if not choice:
            break
        if all(o.setting["method"] == "raw" for o in choice.values()):
            raise ConfigError(f"the uncompressed model ({fixed + _bits(choice) // 8} bytes of tensors) already "
                              f"fits --target-size {target}; there is nothing to compress")
        # The filled plan first; if the file's overhead pushes it over, the price search's own.
        for candidate in (_fill(options, choice, (budget - fixed) * 8), choice):
            plan = Plan({n: o.setting for n, o in candidate.items()}, seed)
            plan.file_bytes = _file_bytes(model, plan)
            if plan.file_bytes <= target:
                return plan
        # What the file adds to the payload (header, table, metadata, alignment), taken off the target.
        overhead = plan.file_bytes - (fixed + math.ceil(_bits(candidate) / 8))
        budget = min(budget - (plan.file_bytes - target), target - overhead)
    smallest = _choose(options, 10.0 ** 10)
    floor = _file_bytes(model, Plan({n: o.setting for n, o in smallest.items()}, seed))
    raise ConfigError(f"--target-size {target} bytes cannot be met: the smallest plan is {floor} bytes")


def _fit_drop(options: dict, probe: _Probe, model, x_val, y_val, max_drop: float, seed: int) -> Plan:
    """Smallest file whose top-1 on the held-out images is within max_drop points."""
    def top1(choice: dict | None) -> float:
        for name, opt in (choice or {}).items():
            probe.set(name, None if opt.tensor is None else registry.decode(opt.tensor))
        pred = probe.log_softmax(x_val).argmax(1)
        for name in choice or {}:
            probe.set(name, None)
        return float(np.mean(pred == y_val))

    base = top1(None)
    drops = {}

    def fits(choice: dict) -> bool:
        key = tuple(sorted((n, tuple(sorted(o.setting.items()))) for n, o in choice.items()))
        if key not in drops:
            drops[key] = 100 * (base - top1(choice))
        return drops[key] <= max_drop + 1e-9

    # The loss only grows with the price, so the largest price that still fits is wanted:
    # bisection on the opposite side from the size search.
    lo, hi = -30.0, 10.0
    if fits(_choose(options, 10.0 ** hi)):
        lo = hi
    else:
        for _ in range(24):  # each step is one evaluation of the held-out images
            mid = (lo + hi) / 2
            if fits(_choose(options, 10.0 ** mid)):
                lo = mid
            else:
                hi = mid
    choice = _choose(options, 10.0 ** lo)
    plan = Plan({n: o.setting for n, o in choice.items()}, seed)
    plan.measured_drop = 100 * (base - top1(choice))
    if any(s["method"] != "raw" for s in plan.settings.values()):
        plan.file_bytes = _file_bytes(model, plan)
    return plan


def _file_bytes(model, plan: Plan) -> int:
    from .compressor import compress_model
    from .formats.vqm import write_vqm

    cm = compress_model(model, plan.config, quiet=True)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "plan.vqm")
        write_vqm(cm, path)
        return os.path.getsize(path)
