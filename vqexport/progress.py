"""A per-layer progress bar: the layer's name, its size, and the time left, weighted by size."""
from __future__ import annotations

import sys

from tqdm import tqdm


class _Bar:
    def __init__(self, layers, quiet):
        self.sizes = dict(layers)
        total = sum(self.sizes.values())
        self.bar = None if quiet or not layers else tqdm(
            total=total, unit="w", unit_scale=True, file=sys.stderr, leave=False,
            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} weights [{elapsed}<{remaining}]")
        if self.bar and layers:
            self._describe(layers[0][0])
        self.order = [n for n, _ in layers]

    def _describe(self, name):
        self.bar.set_description_str(f"{name} ({self.sizes[name] / 1e6:.2f} M)")

    def done(self, name):
        if self.bar:
            self.bar.update(self.sizes[name])
            i = self.order.index(name)
            if i + 1 < len(self.order):
                self._describe(self.order[i + 1])

    def close(self):
        if self.bar:
            self.bar.close()


def layer_bar(layers: list[tuple[str, int]], quiet: bool) -> _Bar:
    return _Bar(layers, quiet)
