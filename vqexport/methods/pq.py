"""Product quantization: segments of d columns (or, with rows=True, d rows), a k x d codebook each.

Columns: segment j holds W[:, j*d:(j+1)*d]; its m sub-rows are clustered.
Rows: the same on W transposed, so segment j holds W[j*d:(j+1)*d, :] and its n sub-columns are clustered.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import bits_for
from .base import MethodConfig, codebook_tensor, need
from .lloyd import lloyd

NAME = "pq"
TABLE = ("k", "d", "rows", "bits")


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    k: int = 16
    d: int = 4
    rows: bool = False
    codebook_dtype: str = "float32"


def _split(shape, rows: bool):
    m, n = shape
    return (n, m) if rows else (m, n)  # (vectors per segment, length that d must divide)


def check(shape, q) -> None:
    need(len(shape) == 2, f"pq needs a 2-D weight, got shape {tuple(shape)}")
    vectors, length = _split(shape, q.rows)
    side = "rows" if q.rows else "columns"
    need(length % q.d == 0, f"d={q.d} does not divide the {length} {side}")
    need(q.k <= vectors, f"k={q.k} is larger than the {vectors} vectors in each segment")


def fit(w: np.ndarray, q: Config, seed: int):
    wt = w.T if q.rows else w
    vectors, length = wt.shape
    s = length // q.d
    segments = wt.reshape(vectors, s, q.d).transpose(1, 0, 2)  # [s, vectors, d]
    codebooks, idx = lloyd(segments, q.k, seed)
    return codebook_tensor(NAME, w.shape, codebooks, idx, bits_for(q.k), q, d=q.d, rows=q.rows)


def decode(t, rows=None) -> np.ndarray:
    cb, idx = t.codebook(), t.indices()  # [s, k, d], [s, vectors]
    s = cb.shape[0]
    if not t.rows and rows is not None:
        idx = idx[:, rows]  # by columns, a block of rows is a block of each segment's vectors
    parts = cb[np.arange(s)[:, None], idx.astype(np.int64)]  # [s, vectors, d]
    wt = parts.transpose(1, 0, 2).reshape(idx.shape[1], s * t.d)
    if not t.rows:
        return wt
    # By rows, W = wt.T: a block of rows spans whole segments, decoded in full then cut.
    w = np.ascontiguousarray(wt.T)
    return w if rows is None else w[rows]


def layout(t) -> dict:
    vectors, length = _split(t.shape, t.rows)
    if t.d < 1 or length % t.d:
        raise ValueError(f"d={t.d} does not divide {length}")
    s = length // t.d
    return {"codebook": (s, t.k, t.d), "indices": (s, vectors)}
