"""Scalar k-means: one k-entry codebook per layer, ceil(log2 k) bits per weight."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import bits_for
from ..ir import packed_bytes_section
from .base import MethodConfig, codebook_tensor, flat_gather, need
from .kmeans1d import assign1d_packed, kmeans1d_centroids

NAME = "kmeans"
TABLE = ("k", "bits")


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    k: int = 16
    codebook_dtype: str = "float32"


def check(shape, q) -> None:
    need(len(shape) == 2, f"kmeans needs a 2-D weight, got shape {tuple(shape)}")
    n = int(np.prod(shape))
    need(q.k <= n, f"k={q.k} is larger than the {n} weights to cluster")


def fit(w: np.ndarray, q: Config, seed: int):
    bits = bits_for(q.k)
    centroids = kmeans1d_centroids(w, q.k, seed)
    if q.codebook_dtype == "float16":  # assign to the centroids as they will be stored
        centroids = np.sort(centroids.astype(np.float16)).astype(np.float32)
    packed = packed_bytes_section(assign1d_packed(w, centroids, bits), (w.size,), bits)
    return codebook_tensor(NAME, w.shape, centroids, packed, bits, q)


def decode(t, rows=None) -> np.ndarray:
    return flat_gather(t, rows)


def layout(t) -> dict:
    return {"codebook": (t.k,), "indices": (t.shape[0] * t.shape[1],)}
