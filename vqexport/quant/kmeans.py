"""Scalar k-means: one k-entry codebook per layer, ceil(log2 k) bits per weight."""
from __future__ import annotations

import numpy as np

from ..bitpack import bits_for
from ._common import codebook_tensor, need
from .lloyd import kmeans1d

NAME = "kmeans"
CODE = 2


def check(shape, q) -> None:
    need(len(shape) == 2, f"kmeans needs a 2-D weight, got shape {tuple(shape)}")
    n = int(np.prod(shape))
    need(q.k <= n, f"k={q.k} is larger than the {n} weights to cluster")


def fit(w: np.ndarray, q, seed: int, progress=None):
    centroids, idx = kmeans1d(w, q.k, seed)
    return codebook_tensor(NAME, w.shape, centroids, idx, bits_for(q.k), q)


def decode(t) -> np.ndarray:
    return t.codebook()[t.indices()].reshape(t.shape)


def layout(t) -> dict:
    return {"codebook": (t.k,), "indices": (t.shape[0] * t.shape[1],)}
