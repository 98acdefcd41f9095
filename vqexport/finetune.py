"""Codebook fine-tuning: train the codebooks, and the tensors left raw, with the task loss; the
indices stay as they are (Deep Compression's shared-weight training, tfmot's cluster fine-tuning).

Every codebook method's decode is linear in its codebook: each weight is one entry (binary,
kmeans, pq, vq) or a sum of one entry per stage (rq). Which entry is found by running the
method's own reference decode on a codebook of entry numbers, so no decode is written twice.
A training step then runs the network on weights W = cb[entry], takes the gradient of W from
torch, and adds it up per entry: the codebook's gradient.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from .errors import ConfigError
from .ir import CompressedModel, CompressedTensor, dense_section
from .methods import registry
from .methods.base import store_codebook

METHODS = ("binary", "kmeans", "pq", "vq", "rq")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    epochs: int = 1
    lr: float = 1e-4
    batch: int = 128
    seed: int = 0
    holdout: int = 5000  # training images kept aside to report held-out accuracy on

    def __post_init__(self) -> None:
        for name in ("epochs", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not isinstance(self.holdout, int) or self.holdout < 0:
            raise ConfigError(f"holdout must be a non-negative integer, got {self.holdout!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ConfigError(f"--lr must be between 0 and 1, got {self.lr!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {self.seed!r}")


def entry_maps(t: CompressedTensor) -> list[np.ndarray]:
    """One int64 array per stage, of the tensor's shape: the flat codebook entry each weight takes
    (W = sum over stages of codebook.flat[map])."""
    cb = t.sections["codebook"]
    ids = np.arange(cb.count, dtype=np.float64).reshape(cb.shape)  # exact in float32 below 2**24
    if cb.count >= 1 << 24:
        raise ConfigError(f"layer {t.name}: a codebook of {cb.count} entries is too large to fine-tune")
    stages = t.stages if t.method == "rq" else 1
    maps = []
    for s in range(stages):
        probe = ids + 1
        if stages > 1:  # every stage but s decodes to 0, so the sum is stage s's entry (+1)
            probe = np.where(np.arange(stages).reshape(-1, *([1] * (ids.ndim - 1))) == s, probe, 0)
        numbered = dataclasses.replace(t, sections={**t.sections, "codebook": dense_section(
            "codebook", probe.astype(np.float32))})
        maps.append(np.rint(registry.decode(numbered)).astype(np.int64) - 1)
    return maps


def finetune(cm: CompressedModel, module, x: np.ndarray, y: np.ndarray, config: FinetuneConfig,
             progress=None, source: str = "<array>") -> tuple[CompressedModel, dict]:
    """(a new CompressedModel with trained codebooks and raw parameters, a report).

    module: the network with cm's decoded weights (torch_bridge.to_torch); x, y: training images
    (channels first, normalised) and labels; the last config.holdout of them, after a shuffle by
    config.seed, are held out for the accuracy reported each epoch."""
    import torch

    bad = [t.name for t in cm.compressed if t.method not in METHODS]
    if bad:
        raise ConfigError(f"finetune applies to {', '.join(METHODS)} layers; {bad[0]} is "
                          f"{cm[bad[0]].method}")
    if not cm.compressed:
        raise ConfigError("the .vqm has no compressed layer to fine-tune")
    order = np.random.default_rng(config.seed).permutation(len(x))
    hold = min(config.holdout, len(x) // 5)
    train, held = order[:len(x) - hold], order[len(x) - hold:]
    if len(train) == 0:
        raise ConfigError("no training images")
    params = dict(module.named_parameters(remove_duplicate=False))  # TorchScript's state_dict() copies
    frozen = {bn + "." for _, bn in cm.metadata.get("folded") or ()}
    missing = [t.name for t in cm.compressed if t.name not in params]
    if missing:
        raise ConfigError(f"the model has no parameter {missing[0]} to fine-tune")
    books = {t.name: _Book(t, params[t.name]) for t in cm.compressed}
    raw = {t.name: params[t.name] for t in cm.tensors
           if t.method == registry.RAW and t.name in params and params[t.name].is_floating_point()
           and not any(t.name.startswith(f) for f in frozen)}
    # The optimiser holds leaf copies; the module's own tensors are written from them after each
    # step. (A deep-copied TorchScript module's parameters are not leaves, so they cannot be
    # optimised, nor collect .grad; autograd.grad reaches them all the same.)
    shadows = {name: p.detach().clone().requires_grad_(True) for name, p in raw.items()}
    driven = [b.weight for b in books.values()] + list(raw.values())
    for name, p in params.items():
        if p.is_leaf:
            p.requires_grad_(name in books or name in raw)
    opt = torch.optim.Adam([b.codebook for b in books.values()] + list(shadows.values()), lr=config.lr)
    module.eval()  # BatchNorm is folded or frozen, and dropout stays off: only the values move
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(y, dtype=np.int64))
    report = {"data": source, **dataclasses.asdict(config), "train_images": int(len(train)),
              "held_out_images": int(len(held)), "epochs_run": []}
    with torch.no_grad():
        outputs = module(xt[:1]).shape[-1]
    if int(yt.max()) >= outputs or int(yt.min()) < 0:
        raise ConfigError(f"{source}: has label {int(yt.max()) if int(yt.min()) >= 0 else int(yt.min())}, but the "
                          f"model has {outputs} outputs")
    rng = np.random.default_rng(config.seed)
    start = time.perf_counter()
    for book in books.values():
        book.write()
    report["held_out_top1_before"] = _accuracy(module, xt, yt, held)
    for epoch in range(config.epochs):
        perm = train[rng.permutation(len(train))]
        total, seen = 0.0, 0
        for a in range(0, len(perm), config.batch):
            idx = torch.from_numpy(perm[a:a + config.batch])
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(module(xt[idx]), yt[idx])
            grads = torch.autograd.grad(loss, driven)
            for book, g in zip(books.values(), grads, strict=False):
                book.gather_grad(g)
            for shadow, g in zip(shadows.values(), grads[len(books):], strict=True):
                shadow.grad = g
            opt.step()
            with torch.no_grad():
                for book in books.values():
                    book.write()
                for name, shadow in shadows.items():
                    raw[name].copy_(shadow)
            total += loss.item() * len(idx)
            seen += len(idx)
            if progress is not None:
                progress(epoch, seen, len(perm), total / seen)
        acc = _accuracy(module, xt, yt, held)
        report["epochs_run"].append({"epoch": epoch + 1, "train_loss": total / seen, "held_out_top1": acc})
        if progress is not None:
            progress(epoch, None, None, total / seen, acc)
    report["seconds"] = time.perf_counter() - start
    for p in params.values():
        if p.is_leaf:
            p.requires_grad_(False)
    return _rebuilt(cm, books, raw, report), report


class _Book:
    """One compressed tensor's codebook as a trainable tensor, and the module weight it drives."""

    def __init__(self, t: CompressedTensor, weight):
        import torch

        self.t, self.weight = t, weight
        self.maps = [torch.from_numpy(m.reshape(-1)) for m in entry_maps(t)]
        self.codebook = torch.nn.Parameter(torch.from_numpy(t.codebook().astype(np.float32).reshape(-1).copy()))

    def write(self) -> None:
        """The module's weight := the decode of the current codebook (binary's kept symmetric)."""
        import torch

        with torch.no_grad():
            if self.t.method == "binary":
                pairs = self.codebook.view(-1, 2)
                alpha = (pairs[:, 1] - pairs[:, 0]) / 2
                pairs.copy_(torch.stack([-alpha, alpha], 1))
            w = sum(self.codebook[m] for m in self.maps)
            self.weight.copy_(w.view_as(self.weight))

    def gather_grad(self, weight_grad) -> None:
        """The codebook's gradient: the weight's gradient summed per entry (the decode is linear)."""
        import torch

        g = weight_grad.reshape(-1)
        grad = torch.zeros_like(self.codebook)
        for m in self.maps:
            grad.index_add_(0, m, g)
        self.codebook.grad = grad


