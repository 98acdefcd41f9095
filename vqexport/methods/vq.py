"""Shared-codebook vector quantization: one k x d codebook for every d-long piece of every row.

Each row of the m x n matrix is cut into n/d sub-vectors of d consecutive weights; all of them
(or those of each group of rows, with --group-size) share one codebook. This is coremltools'
vector palettization (cluster_dim) and the codebook of "And the Bit Goes Down": unlike pq,
whose codebooks are one per segment, the codebook's cost does not grow with n, so short,
wide layers pay log2(k)/d bits per weight and little else.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import bits_for
from .base import MethodConfig, check_groups, codebook_tensor, matrix, need, row_groups
from .lloyd import lloyd

NAME = "vq"
TABLE = ("k", "d", "bits")
CODEBOOK_NDIM = 2  # rank of one codebook section; grouped ones have one more (the groups)


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    k: int = 16
    d: int = 4
    group_size: int = 0  # rows (output channels) per codebook; 0: one codebook for the tensor
    codebook_dtype: str = "float32"


def check(shape, q) -> None:
    m, n = matrix(shape)
    need(n % q.d == 0, f"d={q.d} does not divide the {n} columns")
    g = check_groups(shape, q)
    vectors = m * (n // q.d) // g
    need(q.k <= vectors, f"k={q.k} is larger than the {vectors} sub-vectors to cluster"
         + (" in each group" if g > 1 else ""))


def fit(w: np.ndarray, q: Config, seed: int):
    m = w.shape[0]
    g = check_groups(w.shape, q)
    pieces = w.reshape(g, -1, q.d)  # group-major rows, each cut into d-long pieces: [g, m/g * n/d, d]
    codebooks, idx = lloyd(pieces, q.k, seed)  # [g, k, d], [g, m/g * n/d]
    return codebook_tensor(NAME, w.shape, codebooks, idx.reshape(m * (w.size // m) // q.d), bits_for(q.k), q,
                           d=q.d, groups=g)


def decode(t, rows=None) -> np.ndarray:
    m, n = t.matrix
    per = n // t.d
    rows = rows or slice(0, m)
    start, stop = rows.start or 0, min(m, rows.stop if rows.stop is not None else m)
    idx = t.flat_indices(start * per, (stop - start) * per).reshape(stop - start, per)
    cb = t.codebook()  # [g, k, d]
    return cb[row_groups(t, start, stop)[:, None], idx].reshape(stop - start, n)


def layout(t) -> dict:
    m, n = t.matrix
    if t.d < 1 or n % t.d:
        raise ValueError(f"d={t.d} does not divide {n}")
    if t.groups < 1 or m % t.groups:
        raise ValueError(f"{t.groups} codebook groups do not divide the {m} rows")
    return {"codebook": (t.groups, t.k, t.d), "indices": (m * n // t.d,)}
