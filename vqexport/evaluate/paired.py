"""Paired comparisons of two models on the same images: is "A beats B" more than noise?

Two compressed models evaluated on the same test images disagree on few of them; the
images both get right (or both wrong) say nothing about which is better. McNemar's exact
test looks only at the discordant images, and a paired bootstrap gives an interval for the
difference in top-1. Both take the seed as a parameter.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.05  # a claim "A beats B" holds when McNemar's two-sided p is below this


@dataclass(frozen=True)
class Paired:
    top1_a: float
    top1_b: float
    only_a: int  # images A gets right and B gets wrong
    only_b: int
    p_value: float  # McNemar's exact two-sided test
    ci_low: float  # 95 % paired-bootstrap interval of top1_a - top1_b
    ci_high: float

    @property
    def verdict(self) -> str:
        if self.p_value < ALPHA:
            return "A better" if self.only_a > self.only_b else "B better"
        return "no significant difference"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def compare(correct_a: np.ndarray, correct_b: np.ndarray, seed: int = 0, resamples: int = 2000) -> Paired:
    """Compare two boolean vectors (image i answered correctly by A, by B)."""
    from scipy.stats import binomtest

    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired comparison needs two equal, non-empty 1-D vectors, got {a.shape} and {b.shape}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = only_a + only_b
    p = 1.0 if n == 0 else float(binomtest(min(only_a, only_b), n, 0.5).pvalue)
    diff = a.astype(np.int8) - b.astype(np.int8)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):  # a loop keeps the memory at one index vector, whatever the test size
        means[i] = diff[rng.integers(0, a.size, a.size)].mean()
    low, high = np.quantile(means, [0.025, 0.975])
    return Paired(float(a.mean()), float(b.mean()), only_a, only_b, min(p, 1.0), float(low), float(high))
