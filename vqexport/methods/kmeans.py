"""Scalar k-means: one k-entry codebook per tensor (or per group of rows), ceil(log2 k) bits per weight."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import bits_for, pack_stream
from ..ir import packed_bytes_section
from ..util.parallel import thread_map
from .base import MethodConfig, check_groups, codebook_tensor, flat_gather, matrix, need
from .kmeans1d import assign1d_chunks, kmeans1d_centroids_many

NAME = "kmeans"
TABLE = ("k", "bits")
CODEBOOK_NDIM = 1  # rank of one codebook section; grouped ones have one more (the groups)


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    k: int = 16
    group_size: int = 0  # rows (output channels) per codebook; 0: one codebook for the tensor
    codebook_dtype: str = "float32"


def check(shape, q) -> None:
    m, n = matrix(shape)
    g = check_groups(shape, q)
    need(q.k <= m * n // g, f"k={q.k} is larger than the {m * n // g} weights to cluster"
         + (" in each group" if g > 1 else ""))


def fit(w: np.ndarray, q: Config, seed: int):
    return fit_many([(w, q)], seed)[0]


def fit_many(items, seed: int) -> list:
    """fit() of each (w, q): the DP of every row group of every weight of one k runs in the same
    batches, so a network of many small layers pays numpy's per-call cost once, not per layer."""
    blocks = [np.split(w.reshape(w.shape[0], -1), check_groups(w.shape, q)) for w, q in items]  # views
    cents: list = [None] * len(items)
    for k in sorted({q.k for _, q in items}):
        mine = [i for i, (_, q) in enumerate(items) if q.k == k]
        flat = kmeans1d_centroids_many([b for i in mine for b in blocks[i]], k, seed)
        for i in mine:
            cents[i], flat = flat[:len(blocks[i])], flat[len(blocks[i]):]
    jobs = [(w, q, b, c) for (w, q), b, c in zip(items, blocks, cents, strict=True)]
    return thread_map(lambda job: _tensor(*job), jobs)


def _tensor(w, q: Config, blocks, cents):
    bits = bits_for(q.k)
    if q.codebook_dtype == "float16":  # assign to the centroids as they will be stored
        cents = [np.sort(c.astype(np.float16)).astype(np.float32) for c in cents]
    packed = pack_stream((part for block, c in zip(blocks, cents, strict=True)
                          for part in assign1d_chunks(block.ravel(), c)), bits)
    codebook = cents[0] if len(blocks) == 1 else np.stack(cents)
    return codebook_tensor(NAME, w.shape, codebook, packed_bytes_section(packed, (w.size,), bits), bits, q,
                           groups=len(blocks))


def decode(t, rows=None) -> np.ndarray:
    return flat_gather(t, rows)


def layout(t) -> dict:
    m, n = t.matrix
    return {"codebook": _grouped(t, (t.k,)), "indices": (m * n,)}


def _grouped(t, shape: tuple) -> tuple:
    if t.groups < 1 or t.matrix[0] % t.groups:
        raise ValueError(f"{t.groups} codebook groups do not divide the {t.matrix[0]} rows")
    return shape if t.groups == 1 else (t.groups, *shape)
