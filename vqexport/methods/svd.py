"""The paper's low-rank baseline: W ~ A @ B with A = U_r S_r (m x r) and B = V_r^T (r x n)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import CompressedTensor, dense_section
from .base import MethodConfig, need

NAME = "svd"
TABLE = ("rank",)
EXACT_LIMIT = 2048  # above this many rows and columns, a seeded randomized SVD is far faster


@dataclass(frozen=True, repr=False)
class Config(MethodConfig):
    NAME = NAME
    rank: int = 32


def check(shape, q) -> None:
    need(len(shape) == 2, f"svd needs a 2-D weight, got shape {tuple(shape)}")
    need(q.rank <= min(shape), f"rank={q.rank} is larger than min{tuple(shape)} = {min(shape)}")


def fit(w: np.ndarray, q: Config, seed: int):
    r = q.rank
    if min(w.shape) <= EXACT_LIMIT:
        u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    else:
        from sklearn.utils.extmath import randomized_svd

        u, s, vt = randomized_svd(w, r, n_iter=4, random_state=seed)
    a = (u[:, :r] * s[:r]).astype(np.float32)
    b = vt[:r].astype(np.float32)
    sections = {"factor_a": dense_section("factor_a", a), "factor_b": dense_section("factor_b", b)}
    return CompressedTensor(name="", method=NAME, shape=tuple(w.shape), rank=r, sections=sections)


def decode(t, rows=None) -> np.ndarray:
    a = t.sections["factor_a"].data.astype(np.float32)
    return (a if rows is None else a[rows]) @ t.sections["factor_b"].data.astype(np.float32)


def layout(t) -> dict:
    if not 1 <= t.rank <= min(t.shape):
        raise ValueError(f"svd rank {t.rank} is outside 1..min(m, n) = {min(t.shape)}")
    return {"factor_a": (t.shape[0], t.rank), "factor_b": (t.rank, t.shape[1])}
