"""The paper's low-rank baseline: W ~ A @ B with A = U_r S_r (m x r) and B = V_r^T (r x n)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import CompressedTensor, dense_section
from .base import MethodConfig, matrix, need

NAME = "svd"
TABLE = ("rank",)
CODEBOOK_NDIM = 0  # no codebook
EXACT_LIMIT = 2048  # above this many rows and columns, a seeded randomized SVD is far faster


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    rank: int = 32


def check(shape, q) -> None:
    m, n = matrix(shape)
    need(q.rank <= min(m, n), f"rank={q.rank} is larger than min({m}, {n}) = {min(m, n)}")


def fit(w: np.ndarray, q: Config, seed: int):
    r = q.rank
    shape, w = w.shape, w.reshape(w.shape[0], -1)
    if min(w.shape) <= EXACT_LIMIT:
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    else:
        from sklearn.utils.extmath import randomized_svd

        u, s, vt = randomized_svd(w, r, n_iter=4, random_state=seed)
    a = (u[:, :r] * s[:r]).astype(np.float32)
    b = vt[:r].astype(np.float32)
    sections = {"factor_a": dense_section("factor_a", a), "factor_b": dense_section("factor_b", b)}
    return CompressedTensor(name="", method=NAME, shape=tuple(shape), rank=r, sections=sections)


def decode(t, rows=None) -> np.ndarray:
    a = t.sections["factor_a"].data.astype(np.float32)
    return (a if rows is None else a[rows]) @ t.sections["factor_b"].data.astype(np.float32)


def layout(t) -> dict:
    m, n = t.matrix
    if not 1 <= t.rank <= min(m, n):
        raise ValueError(f"svd rank {t.rank} is outside 1..min(m, n) = {min(m, n)}")
    return {"factor_a": (m, t.rank), "factor_b": (t.rank, n)}
