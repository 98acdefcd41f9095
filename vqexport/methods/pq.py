"""Product quantization: segments of d columns (or, with rows=True, d rows), a k x d codebook each.

Columns: segment j holds W[:, j*d:(j+1)*d]; its m sub-rows are clustered.
Rows: the same on W transposed, so segment j holds W[j*d:(j+1)*d, :] and its n sub-columns are clustered.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bitpack import bits_for
from ..ir import matrix_shape
from .base import MethodConfig, check_groups, codebook_tensor, matrix, need, row_groups
from .lloyd import lloyd

NAME = "pq"
TABLE = ("k", "d", "rows", "bits")
CODEBOOK_NDIM = 3  # rank of one codebook section; grouped ones have one more (the groups)


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    k: int = 16
    d: int = 4
    rows: bool = False
    group_size: int = 0  # by columns: rows (output channels) per set of codebooks; 0: one set
    codebook_dtype: str = "float32"


def _split(shape, rows: bool):
    m, n = matrix_shape(shape)
    return (n, m) if rows else (m, n)  # (vectors per segment, length that d must divide)


def check(shape, q) -> None:
    matrix(shape)
    vectors, length = _split(shape, q.rows)
    side = "rows" if q.rows else "columns"
    need(length % q.d == 0, f"d={q.d} does not divide the {length} {side}")
    need(not (q.rows and q.group_size), "--group-size applies to pq by columns, not with --rows")
    g = check_groups(shape, q)
    need(q.k <= vectors // g, f"k={q.k} is larger than the {vectors // g} vectors in each segment"
         + (" of each group" if g > 1 else ""))


def fit(w: np.ndarray, q: Config, seed: int):
    shape, w = w.shape, w.reshape(w.shape[0], -1)
    g = check_groups(shape, q)
    wt = w.T if q.rows else w
    vectors, length = wt.shape
    s = length // q.d
    segments = wt.reshape(vectors, s, q.d).transpose(1, 0, 2)  # [s, vectors, d]
    if g > 1:  # each group's rows are their own problems: [g * s, vectors / g, d]
        segments = segments.reshape(s, g, vectors // g, q.d).transpose(1, 0, 2, 3).reshape(g * s, -1, q.d)
    codebooks, idx = lloyd(segments, q.k, seed)
    if g > 1:
        codebooks = codebooks.reshape(g, s, q.k, q.d)
        idx = idx.reshape(g, s, vectors // g).transpose(1, 0, 2).reshape(s, vectors)
    return codebook_tensor(NAME, shape, codebooks, idx, bits_for(q.k), q, d=q.d, rows=q.rows, groups=g)


def decode(t, rows=None) -> np.ndarray:
    cb, idx = t.codebook(), t.indices()  # [s, k, d] ([g, s, k, d] grouped), [s, vectors]
    s = idx.shape[0]
    if not t.rows and rows is not None:
        idx = idx[:, rows]  # by columns, a block of rows is a block of each segment's vectors
    if t.groups > 1:  # by columns only: the codebooks of each vector's row group
        start = (rows.start or 0) if rows is not None else 0
        gi = row_groups(t, start, start + idx.shape[1])
        parts = cb[gi[None, :], np.arange(s)[:, None], idx.astype(np.int64)]  # [s, vectors, d]
    else:
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
    if t.groups != 1 and (t.rows or t.groups < 1 or vectors % t.groups):
        raise ValueError(f"{t.groups} codebook groups do not fit pq {'by rows' if t.rows else ''} of {vectors} rows")
    cb = (s, t.k, t.d) if t.groups == 1 else (t.groups, s, t.k, t.d)
    return {"codebook": cb, "indices": (s, vectors)}