def _accuracy(module, x, y, rows) -> float | None:
    import torch

    if len(rows) == 0:
        return None
    with torch.no_grad():
        hits = sum(int((module(x[torch.from_numpy(rows[a:a + 500])]).argmax(1) == y[rows[a:a + 500]]).sum())
                   for a in range(0, len(rows), 500))
    return hits / len(rows)


def _rebuilt(cm: CompressedModel, books: dict, raw: dict, report: dict) -> CompressedModel:
    tensors = []
    for t in cm.tensors:
        if t.name in books:
            cb = books[t.name].codebook.detach().numpy().reshape(t.sections["codebook"].shape)
            t = dataclasses.replace(t, sections={**t.sections, "codebook": store_codebook(
                cb, t.sections["codebook"].dtype)})
        elif t.name in raw:
            value = raw[t.name].detach().numpy().astype(t.sections["raw"].data.dtype)
            t = dataclasses.replace(t, sections={"raw": dense_section("raw", value.reshape(t.shape))})
        tensors.append(t)
    meta = dict(cm.metadata)
    meta["finetune"] = dict(report)
    return CompressedModel(tensors=tensors, metadata=meta)


def training_set(data: str, spec: dict | None, model_name: str, scale: float | None = None):
    """(x, y) to train on, as the model takes them: a built-in set's training split (never its test
    split, which the user reports on), or all of the user's own data."""
    from .evaluate.datasets import BUILT_IN, fit_inputs, load_dataset, prepare

    shape = (spec or {}).get("shape")
    if data in BUILT_IN and scale is None:
        x, y = BUILT_IN[data]("train")
    else:
        x, y = load_dataset(data, shape, scale)
    return prepare(fit_inputs(x, shape, data, model_name), spec).astype(np.float32), y


class EpochBars:
    """finetune's progress: a bar per epoch with the running loss, then a line with held-out top-1."""

    def __init__(self, epochs: int, quiet: bool):
        self.epochs, self.quiet, self.bar, self.done = epochs, quiet, None, 0

    def __call__(self, epoch, seen, total, loss, acc=None) -> None:
        import sys

        from .util.progress import step_bar

        if seen is None:  # the epoch is over
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            if not self.quiet:
                held = "n/a" if acc is None else f"{100 * acc:.2f} %"
                print(f"epoch {epoch + 1}/{self.epochs}: train loss {loss:.4f}, held-out top-1 {held}",
                      file=sys.stderr)
            return
        if self.bar is None:
            self.bar, self.done = step_bar(total, f"epoch {epoch + 1}/{self.epochs}", self.quiet, every=10), 0
        self.bar.update(seen - self.done)
        self.done = seen
        self.bar.set_description_str(f"epoch {epoch + 1}/{self.epochs} loss {loss:.4f}")


def format_report(report: dict) -> str:
    lines = [f"fine-tuned on {report['data']}: {report['train_images']} training images, "
             f"{report['held_out_images']} held out, {report['epochs']} epochs in {report['seconds']:.1f} s"]
    before = report.get("held_out_top1_before")
    if before is not None:
        lines.append(f"held-out top-1 before: {100 * before:.2f} %")
    for e in report["epochs_run"]:
        held = "" if e["held_out_top1"] is None else f", held-out top-1 {100 * e['held_out_top1']:.2f} %"
        lines.append(f"epoch {e['epoch']}: train loss {e['train_loss']:.4f}{held}")
    return "\n".join(lines)
