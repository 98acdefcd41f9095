"""Progress on stderr: a per-layer bar (the layer's name, its size, and the time left, weighted by
size), and a start/done line for whole-graph steps that have no per-layer progress inside them."""
from __future__ import annotations

import contextlib
import sys
import time

from tqdm import tqdm


class _Bar:
    def __init__(self, layers, quiet, step=""):
        self.step = f"{step}: " if step else ""
        self.sizes = dict(layers)
        total = sum(self.sizes.values())
        self.bar = None if quiet or not layers else tqdm(
            total=total, unit="w", unit_scale=True, file=sys.stderr, leave=False, desc=self._label(layers[0][0]),
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} weights [{elapsed}<{remaining}]")
        self.order = [n for n, _ in layers]

    def _label(self, name) -> str:
        return f"{self.step}{name} ({self.sizes[name] / 1e6:.2f} M)"

    def _describe(self, name):
        self.bar.set_description_str(self._label(name))

    def done(self, name):
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
