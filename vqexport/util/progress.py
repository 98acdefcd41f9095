"""Progress on stderr: a per-layer bar (the layer's name, its size, and the time left, weighted by
size), and a start/done line for whole-graph steps that have no per-layer progress inside them.

A bar redraws itself with carriage returns, which only a terminal makes sense of: in a log file it
is hundreds of KB of redraws. When stderr is not a terminal, each finished step prints one plain
line instead.
"""
from __future__ import annotations

import contextlib
import sys
import time

from tqdm import tqdm


def _terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def _line(text: str) -> None:
    print(f"vqexport: {text}", file=sys.stderr, flush=True)


class _Bar:
    def __init__(self, layers, quiet, step=""):
        self.step = f"{step}: " if step else ""
        self.sizes = dict(layers)
        total = sum(self.sizes.values())
        self.plain = not quiet and bool(layers) and not _terminal()
        self.bar = None if quiet or not layers or self.plain else tqdm(
            total=total, unit="w", unit_scale=True, file=sys.stderr, leave=False, desc=self._label(layers[0][0]),
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} weights [{elapsed}<{remaining}]")
        self.order = [n for n, _ in layers]
        self.t0 = time.perf_counter()

    def _label(self, name) -> str:
        return f"{self.step}{name} ({self.sizes[name] / 1e6:.2f} M)"

    def _describe(self, name):
        self.bar.set_description_str(self._label(name))

    def done(self, name):
        if self.plain:
            i = self.order.index(name)
            _line(f"{self._label(name)} done [{i + 1}/{len(self.order)}, {time.perf_counter() - self.t0:.1f} s]")
        if self.bar:
            self.bar.update(self.sizes[name])
            i = self.order.index(name)
            if i + 1 < len(self.order):
                self._describe(self.order[i + 1])

    def close(self):
        if self.bar:
            self.bar.close()


def layer_bar(layers: list[tuple[str, int]], quiet: bool, step: str = "") -> _Bar:
    """A bar over `layers` ([(name, weights)]); call .done(name) after each, then .close()."""
    return _Bar(layers, quiet, step)


class _Lines:
    """step_bar's stand-in for tqdm off a terminal: a line per finished step, at most one per
    `every` seconds (and always the last)."""

    def __init__(self, total: int, desc: str, every: float):
        self.total, self.n, self.desc, self.every = total, 0, desc, every
        self.last = time.perf_counter()

    def set_description_str(self, desc: str) -> None:
        self.desc = desc

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every or self.n >= self.total:
            self.last = now
            _line(f"{self.desc} done [{self.n}/{self.total}]")

    def close(self) -> None:
        pass


def step_bar(total: int, desc: str, quiet: bool, every: float = 0.0, leave: bool = True):
    """A bar over `total` steps with tqdm's update / set_description_str / close / total; off a
    terminal, plain lines at most one per `every` seconds."""
    if quiet:
        return tqdm(total=total, disable=True)
    if not _terminal():
        return _Lines(total, desc, every)
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=leave)


@contextlib.contextmanager
def stage(text: str, quiet: bool):
    """'text ...' when a whole-graph step starts and 'text: done in N s' when it ends."""
    if quiet:
        yield
        return
    print(f"vqexport: {text} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    yield
    print(f"vqexport: {text}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
