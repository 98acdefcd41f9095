"""Binarization: the sign of each weight times one scale per layer.

The scale is alpha = mean(|W|), the value that minimises ||W - alpha * sign(W)||_F.
It is stored as the 2-entry codebook [-alpha, +alpha], so the decode is the same
Gather as k-means, with 1-bit indices (1 means >= 0).
"""
from __future__ import annotations

import numpy as np

from ._common import codebook_tensor, need

NAME = "binary"
CODE = 1


def check(shape, q) -> None:
    need(len(shape) == 2, f"binary needs a 2-D weight, got shape {tuple(shape)}")


def fit(w: np.ndarray, q, seed: int, progress=None):
    alpha = float(np.abs(w, dtype=np.float64).mean())
    idx = (w.ravel() >= 0).astype(np.uint16)
    return codebook_tensor(NAME, w.shape, np.array([-alpha, alpha]), idx, 1, q, k=2)


def decode(t) -> np.ndarray:
    return t.codebook()[t.indices()].reshape(t.shape)


def layout(t) -> dict:
    if t.k != 2 or t.bits != 1:
        raise ValueError("binary needs k=2 and 1-bit indices")
    return {"codebook": (2,), "indices": (t.shape[0] * t.shape[1],)}
